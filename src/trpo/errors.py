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


class EnvContractError(UserError):
    """An environment returned something the Gymnasium API (or its own observation space) forbids.

    `problem` says what came instead of what; `episode_step` is the environment's step in its episode (0:
    reset), `step` the run's step count when the sampler knows it, `prefix` e.g. the sampler worker.
    """

    def __init__(
        self, problem: str, env_index: int = -1, step: int | None = None, episode_step: int = 0, prefix: str = ""
    ) -> None:
        self.problem, self.env_index, self.step, self.episode_step, self.prefix = (
            str(problem), env_index, step, episode_step, prefix,
        )  # fmt: skip
        if env_index < 0:  # rebuilt from its message (AsyncVectorEnv re-raises errors as type(message))
            super().__init__(self.problem)
            return
        run_step = f"training step {step:,}" if step is not None else ""
        if episode_step == 0:
            where = " at reset" + (f" ({run_step})" if run_step else "")
        else:
            own = f"step {episode_step} of its episode"
            where = f" at {run_step} ({own})" if run_step else f" at {own}"
        super().__init__(
            f"{prefix}environment {env_index} broke the Gymnasium contract{where}: {self.problem}; "
            "fix the environment or wrap it (--wrapper MODULE:CLASS)"
        )

    def __reduce__(self) -> tuple[type, tuple[str, int, int | None, int, str]]:
        return type(self), (self.problem, self.env_index, self.step, self.episode_step, self.prefix)


class TrainingStopped(Exception):
    """Training cannot go on (e.g. too many rejected updates in a row); the message is the diagnosis."""


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived; training stopped after the current update (and checkpointed)."""

    def __init__(self, signum: int, steps: int) -> None:
        super().__init__(f"interrupted by signal {signum} at step {steps}")
        self.signum = signum
        self.steps = steps
