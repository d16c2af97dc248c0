"""The sampler interface: the in-process samplers' batches, the pieces the Ray sampler is built from,
the `vector` -> `sampler` rename, and the message when Ray is missing (no Ray needed here)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import require
from trpo import TRPO, TRPOConfig
from trpo.cli.main import main
from trpo.config.schema import config_from_dict
from trpo.core.normalization import RunningMeanStd
from trpo.errors import ConfigError
from trpo.sampling.rollout import Batch, Rollout, concat_rollouts, make_batch, rollout_values


def updates_in(run_dir: Path) -> list[dict[str, float]]:
    """The rows of a run's progress.csv (empty cells left out)."""
    with open(run_dir / "progress.csv", newline="") as f:
        return [{k: float(v) for k, v in row.items() if v} for row in csv.DictReader(f)]


def assert_valid(batch: Batch, size: int, obs_dim: int) -> None:
    """A batch of `size` finite transitions whose returns are advantages + values."""
    assert batch.obs.shape == (size, obs_dim)
    assert batch.actions.shape[0] == batch.advantages.shape[0] == batch.returns.shape[0] == size
    for x in (batch.obs, batch.advantages, batch.returns, batch.values):
        assert bool(torch.isfinite(x).all())
    torch.testing.assert_close(batch.returns, batch.advantages + batch.values)


@pytest.mark.parametrize("sampler", ["sync", "async"])
def test_in_process_samplers_give_valid_batches_and_learn(sampler: str) -> None:
    config = TRPOConfig(n_envs=4, n_steps=128, sampler=sampler, gae_lambda=0.98, vf_epochs=10, vf_minibatch_size=128)
    agent = TRPO("CartPole-v1", config, seed=0)
    try:
        assert_valid(agent.start_sampler().collect(0.99, 0.95), 512, 4)
        agent.learn(24 * 512)
        returns = agent.start_sampler().stats.returns
        assert np.mean(returns) > 100  # a random policy averages ~22
    finally:
        agent.close()


def test_running_statistics_merge_equals_one_stream() -> None:
    rng = np.random.default_rng(0)
    parts = [rng.normal(i, 1 + i, size=(50 + 10 * i, 3)) for i in range(3)]
    whole, merged = RunningMeanStd((3,)), RunningMeanStd((3,))
    whole.update(np.concatenate(parts))
    merged.update(parts[0])
    for part in parts[1:]:
        other = RunningMeanStd((3,))
        other.update(part)
        merged.merge(other.count, other.mean, other.var)
    assert merged.count == whole.count
    np.testing.assert_allclose(merged.mean, whole.mean, rtol=1e-12)
    np.testing.assert_allclose(merged.var, whole.var, rtol=1e-12)


def _rollout(n_envs: int, truncations: list[tuple[int, np.ndarray]], seed: int) -> Rollout:
    rng = np.random.default_rng(seed)
    t, d = 5, 2
    return Rollout(
        obs=torch.from_numpy(rng.normal(size=(t, n_envs, d)).astype(np.float32)),
        actions=torch.from_numpy(rng.integers(0, 2, size=(t, n_envs))),
        raw_rewards=rng.normal(size=(t, n_envs)),
        terminated=np.zeros((t, n_envs), bool),
        ended=np.zeros((t, n_envs), bool),
        last_obs=rng.normal(size=(n_envs, d)).astype(np.float32),
        truncations=[(step, idx, rng.normal(size=(len(idx), d)).astype(np.float32)) for step, idx in truncations],
    )


def test_joined_rollouts_give_the_batches_of_their_parts() -> None:
    """GAE on rollouts joined along the env axis equals GAE on each part (truncation bootstraps included)."""
    a = _rollout(2, [(1, np.array([1])), (3, np.array([0, 1]))], seed=0)
    b = _rollout(3, [(3, np.array([2]))], seed=1)
    joined = concat_rollouts([a, b])
    assert [(t, idx.tolist()) for t, idx, _ in joined.truncations] == [(1, [1]), (3, [0, 1, 4])]
    critic = torch.nn.Linear(2, 1)

    def values(r: Rollout) -> tuple[torch.Tensor, torch.Tensor]:
        v, nv = rollout_values(lambda x: critic(x).squeeze(-1), r)  # type: ignore[arg-type]
        return v.detach(), nv.detach()

    (va, nva), (vb, nvb), (vj, nvj) = values(a), values(b), values(joined)
    torch.testing.assert_close(nvj, torch.cat([nva, nvb], dim=1))
    batch_j = make_batch(joined, vj, nvj, torch.from_numpy(joined.raw_rewards).float(), 0.9, 0.8)
    batch_a = make_batch(a, va, nva, torch.from_numpy(a.raw_rewards).float(), 0.9, 0.8)
    batch_b = make_batch(b, vb, nvb, torch.from_numpy(b.raw_rewards).float(), 0.9, 0.8)
    adv_j = batch_j.advantages.view(5, 5)
    torch.testing.assert_close(adv_j[:, :2].reshape(-1), batch_a.advantages)
    torch.testing.assert_close(adv_j[:, 2:].reshape(-1), batch_b.advantages)


def test_former_vector_key_is_read_as_sampler() -> None:
    assert config_from_dict({"vector": "async"}).sampler == "async"
    assert config_from_dict({"vector": "async", "sampler": "sync"}).sampler == "sync"


def test_ray_sampler_needs_whole_envs_per_worker() -> None:
    with pytest.raises(ConfigError, match="n_envs must be a multiple of workers"):
        TRPOConfig(sampler="ray", n_envs=5, workers=2).validate()


def test_ray_sampler_without_ray_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    code = main(["train", "CartPole-v1", "--sampler", "ray", "--run-dir", str(tmp_path / "run"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1
    assert "pip install 'trpo[ray]'" in err
    assert not (tmp_path / "run").exists()


def test_unreachable_cluster_is_one_line_before_the_run_dir_exists(tmp_path: Path) -> None:
    """`--ray-address auto` with no cluster running (test_ray.py's local instance is shut down by then)."""
    require("ray", "ray")
    run_dir = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "trpo", "train", "CartPole-v1", "--sampler", "ray", "--ray-address", "auto",
         "--run-dir", str(run_dir), "--quiet"],
        capture_output=True, text=True, timeout=120, env={**os.environ, "RAY_ADDRESS": ""},
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.startswith("error: cannot connect to the Ray cluster") and "ray start --head" in result.stderr
    assert not run_dir.exists()
