"""The sampler interface: what the learner asks for a batch, and the five implementations behind it.

`sync`, `async` and `envpool` are the in-process `SyncSampler` over a Gymnasium `SyncVectorEnv`,
`AsyncVectorEnv` or EnvPool's environments (`trpo.sampling.envpool_envs`); `process` and `ray` run whole
rollouts in workers (`trpo.sampling.workers`): local processes (`trpo.sampling.processes.ProcessSampler`)
or Ray actors (`trpo.sampling.ray_cluster.RaySampler`, imported only when chosen).
The learner only calls the methods of `Sampler`.
"""

from __future__ import annotations

from typing import Any, Protocol

import gymnasium as gym
import torch
from gymnasium import spaces
from torch import Tensor

from trpo.config.schema import TRPOConfig
from trpo.core.networks import Actor, Critic
from trpo.core.normalization import ObservationNormalizer, RewardScaler
from trpo.sampling.env_spec import EnvSpec
from trpo.sampling.envs import EnvFactory, check_spaces, make_vector_env
from trpo.sampling.rollout import Batch, EpisodeStats, SyncSampler


class Sampler(Protocol):
    """Collects on-policy batches with the learner's current actor."""

    stats: EpisodeStats
    """Returns and lengths of the most recent finished episodes (for the log)."""

    def collect(self, gamma: float, lam: float, start_step: int = 0) -> Batch:
        """n_envs * n_steps transitions of the current actor, with values, returns and GAE advantages."""
        ...

    def prefetch(self, start_step: int) -> None:
        """Start collecting the next batch now with the current actor, if this sampler can collect while
        the learner computes; the next `collect(start_step=start_step)` then returns it (unless the
        actor changed meanwhile). The in-process samplers collect only when asked."""
        ...

    def reset(self, seed: int | None) -> None:
        """Start new episodes in every environment (env i seeded `seed + i`)."""
        ...

    def state(self) -> tuple[dict[str, Any], dict[str, Tensor]]:
        """JSON data and tensors to continue from (saved in checkpoints)."""
        ...

    def restore(self, data: dict[str, Any], tensors: dict[str, Tensor]) -> bool:
        """Continue from `state()`; False if the episodes cannot be continued (then `reset` is called)."""
        ...

    def diagnostics(self) -> dict[str, float]:
        """Sampler-specific entries of the update's log row."""
        ...

    def close(self) -> None:
        """Release the environments (and workers)."""
        ...


def make_sampler(
    config: TRPOConfig,
    env_fn: EnvFactory,
    spaces_: tuple[spaces.Space, spaces.Space],
    actor: Actor,
    critic: Critic,
    obs_normalizer: ObservationNormalizer,
    reward_scaler: RewardScaler,
    generator: torch.Generator,
    envs: gym.vector.VectorEnv | None = None,
    cost_critic: Critic | None = None,
    env_spec: EnvSpec | None = None,
) -> Sampler:
    """The sampler `config.sampler` names, sampling with `actor` and normalising with the learner's statistics
    (on `envs` when the user gave a vector env); with a `cost_critic` its batches carry cost advantages."""
    if config.sampler == "process":
        from trpo.sampling.processes import ProcessSampler

        return ProcessSampler(config, env_fn, spaces_, actor, critic, obs_normalizer, reward_scaler, cost_critic)
    if config.sampler == "ray":
        from trpo.sampling.ray_cluster import RaySampler

        return RaySampler(config, env_fn, spaces_, actor, critic, obs_normalizer, reward_scaler, cost_critic)
    if config.sampler == "envpool" and envs is None:
        from trpo.sampling.envpool_envs import EnvPoolVectorEnv

        assert env_spec is not None  # check_env_source refused the others
        envs = EnvPoolVectorEnv(env_spec, config.n_envs, spaces_, config.seed, config.envpool_threads)
    if envs is None:
        envs = make_vector_env(env_fn, config.n_envs, config.sampler)
        try:
            check_spaces(spaces_, (envs.single_observation_space, envs.single_action_space))
        except BaseException:
            envs.close()
            raise
    return SyncSampler(
        envs, actor, critic, obs_normalizer, reward_scaler, config.n_steps, generator, config.sde_sample_freq,
        cost_critic,
    )  # fmt: skip
