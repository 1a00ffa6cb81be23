"""SIGINT and SIGTERM around the steps a signal must not cut in half, and after the sweep has been stopped.

Starting or stopping Ray runs in several processes at once: a signal raised in the middle of `ray.init` leaves a
half-started cluster that nothing stops (its processes and its session folder stay behind), and one in the middle
of `ray.shutdown` the same. Such steps run with the signals held: the first one that comes is raised as
`Interrupted` when the step is over, so the caller's ordinary clean-up runs. Once a sweep is being stopped,
further signals are ignored, so a second Ctrl-C during the clean-up changes neither what is cleaned up nor the
closing line. The first stop signal of a command is noted (`first`), so the closing line names it even where a
library's `except Exception` swallowed the Interrupted it raised (a report section, a dataset reader).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sweep.errors import Interrupted

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_first: list[int] = []  # the first stop signal this command received (reset by `reset`)


def _main_thread() -> bool:
    """Handlers can only be set from the main thread (a driver called from a thread keeps Python's)."""
    return threading.current_thread() is threading.main_thread()


@contextmanager
def held() -> Iterator[None]:
    """Run the block with SIGINT and SIGTERM held; the first that came is raised as Interrupted at its end
    (unless the block raised an error of its own). The handlers in place before are put back over any the block
    installed: `ray.init` sets a SIGTERM handler that exits on the spot (exit status 15, no closing line). Once
    the sweep is stopping (`ignore_further`), signals during the block are dropped: the first one is reported."""
    if not _main_thread():
        yield
        return
    caught: list[int] = []
    stopping_already = ignoring()  # a shutdown after the sweep was stopped: what comes now is a second signal
    previous = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    for s in STOP_SIGNALS:
        signal.signal(s, lambda signum, frame: None if stopping_already else caught.append(signum))
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if caught:
        note(caught[0])
        raise Interrupted(caught[0])


def _ignore(signum: int, frame: object) -> None:
    """The handler while stopping: nothing happens (module-level, so `ignoring` can recognise it)."""


def ignore_further() -> None:
    """From now on SIGINT and SIGTERM do nothing: the sweep is stopping already. A Python handler, not SIG_IGN,
    which processes started later would inherit."""
    if _main_thread():
        for s in STOP_SIGNALS:
            signal.signal(s, _ignore)


def ignoring() -> bool:
    """Whether the sweep is stopping already (`ignore_further` is in force)."""
    return _main_thread() and signal.getsignal(signal.SIGINT) is _ignore


def note(signum: int) -> None:
    """Remember `signum` if it is the command's first stop signal."""
    if not _first:
        _first.append(signum)


def first() -> int | None:
    """The first stop signal noted since `reset`, or None."""
    return _first[0] if _first else None


def reset() -> None:
    """Forget the noted signal: a new command starts (the command line calls this once, at its start)."""
    _first.clear()
