"""Errors that mean the user asked for something impossible (exit status 2 on the command line)."""


class UserError(Exception):
    """A mistake in the user's input: the message says what is wrong and how to fix it."""


class ConfigError(UserError, ValueError):
    """An invalid hyperparameter or configuration file."""


class ObservationError(UserError, ValueError):
    """An observation given to `predict` does not fit the observation space."""


class NonFiniteEnvError(UserError):
    """An environment returned a NaN or infinite observation or reward."""

    def __init__(self, message: str, env_index: int, step: int) -> None:
        super().__init__(message)
        self.env_index = env_index
        self.step = step


class TrainingStopped(Exception):
    """Training cannot go on (e.g. too many rejected updates in a row); the message is the diagnosis."""


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived; training stopped after the current update (and checkpointed)."""

    def __init__(self, signum: int, steps: int) -> None:
        super().__init__(f"interrupted by signal {signum} at step {steps}")
        self.signum = signum
        self.steps = steps
