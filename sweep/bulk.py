"""Building many small objects at once without Python's cyclic garbage collector running in between.

Planning a 100,000-run grid makes about a million objects (tasks, names, lists) that all stay alive; each time
the allocation count passes a threshold the collector walks every tracked object, which took half the time of a
plan (bench/grid_plan.py). None of these objects forms a reference cycle, so nothing is left uncollected by
pausing it: the collector runs again as usual afterwards.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    """The cyclic collector off for the block (reference counting still frees everything at once), then back as
    it was: nested blocks and a caller that turned it off itself are left as they are."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
