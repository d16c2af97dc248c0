"""Will a run fit? The memory its buffers, networks and environments take, estimated before any of them is
allocated, so that a config from the command line, a YAML file or a foreign checkpoint that asks for
terabytes (`n_envs: 1000000000000`) or a network nobody can train is refused in one line, not by the
kernel's OOM killer or a half-hour orthogonal initialisation.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass

from gymnasium import spaces

from trpo.config.schema import TRPOConfig
from trpo.core.networks import make_distribution, observation_dim
from trpo.errors import ConfigError

MAX_NETWORK_PARAMETERS = 16_000_000
"""The most parameters the actor or the critic may have (a 4000 x 4000 hidden layer; TRPO's conjugate
gradient over more than that is impractical, and so is their orthogonal initialisation)."""
ENV_BYTES = 512 << 10
"""What one environment instance is assumed to take (classic control: kilobytes; MuJoCo: about a megabyte)."""
MAX_PROCESS_WORKERS = 4 * (os.cpu_count() or 1)
"""The most local worker processes (sampler=process) a run may start."""
MAX_RAY_WORKERS = 4096


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (MemAvailable), or None where it cannot be told."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def mlp_parameters(inputs: int, hidden: tuple[int, ...], outputs: int) -> int:
    """Weights and biases of an MLP inputs -> hidden... -> outputs."""
    sizes = (inputs, *hidden, outputs)
    return sum(a * b + b for a, b in itertools.pairwise(sizes))


@dataclass(frozen=True)
class Estimate:
    """Bytes a run needs, by what needs them."""

    buffers: int
    networks: int
    environments: int
    actor_parameters: int
    critic_parameters: int

    @property
    def total(self) -> int:
        return self.buffers + self.networks + self.environments


def estimate(config: TRPOConfig, observation_space: spaces.Space, action_space: spaces.Space) -> Estimate:
    """The memory of one update's buffers (rollout storage, the batch and the activations of the policy
    step), of the networks with their gradients, optimiser moments and the update's flat vectors, and of
    the environments (generous, so that a run that passes fits)."""
    obs_dim = observation_dim(observation_space)
    param_dim = make_distribution(action_space).param_dim
    gaussian = isinstance(action_space, spaces.Box)
    head = param_dim // 2 if gaussian else param_dim
    actor_hidden, critic_hidden = config.actor_sizes, config.critic_sizes
    actor = mlp_parameters(obs_dim, actor_hidden, head) + (head * (actor_hidden[-1] if config.use_sde else 1))
    critic = mlp_parameters(obs_dim, critic_hidden, 1)
    batch = config.n_envs * config.n_steps
    per_sample = 4 * obs_dim * 3 + 8 * param_dim * 3 + 4 * (sum(actor_hidden) + sum(critic_hidden)) * 3 + 128
    copies = 1 if config.sampler in ("sync", "async") else 1 + config.workers
    networks = 4 * 12 * (actor + critic) + 4 * actor * (copies - 1)
    return Estimate(batch * per_sample, networks, config.n_envs * ENV_BYTES, actor, critic)


def _gib(n: float) -> str:
    return f"{n / 2**30:,.1f} GiB" if n >= 2**30 else f"{n / 2**20:,.1f} MiB"


def check_fits(config: TRPOConfig, observation_space: spaces.Space, action_space: spaces.Space) -> Estimate:
    """Refuse (`ConfigError`, one line with the estimate) a run whose networks are too large to train or
    whose memory would exceed what is available; return the estimate otherwise."""
    e = estimate(config, observation_space, action_space)
    for name, count in (("actor", e.actor_parameters), ("critic", e.critic_parameters)):
        if count > MAX_NETWORK_PARAMETERS:
            raise ConfigError(
                f"the {name} would have {count:,} parameters (hidden sizes "
                f"{list(config.actor_sizes if name == 'actor' else config.critic_sizes)}); trpo trains networks of "
                f"at most {MAX_NETWORK_PARAMETERS:,}: use smaller hidden sizes"
            )
    if config.sampler == "process" and config.workers > MAX_PROCESS_WORKERS:
        raise ConfigError(
            f"workers={config.workers} local processes for a machine of {os.cpu_count()} CPUs; at most "
            f"{MAX_PROCESS_WORKERS} (4 per CPU)"
        )
    if config.sampler == "ray" and config.workers > MAX_RAY_WORKERS:
        raise ConfigError(f"workers={config.workers} Ray workers; at most {MAX_RAY_WORKERS}")
    available = available_memory()
    if available is not None and e.total > available:
        raise ConfigError(
            f"this run needs about {_gib(e.total)} of memory (rollout and update buffers {_gib(e.buffers)} for "
            f"n_envs * n_steps = {config.n_envs * config.n_steps:,} steps, networks {_gib(e.networks)}, "
            f"environments {_gib(e.environments)}) but {_gib(available)} is available: lower n_envs, n_steps or "
            "the hidden sizes"
        )
    return e
