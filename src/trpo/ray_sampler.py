"""Sampling on Ray actors (`sampler=ray`): each worker owns a vector env and a CPU copy of the actor.

One update's collection, as the learner sees it:

1. The actor's weights and the observation-normaliser statistics are put in the object store once,
   tagged with a policy version (`PolicyVersion`).
2. Every worker loads exactly that version, runs `n_steps` in its `n_envs / workers` environments
   and returns the raw transitions (`Rollout`), the version it used, and the statistics of the
   observations it saw (a per-rollout delta). A result of another version is refused.
3. The learner merges the deltas into its normaliser (Chan's parallel merge, in worker order),
   joins the rollouts along the env axis and computes values, reward scaling and GAE exactly as the
   in-process sampler does: with its own critic and its own reward scaler over all n_envs columns.
   So the critic never travels, and the discounted-return statistics that scale rewards are the
   same single stream as with `sampler=sync`.

Workers are created with `max_restarts=-1, max_task_retries=-1`: a worker whose process dies is
restarted by Ray, and its rollout task re-run there (the restarted worker starts new episodes, and
the learner zeroes those envs' running returns). A worker that cannot come back (restart refused,
node gone) is replaced by a new actor and its share re-sampled. Either way the update is complete.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from numpy.typing import NDArray
from torch import Tensor

from trpo.config import TRPOConfig
from trpo.envs import EnvFactory, make_vector_env
from trpo.errors import NonFiniteEnvError, TrainingStopped, UserError
from trpo.normalization import ObservationNormalizer, RewardScaler, RunningMeanStd
from trpo.policies import Actor, Critic, make_distribution, observation_dim
from trpo.rollout import (
    Batch,
    EnvRunner,
    EpisodeStats,
    Rollout,
    concat_rollouts,
    make_batch,
    restore_episode_stats,
    rollout_values,
)

MAX_WORKER_FAILURES = 3
"""A share of the batch whose worker died this many times in one collection stops training."""


def import_ray() -> ModuleType:
    """The `ray` module, or a UserError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise UserError("sampler=ray needs Ray, which is not installed: pip install 'trpo[ray]'") from None
    return ray


class StaleBatchError(RuntimeError):
    """A worker returned transitions of another policy version than the one the learner asked for."""


def check_version(got: int, expected: int, worker: int) -> None:
    """Refuse a batch not collected by policy version `expected` (strictly on-policy)."""
    if got != expected:
        raise StaleBatchError(f"worker {worker} sampled with policy version {got}, expected {expected}")


def restart_seed(run_seed: int, worker: int, start_step: int) -> int:
    """Seed of the first env of a restarted worker: distinct per (run, worker, step), reproducible."""
    return int(np.random.SeedSequence([run_seed % 2**63, worker, start_step]).generate_state(1)[0])


def generator_seed(run_seed: int, worker: int, env_seed: int) -> int:
    """Seed of a worker's action-noise generator after it reset its envs with `env_seed`."""
    return int(np.random.SeedSequence([run_seed % 2**63, worker, env_seed % 2**63, 1]).generate_state(1)[0])


@dataclass(frozen=True)
class PolicyVersion:
    """What the learner broadcasts once per update: actor weights and normaliser statistics."""

    version: int
    actor: dict[str, NDArray[Any]]
    obs_rms: dict[str, NDArray[np.float64]]


@dataclass
class WorkerResult:
    """One worker's share of a batch."""

    worker: int
    version: int
    restarted: bool  # the worker started new episodes (first call, forced reset, or after a restart)
    rollout: Rollout
    obs_delta: tuple[float, NDArray[np.float64], NDArray[np.float64]]  # count, mean, var of observations seen
    episode_returns: list[float]
    episode_lengths: list[int]
    seconds: float
    pid: int


class TrackingNormalizer(ObservationNormalizer):
    """An observation normaliser that also accumulates the statistics of what it is updated with in `delta`."""

    def __init__(self, shape: tuple[int, ...], enabled: bool, clip: float) -> None:
        super().__init__(shape, enabled, clip)
        self.delta = RunningMeanStd(shape)

    def update(self, obs: NDArray[np.floating]) -> None:
        super().update(obs)
        if self.enabled:
            self.delta.update(obs)


