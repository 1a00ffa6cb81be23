"""What a person watching a sweep sees: counts, the trainings in flight, what waits, and an ETA.

`Progress` is plain state fed by the engine (no Ray here) and turned into one line by `Progress.line`. A
`ProgressView` shows that line: on a terminal as one status line redrawn in place (tqdm), otherwise as plain
lines, printed when a count changes and at least every 30 s, so a log file stays short and readable.

The ETA comes from measured rates only: seconds per epoch (per architecture: an MLP epoch and a ResNet epoch
differ a hundredfold) and seconds per analysis task (per probe), spread over the slots that run them at once.
Until the work left has been timed at least once the ETA says so, instead of guessing; while part of it
has no timing of its own (a ResNet after MLP epochs, a probe not run yet) the ETA is marked `>`.
"""

from __future__ import annotations

import math
import re
import shutil
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TextIO

from tqdm import tqdm

_PACK = re.compile(r"-pack(\d+)x(\d+)of(\d+)-")  # the run id of a pack of subset models (RunConfig.run_id)


def pack_label(run_id: str) -> str:
    """`pack i of N` (1-based, N = ceil(M / K)) for a pack's run id, '' for any other run: how the views name a
    Tune trial that trains K of a run's M subset models at once."""
    found = _PACK.search(run_id)
    if found is None:
        return ""
    index, size, subsets = map(int, found.groups())
    return f"pack {index + 1} of {math.ceil(subsets / size)}"


def hms(seconds: float) -> str:
    """h:mm:ss, the format of every duration the view prints."""
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


@dataclass
class Progress:
    """Counts of one sweep, as the driver learns them (done counts start from the results folder)."""

    runs_total: int
    tasks_total: int
    runs_done: int = 0
    tasks_done: int = 0
    failed: int = 0
    slots: float = 1.0
    epochs_left: dict[str, int] = field(default_factory=dict)        # arch -> epochs still to train
    tasks_left: dict[str, int] = field(default_factory=dict)         # probe -> tasks still to run
    training: dict[str, tuple[int, int, float]] = field(default_factory=dict)  # run_id -> (epoch, of, noisy acc)
    trainings_waiting: int = 0
    tasks_queued: int = 0
    started: float = field(default_factory=time.monotonic)
    _epoch_seconds: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    _task_seconds: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    _reported: dict[str, int] = field(default_factory=dict)  # run_id -> epochs reported by this call

    def epoch_finished(self, run_id: str, arch: str, epoch: int, epochs: int, noisy_acc: float,
                       seconds: float | None) -> None:
        """One epoch of a training reported; `seconds` is its wall time (None for a trial's first report,
        which also holds the trial's start-up)."""
        self.training[run_id] = (epoch, epochs, noisy_acc)
        self._reported[run_id] = self._reported.get(run_id, 0) + 1
        self.epochs_left[arch] = max(0, self.epochs_left.get(arch, 0) - 1)
        if seconds is not None:
            self._epoch_seconds[arch].append(seconds)

    def run_finished(self, run_id: str, arch: str, epochs: int, ok: bool) -> None:
        """A training ended; epochs it never reported (it resumed from a saved epoch, or failed) are no longer
        left either."""
        unreported = epochs - self._reported.pop(run_id, 0)
        self.epochs_left[arch] = max(0, self.epochs_left.get(arch, 0) - unreported)
        self.training.pop(run_id, None)
        if ok:
            self.runs_done += 1
        else:
            self.failed += 1

    def task_finished(self, probe: str, seconds: float | None, ok: bool) -> None:
        self.tasks_left[probe] = max(0, self.tasks_left.get(probe, 0) - 1)
        if ok:
            self.tasks_done += 1
            if seconds is not None:
                self._task_seconds[probe].append(seconds)
        else:
            self.failed += 1

    def eta(self) -> tuple[float, bool] | None:
        """(seconds left, complete) from measured rates; `complete` is False when some work left has no timing of
        its own yet (its time is then borrowed from the mean of what was timed, or left out). None when nothing
        left can be estimated at all."""
        work, complete, timed = 0.0, True, False
        for rates, left in ((self._epoch_seconds, self.epochs_left), (self._task_seconds, self.tasks_left)):
            every = [s for values in rates.values() for s in values]
            for key, n in left.items():
                if n <= 0:
                    continue
                own = rates.get(key)
                if not own:  # not timed yet: borrow the mean of what was (an estimate, so marked incomplete)
                    complete, own = False, every
                if own:
                    work += n * sum(own) / len(own)
                    timed = True
        if not timed:
            return (0.0, True) if complete else None
        return work / max(self.slots, 1.0), complete

    def line(self) -> str:
        """The status line: runs and tasks done of total, trainings in flight, what waits, elapsed and ETA."""
        parts = [f"runs {self.runs_done}/{self.runs_total}", f"analyses {self.tasks_done}/{self.tasks_total}"]
        if self.failed:
            parts.append(f"{self.failed} failed")
        if self.training:
            # a pack names itself; its accuracies are NaN until its last epoch (sweep.packs), so none is shown
            shown = [f"{run_id.split('-')[-1]}{' ' + pack_label(run_id) if pack_label(run_id) else ''} e{e}/{n}"
                     + ("" if acc != acc else f" noisy {acc:.0%}")
                     for run_id, (e, n, acc) in sorted(self.training.items())[:3]]
            more = len(self.training) - len(shown)
            parts.append("training " + ", ".join(shown) + (f" +{more}" if more > 0 else ""))
        if self.trainings_waiting:
            parts.append(f"{self.trainings_waiting} training(s) waiting for free CPUs/GPUs")
        if self.tasks_queued:
            parts.append(f"{self.tasks_queued} analyses queued (CPUs left to trainings)")
        eta = self.eta()
        eta_text = "ETA after the first timings" if eta is None else f"ETA {'' if eta[1] else '>'}{hms(eta[0])}"
        parts.append(f"{hms(time.monotonic() - self.started)} elapsed, {eta_text}")
        return " | ".join(parts)

    def key(self) -> tuple:
        """What a plain-text log reprints on: the counts, not the epochs ticking by."""
        return self.runs_done, self.tasks_done, self.failed, self.trainings_waiting > 0


