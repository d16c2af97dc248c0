"""Errors that mean the user asked for something impossible (exit status 2 on the command line)."""


class UserError(Exception):
    """A mistake in the user's input: the message says what is wrong and how to fix it."""


class ConfigError(UserError, ValueError):
    """An invalid hyperparameter or configuration file."""
