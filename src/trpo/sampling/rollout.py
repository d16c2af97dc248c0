"""The in-process sampler: stepping a Gymnasium vector env with the actor (`EnvStepper`) and turning a rollout into
an on-policy `Batch` with GAE advantages (`SyncSampler`).

Why this file is long (~500 lines): the in-process sampler owns stepping, preallocated storage, episode statistics,
costs, action masks and the state for exact resume, which all share its buffers.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from trpo.core.advantages import gae
from trpo.core.distributions import Distribution, check_masks, mask_sizes
from trpo.core.encoders import ObservationLayout
from trpo.core.networks import ActionSampler, Actor, Critic, StateDependentNoise
from trpo.core.normalization import ObservationNormalizer, RewardScaler
from trpo.errors import EnvContractError, NonFiniteEnvError
from trpo.sampling import env_state
from trpo.sampling.costs import step_costs


@dataclass
class Batch:
    """One on-policy batch, flattened to [N = n_steps * n_envs]; collected by a single policy version."""

    obs: Tensor
    actions: Tensor
    advantages: Tensor
    returns: Tensor
    values: Tensor
    masks: Tensor | None = None
    """Legal actions [N, param_dim] (bool) when the environment declares them, the masks the actions were
    sampled under: the policy step evaluates pi_k and every candidate under the same masks."""
    cost_advantages: Tensor | None = None
    """GAE advantages of the per-step costs (unnormalised), when the learner has a cost critic and the
    environments report costs; likewise `cost_returns` (A_C + V_C) and `cost_values` (V_C)."""
    cost_returns: Tensor | None = None
    cost_values: Tensor | None = None
    episode_costs: list[float] = field(default_factory=list)
    """Undiscounted costs of the episodes that finished during this batch (empty without costs)."""
    episode_lengths: list[int] = field(default_factory=list)
    """Lengths of the episodes that finished during this batch."""
    step_cost_mean: float = float("nan")
    """Mean cost per step of the batch (NaN without costs)."""

    def to(self, device: torch.device) -> Batch:
        """The batch on `device` (itself when it is there already): moved once per update."""
        if self.obs.device == device:
            return self
        tensors = {name: getattr(self, name) for name in TENSORS}
        return dataclasses.replace(self, **{k: v.to(device) for k, v in tensors.items() if v is not None})


TENSORS = (
    "obs", "actions", "advantages", "returns", "values", "masks", "cost_advantages", "cost_returns", "cost_values",
)  # fmt: skip
"""The fields of a Batch that are tensors (masks and the cost ones may be None)."""


@dataclass
class EpisodeStats:
    """Undiscounted, unscaled returns, lengths and (when the environments report them) costs of the last 100
    finished episodes."""

    returns: deque[float] = field(default_factory=lambda: deque(maxlen=100))
    lengths: deque[int] = field(default_factory=lambda: deque(maxlen=100))
    episodes: int = 0
    costs: deque[float] = field(default_factory=lambda: deque(maxlen=100))
    saw_costs: bool = False
    """Whether any environment has reported a cost (`info["cost"]`)."""


Truncation = tuple[int, np.ndarray, np.ndarray]
"""(rollout step t, indices of the envs truncated at t, their stored final observations [k, row])."""


@dataclass
class Rollout:
    """The transitions of one rollout, [T, E] per field, before values and advantages are computed.

    Observations are normalised with the statistics the actor saw when it acted.
    """

    obs: Tensor  # [T, E, row]: float32 vectors, or uint8 when the observations hold images
    actions: Tensor  # [T, E, *action_shape]
    raw_rewards: np.ndarray  # [T, E] float64, unscaled
    terminated: np.ndarray  # [T, E] bool
    ended: np.ndarray  # [T, E] bool: terminated or truncated
    last_obs: np.ndarray  # [E, row] stored observation after the last step
    truncations: list[Truncation]
    raw_costs: np.ndarray | None = None  # [T, E] float64 per-step costs (None: the environments report none)
    episodes: list[tuple[float, int, float]] = field(default_factory=list)
    """(return, length, cost) of each episode that finished during the rollout."""
    masks: Tensor | None = None  # [T, E, param_dim] bool: the legal actions each action was sampled under


def concat_rollouts(parts: list[Rollout]) -> Rollout:
    """Rollouts of equal length from disjoint groups of envs, joined along the env axis (in order)."""
    offsets = np.cumsum([0] + [p.raw_rewards.shape[1] for p in parts])
    steps: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
    for part, offset in zip(parts, offsets, strict=False):
        for t, idx, final in part.truncations:
            steps.setdefault(t, []).append((idx + offset, final))
    truncations = [
        (t, np.concatenate([i for i, _ in group]), np.concatenate([f for _, f in group]))
        for t, group in sorted(steps.items())
    ]
    return Rollout(
        obs=torch.cat([p.obs for p in parts], dim=1),
        actions=torch.cat([p.actions for p in parts], dim=1),
        raw_rewards=np.concatenate([p.raw_rewards for p in parts], axis=1),
        terminated=np.concatenate([p.terminated for p in parts], axis=1),
        ended=np.concatenate([p.ended for p in parts], axis=1),
        last_obs=np.concatenate([p.last_obs for p in parts], axis=0),
        truncations=truncations,
        raw_costs=(
            np.concatenate([p.raw_costs if p.raw_costs is not None else np.zeros_like(p.raw_rewards) for p in parts], 1)
            if any(p.raw_costs is not None for p in parts)
            else None
        ),
        episodes=[e for p in parts for e in p.episodes],
        masks=torch.cat([p.masks for p in parts], dim=1) if parts[0].masks is not None else None,  # type: ignore[misc]
    )


def rollout_values(critic: Critic, rollout: Rollout) -> tuple[Tensor, Tensor]:
    """V(s_t) of every stored state and the bootstrap value V(s_{t+1}) of every step, in one batch: [T, E] each.

    The critic is fixed during a rollout, so this equals evaluating it step by step. The state
    reached at step t is the next stored state, or at a truncation the episode's final observation.
    """
    t_len, n_envs = rollout.raw_rewards.shape
    finals = [torch.from_numpy(obs) for _, _, obs in rollout.truncations]
    inputs = torch.cat([rollout.obs.view(t_len * n_envs, -1), torch.from_numpy(rollout.last_obs), *finals])
    all_values = critic(inputs)
    values = all_values[: t_len * n_envs].view(t_len, n_envs)
    next_values = torch.cat([values[1:], all_values[t_len * n_envs : (t_len + 1) * n_envs].unsqueeze(0)])
    offset = (t_len + 1) * n_envs
    for t, idx, _ in rollout.truncations:
        next_values[t, torch.from_numpy(idx)] = all_values[offset : offset + len(idx)]
        offset += len(idx)
    return values, next_values


def make_batch(
    rollout: Rollout,
    values: Tensor,
    next_values: Tensor,
    rewards: Tensor,
    gamma: float,
    lam: float,
    cost_critic: Critic | None = None,
) -> Batch:
    """The flat batch of a rollout: GAE advantages from the (scaled) `rewards`, returns = A + V; with a
    `cost_critic` and per-step costs, also the cost advantages A_C (GAE of the raw costs with V_C) and returns."""
    terminated, ended = torch.from_numpy(rollout.terminated), torch.from_numpy(rollout.ended)
    advantages = gae(rewards, values, next_values, terminated, ended, gamma, lam)
    returns = advantages + values
    n = rewards.numel()
    batch = Batch(
        obs=rollout.obs.reshape(n, -1).clone(),
        actions=rollout.actions.reshape(n, *rollout.actions.shape[2:]).clone(),
        advantages=advantages.reshape(n),
        returns=returns.reshape(n),
        values=values.reshape(n).clone(),
        episode_costs=[cost for _, _, cost in rollout.episodes] if rollout.raw_costs is not None else [],
        episode_lengths=[length for _, length, _ in rollout.episodes],
        masks=rollout.masks.reshape(n, -1).clone() if rollout.masks is not None else None,
    )
    if rollout.raw_costs is not None:
        batch.step_cost_mean = float(rollout.raw_costs.mean())
        if cost_critic is not None:
            cost_values, next_cost_values = rollout_values(cost_critic, rollout)
            costs = torch.from_numpy(rollout.raw_costs).to(cost_values.dtype)
            cost_advantages = gae(costs, cost_values, next_cost_values, terminated, ended, gamma, lam)
            batch.cost_advantages = cost_advantages.reshape(n)
            batch.cost_returns = (cost_advantages + cost_values).reshape(n)
            batch.cost_values = cost_values.reshape(n).clone()
    return batch


class EnvStepper:
    """Owns a vector env and preallocated storage; runs the actor for n_steps per call (no critic).

    The observation normaliser is updated after every step, so each observation is normalised with
    the statistics of everything seen before it.
    """

    def __init__(
        self,
        envs: gym.vector.VectorEnv,
        actor: Actor,
        obs_normalizer: ObservationNormalizer,
        n_steps: int,
        generator: torch.Generator,
        sde_sample_freq: int = 0,
    ) -> None:
        self.envs = envs
        self.dist: Distribution = actor.distribution
        self.obs_normalizer = obs_normalizer
        self.n_steps = n_steps
        self.sample_actions = (
            StateDependentNoise(actor, envs.num_envs, sde_sample_freq, generator)
            if actor.use_sde
            else ActionSampler(actor, generator)
        )
        self.n_envs = envs.num_envs
        self.layout = ObservationLayout(envs.single_observation_space)
        t, e = n_steps, self.n_envs
        self.obs = torch.zeros((t, e, self.layout.row_size), dtype=self.layout.storage_dtype)
        self.actions = torch.zeros((t, e, *self.dist.action_shape), dtype=self.dist.action_dtype)
        self.raw_rewards = np.zeros((t, e), dtype=np.float64)
        self.raw_costs = np.zeros((t, e), dtype=np.float64)
        # NumPy buffers written by the loop, seen by torch through shared-memory views
        self._terminated, self._ended = np.zeros((t, e), dtype=bool), np.zeros((t, e), dtype=bool)
        self.terminated, self.ended = torch.from_numpy(self._terminated), torch.from_numpy(self._ended)
        self.stats = EpisodeStats()
        self.episode_return = np.zeros(e, dtype=np.float64)
        self.episode_length = np.zeros(e, dtype=np.int64)
        self.episode_cost = np.zeros(e, dtype=np.float64)
        self.finished: list[tuple[float, int, float]] = []  # (return, length, cost) of this rollout's episodes
        self.action_transform = _action_transform(envs.single_action_space)
        self.raw_obs: Any = np.zeros(0)
        self.mask_sizes = mask_sizes(self.dist)
        self.mask_source: str | None = None
        """Where the legal actions come from: "info" (info["action_mask"]), "method" (env.action_masks(),
        MaskablePPO's convention) or None (no masks); found at the first reset."""
        self.masks: Tensor | None = None  # [T, E, param_dim] bool, allocated when the env has masks
        self.mask: np.ndarray | None = None  # the legal actions in the current states [E, param_dim]

    def reset(self, seed: int | None) -> None:
        """Start new episodes in every env (seeded `seed, seed + 1, ...`)."""
        try:
            raw_obs, info = self.envs.reset(seed=seed)
        except EnvContractError as exc:
            raise _at_step(exc, None) from None
        self._check_finite("observation", self.layout.numeric_part(raw_obs), -1, 0)
        self.raw_obs = raw_obs
        self.obs_normalizer.update(self.layout.vector_part(raw_obs))
        self._start_masks(info)
        self.mask = self._read_mask(info, -1)
        self.episode_return[:] = 0.0
        self.episode_length[:] = 0
        self.episode_cost[:] = 0.0

    def close(self) -> None:
        """Close the environments."""
        self.envs.close()

    def state(self) -> tuple[dict[str, Any], dict[str, Tensor]]:
        """Everything needed to continue exactly here: env states (when capturable) and counters."""
        data = {
            "envs": env_state.capture_all(self.envs),
            "episode_return": self.episode_return.tolist(),
            "episode_length": self.episode_length.tolist(),
            "recent_returns": list(self.stats.returns),
            "recent_lengths": list(self.stats.lengths),
            "episodes": self.stats.episodes,
        }
        if self.stats.saw_costs:
            data.update(
                recent_costs=list(self.stats.costs), saw_costs=True
            )  # absent for environments without costs (their checkpoints are unchanged)
            data["episode_cost"] = self.episode_cost.tolist()
        tensors = self.layout.to_tensors(self.raw_obs, "collector.raw_obs")
        if self.mask is not None:
            tensors["collector.mask"] = torch.from_numpy(self.mask.copy())
        return data, tensors

    def restore(self, data: dict[str, Any], tensors: dict[str, Tensor]) -> bool:
        """Continue from `state()`. Returns False if the envs could not be restored (then call reset)."""
        restore_episode_stats(self.stats, data)
        complete = all(k in data for k in ("episode_return", "episode_length")) and "collector.raw_obs" in tensors
        if data["envs"] is None or getattr(self.envs, "envs", None) is None or not complete:
            return False
        _, info = self.envs.reset()  # brings every wrapper into its post-reset state; the saved state replaces it
        self._start_masks(info)
        env_state.restore_all(self.envs, data["envs"])
        self.raw_obs = self.layout.from_tensors(tensors, "collector.raw_obs")
        if self.masks is not None and "collector.mask" in tensors:
            self.mask = tensors["collector.mask"].numpy().copy()
        self.episode_return[:] = data["episode_return"]
        self.episode_length[:] = data["episode_length"]
        self.episode_cost[:] = data.get("episode_cost", 0.0)
        return True

    def _check_finite(
        self, what: str, values: np.ndarray, t: int, start_step: int, env_indices: np.ndarray | None = None
    ) -> None:
        """Raise NonFiniteEnvError if a row of `values` (one per env in `env_indices`) is not finite."""
        if np.isfinite(values).all():  # the hot path: one check
            return
        finite = np.isfinite(np.asarray(values, dtype=np.float64)).reshape(len(values), -1).all(axis=1)
        row = int(np.flatnonzero(~finite)[0])
        i = int(env_indices[row]) if env_indices is not None else row
        step = start_step + (t + 1) * self.n_envs
        raise NonFiniteEnvError(
            f"environment {i} returned a non-finite {what} at step {step} (rollout step {t + 1}, value "
            f"{np.asarray(values)[row]!r}); fix the environment, or set on_nonfinite=skip_batch to drop such batches",
            env_index=i,
            step=step,
        )

    @torch.no_grad()
    def run(self, start_step: int = 0) -> Rollout:
        """Run n_steps in every env with the current actor. The returned rollout views this runner's
        storage (valid until the next call).

        Raises NonFiniteEnvError (naming the env and the step) if an env returns NaN or inf.
        """
        self.sample_actions.start_rollout()
        truncations: list[Truncation] = []
        self.finished = []
        layout = self.layout
        for t in range(self.n_steps):
            obs = self.obs[t]
            obs.copy_(torch.from_numpy(layout.pack(self.raw_obs, self.obs_normalizer)).view_as(obs))
            if self.masks is not None:
                assert self.mask is not None
                mask = self.masks[t]
                mask.copy_(torch.from_numpy(self.mask))
                action = self.sample_actions(obs, mask)
            else:
                action = self.sample_actions(obs)
            self.actions[t] = action

            try:
                raw_obs, reward, terminated, truncated, info = self.envs.step(self.action_transform(action.numpy()))
            except EnvContractError as exc:
                raise _at_step(exc, start_step + (t + 1) * self.n_envs) from None
            self._check_finite("reward", reward, t, start_step)
            self._check_finite("observation", layout.numeric_part(raw_obs), t, start_step)
            if self.masks is not None:
                self.mask = self._read_mask(info, start_step + (t + 1) * self.n_envs)
            ended = terminated | truncated
            costs = step_costs(info, ended)
            if costs is not None:
                self._check_finite("cost", costs, t, start_step)
                self.stats.saw_costs = True
            self.raw_costs[t] = costs if costs is not None else 0.0
            self._record_episodes(reward, ended, costs)
            self.raw_rewards[t] = reward
            self._terminated[t] = terminated
            self._ended[t] = ended
            truncated_only = truncated & ~terminated
            if truncated_only.any():
                # SAME_STEP autoreset: raw_obs is already the next episode's first observation;
                # the state the truncated episode reached is in info["final_obs"].
                idx = np.flatnonzero(truncated_only)
                final = layout.stack([info["final_obs"][i] for i in idx])
                self._check_finite("final observation", layout.numeric_part(final), t, start_step, env_indices=idx)
                truncations.append((t, idx, layout.pack(final, self.obs_normalizer).reshape(len(idx), -1)))
            self.raw_obs = raw_obs
            self.obs_normalizer.update(layout.vector_part(raw_obs))
        last_obs = layout.pack(self.raw_obs, self.obs_normalizer).reshape(self.n_envs, -1)
        costs = self.raw_costs if self.stats.saw_costs else None
        return Rollout(
            self.obs, self.actions, self.raw_rewards, self._terminated, self._ended, last_obs, truncations, costs,
            list(self.finished), self.masks,
        )  # fmt: skip

    def _start_masks(self, info: dict[str, Any]) -> None:
        """At the first reset: find where the legal actions come from and allocate their storage."""
        if self.mask_source is None and self.mask_sizes is not None:
            self.mask_source = self._find_mask_source(info)
            if self.mask_source is not None:
                self.masks = torch.ones((self.n_steps, self.n_envs, self.dist.param_dim), dtype=torch.bool)

    def _find_mask_source(self, info: dict[str, Any]) -> str | None:
        """Where this env's legal actions come from (see `mask_source`)."""
        if "action_mask" in info:
            return "info"
        if all(self.envs.call("has_wrapper_attr", "action_masks")):  # type: ignore[attr-defined]
            return "method"
        return None

    def _read_mask(self, info: dict[str, Any], step: int) -> np.ndarray | None:
        """The legal actions in the current states [E, param_dim] (bool), checked; None without masks."""
        if self.mask_source is None:
            return None
        if self.mask_source == "info":
            if "action_mask" not in info:
                raise EnvContractError("info has no 'action_mask' (it had one at reset)", -1, step)
            raw = info["action_mask"]
        else:
            raw = np.stack([np.asarray(m) for m in self.envs.call("action_masks")])  # type: ignore[attr-defined]
        mask = np.asarray(raw).reshape(self.n_envs, -1).astype(bool)
        if mask.shape[1] != self.dist.param_dim:
            raise EnvContractError(
                f"the action mask has {mask.shape[1]} entries per env; the action space needs {self.dist.param_dim} "
                "(one per action; for MultiDiscrete the masks of every component, concatenated)",
                -1,
                step,
            )
        assert self.mask_sizes is not None
        problem = check_masks(torch.from_numpy(mask), self.mask_sizes)
        if problem:
            raise EnvContractError(problem.replace("(row", "(env"), -1, step)
        return mask

    def _record_episodes(self, reward: np.ndarray, ended: np.ndarray, costs: np.ndarray | None) -> None:
        self.episode_return += reward
        self.episode_length += 1
        if costs is not None:
            self.episode_cost += costs
        for i in np.flatnonzero(ended):
            self.stats.returns.append(float(self.episode_return[i]))
            self.stats.lengths.append(int(self.episode_length[i]))
            self.stats.episodes += 1
            if self.stats.saw_costs:
                self.stats.costs.append(float(self.episode_cost[i]))
            self.finished.append(
                (float(self.episode_return[i]), int(self.episode_length[i]), float(self.episode_cost[i]))
            )
        self.episode_return[ended] = 0.0
        self.episode_length[ended] = 0
        self.episode_cost[ended] = 0.0


def _at_step(exc: EnvContractError, step: int | None) -> EnvContractError:
    """The error with the run's step added (an error rebuilt by AsyncVectorEnv keeps its message)."""
    return exc if exc.env_index < 0 else EnvContractError(exc.problem, exc.env_index, step, exc.episode_step)


def restore_episode_stats(stats: EpisodeStats, data: dict[str, Any]) -> None:
    """Put the recent episodes and the episode count of a saved sampler state into `stats`."""
    stats.returns.extend(data["recent_returns"])
    stats.lengths.extend(data["recent_lengths"])
    stats.episodes = int(data["episodes"])
    stats.costs.extend(data.get("recent_costs", []))
    stats.saw_costs = bool(data.get("saw_costs", False))


class SyncSampler(EnvStepper):
    """The in-process sampler: an EnvStepper plus the learner's critic and reward scaler; one batch per call."""

    def __init__(
        self,
        envs: gym.vector.VectorEnv,
        actor: Actor,
        critic: Critic,
        obs_normalizer: ObservationNormalizer,
        reward_scaler: RewardScaler,
        n_steps: int,
        generator: torch.Generator,
        sde_sample_freq: int = 0,
        cost_critic: Critic | None = None,
    ) -> None:
        super().__init__(envs, actor, obs_normalizer, n_steps, generator, sde_sample_freq)
        self.critic = critic
        self.cost_critic = cost_critic
        self.reward_scaler = reward_scaler
        self.values = self.next_values = torch.zeros(0)  # [T, E], computed once per rollout in one batch

    def reset(self, seed: int | None) -> None:
        super().reset(seed)
        self.reward_scaler.returns[:] = 0.0

    def state(self) -> tuple[dict[str, Any], dict[str, Tensor]]:
        data, tensors = super().state()
        data["reward_returns"] = self.reward_scaler.returns.tolist()
        return data, tensors

    def restore(self, data: dict[str, Any], tensors: dict[str, Tensor]) -> bool:
        if not super().restore(data, tensors) or "reward_returns" not in data:
            return False  # the caller starts new episodes (reset), which also zeroes the running returns
        self.reward_scaler.returns[:] = data["reward_returns"]
        return True

    def diagnostics(self) -> dict[str, float]:
        """Sampler-specific log entries (none for the in-process sampler)."""
        return {}

    def prefetch(self, start_step: int) -> None:
        """Nothing: the in-process sampler steps its environments only inside `collect` (same thread)."""

    @torch.no_grad()
    def collect(self, gamma: float, lam: float, start_step: int = 0) -> Batch:
        """Run n_steps in every env with the current actor; return the batch with GAE advantages.

        Raises NonFiniteEnvError (naming the env and the step) if an env returns NaN or inf.
        """
        rollout = self.run(start_step)
        self.values, self.next_values = rollout_values(self.critic, rollout)
        rewards = torch.from_numpy(self.reward_scaler(rollout.raw_rewards, rollout.ended))
        return make_batch(rollout, self.values, self.next_values, rewards, gamma, lam, self.cost_critic)


def _action_transform(space: gym.Space) -> Callable[[np.ndarray], np.ndarray]:
    """Map sampled actions to what the env accepts: Box actions are clipped to the bounds."""
    if isinstance(space, gym.spaces.Box):
        low, high = space.low, space.high
        dtype = space.dtype
        return lambda a: np.clip(a, low, high).astype(dtype, copy=False)
    if isinstance(space, gym.spaces.MultiBinary):
        return lambda a: a.astype(np.int8)
    if isinstance(space, gym.spaces.Discrete) and int(space.start) != 0:
        start = int(space.start)
        return lambda a: a + start
    return lambda a: a