class SamplerWorker:
    """A Ray actor: a vector env of `n_envs` copies and a CPU actor network, sampling one rollout per call."""

    def __init__(
        self,
        config: TRPOConfig,
        env_fn: EnvFactory,
        spaces_: tuple[spaces.Space, spaces.Space],
        index: int,
        n_envs: int,
    ) -> None:
        torch.set_num_threads(config.torch_threads)
        observation_space, action_space = spaces_
        obs_dim = observation_dim(observation_space)
        self.config, self.index, self.n_envs = config, index, n_envs
        self.actor = Actor(
            obs_dim, make_distribution(action_space), config.hidden_sizes, config.activation,
            config.ortho_init, config.log_std_init, config.use_sde,
        )  # fmt: skip
        self.normalizer = TrackingNormalizer((obs_dim,), config.normalize_obs, config.clip_obs)
        self.generator = torch.Generator().manual_seed(generator_seed(config.seed, index, 0))
        envs = make_vector_env(env_fn, n_envs, "sync")
        self.runner = EnvRunner(
            envs, self.actor, self.normalizer, config.n_steps, self.generator, config.sde_sample_freq
        )
        self.fresh = True  # no episodes started yet (a new or restarted actor)

    def pid(self) -> int:
        """The worker's process id (tests kill it)."""
        return os.getpid()

    @torch.no_grad()
    def sample(self, policy: PolicyVersion, env_seed: int, force_reset: bool, start_step: int) -> WorkerResult:
        """Load `policy`, run one rollout and return it with the observation statistics it added.

        A new (or restarted) worker, or one asked to, first starts new episodes seeded `env_seed + j`.
        """
        start = time.perf_counter()
        for name, value in self.actor.state_dict().items():
            value.copy_(torch.from_numpy(policy.actor[name]))  # in place: the fast samplers hold these tensors
        self.normalizer.rms.load_state(policy.obs_rms)
        self.normalizer.delta = RunningMeanStd(self.normalizer.rms.mean.shape)
        restarted = self.fresh or force_reset
        if restarted:
            self.generator.manual_seed(generator_seed(self.config.seed, self.index, env_seed))
            self.runner.reset(seed=env_seed)
            self.fresh = False
        episodes_before = self.runner.stats.episodes
        try:
            rollout = self.runner.run(start_step)
        except NonFiniteEnvError as exc:
            self.fresh = True  # the envs are mid-episode in an unknown state: restart them next time
            offset = self.index * self.n_envs
            raise NonFiniteEnvError(
                f"Ray worker {self.index} (environments {offset}-{offset + self.n_envs - 1} of the run, counted from "
                f"0 within the worker here): {exc}",
                env_index=exc.env_index + offset,
                step=exc.step,
            ) from None
        new = min(self.runner.stats.episodes - episodes_before, len(self.runner.stats.returns))
        delta = self.normalizer.delta
        return WorkerResult(
            worker=self.index,
            version=policy.version,
            restarted=restarted,
            rollout=rollout,
            obs_delta=(delta.count, delta.mean, delta.var),
            episode_returns=list(self.runner.stats.returns)[len(self.runner.stats.returns) - new :],
            episode_lengths=list(self.runner.stats.lengths)[len(self.runner.stats.lengths) - new :],
            seconds=time.perf_counter() - start,
            pid=os.getpid(),
        )


def connect(ray: ModuleType, address: str) -> bool:
    """Join the Ray cluster at `address`, or start a quiet local instance with this machine's CPUs.

    Returns True if this call connected (so the sampler disconnects at close), False if Ray was
    already initialised in this process (then whoever did it owns the connection).
    """
    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # Workers' stdout/stderr stay in Ray's session logs (/tmp/ray/session_latest/logs); errors reach
    # the learner as exceptions.
    quiet: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.ERROR, "log_to_driver": False}
    try:
        if address:
            ray.init(address=address, **quiet)
        else:
            ray.init(num_cpus=os.cpu_count(), **quiet)
    except ConnectionError as exc:
        raise UserError(
            f"cannot connect to the Ray cluster at ray_address={address!r} ({str(exc).splitlines()[0]}); "
            "start one with `ray start --head`, or leave --ray-address empty for a local instance"
        ) from None
    return True


