"""trpo: Trust Region Policy Optimization (and, on the same machinery, NPG, PPO, CPO and TRPO-Lagrangian) for
Gymnasium."""

from trpo.algos.cpo import CPO
from trpo.algos.learner import Learner, load, make_agent
from trpo.algos.npg import NPG
from trpo.algos.ppo import PPO
from trpo.algos.trpo import TRPO
from trpo.algos.trpo_lag import TRPOLagrangian
from trpo.config.schema import TRPOConfig
from trpo.errors import ConfigError, EnvContractError, UserError
from trpo.run.callbacks import Callback
from trpo.run.evaluation import evaluate
from trpo.sampling.env_spec import EnvSpec, WrapperSpec

__all__ = [
    "CPO",
    "NPG",
    "PPO",
    "TRPO",
    "Callback",
    "ConfigError",
    "EnvContractError",
    "EnvSpec",
    "Learner",
    "TRPOConfig",
    "TRPOLagrangian",
    "UserError",
    "WrapperSpec",
    "evaluate",
    "load",
    "make_agent",
]  # fmt: skip
__version__ = "0.1.0"
