"""`TRPOConfig`: the single source of truth for hyperparameters (API, CLI flags and presets).

Each field declares beside itself its docstring (the CLI's help) and, with `knob(...)`, its `Rule`: the valid
range, the algorithms that read it, the field that does its job under another algorithm, a typical value.
Validation, `trpo compare`'s sweeps and `trpo train --help` all read these rules. (Long because it holds
~70 documented fields; the checks themselves are generic.)
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import itertools
import math
import os
import textwrap
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from typing_extensions import Doc

from trpo.config.safe_yaml import short
from trpo.errors import ConfigError
from trpo.files import atomic_write_text

FvpMethod = Literal["analytic", "double_backprop"]
Algo = Literal["trpo", "npg", "ppo", "cpo", "trpo-lag"]
CnnArch = Literal["auto", "nature", "small"]

ALGOS: tuple[str, ...] = typing.get_args(Algo)
NATURAL = ("trpo", "npg", "cpo", "trpo-lag")
"""The algorithms with a natural-gradient step (KL-bounded, conjugate gradient on Fisher products)."""
LINE_SEARCH = ("trpo", "cpo", "trpo-lag")
PPO = ("ppo",)
SAFE = ("cpo", "trpo-lag")
"""The constrained algorithms: a cost critic beside the reward critic, and a limit on the episode cost."""
LAGRANGIAN = ("trpo-lag",)
MAX_THREADS = 4 * (os.cpu_count() or 1)
"""The most torch threads a run may ask for: more than the machine's cores only slows it down."""


@dataclasses.dataclass(frozen=True)
class Rule:
    """What a config field accepts and which algorithms read it, declared beside the field with `knob`."""

    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None
    nonempty: bool = False
    """For a tuple of sizes: at least one (each element is held to the bounds above)."""
    algos: tuple[str, ...] = ALGOS
    """The algorithms whose update reads the field; setting it for another one is an error."""
    instead: Mapping[str, str] = dataclasses.field(default_factory=dict)
    """algo -> the field that does this field's job there (named in that error)."""
    typical: str = ""

    def bounds(self) -> str:
        """The valid range in words: '> 0', '>= 1', 'in (0, 1]', ... ('' when unbounded)."""
        low = f"({_num(self.gt)}" if self.gt is not None else f"[{_num(self.ge)}" if self.ge is not None else ""
        high = f"{_num(self.lt)})" if self.lt is not None else f"{_num(self.le)}]" if self.le is not None else ""
        if low and high:
            return f"in {low}, {high}"
        if low:
            return ("> " if self.gt is not None else ">= ") + low[1:]
        if high:
            return ("< " if self.lt is not None else "<= ") + high[:-1]
        return ""

    def holds(self, value: float) -> bool:
        return (
            (self.gt is None or value > self.gt)
            and (self.ge is None or value >= self.ge)
            and (self.lt is None or value < self.lt)
            and (self.le is None or value <= self.le)
        )


def _num(x: float | None) -> str:
    return str(int(x)) if x is not None and float(x).is_integer() else f"{x:g}"


def knob(default: Any, **rule: Any) -> Any:
    """A config field with its `Rule` (valid range, the algorithms that read it, a typical value)."""
    return dataclasses.field(default=default, metadata={"rule": Rule(**rule)})


