"""The benchmark scripts' optional dependencies, checked before any work: when one is missing the script
prints one line naming it and the extra that installs it, and exits with status 2 (no traceback)."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterable
from pathlib import Path

# module -> the extra of pyproject.toml that installs it
EXTRAS = {
    "sb3_contrib": "bench", "stable_baselines3": "bench", "mujoco": "bench", "Box2D": "bench", "ray": "ray",
    "pytest": "dev", "hypothesis": "dev",
}  # fmt: skip
# gymnasium.envs.<family> -> the module its environments need
ENV_FAMILIES = {"mujoco": "mujoco", "box2d": "Box2D"}


def missing(modules: Iterable[str]) -> list[str]:
    """The `modules` that cannot be imported, in order, each once."""
    absent: list[str] = []
    for name in dict.fromkeys(modules):
        try:
            importlib.import_module(name)
        except ImportError:
            absent.append(name)
    return absent


def env_modules(env_ids: Iterable[str]) -> list[str]:
    """The modules the Gymnasium environments `env_ids` need (MuJoCo, Box2D), from their registrations;
    an unknown id needs nothing here (the script reports it)."""
    import gymnasium

    needed: list[str] = []
    for env_id in env_ids:
        try:
            entry_point = str(gymnasium.spec(env_id).entry_point)
        except gymnasium.error.Error:
            continue
        needed += [module for family, module in ENV_FAMILIES.items() if f"gymnasium.envs.{family}." in entry_point]
    return needed


def install_hint(absent: list[str]) -> str:
    extras = ",".join(sorted({EXTRAS.get(module, "bench") for module in absent}))
    return f'pip install -e ".[{extras}]"'


def require(script: str, modules: Iterable[str] = (), env_ids: Iterable[str] = ()) -> None:
    """Exit with status 2 and one line on stderr if a module, or one the environments need, is missing."""
    absent = missing([*modules, *env_modules(env_ids)])
    if absent:
        names = ", ".join(absent)
        verb = "is" if len(absent) == 1 else "are"
        name = f"benchmarks/{Path(script).name}"
        print(f"error: {name} needs {names}, which {verb} not installed: {install_hint(absent)}", file=sys.stderr)
        raise SystemExit(2)
