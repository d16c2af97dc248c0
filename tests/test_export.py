"""`trpo export --format onnx`: the ONNX graph computes what `TRPO.predict` computes; bad input is refused."""

from __future__ import annotations

import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

from conftest import require
from trpo import TRPO, TRPOConfig
from trpo.cli.main import main

ort = require("onnxruntime", "export")
from trpo.tools.export import TOLERANCE, PolicyGraph, export_checked, random_observations  # noqa: E402

TINY = TRPOConfig(n_envs=2, n_steps=64, hidden_sizes=(16, 16), vf_epochs=1, eval_episodes=0)


def onnx_actions(path: Path, obs: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"obs": obs})[0]


def assert_one_line_error(code: int, capsys: pytest.CaptureFixture[str], status: int, *fragments: str) -> None:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == status and len(lines) == 1, err
    assert lines[0].startswith("error: ") and "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """CartPole (Discrete) and Pendulum (Box, observation normalisation) trained for a few updates, saved."""
    root = tmp_path_factory.mktemp("models")
    paths = {}
    for env_id in ("CartPole-v1", "Pendulum-v1"):
        agent = TRPO(env_id, TINY, seed=0).learn(256)
        agent.save(root / env_id)
        agent.close()
        paths[env_id] = root / env_id
    return paths


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_cli_export_matches_predict(
    saved: dict[str, Path], env_id: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    if env_id == "CartPole-v1":
        args, out = [], saved[env_id] / "policy.onnx"  # the default --out
    else:
        out = tmp_path / "sub" / "policy.onnx"
        args = ["--out", str(out)]
    assert main(["export", str(saved[env_id]), "--format", "onnx", *args]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and "max abs diff" in printed
    assert not list(out.parent.glob(".*.tmp"))
    agent = TRPO.load(saved[env_id])
    assert agent.obs_normalizer.enabled and agent.obs_normalizer.rms.count > 0  # normalisation is folded in
    obs = random_observations(agent, 300, seed=123)
    got, expected = onnx_actions(out, obs), agent.predict(obs)
    assert got.shape == expected.shape and got.dtype == expected.dtype
    assert np.max(np.abs(got.astype(np.float64) - expected)) <= TOLERANCE
    single = obs[:1]  # the batch axis is dynamic
    assert np.max(np.abs(onnx_actions(out, single)[0] - agent.predict(single[0]))) <= TOLERANCE


class SpacesEnv(gym.Env):
    """Random observations in a given space; the actions are ignored (only the spaces matter here)."""

    def __init__(self, observation_space: spaces.Box, action_space: spaces.Space) -> None:
        self.observation_space, self.action_space = observation_space, action_space

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action: object) -> tuple[np.ndarray, float, bool, bool, dict]:
        return self.observation_space.sample(), 0.0, False, False, {}


ACTION_SPACES = {
    "box-partly-unbounded": spaces.Box(np.array([-1, -np.inf], np.float32), np.array([1, np.inf], np.float32)),
    "discrete-start": spaces.Discrete(5, start=-2),
    "multidiscrete": spaces.MultiDiscrete([3, 4]),
    "multibinary": spaces.MultiBinary(3),
}


@pytest.mark.parametrize("name", list(ACTION_SPACES))
def test_every_action_space_exports_exactly(name: str, tmp_path: Path) -> None:
    """float64 observations of shape (2, 3), normalisation stats and weights far from the defaults, a tight
    clip_obs: every stage of the graph (reshape, normalise, clip, actor, action head) is exercised."""
    obs_space = spaces.Box(-20.0, 20.0, (2, 3), dtype=np.float64)
    space = ACTION_SPACES[name]
    agent = TRPO(lambda: SpacesEnv(obs_space, space), TINY.replace(clip_obs=2.0), seed=0)
    rng = np.random.default_rng(0)
    agent.obs_normalizer.rms.mean = rng.normal(0.0, 3.0, 6)
    agent.obs_normalizer.rms.var = rng.uniform(0.5, 4.0, 6)
    with torch.no_grad():
        for p in agent.actor.parameters():
            p.normal_(0.0, 1.0, generator=torch.Generator().manual_seed(p.numel()))
    out = tmp_path / "policy.onnx"
    assert export_checked(agent, out, samples=256) <= TOLERANCE
    obs = random_observations(agent, 400, seed=7)
    got, expected = onnx_actions(out, obs), agent.predict(obs)
    assert got.shape == expected.shape and got.dtype == expected.dtype
    if isinstance(space, spaces.Box):
        assert np.max(np.abs(got - expected)) <= TOLERANCE
        assert np.any(got[:, 0] == 1.0) and np.any(got[:, 0] == -1.0)  # the bounds clip
        assert np.max(np.abs(got[:, 1])) > 1.0  # and the unbounded dimension is not clipped
    else:
        assert np.array_equal(got, expected)
        assert len(np.unique(got, axis=0)) > 1  # not a constant policy
    if isinstance(space, spaces.Discrete):
        assert got.min() >= -2 and got.max() <= 2


def test_a_wrong_graph_is_caught_and_not_written(
    saved: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    forward = PolicyGraph.forward
    monkeypatch.setattr(PolicyGraph, "forward", lambda self, *inputs: forward(self, *inputs) + 1e-3)
    out = tmp_path / "policy.onnx"
    code = main(["export", str(saved["Pendulum-v1"]), "--out", str(out), "--samples", "64"])
    assert_one_line_error(code, capsys, 1, "differs from predict() by 0.001", "was not written")
    assert not list(tmp_path.iterdir())  # neither the file nor its temporary


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["export", "/nonexistent/run"], "does not exist"),
        (["export", "RUN", "--format", "tflite"], "--format"),
        (["export", "RUN", "--out", "DIR"], "is a directory"),
        (["export", "RUN", "--samples", "0"], "--samples must be >= 1"),
    ],
)
def test_bad_input_gives_one_line_and_exit_2(
    saved: dict[str, Path], args: list[str], fragment: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    args = [str(saved["CartPole-v1"]) if a == "RUN" else str(tmp_path) if a == "DIR" else a for a in args]
    assert_one_line_error(main(args), capsys, 2, fragment)


def test_missing_extra_names_the_install_command(
    saved: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    assert_one_line_error(main(["export", str(saved["CartPole-v1"])]), capsys, 2, "pip install 'trpo[export]'")
