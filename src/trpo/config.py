"""`TRPOConfig`: the single source of truth for hyperparameters (API, CLI flags and presets)."""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml

from trpo.checkpoint import atomic_write_text
from trpo.errors import ConfigError

FvpMethod = Literal["analytic", "double_backprop"]
Algo = Literal["trpo", "npg", "ppo"]


@dataclasses.dataclass(frozen=True)
class TRPOConfig:
    """Hyperparameters of one run (TRPO, NPG or PPO). Every numerical knob of the algorithms is a field here."""

    algo: Algo = "trpo"
    """Policy update: 'trpo' (natural gradient, KL-boundary step, line search), 'npg' (the same natural
    gradient step applied without line search) or 'ppo' (clipped surrogate, Adam, minibatch epochs).
    Rollouts, advantages, critic, normalisation, logging and checkpoints are shared."""

    # --- trust region ---
    max_kl: float = 0.02
    """Trust-region size delta: the largest mean KL(pi_old || pi_new) an accepted update may have."""
    cg_iters: int = 10
    """Maximum conjugate-gradient iterations for solving F x = g."""
    cg_damping: float = 0.1
    """Damping c added to the Fisher matrix: CG solves (F + c I) x = g."""
    cg_tol: float = 1e-10
    """CG stops early once the relative residual ||r|| / ||g|| falls below this."""
    fvp_method: FvpMethod = "analytic"
    """Fisher-vector product: 'analytic' (J^T M J with the distribution's Fisher metric M) or
    'double_backprop' (Hessian of the mean KL by double back-propagation; any distribution)."""
    fvp_subsample: float = 0.25
    """Fraction of the batch used for Fisher-vector products (1.0 = the whole batch)."""
    backtrack_coef: float = 0.8
    """Line-search shrink factor beta: candidates are theta_k + beta^j * full_step."""
    backtrack_iters: int = 10
    """Number of line-search candidates tried before the update is rejected (old policy kept)."""

    # --- PPO (algo=ppo) ---
    pi_lr: float = 3e-4
    """PPO: Adam learning rate of the actor (Adam eps 1e-5, as SB3 and CleanRL)."""
    ppo_epochs: int = 10
    """PPO: passes over the batch per update."""
    ppo_minibatch_size: int = 64
    """PPO: minibatch size of the actor's Adam steps."""
    clip_range: float = 0.2
    """PPO: epsilon of the clipped surrogate min(r A, clip(r, 1 - eps, 1 + eps) A), r = pi / pi_old."""
    target_kl: float = 0.0
    """PPO: stop this update's epochs once a minibatch's approximate KL(pi_old || pi) exceeds this (0 = never)."""
    ent_coef: float = 0.0
    """Entropy bonus: TRPO and NPG maximise L(theta) + ent_coef * mean entropy inside the trust region (the
    line search asks this objective to improve); PPO subtracts ent_coef * entropy from its actor loss."""
    max_grad_norm: float = 0.5
    """PPO: clip the actor's gradient to this global L2 norm before each Adam step (0 = no clipping)."""

    # --- advantages ---
    gamma: float = 0.99
    """Discount factor."""
    gae_lambda: float = 0.95
    """GAE lambda (0 = one-step TD advantages, 1 = Monte-Carlo advantages)."""
    normalize_advantages: bool = True
    """Normalise advantages to mean 0, std 1 within each batch."""

    # --- sampling ---
    n_envs: int = 16
    """Number of environments in the vector env."""
    n_steps: int = 128
    """Steps per environment per update (batch size = n_envs * n_steps)."""
    sampler: Literal["sync", "async", "process", "ray"] = "sync"
    """Where the environments run: 'sync' (in-process vector env), 'async' (one subprocess per environment,
    one round trip per step), 'process' (`workers` local processes, each running whole rollouts of its
    n_envs / workers environments) or 'ray' (Ray actors, see workers; needs `pip install 'trpo[ray]'`).
    Replaces the former `vector` key."""
    workers: int = 2
    """sampler=process or ray: number of workers; the n_envs environments are split evenly among them."""
    worker_cpus: float = 1.0
    """sampler=ray: CPUs Ray reserves for each worker actor (num_cpus)."""
    ray_address: str = ""
    """sampler=ray: address of an existing Ray cluster ('auto': the one this machine joined with `ray start`);
    empty starts a local Ray instance with this machine's CPUs."""

    # --- critic ---
    vf_lr: float = 1e-3
    """Adam learning rate of the value function."""
    vf_lr_schedule: Literal["constant", "linear"] = "constant"
    """'linear': the critic's learning rate falls from vf_lr to 0 over the steps learn() trains up to
    (SB3's linear schedule); 'constant': vf_lr throughout."""
    vf_epochs: int = 5
    """Passes over the batch per update when fitting the value function."""
    vf_minibatch_size: int = 512
    """Minibatch size of the value-function fit."""

    # --- networks ---
    hidden_sizes: tuple[int, ...] = (64, 64)
    """Hidden layer sizes of the actor and of the critic (separate networks), unless set apart below."""
    actor_hidden_sizes: tuple[int, ...] = ()
    """Hidden layer sizes of the actor alone (empty: hidden_sizes)."""
    critic_hidden_sizes: tuple[int, ...] = ()
    """Hidden layer sizes of the critic alone (empty: hidden_sizes)."""
    activation: str = "tanh"
    """Hidden-layer activation: tanh, relu, elu, leaky_relu, silu, or any element-wise activation of
    torch.nn by its class name (e.g. GELU, Mish, Softplus; case-insensitive)."""
    ortho_init: bool = True
    """Orthogonal initialisation (gain sqrt(2) hidden, 0.01 policy head, 1 value head)."""
    log_std_init: float = 0.0
    """Initial log standard deviation of Gaussian policies (of sigma, the noise scale, with use_sde)."""
    use_sde: bool = False
    """Generalized state-dependent exploration (gSDE) for Box actions: the noise z(s) E uses the actor's
    last hidden features z(s) and a matrix E ~ N(0, sigma^2) held for sde_sample_freq steps, so the
    policy is a Gaussian with state-dependent std sqrt(z(s)^2 sigma^2)."""
    sde_sample_freq: int = 4
    """Steps between resamplings of the gSDE exploration matrix (per env; 0 = once per rollout)."""

    # --- normalisation ---
    normalize_obs: bool = True
    """Running mean/std observation normalisation (frozen at evaluation, saved with the model)."""
    normalize_reward: bool = True
    """Scale rewards by the running std of the discounted return (training only)."""
    clip_obs: float = 10.0
    """Clip normalised observations to [-clip_obs, clip_obs]."""
    clip_reward: float = 10.0
    """Clip scaled rewards to [-clip_reward, clip_reward]."""

    # --- run ---
    total_steps: int = 1_000_000
    """Environment steps to train for, rounded up to whole updates of n_envs * n_steps (e.g. 100,000 with
    1,024 per update trains 98 updates, 100,352 steps; the progress display says so at the start)."""
    seed: int = 0
    """Seed of the run: environments, parameters, sampling and subsampling."""
    device: str = "cpu"
    """Torch device of the networks and the update: 'cpu' (or 'auto', which is the CPU). The update on a
    GPU is not implemented yet, so 'cuda' is refused rather than silently run on the CPU."""
    torch_threads: int = 1
    """Torch intra-op threads (1 is fastest and bit-reproducible for small networks)."""
    eval_episodes: int = 10
    """Deterministic evaluation episodes at the end of `trpo train` (0 skips it)."""
    eval_every: int = 0
    """Evaluate the deterministic policy every this many updates on a separate environment and log
    eval/mean_return (NaN on other updates); 0 = never. Training is unaffected (same random numbers)."""
    eval_every_episodes: int = 5
    """Episodes of each periodic evaluation (seeded seed + 1000, + 1001, ... every time)."""
    checkpoint_every: int = 10
    """Write the run's checkpoint every this many updates (and at the end); 0 = only at the end."""

    # --- failures ---
    on_nonfinite: Literal["raise", "skip_batch"] = "raise"
    """An environment that returns a NaN/inf observation or reward: 'raise' stops with the env index and
    step; 'skip_batch' drops the batch, restarts the episodes and goes on."""
    max_rejected_updates: int = 10
    """Stop (with a checkpoint and a diagnosis) after this many updates in a row were rejected for
    non-finite values (gradient, Fisher product, CG solution, step) or skipped batches."""

    # --- health alarms (docs/health.md: one rule per failure mode) ---
    alarm_kl_spike: float = 500.0
    """kl_spike fires when an accepted update's max per-state KL exceeds alarm_kl_spike * max_kl."""
    alarm_cg_residual: float = 1.0
    """cg_stall: CG's final relative residual ||g - (F + cI) x|| / ||g|| above this ..."""
    alarm_cg_updates: int = 10
    """... for this many updates in a row."""
    alarm_line_search_updates: int = 5
    """line_search_failing: no step accepted for this many updates in a row."""
    alarm_entropy_ratio: float = 0.05
    """entropy_collapse: exploration below this fraction of the first update's (Gaussian: ratio of
    geometric-mean std; discrete: ratio of entropies)."""
    alarm_ev_updates: int = 20
    """critic_not_learning: explained variance of the critic's values < 0 for this many updates in a row ..."""
    alarm_ev_min_return_cv: float = 0.01
    """... while the returns vary: their std over the batch above this fraction of |mean| (explained variance
    means nothing for near-constant returns, e.g. a solved CartPole)."""
    alarm_dead_units: float = 0.1
    """dead_units: more than this fraction of a ReLU-family hidden layer (actor or critic) is dead."""
    alarm_adv_std: float = 1e-6
    """degenerate_advantages: the batch's raw advantage std is below this."""

    @property
    def batch_size(self) -> int:
        """Transitions per update."""
        return self.n_envs * self.n_steps

    def validate(self) -> TRPOConfig:
        """Raise `ConfigError` naming the first invalid field and the fix; return self if valid."""
        checks: list[tuple[bool, str]] = [
            (
                self.algo in typing.get_args(Algo),
                f"algo must be one of {', '.join(typing.get_args(Algo))} (got {self.algo!r})",
            ),
            (self.pi_lr > 0, f"pi_lr must be > 0 (got {self.pi_lr}); typical values are 1e-5-1e-3"),
            (self.ppo_epochs >= 1, f"ppo_epochs must be >= 1 (got {self.ppo_epochs}); typical values are 3-20"),
            (
                self.ppo_minibatch_size >= 1,
                f"ppo_minibatch_size must be >= 1 (got {self.ppo_minibatch_size}); typical values are 32-256",
            ),
            (0 < self.clip_range < 1, f"clip_range must be in (0, 1) (got {self.clip_range}); typical value 0.2"),
            (self.target_kl >= 0, f"target_kl must be >= 0 (got {self.target_kl}); 0 turns early stopping off"),
            (self.ent_coef >= 0, f"ent_coef must be >= 0 (got {self.ent_coef})"),
            (self.max_grad_norm >= 0, f"max_grad_norm must be >= 0 (got {self.max_grad_norm}); 0 turns clipping off"),
            (
                self.max_kl > 0 and math.isfinite(self.max_kl),
                f"max_kl must be > 0 (got {self.max_kl}); typical values are 0.005-0.05",
            ),
            (self.cg_iters >= 1, f"cg_iters must be >= 1 (got {self.cg_iters}); typical values are 10-25"),
            (self.cg_damping >= 0, f"cg_damping must be >= 0 (got {self.cg_damping}); typical value 0.1"),
            (self.cg_tol >= 0, f"cg_tol must be >= 0 (got {self.cg_tol})"),
            (0 < self.fvp_subsample <= 1, f"fvp_subsample must be in (0, 1] (got {self.fvp_subsample})"),
            (
                0 < self.backtrack_coef < 1,
                f"backtrack_coef must be in (0, 1) (got {self.backtrack_coef}); typical value 0.8",
            ),
            (self.backtrack_iters >= 1, f"backtrack_iters must be >= 1 (got {self.backtrack_iters})"),
            (0 < self.gamma <= 1, f"gamma must be in (0, 1] (got {self.gamma}); typical value 0.99"),
            (0 <= self.gae_lambda <= 1, f"gae_lambda must be in [0, 1] (got {self.gae_lambda}); typical value 0.95"),
            (self.n_envs >= 1, f"n_envs must be >= 1 (got {self.n_envs})"),
            (self.n_steps >= 1, f"n_steps must be >= 1 (got {self.n_steps})"),
            (self.batch_size > 1, f"n_steps * n_envs must be > 1 (got n_steps={self.n_steps}, n_envs={self.n_envs})"),
            (self.vf_lr > 0, f"vf_lr must be > 0 (got {self.vf_lr})"),
            (self.vf_epochs >= 0, f"vf_epochs must be >= 0 (got {self.vf_epochs})"),
            (self.vf_minibatch_size >= 1, f"vf_minibatch_size must be >= 1 (got {self.vf_minibatch_size})"),
            (
                len(self.hidden_sizes) >= 1 and all(h >= 1 for h in self.hidden_sizes),
                f"hidden_sizes must be a non-empty list of positive integers (got {list(self.hidden_sizes)})",
            ),
            (
                all(h >= 1 for h in self.actor_hidden_sizes),
                f"actor_hidden_sizes must be positive integers (got {list(self.actor_hidden_sizes)})",
            ),
            (
                all(h >= 1 for h in self.critic_hidden_sizes),
                f"critic_hidden_sizes must be positive integers (got {list(self.critic_hidden_sizes)})",
            ),
            (
                self.fvp_method in typing.get_args(FvpMethod),
                f"fvp_method must be one of {', '.join(typing.get_args(FvpMethod))} (got {self.fvp_method!r})",
            ),
            (
                self.sampler in ("sync", "async", "process", "ray"),
                f"sampler must be 'sync', 'async', 'process' or 'ray' (got {self.sampler!r})",
            ),
            (self.workers >= 1, f"workers must be >= 1 (got {self.workers})"),
            (self.worker_cpus > 0, f"worker_cpus must be > 0 (got {self.worker_cpus})"),
            (
                self.sampler not in ("process", "ray") or self.n_envs % self.workers == 0,
                f"n_envs must be a multiple of workers with sampler={self.sampler} (got n_envs={self.n_envs}, "
                f"workers={self.workers}); each worker runs n_envs / workers environments",
            ),
            (self.sde_sample_freq >= 0, f"sde_sample_freq must be >= 0 (got {self.sde_sample_freq})"),
            (self.clip_obs > 0, f"clip_obs must be > 0 (got {self.clip_obs})"),
            (self.clip_reward > 0, f"clip_reward must be > 0 (got {self.clip_reward})"),
            (self.total_steps >= 1, f"total_steps must be >= 1 (got {self.total_steps})"),
            (self.torch_threads >= 1, f"torch_threads must be >= 1 (got {self.torch_threads})"),
            (self.eval_episodes >= 0, f"eval_episodes must be >= 0 (got {self.eval_episodes})"),
            (self.eval_every >= 0, f"eval_every must be >= 0 (got {self.eval_every}); 0 turns it off"),
            (self.eval_every_episodes >= 1, f"eval_every_episodes must be >= 1 (got {self.eval_every_episodes})"),
            (self.checkpoint_every >= 0, f"checkpoint_every must be >= 0 (got {self.checkpoint_every})"),
            (
                self.on_nonfinite in ("raise", "skip_batch"),
                f"on_nonfinite must be 'raise' or 'skip_batch' (got {self.on_nonfinite!r})",
            ),
            (self.max_rejected_updates >= 1, f"max_rejected_updates must be >= 1 (got {self.max_rejected_updates})"),
            (self.alarm_kl_spike > 0, f"alarm_kl_spike must be > 0 (got {self.alarm_kl_spike})"),
            (self.alarm_cg_residual > 0, f"alarm_cg_residual must be > 0 (got {self.alarm_cg_residual})"),
            (self.alarm_cg_updates >= 1, f"alarm_cg_updates must be >= 1 (got {self.alarm_cg_updates})"),
            (
                self.alarm_line_search_updates >= 1,
                f"alarm_line_search_updates must be >= 1 (got {self.alarm_line_search_updates})",
            ),
            (
                0 <= self.alarm_entropy_ratio < 1,
                f"alarm_entropy_ratio must be in [0, 1) (got {self.alarm_entropy_ratio})",
            ),
            (self.alarm_ev_updates >= 1, f"alarm_ev_updates must be >= 1 (got {self.alarm_ev_updates})"),
            (
                self.alarm_ev_min_return_cv >= 0,
                f"alarm_ev_min_return_cv must be >= 0 (got {self.alarm_ev_min_return_cv})",
            ),
            (0 <= self.alarm_dead_units <= 1, f"alarm_dead_units must be in [0, 1] (got {self.alarm_dead_units})"),
            (self.alarm_adv_std >= 0, f"alarm_adv_std must be >= 0 (got {self.alarm_adv_std})"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        if self.device not in ("cpu", "auto"):
            import torch

            cuda = "is available here" if torch.cuda.is_available() else "is not available here either"
            raise ConfigError(
                f"device {self.device!r}: trpo's update runs on the CPU only so far (CUDA {cuda}); use --device cpu"
            )
        if self.vf_lr_schedule not in ("constant", "linear"):
            raise ConfigError(f"vf_lr_schedule must be constant or linear (got {self.vf_lr_schedule!r})")
        from trpo.policies import activation_class  # torch: imported only when a config is validated

        activation_class(self.activation)
        if self.sampler == "ray":
            try:
                import ray  # noqa: F401
            except ImportError:
                raise ConfigError("sampler=ray needs Ray, which is not installed: pip install 'trpo[ray]'") from None
        return self

    @property
    def actor_sizes(self) -> tuple[int, ...]:
        """The actor's hidden layer sizes (actor_hidden_sizes, else hidden_sizes)."""
        return self.actor_hidden_sizes or self.hidden_sizes

    @property
    def critic_sizes(self) -> tuple[int, ...]:
        """The critic's hidden layer sizes (critic_hidden_sizes, else hidden_sizes)."""
        return self.critic_hidden_sizes or self.hidden_sizes

    def replace(self, **changes: Any) -> TRPOConfig:
        """A copy with `changes` applied (names and types checked like a YAML file)."""
        return config_from_dict(changes, base=self)

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (lists instead of tuples) for YAML and JSON."""
        out = dataclasses.asdict(self)
        for name in ("hidden_sizes", "actor_hidden_sizes", "critic_hidden_sizes"):
            out[name] = list(out[name])
        return out


def _coerce(name: str, value: Any, annotation: Any) -> Any:
    """Check one YAML/dict value against the field's type; ints are accepted for floats."""
    origin = typing.get_origin(annotation)
    if annotation is bool:
        if isinstance(value, bool):
            return value
    elif annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif annotation is str:
        if isinstance(value, str):
            return value
    elif origin is Literal:
        if value in typing.get_args(annotation):
            return value
        raise ConfigError(f"{name} must be one of {', '.join(map(str, typing.get_args(annotation)))} (got {value!r})")
    elif origin is tuple:
        if isinstance(value, (list, tuple)) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return tuple(value)
    elif origin in (typing.Union, types.UnionType):
        raise TypeError(f"unsupported field type {annotation}")  # pragma: no cover - no such field yet
    expected = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(
        annotation, "a list of integers"
    )
    raise ConfigError(f"{name} must be {expected} (got {value!r} of type {type(value).__name__})")


def config_from_dict(values: Mapping[str, Any], base: TRPOConfig | None = None, source: str = "config") -> TRPOConfig:
    """Apply `values` on top of `base`, refusing unknown keys and wrong types with a clear message."""
    base = base if base is not None else TRPOConfig()
    hints = typing.get_type_hints(TRPOConfig)
    fields = {f.name for f in dataclasses.fields(TRPOConfig)}
    changes = {}
    values = _renamed_keys(values)
    for key, value in values.items():
        if key not in fields:
            close = [f for f in sorted(fields) if f.split("_")[0] == str(key).split("_")[0]]
            hint = f" (did you mean {' or '.join(close)}?)" if close else ""
            raise ConfigError(f"{source}: unknown config key {key!r}{hint}; `trpo train --help` lists the fields")
        changes[key] = _coerce(f"{source}: {key}", value, hints[key])
    return dataclasses.replace(base, **changes)


RENAMED_KEYS = {"vector": "sampler"}
"""Former config keys still read from YAML files and checkpoints: old name -> new name."""


def _renamed_keys(values: Mapping[str, Any]) -> dict[str, Any]:
    """`values` with former key names replaced by the current ones (the current name wins if both are given)."""
    out = dict(values)
    for old, new in RENAMED_KEYS.items():
        if old in out:
            value = out.pop(old)
            out.setdefault(new, value)
    return out


ENV_KEYS = ("env_id", "env_kwargs", "env_wrappers")
"""Keys of a config file that describe the environment (read by `load_yaml_env`), not the learner."""


def load_yaml_config(path: str | Path, base: TRPOConfig | None = None) -> TRPOConfig:
    """Read a YAML file of config fields on top of `base` (its environment keys, ENV_KEYS, are skipped)."""
    data = _read_yaml_mapping(Path(path))
    return config_from_dict({k: v for k, v in data.items() if k not in ENV_KEYS}, base=base, source=str(path))


def load_yaml_env(path: str | Path) -> dict[str, Any]:
    """The environment entries (env_id, env_kwargs, env_wrappers) of a YAML config file."""
    return {k: v for k, v in _read_yaml_mapping(Path(path)).items() if k in ENV_KEYS}


def _read_yaml_mapping(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must be a mapping of field: value (got {type(data).__name__})")
    return data


def save_yaml_config(
    config: TRPOConfig, path: str | Path, header: str = "", env: Mapping[str, Any] | None = None
) -> None:
    """Write the complete config as YAML that `--config` reads back; `header` becomes a comment; `env`
    (env_id, env_kwargs, env_wrappers) comes first when given."""
    comment = "".join(f"# {line}\n" for line in header.splitlines())
    data = {**(env or {}), **config.to_dict()}
    atomic_write_text(Path(path), comment + yaml.safe_dump(data, sort_keys=False))
