"""What the learner and its sampling workers share (`sampler=process` and `sampler=ray`).

Each worker owns a vector env of `n_envs / workers` environments and a CPU copy of the actor. One
update's collection, as the learner sees it:

1. The actor's weights and the observation-normaliser statistics are sent once, tagged with a policy
   version (`PolicyVersion`).
2. Every worker loads exactly that version, runs `n_steps` in its environments and returns the raw
   transitions (`Rollout`), the version it used, and the statistics of the observations it saw (a
   per-rollout delta). A result of another version is refused (`StaleBatchError`).
3. The learner merges the deltas into its normaliser (Chan's parallel merge, in worker order), joins
   the rollouts along the env axis and computes values, reward scaling and GAE exactly as the
   in-process sampler does: with its own critic and its own reward scaler over all n_envs columns.
   So the critic never travels, and the discounted-return statistics that scale rewards are the same
   single stream as with `sampler=sync`.

With `overlap_critic_fit` (the default), the learner broadcasts the updated actor right after its policy
step (`prefetch`) and fits the critic while the workers collect; the batch is built at the next
`collect()` exactly as above, with the fitted critic. The workers' rollout is the same one (same actor,
same normaliser statistics, the workers' own random streams), so training is bit for bit the same as
without the overlap; a prefetched rollout whose actor or statistics changed before `collect()` (a
callback that edits the policy) is booked (episode statistics, normaliser, reward scaler) and replaced by
a fresh collection.

`RemoteSampler` is that learner side; `ProcessSampler` (local processes) and `RaySampler` (Ray
actors) only say how a policy reaches the workers and how their results come back. A worker that
dies is replaced and its share re-sampled (new episodes in its environments, whose running returns
the learner zeroes).
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from numpy.typing import NDArray
from torch import Tensor

from trpo.config.schema import TRPOConfig
from trpo.core.encoders import ObservationLayout
from trpo.core.networks import Actor, Critic, make_distribution
from trpo.core.normalization import ObservationNormalizer, RewardScaler, RunningMeanStd, flat_batch
from trpo.errors import EnvContractError, NonFiniteEnvError
from trpo.sampling.envs import EnvFactory, check_spaces, make_vector_env
from trpo.sampling.policies import make_actor
from trpo.sampling.rollout import (
    Batch,
    EnvStepper,
    EpisodeStats,
    Rollout,
    concat_rollouts,
    make_batch,
    restore_episode_stats,
    rollout_values,
)

MAX_WORKER_FAILURES = 3
"""A share of the batch whose worker died this many times in one collection stops training."""


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


@dataclass(frozen=True)
class InFlight:
    """A collection the learner started early (`RemoteSampler.prefetch`) and has not taken yet."""

    policy: PolicyVersion
    start_step: int
    handle: Any  # the sampler's own record of the running tasks


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
            self.delta.update(flat_batch(obs))


class Worker:
    """A sampling worker (a Ray actor, or a process of the process sampler): a vector env of `n_envs`
    copies and a CPU actor network, sampling one rollout per call."""

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
        layout = ObservationLayout(observation_space)
        self.config, self.index, self.n_envs = config, index, n_envs
        self.actor = make_actor(config, layout, make_distribution(action_space))
        self.normalizer = TrackingNormalizer((layout.norm_dim,), config.normalize_obs, config.clip_obs)
        self.generator = torch.Generator().manual_seed(generator_seed(config.seed, index, 0))
        envs = make_vector_env(env_fn, n_envs, "sync")
        check_spaces(spaces_, (envs.single_observation_space, envs.single_action_space))
        self.runner = EnvStepper(
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
        except EnvContractError as exc:
            self.fresh = True
            offset = self.index * self.n_envs
            where = f"sampler worker {self.index} (environments {offset}-{offset + self.n_envs - 1}): "
            raise EnvContractError(exc.problem, exc.env_index + offset, exc.step, exc.episode_step, where) from None
        except NonFiniteEnvError as exc:
            self.fresh = True  # the envs are mid-episode in an unknown state: restart them next time
            offset = self.index * self.n_envs
            raise NonFiniteEnvError(
                f"sampler worker {self.index} (environments {offset}-{offset + self.n_envs - 1} of the run, "
                f"counted from 0 within the worker here): {exc}",
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


class RemoteSampler:
    """The learner's side of a sampler whose environments run in workers: broadcasts the policy,
    gathers and checks the workers' rollouts, and builds the batch. Subclasses implement `_gather`."""

    def __init__(
        self,
        config: TRPOConfig,
        actor: Actor,
        critic: Critic,
        obs_normalizer: ObservationNormalizer,
        reward_scaler: RewardScaler,
        cost_critic: Critic | None = None,
    ) -> None:
        self.config = config
        self.actor, self.critic, self.cost_critic = actor, critic, cost_critic
        self.obs_normalizer, self.reward_scaler = obs_normalizer, reward_scaler
        self.envs_per_worker = config.n_envs // config.workers
        self.stats = EpisodeStats()
        self.version = 0  # of the last policy sent to the workers
        self.batch_version = 0  # of the policy that collected the last batch `collect` returned
        self.restarts = 0
        self.pending_reset: int | None = None
        self.pids: list[int] = [0] * config.workers
        self.seconds: list[float] = [0.0] * config.workers
        self.inflight: InFlight | None = None  # a collection started by `prefetch`, not yet taken
        self.prefetched = 0  # collections that ran while the learner updated
        self.prefetch_discarded = 0  # of those, the ones whose policy changed before collect() (replaced)

    def _begin(self, policy: PolicyVersion, start_step: int) -> Any:
        """Send `policy` to every worker (they start sampling); returns what `_end` needs."""
        raise NotImplementedError

    def _end(self, policy: PolicyVersion, start_step: int, handle: Any) -> list[WorkerResult]:
        """Every worker's result for the collection `_begin` started, in worker order (a worker that died
        is replaced and re-run)."""
        raise NotImplementedError

    def _gather(self, policy: PolicyVersion, start_step: int) -> list[WorkerResult]:
        """Every worker's result for `policy`, in worker order."""
        return self._end(policy, start_step, self._begin(policy, start_step))

    def close(self) -> None:
        raise NotImplementedError

    def reset(self, seed: int | None) -> None:
        """New episodes in every env at the next collection: worker k's env j is seeded seed + k * (n_envs/workers) + j,
        so env i gets seed + i as with the in-process sampler."""
        self._drop_inflight()
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
        if self.stats.saw_costs:
            data.update(recent_costs=list(self.stats.costs), saw_costs=True)
        return data, {}

    def restore(self, data: dict[str, Any], tensors: dict[str, Tensor]) -> bool:
        restore_episode_stats(self.stats, data)
        return False

    def diagnostics(self) -> dict[str, float]:
        return {
            "sampler/policy_version": float(self.batch_version),
            "sampler/worker_restarts": float(self.restarts),
            "sampler/worker_s_max": max(self.seconds),
            "sampler/worker_s_min": min(self.seconds),
            "sampler/prefetched": float(self.prefetched),
            "sampler/prefetch_discarded": float(self.prefetch_discarded),
        }

    def _policy(self) -> PolicyVersion:
        """The current actor and normaliser statistics, copied (a prefetched collection compares them later)."""
        return PolicyVersion(
            version=self.version,
            actor={name: t.detach().numpy().copy() for name, t in self.actor.state_dict().items()},
            obs_rms={k: np.array(v, copy=True) for k, v in self.obs_normalizer.rms.state().items()},
        )

    def _still_current(self, policy: PolicyVersion) -> bool:
        """Whether the learner's actor and normaliser statistics are still those of `policy`."""
        actor = self.actor.state_dict()
        if any(not np.array_equal(value, actor[name].detach().numpy()) for name, value in policy.actor.items()):
            return False
        current = self.obs_normalizer.rms.state()
        return all(np.array_equal(value, current[k]) for k, value in policy.obs_rms.items())

    def prefetch(self, start_step: int) -> None:
        """Start the next collection now, with the current actor, while the learner goes on (fits the
        critic): `collect(start_step=start_step)` then returns it. Does nothing if one is already running."""
        if self.inflight is not None or not self.config.overlap_critic_fit:
            return
        self.version += 1
        policy = self._policy()
        handle = self._begin(policy, start_step)
        self.pending_reset = None
        self.inflight = InFlight(policy, start_step, handle)
        self.prefetched += 1

    def _take_inflight(self, start_step: int) -> list[WorkerResult] | None:
        """The prefetched collection's results if it is the one `collect(start_step)` asks for; otherwise
        it is booked and dropped, and None returned."""
        inflight, self.inflight = self.inflight, None
        if inflight is None:
            return None
        results = self._end(inflight.policy, inflight.start_step, inflight.handle)
        current = inflight.start_step == start_step and self._still_current(inflight.policy)
        self._book(results)
        if current:
            return results
        self.prefetch_discarded += 1
        concat = concat_rollouts([r.rollout for r in results])
        self.reward_scaler(concat.raw_rewards, concat.ended)  # the running returns go on through its rewards
        return None

    def _drop_inflight(self) -> None:
        """End a prefetched collection that will not be used (before new episodes start everywhere)."""
        inflight, self.inflight = self.inflight, None
        if inflight is None:
            return
        self.prefetch_discarded += 1
        with contextlib.suppress(NonFiniteEnvError, EnvContractError):  # its environments restart anyway
            self._end(inflight.policy, inflight.start_step, inflight.handle)

    def _task(self, k: int, start_step: int) -> tuple[int, bool]:
        """Worker k's environment seed and whether it must start new episodes (after `reset`)."""
        if self.pending_reset is not None:
            return self.pending_reset + k * self.envs_per_worker, True
        return restart_seed(self.config.seed, k, start_step), False

    @torch.no_grad()
    def collect(self, gamma: float, lam: float, start_step: int = 0) -> Batch:
        """Broadcast the current policy, gather every worker's rollout of it, and build the batch on the
        learner (the prefetched collection, if it was of this policy and start step)."""
        results = self._take_inflight(start_step)
        if results is None:
            self.version += 1
            results = self._gather(self._policy(), start_step)
            self.pending_reset = None
            self._book(results)
        self.batch_version = results[0].version
        rollout = concat_rollouts([r.rollout for r in results])
        values, next_values = rollout_values(self.critic, rollout)
        rewards = torch.from_numpy(self.reward_scaler(rollout.raw_rewards, rollout.ended))
        return make_batch(rollout, values, next_values, rewards, gamma, lam, self.cost_critic)

    def _book(self, results: list[WorkerResult]) -> None:
        """Check the results' policy version and take in their statistics: restarts, normaliser deltas
        (in worker order), finished episodes."""
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
            if result.rollout.raw_costs is not None:
                self.stats.saw_costs = True
                self.stats.costs.extend(cost for _, _, cost in result.rollout.episodes)