@dataclasses.dataclass(frozen=True)
class TRPOConfig:
    """Hyperparameters of one run (TRPO, NPG or PPO). Every numerical knob of the algorithms is a field here."""

    algo: Algo = "trpo"
    """Policy update: 'trpo' (natural gradient, KL-boundary step, line search), 'npg' (the same natural
    gradient step applied without line search), 'ppo' (clipped surrogate, Adam, minibatch epochs), or for
    environments with costs (info['cost']) 'cpo' (Constrained Policy Optimization: the trust-region step
    with a linearised cost constraint) and 'trpo-lag' (TRPO on the reward minus lambda times the cost, lambda
    adapted to the violation); docs/safe-rl.md. Rollouts, advantages, critic, normalisation, logging and
    checkpoints are shared."""

    # --- trust region ---
    max_kl: float = knob(0.02, gt=0, algos=NATURAL, instead={"ppo": "clip_range or target_kl"}, typical="0.005 to 0.05")
    """Trust-region size delta: the largest mean KL(pi_old || pi_new) an accepted update may have."""
    max_kl_schedule: Literal["constant", "linear"] = knob("constant", algos=NATURAL)
    """'linear': delta falls from max_kl towards 0 over the steps learn() trains up to (large steps early,
    small ones as the policy settles; logged as train/max_kl; every accepted update still has mean KL <= its
    delta); 'constant': max_kl throughout."""
    cg_iters: int = knob(10, ge=1, algos=NATURAL, typical="10 to 25")
    """Maximum conjugate-gradient iterations for solving F x = g."""
    cg_damping: float = knob(0.1, ge=0, algos=NATURAL, typical="0.1")
    """Damping c added to the Fisher matrix: CG solves (F + c I) x = g."""
    cg_tol: float = knob(1e-10, ge=0, algos=NATURAL)
    """CG stops early once the relative residual ||r|| / ||g|| falls below this."""
    fvp_method: FvpMethod = knob("analytic", algos=NATURAL)
    """Fisher-vector product: 'analytic' (J^T M J with the distribution's Fisher metric M) or
    'double_backprop' (Hessian of the mean KL by double back-propagation; any distribution)."""
    fvp_subsample: float = knob(0.25, gt=0, le=1, algos=NATURAL)
    """Fraction of the batch used for Fisher-vector products (1.0 = the whole batch)."""
    backtrack_coef: float = knob(0.8, gt=0, lt=1, algos=LINE_SEARCH, typical="0.8")
    """Line-search shrink factor beta: candidates are theta_k + beta^j * full_step."""
    backtrack_iters: int = knob(10, ge=1, algos=LINE_SEARCH)
    """Number of line-search candidates tried before the update is rejected (old policy kept)."""

    # --- constrained RL (algo=cpo, trpo-lag; docs/safe-rl.md) ---
    cost_limit: float = knob(25.0, ge=0, algos=SAFE, typical="the task's budget, e.g. 25 (Safety-Gymnasium)")
    """The limit d on the expected episode cost J_C = E[sum_t cost_t], undiscounted (the sum of info['cost'] over
    an episode, as rollout/ep_cost_mean reports it); the constrained algorithms keep J_C <= cost_limit."""
    lagrangian_lr: float = knob(0.05, ge=0, algos=LAGRANGIAN, typical="0.01 to 0.1")
    """trpo-lag: lambda <- max(0, lambda + lagrangian_lr * (J_C - cost_limit)) each update (the PID multiplier's
    integral gain K_I when lagrangian_kp or lagrangian_kd is set)."""
    lagrangian_init: float = knob(0.0, ge=0, algos=LAGRANGIAN)
    """trpo-lag: the starting lambda."""
    lagrangian_kp: float = knob(0.0, ge=0, algos=LAGRANGIAN, typical="0 (plain Lagrangian) or 0.05 to 1")
    """trpo-lag: proportional gain K_P of the PID Lagrange multiplier (Stooke et al. 2020); with lagrangian_kp
    or lagrangian_kd > 0, lambda = max(0, K_P e + K_I I + K_D de), e = J_C - cost_limit."""
    lagrangian_kd: float = knob(0.0, ge=0, algos=LAGRANGIAN)
    """trpo-lag: derivative gain K_D of the PID Lagrange multiplier (on the rise of the cost only)."""

    # --- PPO (algo=ppo) ---
    pi_lr: float = knob(3e-4, gt=0, algos=PPO, typical="1e-5 to 1e-3")
    """PPO: Adam learning rate of the actor (Adam eps 1e-5, as SB3 and CleanRL)."""
    ppo_epochs: int = knob(10, ge=1, algos=PPO, typical="3 to 20")
    """PPO: passes over the batch per update."""
    ppo_minibatch_size: int = knob(64, ge=1, algos=PPO, typical="32 to 256")
    """PPO: minibatch size of the actor's Adam steps."""
    clip_range: float = knob(0.2, gt=0, lt=1, algos=PPO, instead={"trpo": "max_kl", "npg": "max_kl"}, typical="0.2")
    """PPO: epsilon of the clipped surrogate min(r A, clip(r, 1 - eps, 1 + eps) A), r = pi / pi_old."""
    target_kl: float = knob(
        0.0,
        ge=0,
        algos=PPO,
        instead={"trpo": "max_kl (the trust region delta)", "npg": "max_kl"},
        typical="0 (off) or 0.01 to 0.05",
    )
    """PPO: stop this update's epochs once a minibatch's approximate KL(pi_old || pi) exceeds this (0 = never)."""
    ent_coef: float = knob(0.0, ge=0)
    """Entropy bonus: TRPO and NPG maximise L(theta) + ent_coef * mean entropy inside the trust region (the
    line search asks this objective to improve); PPO subtracts ent_coef * entropy from its actor loss."""
    ent_coef_schedule: Literal["constant", "linear"] = "constant"
    """'linear': the entropy bonus falls from ent_coef to 0 over the steps learn() trains up to (explore early,
    let the policy sharpen late; logged as train/ent_coef); 'constant': ent_coef throughout."""
    max_grad_norm: float = knob(0.5, ge=0, algos=PPO, typical="0.5 (0 turns clipping off)")
    """PPO: clip the actor's gradient to this global L2 norm before each Adam step (0 = no clipping)."""

    # --- advantages ---
    gamma: float = knob(0.99, gt=0, le=1, typical="0.99")
    """Discount factor."""
    gae_lambda: float = knob(0.95, ge=0, le=1, typical="0.95")
    """GAE lambda (0 = one-step TD advantages, 1 = Monte-Carlo advantages)."""
    normalize_advantages: bool = True
    """Normalise advantages to mean 0, std 1 within each batch."""

    # --- sampling ---
    n_envs: int = knob(16, ge=1)
    """Number of environments in the vector env."""
    n_steps: int = knob(128, ge=1)
    """Steps per environment per update (batch size = n_envs * n_steps)."""
    sampler: Literal["sync", "async", "process", "ray", "envpool"] = "sync"
    """Where the environments run: 'sync' (in-process vector env), 'async' (one subprocess per environment,
    one round trip per step), 'process' (`workers` local processes, each running whole rollouts of its
    n_envs / workers environments), 'ray' (Ray actors, see workers; needs `pip install 'trpo[ray]'`) or
    'envpool' (EnvPool's C++ environments in `envpool_threads` threads, in-process; EnvPool's registered
    ids only; needs `pip install 'trpo[envpool]'`). Replaces the former `vector` key."""
    workers: int = knob(2, ge=1)
    """sampler=process or ray: number of workers; the n_envs environments are split evenly among them."""
    envpool_threads: int = knob(0, ge=0)
    """sampler=envpool: EnvPool's stepping threads (0: EnvPool's choice, one per core)."""
    overlap_critic_fit: bool = True
    """sampler=process or ray: broadcast the updated actor right after the policy step, so that the workers
    collect the next batch while the learner fits the critic (the batch's values come from the fitted
    critic when it is taken). The same algorithm bit for bit: the workers sample with the same actor and
    statistics either way; false makes the workers wait for the fit (to time the phases apart)."""
    worker_cpus: float = knob(1.0, gt=0)
    """sampler=ray: CPUs Ray reserves for each worker actor (num_cpus)."""
    ray_address: str = ""
    """sampler=ray: address of an existing Ray cluster ('auto': the one this machine joined with `ray start`);
    empty starts a local Ray instance with this machine's CPUs."""

    # --- critic ---
    vf_lr: float = knob(1e-3, gt=0, typical="1e-4 to 3e-3")
    """Adam learning rate of the value function."""
    vf_lr_schedule: Literal["constant", "linear"] = "constant"
    """'linear': the critic's learning rate falls from vf_lr to 0 over the steps learn() trains up to
    (SB3's linear schedule); 'constant': vf_lr throughout."""
    vf_epochs: int = knob(5, ge=0)
    """Passes over the batch per update when fitting the value function."""
    vf_minibatch_size: int = knob(512, ge=1)
    """Minibatch size of the value-function fit."""
    vf_head_ridge: float = knob(0.0, ge=0, typical="0 (off) or 1e-4 to 1e-2")
    """> 0: after the Adam epochs, refit the critic's last layer in closed form (ridge regression of the returns
    on the last hidden layer's features, this penalty on the weights, the bias free); 0: Adam alone. Needs the
    built-in critic."""

    # --- networks ---
    hidden_sizes: tuple[int, ...] = knob((64, 64), ge=1, nonempty=True)
    """Hidden layer sizes of the actor and of the critic (separate networks), unless set apart below."""
    actor_hidden_sizes: tuple[int, ...] = knob((), ge=1)
    """Hidden layer sizes of the actor alone (empty: hidden_sizes)."""
    critic_hidden_sizes: tuple[int, ...] = knob((), ge=1)
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
    sde_sample_freq: int = knob(4, ge=0)
    """Steps between resamplings of the gSDE exploration matrix (per env; 0 = once per rollout)."""
    cnn: CnnArch = "auto"
    """Encoder of image observations (uint8, bounds [0, 255]; actor and critic each have their own):
    'nature' (Mnih et al. 2015; images of at least 36 x 36), 'small' (three 3x3 convolutions, for small
    images such as MiniGrid's 7 x 7), or 'auto' (nature from 36 x 36 on, small below)."""
    cnn_features_dim: int = knob(512, ge=1)
    """Width of the linear layer after each image encoder's convolutions (ReLU)."""

    # --- normalisation ---
    normalize_obs: bool = True
    """Running mean/std observation normalisation (frozen at evaluation, saved with the model)."""
    normalize_reward: bool = True
    """Scale rewards by the running std of the discounted return (training only)."""
    clip_obs: float = knob(10.0, gt=0)
    """Clip normalised observations to [-clip_obs, clip_obs]."""
    clip_reward: float = knob(10.0, gt=0)
    """Clip scaled rewards to [-clip_reward, clip_reward]."""

    # --- run ---
    total_steps: int = knob(1_000_000, ge=1)
    """Environment steps to train for, rounded up to whole updates of n_envs * n_steps (e.g. 100,000 with
    1,024 per update trains 98 updates, 100,352 steps; the progress display says so at the start)."""
    seed: int = knob(0, ge=0, lt=2**32)
    """Seed of the run: environments, parameters, sampling and subsampling."""
    device: str = "auto"
    """Torch device of the update (policy step, Fisher products, CG, line search, critic fit): 'auto' (CUDA
    when available, else the CPU), 'cpu', 'cuda' or 'cuda:N'. Rollouts act with CPU copies of the networks,
    refreshed after each update; a device this machine lacks is refused."""
    torch_threads: int = knob(1, ge=1, le=MAX_THREADS)
    """Torch intra-op threads (1 is fastest and bit-reproducible for small networks)."""
    eval_episodes: int = knob(10, ge=0)
    """Deterministic evaluation episodes at the end of `trpo train` (0 skips it)."""
    eval_every: int = knob(0, ge=0, typical="0 (off) or 5 to 50")
    """Evaluate the deterministic policy every this many updates on a separate environment and log
    eval/mean_return (NaN on other updates); 0 = never. Training is unaffected (same random numbers)."""
    eval_every_episodes: int = knob(5, ge=1)
    """Episodes of each periodic evaluation (the same start states every time: the run's evaluation seeds)."""
    checkpoint_every: int = knob(10, ge=0)
    """Write the run's checkpoint every this many updates (and at the end); 0 = only at the end."""
    eval_max_episode_steps: int = knob(0, ge=0)
    """Step cap of an evaluation episode (final, periodic, `trpo eval`, `record`): 0 = the environment's
    own time limit (TimeLimit / max_episode_steps), or 100,000 with a warning for an environment without one."""

    # --- failures ---
    on_nonfinite: Literal["raise", "skip_batch"] = "raise"
    """An environment that returns a NaN/inf observation or reward: 'raise' stops with the env index and
    step; 'skip_batch' drops the batch, restarts the episodes and goes on."""
    max_rejected_updates: int = knob(10, ge=1)
    """Stop (with a checkpoint and a diagnosis) after this many updates in a row were rejected for
    non-finite values (gradient, Fisher product, CG solution, step) or skipped batches."""

    # --- health alarms (docs/health.md: one rule per failure mode) ---
    alarm_kl_spike: float = knob(500.0, gt=0)
    """kl_spike fires when an accepted update's max per-state KL exceeds alarm_kl_spike * max_kl (that update's
    delta under max_kl_schedule)."""
    alarm_cg_residual: float = knob(1.0, gt=0)
    """cg_stall: CG's final relative residual ||g - (F + cI) x|| / ||g|| above this ..."""
    alarm_cg_updates: int = knob(10, ge=1)
    """... for this many updates in a row."""
    alarm_line_search_updates: int = knob(5, ge=1)
    """line_search_failing: no step accepted for this many updates in a row."""
    alarm_entropy_ratio: float = knob(0.05, ge=0, lt=1)
    """entropy_collapse: exploration below this fraction of the first update's (Gaussian: ratio of
    geometric-mean std; discrete: ratio of entropies)."""
    alarm_ev_updates: int = knob(20, ge=1)
    """critic_not_learning: explained variance of the critic's values < 0 for this many updates in a row ..."""
    alarm_ev_min_return_cv: float = knob(0.01, ge=0)
    """... while the returns vary: their std over the batch above this fraction of |mean| (explained variance
    means nothing for near-constant returns, e.g. a solved CartPole)."""
    alarm_dead_units: float = knob(0.1, ge=0, le=1)
    """dead_units: more than this fraction of a ReLU-family hidden layer (actor or critic) is dead."""
    alarm_adv_std: float = knob(1e-6, ge=0)
    """degenerate_advantages: the batch's raw advantage std is below this."""
    alarm_infeasible_updates: int = knob(25, ge=1, algos=SAFE)
    """stuck_infeasible: the constraint was violated by the policy that collected the batch (cpo: and the step
    was a recovery step, the trust region holding no policy within the limit) for this many updates in a row."""

    @property
    def batch_size(self) -> int:
        """Transitions per update."""
        return self.n_envs * self.n_steps

    def validate(self, *, unread: Literal["error", "keep"] = "error") -> TRPOConfig:
        """Raise `ConfigError` naming the first invalid field and its valid range; return self if valid.

        Each field is checked against the `Rule` declared beside it (finite numbers, bounds, choices);
        a field set away from its default that `algo` does not read is an error naming the field that
        does that job for `algo` (`unread="keep"` accepts it: checkpoints written before this check)."""
        hints = typing.get_type_hints(TRPOConfig)
        for field in dataclasses.fields(self):
            _check_field(
                field.name, getattr(self, field.name), hints[field.name], field.metadata.get("rule", DEFAULT_RULE)
            )
        checks: list[tuple[bool, str]] = [
            (self.batch_size > 1, f"n_steps * n_envs must be > 1 (got n_steps={self.n_steps}, n_envs={self.n_envs})"),
            (
                self.sampler not in ("process", "ray") or self.n_envs % self.workers == 0,
                f"n_envs must be a multiple of workers with sampler={self.sampler} (got n_envs={self.n_envs}, "
                f"workers={self.workers}); each worker runs n_envs / workers environments",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        if unread == "error":
            self._check_unread_fields()
        from trpo.core.device import resolve_device  # torch: imported only when a config is validated

        resolve_device(self.device)
        from trpo.core.networks import activation_class  # torch: imported only when a config is validated

        activation_class(self.activation)
        if self.sampler == "ray":
            try:
                import ray  # noqa: F401
            except ImportError:
                raise ConfigError("sampler=ray needs Ray, which is not installed: pip install 'trpo[ray]'") from None
        if self.sampler == "envpool":
            try:
                import envpool  # noqa: F401
            except ImportError:
                raise ConfigError(
                    "sampler=envpool needs EnvPool, which is not installed: pip install 'trpo[envpool]'"
                ) from None
        return self

    def _check_unread_fields(self) -> None:
        defaults = TRPOConfig()
        for field in dataclasses.fields(self):
            rule = field.metadata.get("rule", DEFAULT_RULE)
            if self.algo in rule.algos or getattr(self, field.name) == getattr(defaults, field.name):
                continue
            counterpart = rule.instead.get(self.algo)
            hint = f"; {self.algo}'s counterpart is {counterpart}" if counterpart else f"; remove {field.name}"
            raise ConfigError(
                f"{field.name} is read only by {' and '.join(rule.algos)}, so with algo={self.algo} setting it "
                f"would change nothing{hint}"
            )

    def read_only(self) -> TRPOConfig:
        """This config with every field its algorithm does not read back at its default (a config file or
        preset written for another algorithm, applied to this one)."""
        defaults = TRPOConfig()
        unread = {f.name: getattr(defaults, f.name) for f in dataclasses.fields(self) if not reads(self.algo, f.name)}
        return dataclasses.replace(self, **unread)

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


DEFAULT_RULE = Rule()
FIELD_NAMES = frozenset(f.name for f in dataclasses.fields(TRPOConfig))


def field_docs(cls: type) -> dict[str, str]:
    """The docstring under each field of a dataclass (attribute docstrings, read from its source)."""
    body = ast.parse(textwrap.dedent(inspect.getsource(cls))).body[0].body  # type: ignore[attr-defined]
    docs: dict[str, str] = {}
    for node, after in itertools.pairwise(body):
        documented = isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and documented:
            text = after.value.value
            if isinstance(text, str):
                docs[node.target.id] = inspect.cleandoc(text)
    return docs


def help_text(name: str, doc: str) -> str:
    """A field's docstring followed by its rule: valid range and, unless every algorithm reads it, which do."""
    rule = rule_of(name)
    notes = [f"valid: {rule.bounds()}"] if rule.bounds() else []
    if set(rule.algos) != set(ALGOS):
        notes.append(f"read by {', '.join(rule.algos)}")
    return f"{doc} [{'; '.join(notes)}]" if notes else doc


def _document_rules() -> None:
    """Attach each field's help (docstring + rule) as a PEP 727 `Doc`, which the CLI's flag help shows."""
    hints = typing.get_type_hints(TRPOConfig)
    try:
        docs = field_docs(TRPOConfig)
    except (OSError, TypeError):  # no source to read (a frozen or byte-compiled install): tyro's own help then
        return
    for name, doc in docs.items():
        TRPOConfig.__annotations__[name] = Annotated[hints[name], Doc(help_text(name, doc))]


def rule_of(name: str) -> Rule:
    """The declared rule of config field `name` (an unconstrained one for a field without)."""
    field = {f.name: f for f in dataclasses.fields(TRPOConfig)}[name]
    return field.metadata.get("rule", DEFAULT_RULE)


def reads(algo: str, name: str) -> bool:
    """Whether `algo`'s update reads config field `name`."""
    return algo in rule_of(name).algos


def _check_field(name: str, value: Any, annotation: Any, rule: Rule) -> None:
    """One field against its type's choices (Literal), finiteness (floats) and its rule's bounds."""
    if typing.get_origin(annotation) is Literal:
        choices = typing.get_args(annotation)
        if value not in choices:
            raise ConfigError(f"{name} must be one of {', '.join(map(str, choices))} (got {short(value)})")
        return
    typical = f"; typical: {rule.typical}" if rule.typical else ""
    if isinstance(value, tuple):
        if (rule.nonempty and not value) or not all(isinstance(v, int) and rule.holds(v) for v in value):
            what = "a non-empty list of positive integers" if rule.nonempty else "positive integers"
            raise ConfigError(f"{name} must be {what} (got {short(list(value))})")
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number (got {value}){typical}")
    if not rule.holds(value):
        raise ConfigError(f"{name} must be {rule.bounds()} (got {value}){typical}")


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
        raise ConfigError(
            f"{name} must be one of {', '.join(map(str, typing.get_args(annotation)))} (got {short(value)})"
        )
    elif origin is tuple:
        if isinstance(value, (list, tuple)) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return tuple(value)
    elif origin in (typing.Union, types.UnionType):
        raise TypeError(f"unsupported field type {annotation}")  # pragma: no cover - no such field yet
    expected = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(
        annotation, "a list of integers"
    )
    hint = ""
    if annotation in (int, float) and isinstance(value, str) and _looks_numeric(value):
        hint = "; write it as a YAML number without quotes (e.g. 0.01 or 1.0e-2)"
    raise ConfigError(f"{name} must be {expected} (got {short(value)} of type {type(value).__name__}){hint}")


def _looks_numeric(text: str) -> bool:
    try:
        float(text.replace("_", ""))
    except ValueError:
        return False
    return True


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
            raise ConfigError(f"{source}: unknown config key {short(key)}{hint}; `trpo train --help` lists the fields")
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
    """A YAML file read with bounds (size, alias expansion, depth; `trpo.config.safe_yaml`)."""
    from trpo.config.safe_yaml import MAX_YAML_BYTES, load_yaml_text

    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_YAML_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror or exc}") from None
    data = load_yaml_text(raw, f"config file {path}")
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


_document_rules()