class ProgressView:
    """Shows a Progress: one line redrawn in place on a terminal, plain lines otherwise."""

    def __init__(self, stream: TextIO | None = None, interactive: bool | None = None, every: float = 0.25,
                 heartbeat: float = 30.0) -> None:
        self.stream = stream or sys.stdout
        self.interactive = self.stream.isatty() if interactive is None else interactive
        self.every, self.heartbeat = every, heartbeat
        self._bar: tqdm | None = None
        self._last, self._last_key = -math.inf, None

    def show(self, progress: Progress, force: bool = False) -> None:
        """Redraw (at most every `every` seconds unless forced) or, in a log, print when a count changes."""
        now = time.monotonic()
        if self.interactive:
            if force or now - self._last >= self.every:
                # The width is read on every redraw (the window may change); a pseudo-terminal that reports
                # no size gets the fallback, where tqdm itself would trim the line to nothing (0 columns) or not
                # draw it at all (0 rows).
                width, rows = shutil.get_terminal_size(fallback=(120, 24))
                width -= 1
                if self._bar is None:
                    self._bar = tqdm(total=0, bar_format="{desc}", file=self.stream, ncols=width, nrows=rows,
                                     leave=True)
                self._bar.ncols = width
                self._bar.set_description_str(progress.line()[:width], refresh=True)
                self._last = now
            return
        key = progress.key()
        if key != self._last_key or now - self._last >= self.heartbeat:
            print(progress.line(), file=self.stream, flush=True)
            self._last, self._last_key = now, key

    def print(self, text: str) -> None:
        """A line of its own (a failure, say) above the status line."""
        if self._bar is not None:
            self._bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    def close(self) -> None:
        """Leave the last status line on screen and move below it."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
