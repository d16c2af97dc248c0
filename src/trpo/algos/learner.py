"""The on-policy learner: what TRPO, NPG and PPO share.

One update (`Learner.update`): collect a batch with pi_k (the sampler), advantages by GAE, the algorithm's
policy step (`policy_step`, the only part that differs: `trpo.algos.trpo`, `.npg`, `.ppo`), then the
critic fit on the same batch, and the diagnostics of all of it. `learn()` runs updates with checkpoints,
periodic evaluation, health alarms, callbacks and progress logging; `save`/`load` keep its state exactly.

Why this file is long (~730 lines): it is the one place where the pieces meet (collection, the reward and cost
critics, masks, devices, checkpoints), and the learner's state is declared here once (`state()` / `restore()`)
rather than spread over modules; every method is short, and the math, the critic fit, acting and the sampling
live in `trpo.core`, `algos.acting` and `trpo.sampling`.
"""

from __future__ import annotations

import copy
import math
import numbers
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar, Protocol

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor, nn

from trpo.algos.acting import act
from trpo.config.presets import preset_config
from trpo.config.schema import SAFE, TRPOConfig
from trpo.core.advantages import normalize
from trpo.core.device import needs_rollout_copy, resolve_device
from trpo.core.encoders import ObservationLayout
from trpo.core.networks import Critic, make_distribution
from trpo.core.normalization import ObservationNormalizer, RewardScaler
from trpo.core.seeding import rng_state, seed_everything, set_rng_state
from trpo.core.trust_region import detached_params, unflatten
from trpo.core.value_fit import explained_variance, fit_value, linear_schedule, refit_head, value_loss
from trpo.errors import ConfigError, Interrupted, NonFiniteEnvError, TrainingStopped, UserError
from trpo.run import checkpoint
from trpo.run.callbacks import CallbackArg, as_callbacks
from trpo.run.evaluation import evaluate as evaluate_policy
from trpo.run.health import HealthMonitor, dead_unit_fractions
from trpo.run.interrupts import GracefulStop
from trpo.run.progress import RunLogger
from trpo.run.resources import check_fits
from trpo.run.run_dir import RunDir
from trpo.sampling.env_spec import EnvSpec, preset_env_spec
from trpo.sampling.envs import (
    EnvFactory,
    EnvLike,
    SingleInstance,
    check_env_source,
    env_source,
    probe_env,
    space_to_json,
)
from trpo.sampling.policies import make_actor, make_critic
from trpo.sampling.rollout import Batch
from trpo.sampling.sampler import Sampler, make_sampler


@dataclass(frozen=True)
class PolicyBatch:
    """An on-policy batch as the policy step sees it."""

    obs: Tensor
    """Stored observation rows [N, row] (normalised vectors; uint8 when they hold images)."""
    actions: Tensor
    adv: Tensor
    """Advantages (normalised if `normalize_advantages`)."""
    p_k: Tensor
    """Distribution parameters of pi_k, the policy that collected the batch (no gradient)."""
    log_prob_k: Tensor
    """log pi_k(a|s) of the batch's actions."""
    cost_adv: Tensor | None = None
    """Cost advantages A_C (GAE of the per-step costs with the cost critic, unnormalised); None without costs."""
    ep_cost: float = math.nan
    """J_C(pi_k), the expected undiscounted episode cost of pi_k (`episode_cost_estimate`)."""
    horizon: float = math.nan
    """The mean episode length H that turns a per-step surrogate change into an episode-cost change."""
    mask: Tensor | None = None
    """Legal actions [N, param_dim] (bool) the actions were sampled under; pi_k and every candidate use them."""


def episode_cost_estimate(
    batch: Batch, recent_costs: Sequence[float], recent_lengths: Sequence[int], n_envs: int, n_steps: int
) -> tuple[float, float]:
    """(J_C(pi_k), H): the mean cost and length of the most recent finished episodes: those that finished in
    `batch`, or the last n_envs when fewer did (`recent_*`: the sampler's last 100, the batch's last); when none
    ever finished, the batch's mean cost per step times n_steps, and H = n_steps (every episode is then longer
    than a rollout). Environments that start together also end together, so a batch alone may hold no episode."""
    k = max(len(batch.episode_costs), n_envs)
    if recent_costs:
        return float(np.mean(list(recent_costs)[-k:])), float(np.mean(list(recent_lengths)[-k:]))
    if batch.episode_costs:
        return float(np.mean(batch.episode_costs)), float(np.mean(batch.episode_lengths))
    return batch.step_cost_mean * n_steps, float(n_steps)


class StepStats(Protocol):
    """The statistics of one policy step (a dataclass per algorithm); `row()` gives them as `train/...` keys."""

    @property
    def nonfinite_rejected(self) -> bool: ...

    def row(self) -> dict[str, float]: ...


