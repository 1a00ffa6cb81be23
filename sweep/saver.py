"""Writing a training's per-epoch files off the training thread, in order, without losing a failure.

On a GPU an epoch of a small model takes well under a second, and serialising, hashing and writing its
checkpoint and resume state takes a good part of that again; one background writer overlaps it with the next
epoch. A job must not see later steps' weights, so it receives CPU copies taken on the training thread.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import torch


class Saver:
    """Writes each epoch's files in order: inline, or on one background thread (a CUDA run: serialising,
    hashing and writing then overlap the next epoch's training). A job gets CPU copies taken on the training
    thread, so later steps cannot change what it writes; a failed write is raised on the training thread at the
    next epoch, or at the end, never lost."""

    def __init__(self, background: bool) -> None:
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="checkpoints") if background else None
        self.pending: list[Future] = []

    @property
    def background(self) -> bool:
        return self.pool is not None

    def submit(self, job: Callable[[], None]) -> None:
        if self.pool is None:
            job()
            return
        self.check()
        self.pending.append(self.pool.submit(job))

    def check(self) -> None:
        """Raise the error of a finished job, if any; forget finished ones."""
        for done in [f for f in self.pending if f.done()]:
            self.pending.remove(done)
            done.result()

    def drain(self) -> None:
        """Wait for every job (all of them, even after a failure), then raise the first error."""
        if self.pool is None:
            return
        errors = [f.exception() for f in self.pending]
        self.pending.clear()
        self.pool.shutdown(wait=True)
        first = next((e for e in errors if e is not None), None)
        if first is not None:
            raise first


def cpu_copy(obj: object) -> object:
    """A deep copy of a (nested) state with every tensor detached and copied to the CPU."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: cpu_copy(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(cpu_copy(v) for v in obj)
    return obj
