"""Shared test helpers.

Optional extras (mujoco, export, record, ray) are imported through `require`: a missing extra skips the
test on a developer's machine, but fails it where `TRPO_REQUIRE_EXTRAS=1` is set (`.ci/run` sets it, and
CI installs every extra), so that a broken install cannot turn tests into silent skips.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest

from trpo import TRPO
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
