"""SIGINT and SIGTERM around the steps a signal must not cut in half, and after the sweep has been stopped.

Starting or stopping Ray runs in several processes at once: a signal raised in the middle of `ray.init` leaves a
half-started cluster that nothing stops (its processes and its session folder stay behind), and one in the middle
of `ray.shutdown` the same. Such steps run with the signals held: the first one that comes is raised as
`Interrupted` when the step is over, so the caller's ordinary clean-up runs. Once a sweep is being stopped,
further signals are ignored, so a second Ctrl-C during the clean-up changes neither what is cleaned up nor the
closing line.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sweep.errors import Interrupted

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _main_thread() -> bool:
    """Handlers can only be set from the main thread (a driver called from a thread keeps Python's)."""
    return threading.current_thread() is threading.main_thread()


@contextmanager
def held() -> Iterator[None]:
    """Run the block with SIGINT and SIGTERM held; the first that came is raised as Interrupted at its end
    (unless the block raised an error of its own). The handlers in place before are put back over any the block
    installed: `ray.init` sets a SIGTERM handler that exits on the spot (exit status 15, no closing line)."""
    if not _main_thread():
        yield
        return
    caught: list[int] = []
    previous = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    for s in STOP_SIGNALS:
        signal.signal(s, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if caught:
        raise Interrupted(caught[0])


def ignore_further() -> None:
    """From now on SIGINT and SIGTERM do nothing: the sweep is stopping already. A Python handler, not SIG_IGN,
    which processes started later would inherit."""
    if _main_thread():
        for s in STOP_SIGNALS:
            signal.signal(s, lambda signum, frame: None)
