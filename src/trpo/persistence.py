"""Saving and loading learners (TRPO, NPG, PPO): what goes into a checkpoint and how it comes back.

A checkpoint holds the networks, the optimisers' state, the normalisers, the counters, the config, the
random generators and (when training) the environments' state, so that a resumed run continues exactly.
The file format itself (safetensors + JSON, atomic writes) is `trpo.checkpoint`'s.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import torch
from torch import Tensor

from trpo import checkpoint
from trpo.checkpoint import CheckpointError
from trpo.config import config_from_dict
from trpo.env_spec import EnvSpec, spec_from_data
from trpo.envs import EnvFactory, env_factory, space_from_json, space_to_json
from trpo.errors import UserError
from trpo.seeding import rng_state, set_rng_state

if TYPE_CHECKING:
    from trpo.algorithm import TRPO

Agent = TypeVar("Agent", bound="TRPO")


def save_agent(agent: TRPO, path: str | Path) -> None:
    """Write `agent` as the checkpoint directory `path` (atomically)."""
    obs_desc, obs_tensors = space_to_json(agent.observation_space, "observation_space")
    act_desc, act_tensors = space_to_json(agent.action_space, "action_space")
    tensors: dict[str, Tensor] = {
        **{f"actor.{k}": v for k, v in agent.actor.state_dict().items()},
        **{f"critic.{k}": v for k, v in agent.critic.state_dict().items()},
        **{f"obs_rms.{k}": torch.from_numpy(np.asarray(v)) for k, v in agent.obs_normalizer.rms.state().items()},
        **{f"ret_rms.{k}": torch.from_numpy(np.asarray(v)) for k, v in agent.reward_scaler.rms.state().items()},
        **obs_tensors,
        **act_tensors,
    }
    for name, optimizer in agent._optimizers().items():
        tensors.update(checkpoint.optimizer_tensors(optimizer, name))
    state: dict[str, Any] = {
        "algo": agent.algo,
        "env_id": agent.env_id,
        "env_spec": agent.env_spec.to_data() if agent.env_spec is not None else None,
        "config": agent.config.to_dict(),
        "observation_space": obs_desc,
        "action_space": act_desc,
        "num_steps": agent.num_steps,
        "num_updates": agent.num_updates,
        "rejected_in_a_row": agent.rejected_in_a_row,
        "skipped_batches": agent.skipped_batches,
        "last_rejection": agent.last_rejection,
        "health": agent.health.state(),
    }
    state["rng"], rng_tensors = rng_state(agent.generator)
    tensors.update(rng_tensors)
    if agent._collector is not None:
        state["collector"], collector_tensors = agent._collector.state()
        tensors.update(collector_tensors)
    checkpoint.save_checkpoint(path, tensors, state)


def load_agent(
    cls: type[Agent], path: str | Path, env: str | EnvSpec | EnvFactory | None, algorithms: dict[str, type[TRPO]]
) -> Agent:
    """Read the checkpoint at `path` into a learner of the class it was saved from (`algorithms[state.algo]`),
    which must be `cls` or a subclass of it."""
    tensors, state = checkpoint.load_checkpoint(path)
    algo = str(state.get("algo", "trpo"))
    if algo not in algorithms:
        raise CheckpointError(f"{path} holds a model of unknown algorithm {algo!r}; known: {', '.join(algorithms)}")
    target = algorithms[algo]
    if not issubclass(target, cls):
        raise CheckpointError(f"{path} holds a {algo} model, not a {cls.algo} one; load it with trpo.load(path)")
    try:
        config = config_from_dict(state["config"], source=f"{path} config").replace(algo=algo).validate()
        observation_space = space_from_json(state["observation_space"], tensors, "observation_space")
        action_space = space_from_json(state["action_space"], tensors, "action_space")
        agent = target.__new__(target)
        agent.config = config
        recorded = recorded_spec(state, path)
        agent.env_fn, given = env_factory(env) if env is not None else (_no_env, None)
        if env is None and recorded is not None:
            agent.env_fn = env_factory(recorded)[0]
        agent.set_env_spec(given or recorded)
        agent._build(observation_space, action_space)
        _load_tensors(agent, tensors)
        agent.num_steps = int(state["num_steps"])
        agent.num_updates = int(state["num_updates"])
        agent.rejected_in_a_row = int(state.get("rejected_in_a_row", 0))
        agent.skipped_batches = int(state.get("skipped_batches", 0))
        agent.last_rejection = str(state.get("last_rejection", ""))
        if "health" in state:
            agent.health.load_state(state["health"])
        if "rng" in state:
            set_rng_state(state["rng"], tensors, agent.generator)
        if "collector" in state:
            agent._resume_state = (state["collector"], tensors)
    except (KeyError, ValueError, TypeError, RuntimeError) as exc:
        if isinstance(exc, UserError):
            raise
        raise CheckpointError(f"checkpoint {path} is inconsistent ({type(exc).__name__}: {exc})") from None
    return agent


def _load_tensors(agent: TRPO, tensors: dict[str, Tensor]) -> None:
    def section(prefix: str) -> dict[str, Tensor]:
        return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}

    agent.actor.load_state_dict(section("actor."))
    agent.critic.load_state_dict(section("critic."))
    agent.obs_normalizer.rms.load_state({k: v.numpy() for k, v in section("obs_rms.").items()})
    agent.reward_scaler.rms.load_state({k: v.numpy() for k, v in section("ret_rms.").items()})
    for name, optimizer in agent._optimizers().items():
        checkpoint.load_optimizer_tensors(optimizer, tensors, name)


def recorded_spec(state: dict[str, Any], path: str | Path) -> EnvSpec | None:
    """The env spec a checkpoint records (only `env_id` in checkpoints before env specs), marked as read
    from the run directory so that none of its modules is imported from there or the current directory."""
    model_dir = str(checkpoint.resolve_checkpoint_dir(path).resolve())
    data = state.get("env_spec") or ({"env_id": state["env_id"]} if state.get("env_id") else {})
    return spec_from_data(data, f"{path} env_spec", source_dir=model_dir)


def _no_env() -> Any:
    raise UserError(
        "this model was trained on an environment that Gymnasium cannot describe (a function or instance "
        "without env.spec): give it on the command line with --env ENV_ID [--env-kwargs MAPPING] "
        "[--wrapper MODULE:CLASS], or in Python with load(path, env=...)"
    )
