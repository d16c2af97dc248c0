"""Shared test helpers.

Optional extras (mujoco, export, record, ray) are imported through `require`: a missing extra skips the
test on a developer's machine, but fails it where `TRPO_REQUIRE_EXTRAS=1` is set (`.ci/run` sets it, and
CI installs every extra), so that a broken install cannot turn tests into silent skips.
"""

from __future__ import annotations

import importlib
import os
import shutil
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch
from torch.autograd.functional import hessian
from torch.func import functional_call

from trpo import TRPO
from trpo.core.trust_region import detached_params, flatten, unflatten
from trpo.sampling.rollout import Batch

REQUIRE_EXTRAS = os.environ.get("TRPO_REQUIRE_EXTRAS", "") not in ("", "0")


def require(module: str, extra: str) -> ModuleType:
    """Import `module` of the optional `extra`; skip the test without it, or fail under TRPO_REQUIRE_EXTRAS."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        message = f"{module} is not importable ({exc}): pip install -e '.[{extra}]'"
        if REQUIRE_EXTRAS:
            pytest.fail(f"TRPO_REQUIRE_EXTRAS is set but {message}", pytrace=False)
        pytest.skip(message, allow_module_level=True)


def collect(agent: TRPO) -> Batch:
    """One on-policy batch from the agent's sampler (the first call creates the sampler)."""
    return agent.start_sampler().collect(agent.config.gamma, agent.config.gae_lambda)


def explicit_kl_hessian(actor: Any, obs: torch.Tensor, dist: Any, mask: torch.Tensor | None = None) -> torch.Tensor:
    """The explicit Hessian of the mean KL(pi_k || pi_theta) at theta_k (the Fisher matrix the FVPs must equal)."""
    params = detached_params(actor)
    inputs = (obs,) if mask is None else (obs, mask)
    with torch.no_grad():
        p_k = actor(*inputs)

    def mean_kl(theta: torch.Tensor) -> torch.Tensor:
        return dist.kl(p_k, functional_call(actor, unflatten(theta, params), inputs)).mean()

    return hessian(mean_kl, flatten(params))  # type: ignore[no-any-return]


SMALL_RUN = [
    "--sampler", "sync", "--n-envs", "2", "--n-steps", "16", "--quiet",
    "--eval-episodes", "0", "--hidden-sizes", "16", "16",
]  # fmt: skip
"""`trpo train` flags of a tiny run (the run-directory fixtures)."""


def train_tiny_run(directory: Path) -> Path:
    """A finished tiny CartPole run directory at `directory/run` (the run-directory tests copy it)."""
    from trpo.cli.main import main

    run = directory / "run"
    assert main(["train", "CartPole-v1", "--total-steps", "32", "--run-dir", str(run), *SMALL_RUN]) == 0
    return run


def copy_run(template: Path, directory: Path) -> Path:
    """A fresh copy of a run directory for one test."""
    return Path(shutil.copytree(template, directory / "run"))
