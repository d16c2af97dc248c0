"""Environment creation details users would otherwise see: MuJoCo's warnings."""

from __future__ import annotations

import pytest

from conftest import require
from trpo.sampling.envs import env_factory, mujoco_warning


def test_mujoco_asset_noise_is_dropped_and_other_warnings_reach_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    mujoco_warning("compiler attribute 'settotalmass' is deprecated and will be removed in a future release")
    mujoco_warning("Nan, Inf or huge value in QACC at DOF 0")
    err = capsys.readouterr().err
    assert err == "MuJoCo warning: Nan, Inf or huge value in QACC at DOF 0\n"


def test_making_a_mujoco_env_installs_the_handler() -> None:
    mujoco = require("mujoco", "mujoco")
    factory, _ = env_factory("InvertedPendulum-v5")
    factory().close()
    assert mujoco.get_mju_user_warning() is mujoco_warning