class Learner:
    """An on-policy learner on a Gymnasium environment; subclasses supply `policy_step` (and `algo`).

    >>> agent = TRPO("CartPole-v1", TRPOConfig(total_steps=100_000), seed=0)
    >>> agent.learn()
    >>> agent.save("runs/cartpole")

    `make_agent` picks the class from `config.algo`, and `load` returns the class a model was saved from.
    """

    algo: ClassVar[str] = ""
    """The config.algo value of this class (set by each algorithm)."""
    preset: str | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "algo" in cls.__dict__:
            ALGORITHMS[cls.algo] = cls

    def __init__(
        self,
        env: EnvLike,
        config: TRPOConfig | None = None,
        seed: int | None = None,
        env_kwargs: Mapping[str, Any] | None = None,
        *,
        actor_net: nn.Module | None = None,
        critic_net: nn.Module | None = None,
    ) -> None:
        """`env`: a Gymnasium id (`module:EnvId` imports `module` first; `env_kwargs` go to
        `gymnasium.make`), an `EnvSpec` (id, kwargs, wrappers), a function that makes an environment, an
        environment instance, or a vector env (which sets n_envs; it must autoreset in the same step).

        An instance with an `env.spec` (made by `gymnasium.make`) is rebuilt from that spec, as many times
        as needed; one without is the single training environment (n_envs=1, sampler=sync), as in SB3.
        The spec is recorded in checkpoints whenever Gymnasium can describe the environment, so that
        `trpo eval`/`record`/`train --resume` rebuild it.

        Without `config`, an env id with a preset gets that preset for this algorithm (as `trpo train
        ENV_ID` does; `self.preset` names it) and the preset's wrappers and env kwargs (`env_kwargs` on top: a
        key given wins), anything else TRPOConfig's defaults.

        `actor_net` / `critic_net`: custom torch modules in place of the MLPs. The actor's maps normalised
        observations [N, obs_dim] to the action distribution's mean (Box; the log-std stays a learned
        state-independent parameter) or logits [N, n]; the critic's maps them to values [N] or [N, 1].
        Checkpoints hold their weights; `load(path, actor_net=..., critic_net=...)` takes the same modules."""
        if config is None:
            config, self.preset = preset_config(
                EnvSpec(env).registered_id if isinstance(env, str) else None, algo=self.algo
            )
            if isinstance(env, str):  # with the preset's environment entries too, as `trpo train ENV_ID`
                env, env_kwargs = preset_env_spec(env, env_kwargs), None
        if seed is not None:
            config = config.replace(seed=seed)
        if config.algo != self.algo:
            if config.algo != "trpo":  # the default: a plain TRPOConfig given to NPG or PPO
                raise ConfigError(
                    f"config.algo is {config.algo!r} but this is the {type(self).__name__} class; use "
                    f"{ALGORITHMS[config.algo].__name__}, or trpo.make_agent(env, config) which follows config.algo"
                )
            config = config.replace(algo=self.algo)
        source = env_source(env, env_kwargs)
        if source.vector is not None:
            config = config.replace(n_envs=source.vector.num_envs)
        self.config = config.validate()
        check_env_source(source, self.config)
        self.env_fn = source.factory
        self._vector_env: gym.vector.VectorEnv | None = source.vector
        if source.vector is not None:
            observation_space, action_space = source.vector.single_observation_space, source.vector.single_action_space
            probed = None
        elif isinstance(source.factory, SingleInstance):
            assert source.factory.env is not None
            observation_space, action_space = source.factory.env.observation_space, source.factory.env.action_space
            probed = None
        else:
            observation_space, action_space, probed = probe_env(self.env_fn)
        self.set_env_spec(source.spec or probed)
        self._build(observation_space, action_space, actor_net, critic_net)

    def set_env_spec(self, spec: EnvSpec | None) -> None:
        """Record the environment's spec (saved in checkpoints; None when it cannot be described)."""
        self.env_spec = spec
        self.env_id = spec.id if spec is not None else None

    def _build(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        actor_net: nn.Module | None = None,
        critic_net: nn.Module | None = None,
    ) -> None:
        cfg = self.config
        check_fits(cfg, observation_space, action_space)  # before any buffer or network is allocated
        if (actor_net is not None or critic_net is not None) and cfg.sampler in ("process", "ray"):
            raise ConfigError(
                f"sampler={cfg.sampler} builds the actor in its workers from the config; a custom actor_net or "
                "critic_net trains with sampler sync or async"
            )
        if critic_net is not None and cfg.vf_head_ridge > 0:
            raise ConfigError(
                "vf_head_ridge refits the last layer of the built-in critic; a custom critic_net has none trpo "
                "can refit: set vf_head_ridge 0"
            )
        torch.set_num_threads(cfg.torch_threads)
        seed_everything(cfg.seed)
        self.observation_space, self.action_space = observation_space, action_space
        self.layout = ObservationLayout(observation_space)
        self.obs_dim = self.layout.row_size  # the width of one stored observation row (the flat vector of a Box)
        self.dist = make_distribution(action_space)
        self.device = resolve_device(cfg.device)
        actor = make_actor(cfg, self.layout, self.dist, body=actor_net)
        critic = make_critic(cfg, self.layout, body=critic_net)
        # The update runs on self.device; rollouts (one small batch per env step) on CPU copies of the
        # networks, refreshed after every update. On the CPU both are the same objects.
        if needs_rollout_copy(self.device):
            self.rollout_actor, self.rollout_critic = copy.deepcopy(actor).cpu(), copy.deepcopy(critic).cpu()
        else:
            self.rollout_actor, self.rollout_critic = actor, critic
        self.actor, self.critic = actor.to(self.device), critic.to(self.device)
        self.critic_optimizer = torch.optim.Adam(self.critic.parameters(), lr=cfg.vf_lr, fused=True)
        self.cost_critic: Critic | None = None  # V_C, the cost critic of the constrained algorithms (an MLP)
        self.rollout_cost_critic: Critic | None = None  # its CPU copy for the sampler (itself on the CPU)
        self.cost_critic_optimizer: torch.optim.Optimizer | None = None
        if cfg.algo in SAFE:
            cost_critic = make_critic(cfg, self.layout)
            self.rollout_cost_critic = (
                copy.deepcopy(cost_critic).cpu() if needs_rollout_copy(self.device) else cost_critic
            )
            self.cost_critic = cost_critic.to(self.device)
            self.cost_critic_optimizer = torch.optim.Adam(self.cost_critic.parameters(), lr=cfg.vf_lr, fused=True)
        self.obs_normalizer = ObservationNormalizer((self.layout.norm_dim,), cfg.normalize_obs, cfg.clip_obs)
        self.reward_scaler = RewardScaler(cfg.n_envs, cfg.gamma, cfg.normalize_reward, cfg.clip_reward)
        self.generator = torch.Generator().manual_seed(cfg.seed)
        action_dims = self.dist.param_dim // 2 if self.actor.gaussian else self.dist.param_dim
        self.health = HealthMonitor(cfg, self.actor.gaussian, action_dims)
        self.num_steps = 0
        self.num_updates = 0
        self.rejected_in_a_row = 0
        self.skipped_batches = 0
        self.last_rejection = ""
        self.stop_reason = ""  # set when a callback stopped the last learn() call
        self.schedule_until = cfg.total_steps  # the step count learning-rate schedules run out at (learn's target)
        self.rollout_seconds = 0.0  # wall time spent collecting and updating, over this object's life
        self.update_seconds = 0.0
        self._collector: Sampler | None = None
        self._next_start_step: int | None = None  # set by learn() while another update will follow this one
        self._vector_env = getattr(self, "_vector_env", None)
        self._resume_state: tuple[dict[str, Any], dict[str, Tensor]] | None = None
        self._build_policy_update()

    def _build_policy_update(self) -> None:
        """Create what the policy step keeps between updates (PPO: the actor's optimiser); TRPO: none."""

    def policy_state(self) -> dict[str, Any]:
        """What the policy step keeps between updates besides optimisers, as JSON data (trpo-lag: lambda)."""
        return {}

    def load_policy_state(self, state: dict[str, Any]) -> None:
        """Restore what `policy_state` returned (an empty dict: a checkpoint that has none)."""

    def policy_step(self, b: PolicyBatch) -> StepStats:
        """The algorithm's policy update on an on-policy batch (the actor's parameters change in place)."""
        raise NotImplementedError(f"{type(self).__name__} does not define its policy step")

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """The optimisers whose state is checkpointed, by the name their tensors are saved under."""
        if self.cost_critic_optimizer is not None:
            return {"critic_optimizer": self.critic_optimizer, "cost_critic_optimizer": self.cost_critic_optimizer}
        return {"critic_optimizer": self.critic_optimizer}

    # ------------------------------------------------------------------ training

    def learn(
        self,
        steps: int | None = None,
        *,
        until: int | None = None,
        run_dir: str | Path | None = None,
        callback: CallbackArg = None,
        progress_bar: bool = False,
        table_every: int = 0,
        json_lines: bool = False,
    ) -> Learner:
        """Train `steps` more environment steps from where the agent is (a loaded model continues its
        counters, logs and optimiser state), or up to `until` steps in all; with neither, up to
        `config.total_steps` in all. The budget rounds up to whole updates of `config.batch_size`.

        With `run_dir`, diagnostics are appended to `progress.csv` and TensorBoard there, and the
        learner is checkpointed to `run_dir/checkpoint` every `checkpoint_every` updates and at the end.
        `callback`: a `trpo.Callback`, a function `f(agent, stats)`, or a list of them; one
        that returns False stops training after that update (`self.stop_reason` says which).
        SIGINT/SIGTERM stop training after the current update (checkpointed) by raising `Interrupted`.
        Console: `progress_bar` (with a diagnostics table every `table_every` updates), or `json_lines`
        (one JSON object per update on stdout). Health alarms (`self.alarms`) are printed once each.
        """
        cfg = self.config
        total = self._target(steps, until)
        callbacks = as_callbacks(callback)
        self.stop_reason = ""
        if total <= self.num_steps:
            warnings.warn(
                f"nothing to train: the agent has taken {self.num_steps:,} steps and the target is {total:,} "
                "(learn(n) trains n more steps, learn(until=N) up to N in all)",
                stacklevel=2,
            )
            return self
        run_path = Path(run_dir) if run_dir is not None else None
        self.schedule_until = total
        for c in callbacks:
            c.on_training_start(self, run_path)
        collector = self.start_sampler()
        saved_at = -1

        def checkpoint() -> None:
            nonlocal saved_at
            if run_path is not None and saved_at != self.num_updates:
                self.save(RunDir(run_path).checkpoint)
                saved_at = self.num_updates

        with (
            RunLogger(
                run_path,
                total,
                self.num_steps,
                self.num_updates,
                progress_bar,
                table_every,
                json_lines,
                batch_size=cfg.batch_size,
            ) as logger,
            GracefulStop() as stop,
        ):
            while self.num_steps < total and not self.stop_reason:
                start = time.perf_counter()
                try:
                    batch = collector.collect(cfg.gamma, cfg.gae_lambda, start_step=self.num_steps)
                except TrainingStopped:  # e.g. sampler workers that keep dying: keep what was learned
                    checkpoint()
                    raise
                except NonFiniteEnvError as exc:
                    if cfg.on_nonfinite == "raise":
                        raise
                    self._skip_batch(collector, str(exc))
                else:
                    rollout_s = time.perf_counter() - start
                    following = self.num_steps + cfg.batch_size
                    self._next_start_step = following if following < total else None
                    try:
                        diagnostics = self.update(batch)
                    finally:
                        self._next_start_step = None
                    update_s = time.perf_counter() - start - rollout_s
                    self.rollout_seconds += rollout_s
                    self.update_seconds += update_s
                    self.num_steps += cfg.batch_size
                    self.num_updates += 1
                    rejected = bool(diagnostics["train/nonfinite_rejected"])
                    self.rejected_in_a_row = self.rejected_in_a_row + 1 if rejected else 0
                    row = self._row(diagnostics, collector, rollout_s, update_s)
                    if cfg.eval_every:
                        row.update(self._periodic_eval())
                    health, fired = self.health.observe(row, self.num_updates, self.num_steps)
                    stats = {**row, **health}
                    logger.log(stats)
                    for alarm in fired:
                        logger.alarm(alarm)
                    if cfg.checkpoint_every and self.num_updates % cfg.checkpoint_every == 0:
                        checkpoint()
                    stops = [c.stop_reason() for c in callbacks if c.on_update(self, stats) is False]  # all run
                    self.stop_reason = stops[0] if stops else ""
                if self.rejected_in_a_row >= cfg.max_rejected_updates:
                    checkpoint()
                    raise TrainingStopped(
                        f"{self.rejected_in_a_row} updates in a row were rejected (last: {self.last_rejection}); "
                        "check the environment's observations and rewards, lower max_kl or raise cg_damping"
                    )
                if stop.signum is not None:
                    checkpoint()
                    raise Interrupted(stop.signum, self.num_steps)
        checkpoint()
        for c in callbacks:
            c.on_training_end(self)
        return self

    def _target(self, steps: int | None, until: int | None) -> int:
        """The step count `learn(steps, until=...)` trains up to."""
        if steps is not None and until is not None:
            raise ConfigError("learn() takes steps (more steps to train) or until (a total), not both")
        for name, value in (("steps", steps), ("until", until)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0):
                raise ConfigError(f"learn({name}=...) must be a whole number >= 0 (got {value!r})")
        if steps is not None:
            return self.num_steps + int(steps)
        return int(until) if until is not None else self.config.total_steps

    def _periodic_eval(self) -> dict[str, float]:
        """eval/mean_return of `eval_every_episodes` deterministic episodes every `eval_every` updates
        (NaN on the others, so every progress.csv row has the same keys); no training randomness is used."""
        if self.num_updates % self.config.eval_every != 0:
            return {"eval/mean_return": math.nan, "time/eval_s": 0.0}
        start = time.perf_counter()
        result = evaluate_policy(self, episodes=self.config.eval_every_episodes)
        return {"eval/mean_return": float(result["mean_return"]), "time/eval_s": time.perf_counter() - start}  # type: ignore[arg-type]

    @property
    def alarms(self) -> list[dict[str, Any]]:
        """The health alarms that fired during training, in order (name, update, step, message, fix)."""
        return self.health.summary()

    def _skip_batch(self, collector: Sampler, reason: str) -> None:
        """on_nonfinite=skip_batch: drop the rollout, restart every episode, count the rejection."""
        self.skipped_batches += 1
        self.rejected_in_a_row += 1
        self.last_rejection = reason
        collector.reset(seed=self.config.seed + 7919 * self.skipped_batches)

    def start_sampler(self) -> Sampler:
        """The sampler, created on first use (at the latest by `learn()`): create it early so that the
        errors of its environments, and with sampler=ray of the connection to Ray and the workers, surface
        before anything else happens."""
        if self._collector is None:
            cfg = self.config
            collector = make_sampler(
                cfg, self.env_fn, (self.observation_space, self.action_space), self.rollout_actor,
                self.rollout_critic, self.obs_normalizer, self.reward_scaler, self.generator, self._vector_env,
                self.rollout_cost_critic, self.env_spec,
            )  # fmt: skip
            resume, self._resume_state = self._resume_state, None
            if resume is None or not collector.restore(*resume):
                # new episodes: a fresh run, or a resumed one whose environments cannot be restored
                collector.reset(seed=cfg.seed + self.num_updates)
            self._collector = collector
        return self._collector

    def close(self) -> None:
        """Close the training environments (and the sampler's workers)."""
        if self._collector is not None:
            self._collector.close()
            self._collector = None

    def update(self, batch: Batch) -> dict[str, float]:
        """One update on an on-policy batch: the algorithm's policy step (`policy_step`), then the
        critic fit; returns the diagnostics of both."""
        cfg, dist = self.config, self.dist
        batch = batch.to(self.device)
        obs = batch.obs
        adv = normalize(batch.advantages) if cfg.normalize_advantages else batch.advantages
        with torch.no_grad():  # pi_k: the policy that collected the batch
            p_k = self.actor(obs, batch.masks)
            log_prob_k = dist.log_prob(p_k, batch.actions)
            entropy_k = float(dist.entropy(p_k).mean())
        policy_batch = PolicyBatch(obs, batch.actions, adv, p_k, log_prob_k, mask=batch.masks)
        if self.cost_critic is not None:
            if batch.cost_advantages is None:
                raise ConfigError(
                    f"algo {cfg.algo} needs an environment that reports a cost per step in info['cost'] (none did); "
                    "add one with the wrapper trpo.sampling.costs:CostFunction (docs/safe-rl.md)"
                )
            stats = self._collector.stats if self._collector is not None else None
            ep_cost, horizon = episode_cost_estimate(
                batch, stats.costs if stats else [], stats.lengths if stats else [], cfg.n_envs, cfg.n_steps
            )
            policy_batch = replace(policy_batch, cost_adv=batch.cost_advantages, ep_cost=ep_cost, horizon=horizon)
        step = self.policy_step(policy_batch)
        diagnostics = step.row()
        if self._next_start_step is not None and self._collector is not None:
            # worker samplers collect the next batch with the new actor while the critic fits below
            self._refresh_rollout_networks()
            self._collector.prefetch(self._next_start_step)

        value_loss_before = value_loss(self.critic, obs, batch.returns)
        vf_lr = self._critic_learning_rate()
        fit_value(self.critic, self.critic_optimizer, obs, batch.returns, cfg.vf_epochs, cfg.vf_minibatch_size,
                  self.generator)  # fmt: skip
        if cfg.vf_head_ridge > 0:
            refit_head(self.critic, obs, batch.returns, cfg.vf_head_ridge)
        if self.cost_critic is not None and self.cost_critic_optimizer is not None:
            assert batch.cost_returns is not None and batch.cost_values is not None
            for group in self.cost_critic_optimizer.param_groups:
                group["lr"] = vf_lr
            cost_loss_before = value_loss(self.cost_critic, obs, batch.cost_returns)
            fit_value(self.cost_critic, self.cost_critic_optimizer, obs, batch.cost_returns, cfg.vf_epochs,
                      cfg.vf_minibatch_size, self.generator)  # fmt: skip
            if cfg.vf_head_ridge > 0:
                refit_head(self.cost_critic, obs, batch.cost_returns, cfg.vf_head_ridge)
            diagnostics.update({
                "train/cost_value_loss_before": cost_loss_before,
                "train/cost_value_loss": value_loss(self.cost_critic, obs, batch.cost_returns),
                "train/cost_explained_variance": explained_variance(batch.cost_values, batch.cost_returns),
                "train/cost_return_mean": float(batch.cost_returns.mean()),
            })  # fmt: skip
        self._refresh_rollout_networks()
        with torch.no_grad():
            p_new = self.actor(obs, batch.masks)
        entropy = float(dist.entropy(p_new).mean())
        diagnostics.update({
            "train/entropy": entropy,
            "train/entropy_change": entropy - entropy_k,
            "train/value_loss_before": value_loss_before,
            "train/value_loss": value_loss(self.critic, obs, batch.returns),
            "train/explained_variance": explained_variance(batch.values, batch.returns),
            "train/return_mean": float(batch.returns.mean()),
            "train/return_std": float(batch.returns.std()),
            "train/adv_mean": float(batch.advantages.mean()),
            "train/adv_std": float(batch.advantages.std()),
            "train/adv_abs_max": float(batch.advantages.abs().max()),
        })  # fmt: skip
        for name, layers, encode in (
            ("actor", self.actor.features, self.actor.encode),
            ("critic", self.critic.net, self.critic.encode),
        ):
            if not isinstance(layers, nn.Sequential):  # a custom network: its layers are its own business
                continue
            with torch.no_grad():
                inputs = encode(obs)
            for i, fraction in enumerate(dead_unit_fractions(layers, inputs)):
                diagnostics[f"train/dead_units_{name}_{i}"] = fraction
        if cfg.vf_lr_schedule != "constant":
            diagnostics["train/vf_lr"] = vf_lr
        if cfg.ent_coef_schedule != "constant":
            diagnostics["train/ent_coef"] = self.entropy_coefficient()
        if cfg.max_kl_schedule != "constant":
            diagnostics["train/max_kl"] = self.trust_region()
        if self.actor.gaussian:
            diagnostics["train/policy_std"] = float(p_new[:, self.dist.param_dim // 2 :].exp().mean())
        return diagnostics

    @torch.no_grad()
    def set_actor_params(self, theta: Tensor) -> None:
        """Copy a flat parameter vector into the actor's own tensors (their storage is kept)."""
        for param, value in zip(
            self.actor.parameters(), unflatten(theta, detached_params(self.actor)).values(), strict=True
        ):
            param.copy_(value)

    def entropy_coefficient(self) -> float:
        """This update's entropy bonus: ent_coef, or with the linear schedule ent_coef * (1 - steps taken /
        steps learn() trains up to), never below 0."""
        cfg = self.config
        if cfg.ent_coef_schedule == "linear":
            return linear_schedule(cfg.ent_coef, self.num_steps, self.schedule_until)
        return cfg.ent_coef

    def trust_region(self) -> float:
        """This update's trust-region size delta (TRPO, NPG, CPO; PPO has none): max_kl, or with the linear
        schedule max_kl * (1 - steps taken / steps learn() trains up to), never below the last update's
        max_kl * batch / steps (an update made after learn() keeps a positive delta)."""
        cfg = self.config
        if cfg.max_kl_schedule == "linear":
            last = cfg.max_kl * min(1.0, cfg.n_envs * cfg.n_steps / max(1, self.schedule_until))
            return max(linear_schedule(cfg.max_kl, self.num_steps, self.schedule_until), last)
        return cfg.max_kl

    def _critic_learning_rate(self) -> float:
        """Set and return the critic's Adam learning rate for this update: vf_lr, or with the linear
        schedule vf_lr * (1 - steps taken / steps learn() trains up to), never below 0."""
        cfg = self.config
        lr = cfg.vf_lr
        if cfg.vf_lr_schedule == "linear":
            lr = linear_schedule(cfg.vf_lr, self.num_steps, self.schedule_until)
        for group in self.critic_optimizer.param_groups:
            group["lr"] = lr
        return lr

    @torch.no_grad()
    def _refresh_rollout_networks(self) -> None:
        """Copy the updated networks into the CPU copies the sampler acts with (when they are copies)."""
        pairs = [(self.actor, self.rollout_actor), (self.critic, self.rollout_critic)]
        if self.cost_critic is not None and self.rollout_cost_critic is not None:
            pairs.append((self.cost_critic, self.rollout_cost_critic))
        for source, copy_ in pairs:
            if copy_ is not source:
                for mine, theirs in zip(copy_.parameters(), source.parameters(), strict=True):
                    mine.copy_(theirs)  # in place: the samplers hold these tensors

    def _row(
        self, diagnostics: dict[str, float], collector: Sampler, rollout_s: float, update_s: float
    ) -> dict[str, float]:
        stats = collector.stats
        costs = {"rollout/ep_cost_mean": float(np.mean(stats.costs)) if stats.costs else math.nan}
        return {
            "time/steps": float(self.num_steps),
            "time/updates": float(self.num_updates),
            "time/fps": self.config.batch_size / (rollout_s + update_s),
            "time/rollout_s": rollout_s,
            "time/update_s": update_s,
            "rollout/ep_return_mean": float(np.mean(stats.returns)) if stats.returns else math.nan,
            "rollout/ep_len_mean": float(np.mean(stats.lengths)) if stats.lengths else math.nan,
            "rollout/episodes": float(stats.episodes),
            "rollout/skipped_batches": float(self.skipped_batches),
            **(costs if stats.saw_costs or self.cost_critic is not None else {}),
            **collector.diagnostics(),
            **diagnostics,
        }

    # ------------------------------------------------------------------ acting

    def predict(self, obs: Any, deterministic: bool = True, action_masks: Any = None) -> np.ndarray:
        """Action(s) for one observation or a batch, with the frozen observation normalisation.

        `obs` has the observation space's shape (one observation: one action) or a leading batch axis
        (N observations: N actions); a Dict / Tuple observation holds one such array per key, all single or
        all batched. Any other shape raises `ObservationError`, as does a non-numeric one or a missing key.
        `action_masks` (bool, [n] or [N, n]; for MultiDiscrete the concatenated masks of the components):
        only legal actions are taken, as the masks of `env.action_masks()` / `info["action_mask"]` say.
        """
        return act(
            self.rollout_actor, self.dist, self.obs_normalizer, self.layout, self.action_space, obs,
            deterministic, self.generator, action_masks,
        )  # fmt: skip

    # ------------------------------------------------------------------ state (what a checkpoint holds)

    COUNTERS: ClassVar[tuple[str, ...]] = ("num_steps", "num_updates", "rejected_in_a_row", "skipped_batches")

    def state(self) -> tuple[dict[str, Any], dict[str, Tensor]]:
        """Everything needed to act and to continue training exactly, as (JSON data, tensors): networks,
        optimisers, normalisers, counters, config, random generator and (when training) the sampler."""
        obs_desc, obs_tensors = space_to_json(self.observation_space, "observation_space")
        act_desc, act_tensors = space_to_json(self.action_space, "action_space")
        tensors: dict[str, Tensor] = {
            **{f"actor.{k}": v for k, v in self.actor.state_dict().items()},
            **{f"critic.{k}": v for k, v in self.critic.state_dict().items()},
            **({f"cost_critic.{k}": v for k, v in self.cost_critic.state_dict().items()} if self.cost_critic else {}),
            **{f"obs_rms.{k}": torch.from_numpy(np.asarray(v)) for k, v in self.obs_normalizer.rms.state().items()},
            **{f"ret_rms.{k}": torch.from_numpy(np.asarray(v)) for k, v in self.reward_scaler.rms.state().items()},
            **obs_tensors,
            **act_tensors,
        }
        for name, optimizer in self.optimizers().items():
            tensors.update(checkpoint.optimizer_tensors(optimizer, name))
        data: dict[str, Any] = {
            "algo": self.algo,
            "env_id": self.env_id,
            "env_spec": self.env_spec.to_data() if self.env_spec is not None else None,
            "config": self.config.to_dict(),
            "observation_space": obs_desc,
            "action_space": act_desc,
            **{name: getattr(self, name) for name in self.COUNTERS},
            "last_rejection": self.last_rejection,
            "health": self.health.state(),
            "custom_networks": [name for name, net in (("actor", self.actor), ("critic", self.critic)) if net.custom],
        }
        policy_state = self.policy_state()
        if policy_state:
            data["policy_state"] = policy_state
        data["rng"], rng_tensors = rng_state(self.generator)
        tensors.update(rng_tensors)
        if self._collector is not None:
            data["collector"], collector_tensors = self._collector.state()
            tensors.update(collector_tensors)
        return data, tensors

    @classmethod
    def restore(
        cls,
        data: dict[str, Any],
        tensors: dict[str, Tensor],
        config: TRPOConfig,
        env_fn: EnvFactory,
        spec: EnvSpec | None,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        actor_net: nn.Module | None = None,
        critic_net: nn.Module | None = None,
    ) -> Learner:
        """A learner with the state `state()` returned (checked by the caller: `trpo.algos.saving`)."""
        custom = {"actor": actor_net, "critic": critic_net}
        for name in data.get("custom_networks", []):
            if custom.get(name) is None:
                raise UserError(
                    f"this model was trained with a custom {name} network; load it in Python with "
                    f"trpo.load(path, {name}_net=<a module of the same architecture>)"
                )
        agent = cls.__new__(cls)
        agent.config, agent.env_fn = config, env_fn
        agent.set_env_spec(spec)
        agent._build(observation_space, action_space, actor_net, critic_net)

        def section(prefix: str) -> dict[str, Tensor]:
            return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}

        agent.actor.load_state_dict(section("actor."))
        agent.critic.load_state_dict(section("critic."))
        if agent.cost_critic is not None and section("cost_critic."):  # a checkpoint from before costs has none
            agent.cost_critic.load_state_dict(section("cost_critic."))
        agent._refresh_rollout_networks()
        agent.obs_normalizer.rms.load_state({k: v.numpy() for k, v in section("obs_rms.").items()})
        agent.reward_scaler.rms.load_state({k: v.numpy() for k, v in section("ret_rms.").items()})
        for name, optimizer in agent.optimizers().items():
            checkpoint.load_optimizer_tensors(optimizer, tensors, name)
        agent.num_steps = int(data["num_steps"])
        agent.num_updates = int(data["num_updates"])
        agent.rejected_in_a_row = int(data.get("rejected_in_a_row", 0))
        agent.skipped_batches = int(data.get("skipped_batches", 0))
        agent.last_rejection = str(data.get("last_rejection", ""))
        for name in cls.COUNTERS[len(Learner.COUNTERS) :]:  # an algorithm's own counters (0 in older checkpoints)
            setattr(agent, name, int(data.get(name, 0)))
        agent.load_policy_state(data.get("policy_state", {}))
        if "health" in data:
            agent.health.load_state(data["health"])
        if "rng" in data:
            set_rng_state(data["rng"], tensors, agent.generator)
        if "collector" in data:
            agent._resume_state = (data["collector"], tensors)
        return agent

    def save(self, path: str | Path) -> None:
        """Save the learner's `state()` as the checkpoint directory `path` (atomically; no pickle)."""
        checkpoint.save_checkpoint(path, *reversed(self.state()))

    @classmethod
    def load(
        cls,
        path: str | Path,
        env: str | EnvSpec | EnvFactory | None = None,
        *,
        actor_net: nn.Module | None = None,
        critic_net: nn.Module | None = None,
        trust_run_sampler: bool = False,
    ) -> Learner:
        """Load a model saved by `save` (or the checkpoint of a run directory). No pickle is involved.

        The result is of the class the model was saved from: `trpo.load` (or `Learner.load`) loads any
        model; `TRPO.load` accepts a TRPO model only (NPG.load: NPG or TRPO, PPO.load: PPO).
        `env` replaces the recorded environment; it is needed to continue training (or evaluate) a model
        whose environment Gymnasium could not describe. A recorded `module:EnvId` or wrapper module is
        imported only from installed modules and PYTHONPATH, never from the current or run directory.
        A model trained with custom networks needs the same modules (`actor_net`, `critic_net`).
        The run's sampler fields (sampler, workers, worker_cpus, ray_address) are set to their defaults,
        so that a model from elsewhere never starts processes or joins a Ray cluster it names;
        `trust_run_sampler=True` keeps them (or set `agent.config = agent.config.replace(sampler=...)`).
        """
        from trpo.algos.saving import load_learner

        return load_learner(
            cls, path, env, ALGORITHMS, actor_net=actor_net, critic_net=critic_net, trust_run_sampler=trust_run_sampler
        )


ALGORITHMS: dict[str, type[Learner]] = {}
"""The learner class of each `algo` (each algorithm's class registers itself)."""


def make_agent(
    env: EnvLike,
    config: TRPOConfig | None = None,
    seed: int | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
    **networks: nn.Module | None,
) -> Learner:
    """A learner of the class `config.algo` names (TRPO, NPG or PPO); without a config, TRPO with the
    environment's preset (as `trpo train ENV_ID` does)."""
    algo = config.validate().algo if config is not None else "trpo"
    return ALGORITHMS[algo](env, config, seed=seed, env_kwargs=env_kwargs, **networks)


def load(
    path: str | Path,
    env: str | EnvSpec | EnvFactory | None = None,
    *,
    actor_net: nn.Module | None = None,
    critic_net: nn.Module | None = None,
    trust_run_sampler: bool = False,
) -> Learner:
    """Load any saved model (TRPO, NPG or PPO); the same as `Learner.load`."""
    return Learner.load(path, env=env, actor_net=actor_net, critic_net=critic_net, trust_run_sampler=trust_run_sampler)
