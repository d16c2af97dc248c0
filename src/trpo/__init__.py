"""trpo: Trust Region Policy Optimization (and, on the same machinery, NPG and PPO) for Gymnasium."""

from trpo.algorithm import TRPO, load, make_agent
from trpo.callbacks import Callback
from trpo.config import TRPOConfig
from trpo.env_spec import EnvSpec, WrapperSpec
from trpo.errors import ConfigError, EnvContractError, UserError
from trpo.evaluation import evaluate
from trpo.npg import NPG
from trpo.ppo import PPO

__all__ = [
    "NPG", "PPO", "TRPO", "Callback", "ConfigError", "EnvContractError", "EnvSpec", "TRPOConfig", "UserError",
    "WrapperSpec", "evaluate", "load", "make_agent",
]  # fmt: skip
__version__ = "0.1.0"
