"""Acting with a trained policy: observations checked against the observation space, actions in the
action space's own terms (clipped Box actions, Discrete actions from the space's `start`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from trpo.core.distributions import Distribution
from trpo.core.normalization import ObservationNormalizer
from trpo.errors import ObservationError


def checked_observation(space: spaces.Space, obs: Any) -> tuple[np.ndarray, bool]:
    """`obs` as an array, and whether it is one observation (else a batch); ObservationError otherwise."""
    shape = tuple(space.shape or ())
    try:
        array = np.asarray(obs)
        array = array.astype(np.float64) if array.dtype == object else array
    except (TypeError, ValueError) as exc:
        raise ObservationError(f"predict() needs an array of shape {shape} or (N, *{shape}): {exc}") from None
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        raise ObservationError(f"predict() needs a numeric observation, got dtype {array.dtype}")
    if array.shape == shape:
        return array, True
    if array.ndim == len(shape) + 1 and array.shape[1:] == shape and array.shape[0] > 0:
        return array, False
    raise ObservationError(
        f"predict() got an observation of shape {array.shape}; the observation space {space} "
        f"takes one observation of shape {shape} or a batch of shape (N, {', '.join(map(str, shape))})"
    )


def to_action_space(action: np.ndarray, space: spaces.Space) -> np.ndarray:
    """A sampled or modal action as the environment takes it."""
    if isinstance(space, spaces.Box):
        return np.clip(action, space.low, space.high).astype(space.dtype)
    if isinstance(space, spaces.Discrete):
        return action + int(space.start)
    return action


@torch.no_grad()
def act(
    actor: torch.nn.Module,
    dist: Distribution,
    normalizer: ObservationNormalizer,
    observation_space: spaces.Space,
    action_space: spaces.Space,
    obs: Any,
    deterministic: bool,
    generator: torch.Generator,
) -> np.ndarray:
    """Action(s) of `actor` (on the CPU) for one observation or a batch, with frozen normalisation."""
    array, single = checked_observation(observation_space, obs)
    flat = normalizer(array.reshape(1 if single else array.shape[0], -1))
    params = actor(torch.from_numpy(flat))
    action = dist.mode(params) if deterministic else dist.sample(params, generator)
    out = to_action_space(action.numpy(), action_space)
    return out[0] if single else out
