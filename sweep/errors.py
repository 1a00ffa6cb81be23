"""The one error type for bad user input, so every entry point can turn it into one line and exit code 2."""


class UserError(Exception):
    """Bad input from the user: the message says what was wrong and what is accepted, in one line."""
