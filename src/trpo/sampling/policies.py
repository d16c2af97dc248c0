"""The actor and critic of a run, built from its config and its spaces (the learner and the sampling
workers build the same actor): an `ObservationEncoder` of their own in front of each when the observations
are not a plain vector (images, Dict, Tuple, Discrete), then the MLPs."""

from __future__ import annotations

from torch import nn

from trpo.config.schema import TRPOConfig
from trpo.core.distributions import Distribution
from trpo.core.encoders import ObservationLayout, make_encoder
from trpo.core.networks import Actor, Critic


def make_actor(
    config: TRPOConfig, layout: ObservationLayout, dist: Distribution, body: nn.Module | None = None
) -> Actor:
    """pi_theta: its own encoder (if the layout needs one), then the actor MLP (or a custom `body`)."""
    encoder = make_encoder(layout, config.cnn, config.cnn_features_dim, config.ortho_init)
    width = layout.float_dim if encoder is None else encoder.out_dim
    return Actor(
        width, dist, config.actor_sizes, config.activation, config.ortho_init, config.log_std_init, config.use_sde,
        body=body, encoder=encoder,
    )  # fmt: skip


def make_critic(config: TRPOConfig, layout: ObservationLayout, body: nn.Module | None = None) -> Critic:
    """V_phi: its own encoder (never the actor's: no parameter crosses the trust region), then the MLP (or a
    custom `body`)."""
    encoder = make_encoder(layout, config.cnn, config.cnn_features_dim, config.ortho_init)
    width = layout.float_dim if encoder is None else encoder.out_dim
    return Critic(width, config.critic_sizes, config.activation, config.ortho_init, body=body, encoder=encoder)
