"""trpo: Trust Region Policy Optimization for Gymnasium environments."""

from trpo.algorithm import TRPO
from trpo.config import TRPOConfig
from trpo.errors import ConfigError, UserError
from trpo.evaluation import evaluate

__all__ = ["TRPO", "ConfigError", "TRPOConfig", "UserError", "evaluate"]
__version__ = "0.1.0"
