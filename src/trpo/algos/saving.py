"""Saving and loading learners (TRPO, NPG, PPO): what goes into a checkpoint and how it comes back.

A checkpoint holds the networks, the optimisers' state, the normalisers, the counters, the config, the
random generators and (when training) the environments' state, so that a resumed run continues exactly.
The file format itself (safetensors + JSON, atomic writes) is `trpo.run.checkpoint`'s.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from trpo.errors import UserError
from trpo.run import checkpoint, checkpoint_schema
from trpo.run.checkpoint import CheckpointError
from trpo.sampling.env_spec import EnvSpec, spec_from_data
from trpo.sampling.envs import EnvFactory, env_factory, space_from_json

on_this_machine = checkpoint_schema.on_this_machine

if TYPE_CHECKING:
    from torch import nn

    from trpo.algos.learner import Learner


def load_learner(
    cls: type[Learner],
    path: str | Path,
    env: str | EnvSpec | EnvFactory | None,
    algorithms: dict[str, type[Learner]],
    *,
    actor_net: nn.Module | None = None,
    critic_net: nn.Module | None = None,
    trust_run_sampler: bool = False,
) -> Learner:
    """Read the checkpoint at `path` into a learner of the class it was saved from (`algorithms[state.algo]`),
    which must be `cls` or a subclass of it.

    Everything is checked before anything is built (`trpo.run.checkpoint_schema`): state.json against its
    schema and the config rules, the memory the config needs, then model.safetensors (its size, then
    every tensor's name, shape and values). The run's sampler fields are not used (`sanitize_execution`)
    unless `trust_run_sampler`."""
    directory = checkpoint.resolve_checkpoint_dir(path)
    state = checkpoint.read_state(directory)
    where = str(directory / checkpoint.STATE_FILE)
    checked = checkpoint_schema.check_state(state, where, algorithms)
    algo = str(state.get("algo", "trpo"))
    target = algorithms[algo]
    if not issubclass(target, cls):
        raise CheckpointError(f"{path} holds a {algo} model, not a {cls.__name__} one; load it with trpo.load(path)")
    config = checked.config
    if trust_run_sampler:
        try:
            config = config.replace(**checked.recorded_sampler).validate(unread="keep")
        except UserError as exc:
            raise CheckpointError(f"{where}: config: {exc}") from None
    given_nets = {"actor": actor_net, "critic": critic_net}
    for name in state.get("custom_networks", []):
        if given_nets.get(name) is None:
            raise UserError(
                f"this model was trained with a custom {name} network; load it in Python with "
                f"trpo.load(path, {name}_net=<a module of the same architecture>)"
            )
    try:
        rules = checkpoint_schema.expected_tensors(config, *checked.spaces, algo, actor_net, critic_net)
    except UserError as exc:
        raise CheckpointError(f"{where}: {exc}") from None
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"{where}: the spaces or the config cannot make a model ({exc})") from None
    model_where = str(directory / checkpoint.MODEL_FILE)
    tensors = checkpoint.read_model(directory, state, checkpoint_schema.max_model_bytes(rules))
    checkpoint_schema.check_tensors(tensors, rules, model_where)
    checkpoint_schema.check_space_bounds(tensors, model_where)
    try:
        observation_space = space_from_json(state["observation_space"], tensors, "observation_space")
        action_space = space_from_json(state["action_space"], tensors, "action_space")
        recorded = recorded_spec(state, path)
        env_fn, given = env_factory(env) if env is not None else (_no_env, None)
        if env is None and recorded is not None:
            env_fn = env_factory(recorded)[0]
        agent = target.restore(
            state, tensors, config, env_fn, given or recorded, observation_space, action_space, actor_net, critic_net
        )
    except (KeyError, ValueError, TypeError, RuntimeError) as exc:
        if isinstance(exc, UserError):
            raise
        raise CheckpointError(f"checkpoint {path} is inconsistent ({type(exc).__name__}: {exc})") from None
    return agent


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
