"""The exceptions every entry point turns into one line and an exit code: bad input (2) and a stop signal
(128 + the signal's number: 130 for SIGINT, 143 for SIGTERM)."""

from __future__ import annotations

import signal


class UserError(Exception):
    """Bad input from the user: the message says what was wrong and what is accepted, in one line."""


class DamagedFile(UserError):
    """A file of the results folder that is missing, cut short or altered since its done-record was written:
    another try reads the same bytes, so it is never retried; the unit that made the file is redone instead."""

    def __init__(self, rel: str, message: str) -> None:
        super().__init__(message)
        self.rel = rel


class Interrupted(Exception):
    """SIGINT or SIGTERM reached the driver. The sweep raises it from its own polling loop, never from inside
    Ray's code, so trials and tasks are stopped in order."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum
