"""Errors that mean the user asked for something impossible (exit status 2 on the command line)."""


class UserError(Exception):
    """A mistake in the user's input: the message says what is wrong and how to fix it."""


class ConfigError(UserError, ValueError):
    """An invalid hyperparameter or configuration file."""


class NonFiniteEnvError(UserError):
    """An environment returned a NaN or infinite observation or reward."""

    def __init__(self, message: str, env_index: int, step: int) -> None:
        super().__init__(message)
        self.env_index = env_index
        self.step = step


class EnvContractError(UserError):
    """An environment returned something the Gymnasium API (or its own observation space) forbids.

    `detail` names the environment and what came instead of what; `step` (the run's step count, when the
    sampler knows it) and the advice are added to the message.
    """

    def __init__(self, detail: str, env_index: int = -1, step: int | None = None) -> None:
        self.detail, self.env_index, self.step = str(detail), env_index, step
        at = f" at training step {step:,}" if step is not None else ""
        super().__init__(f"{self.detail}{at}; fix the environment or wrap it (--wrapper MODULE:CLASS)")

    def __reduce__(self) -> tuple[type, tuple[str, int, int | None]]:
        return type(self), (self.detail, self.env_index, self.step)


class TrainingStopped(Exception):
    """Training cannot go on (e.g. too many rejected updates in a row); the message is the diagnosis."""


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived; training stopped after the current update (and checkpointed)."""

    def __init__(self, signum: int, steps: int) -> None:
        super().__init__(f"interrupted by signal {signum} at step {steps}")
        self.signum = signum
        self.steps = steps
