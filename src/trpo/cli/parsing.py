"""What every command shares: parsing flags with tyro into one error line, and the environment flags."""

from __future__ import annotations

import contextlib
import io
from typing import TYPE_CHECKING, TypeVar, cast

import tyro

from trpo.errors import UserError
from trpo.sampling.env_spec import EnvFlags

if TYPE_CHECKING:
    from trpo.algos.learner import Learner

T = TypeVar("T")


def parse(cls: type[T], argv: list[str], prog: str, default: T | None = None) -> T:
    """tyro.cli, with its boxed error message reduced to one line (raised as UserError)."""
    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured):
            return cast(T, tyro.cli(cls, args=argv, prog=prog, default=default))
    except SystemExit as exc:
        if exc.code in (0, None):
            raise
        text = captured.getvalue()
        message: list[str] = []
        for line in text.splitlines()[1:]:  # the first line is the box's title
            content = line.strip().strip("│╭╰─").strip()
            if not content or set(content) <= set("─"):
                if message:
                    break
                continue
            message.append(content)
        raise UserError(f"{' '.join(message) or text.strip()} (see `{prog} --help`)") from None


def with_env_flags(agent: Learner, flags: EnvFlags) -> None:
    """Use the environment of `--env`/`--env-kwargs`/`--wrapper` (on top of the recorded one), if given."""
    from trpo.sampling.envs import env_factory

    spec = flags.spec(agent.env_spec)
    if spec is not agent.env_spec and spec is not None:
        agent.env_fn = env_factory(spec)[0]
        agent.set_env_spec(spec)