class RaySampler:
    """The learner's side of `sampler=ray`: broadcasts the policy, gathers and checks the workers' rollouts."""

    def __init__(
        self,
        config: TRPOConfig,
        env_fn: EnvFactory,
        spaces_: tuple[spaces.Space, spaces.Space],
        actor: Actor,
        critic: Critic,
        obs_normalizer: ObservationNormalizer,
        reward_scaler: RewardScaler,
    ) -> None:
        self.ray = ray = import_ray()
        self.config, self.env_fn, self.spaces = config, env_fn, spaces_
        self.actor, self.critic = actor, critic
        self.obs_normalizer, self.reward_scaler = obs_normalizer, reward_scaler
        self.envs_per_worker = config.n_envs // config.workers
        self.owns_ray = connect(ray, config.ray_address)
        if not config.ray_address:
            available = float(ray.cluster_resources().get("CPU", 0))
            needed = config.workers * config.worker_cpus
            if needed > available:
                self.close()
                raise UserError(
                    f"workers * worker_cpus = {needed:g} CPUs but the local Ray instance has {available:g}; "
                    "lower --workers or --worker-cpus (e.g. --worker-cpus 0.5), or join a cluster with --ray-address"
                )
        self.remote_worker = ray.remote(SamplerWorker).options(
            num_cpus=config.worker_cpus, max_restarts=-1, max_task_retries=-1
        )
        self.workers = [self._new_worker(k) for k in range(config.workers)]
        self.stats = EpisodeStats()
        self.version = 0
        self.restarts = 0
        self.pending_reset: int | None = None
        self.pids: list[int] = [0] * config.workers
        self.seconds: list[float] = [0.0] * config.workers

    def _new_worker(self, k: int) -> Any:
        return self.remote_worker.remote(self.config, self.env_fn, self.spaces, k, self.envs_per_worker)

    def reset(self, seed: int | None) -> None:
        """New episodes in every env at the next collection: worker k's env j is seeded seed + k * (n_envs/workers) + j,
        so env i gets seed + i as with the in-process sampler."""
        self.pending_reset = seed if seed is not None else self.config.seed
        self.reward_scaler.returns[:] = 0.0

    def state(self) -> tuple[dict[str, Any], dict[str, Tensor]]:
        """Episode statistics only: the workers' environments are not saved (a resumed run starts new episodes)."""
        data = {
            "envs": None,
            "recent_returns": list(self.stats.returns),
            "recent_lengths": list(self.stats.lengths),
            "episodes": self.stats.episodes,
        }
        return data, {}

    def restore(self, data: dict[str, Any], tensors: dict[str, Tensor]) -> bool:
        restore_episode_stats(self.stats, data)
        return False

    def diagnostics(self) -> dict[str, float]:
        return {
            "sampler/policy_version": float(self.version),
            "sampler/worker_restarts": float(self.restarts),
            "sampler/worker_s_max": max(self.seconds),
            "sampler/worker_s_min": min(self.seconds),
        }

    def close(self) -> None:
        """Stop the workers and, if this sampler started or joined Ray, disconnect."""
        for worker in getattr(self, "workers", []):
            self.ray.kill(worker, no_restart=True)
        self.workers = []
        if self.owns_ray and self.ray.is_initialized():
            self.ray.shutdown()
        self.owns_ray = False

    def _policy(self) -> PolicyVersion:
        return PolicyVersion(
            version=self.version,
            actor={name: t.detach().numpy() for name, t in self.actor.state_dict().items()},
            obs_rms=self.obs_normalizer.rms.state(),
        )

    def _submit(self, k: int, policy_ref: Any, start_step: int) -> Any:
        if self.pending_reset is not None:
            seed, force = self.pending_reset + k * self.envs_per_worker, True
        else:
            seed, force = restart_seed(self.config.seed, k, start_step), False
        return self.workers[k].sample.remote(policy_ref, seed, force, start_step)

    def _gather(self, policy_ref: Any, start_step: int) -> list[WorkerResult]:
        """Every worker's result for `policy_ref`; a worker that died for good is replaced and re-run."""
        ray = self.ray
        refs = {k: self._submit(k, policy_ref, start_step) for k in range(len(self.workers))}
        results: dict[int, WorkerResult] = {}
        failures = dict.fromkeys(refs, 0)
        while refs:
            k = min(refs)
            try:
                results[k] = ray.get(refs.pop(k))
            except ray.exceptions.RayTaskError as exc:
                if isinstance(exc.cause, NonFiniteEnvError):
                    raise exc.cause from None
                raise
            except ray.exceptions.RayActorError as exc:
                failures[k] += 1
                if failures[k] >= MAX_WORKER_FAILURES:
                    raise TrainingStopped(
                        f"Ray worker {k} died {failures[k]} times while sampling one batch (last: {exc}); "
                        "see the worker logs in /tmp/ray/session_latest/logs"
                    ) from None
                ray.kill(self.workers[k], no_restart=True)
                self.workers[k] = self._new_worker(k)
                refs[k] = self._submit(k, policy_ref, start_step)
        return [results[k] for k in range(len(self.workers))]

    @torch.no_grad()
    def collect(self, gamma: float, lam: float, start_step: int = 0) -> Batch:
        """Broadcast the current policy, gather every worker's rollout of it, and build the batch on the learner."""
        self.version += 1
        policy_ref = self.ray.put(self._policy())
        results = self._gather(policy_ref, start_step)
        self.pending_reset = None
        e = self.envs_per_worker
        for result in results:
            check_version(result.version, self.version, result.worker)
            if result.restarted:  # new episodes: their discounted returns start at 0
                self.reward_scaler.returns[result.worker * e : (result.worker + 1) * e] = 0.0
            if self.pids[result.worker] not in (0, result.pid):  # a new process: restarted or replaced
                self.restarts += 1
            self.pids[result.worker] = result.pid
            self.seconds[result.worker] = result.seconds
            self.obs_normalizer.rms.merge(*result.obs_delta)
            self.stats.returns.extend(result.episode_returns)
            self.stats.lengths.extend(result.episode_lengths)
            self.stats.episodes += len(result.episode_returns)
        rollout = concat_rollouts([r.rollout for r in results])
        values, next_values = rollout_values(self.critic, rollout)
        rewards = torch.from_numpy(self.reward_scaler(rollout.raw_rewards, rollout.ended))
        return make_batch(rollout, values, next_values, rewards, gamma, lam)
