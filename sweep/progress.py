"""What a person watching a sweep sees: counts, the trainings in flight, what waits, and an ETA.

`Progress` is plain state fed by the engine (no Ray here). A `ProgressView` shows it: on a terminal as a few
lines redrawn in place (rich's Live): a header with the counts and the ETA, what waits (only when something
does), then one line per running training, named `dataset/arch/variant/s<seed>`, each line cut to the
terminal's width, which is read again on every draw. Anywhere else (a log file, CI) it prints `Progress.line`,
one plain line, when a count changes and at least every 30 s, so a log stays short and readable.

The ETA comes from measured rates only (sweep.eta): seconds per epoch per architecture (an MLP epoch and a
ResNet epoch differ a hundredfold) and seconds per task per probe, spread over the slots that run them at once,
smoothed, and shown as a range while the rates are uncertain. Until anything left has been timed it says so.
"""

from __future__ import annotations

import atexit
import math
import os
import re
import sys
import time
from dataclasses import dataclass, field
from typing import Any, TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

from sweep.eta import Estimate, Rate, Smoother, estimate

_PACK = re.compile(r"-pack(\d+)x(\d+)of(\d+)-")  # the run id of a pack of subset models (RunConfig.run_id)


def pack_label(run_id: str) -> str:
    """`pack i of N` (1-based, N = ceil(M / K)) for a pack's run id, '' for any other run: how the views name a
    Tune trial that trains K of a run's M subset models at once."""
    found = _PACK.search(run_id)
    if found is None:
        return ""
    index, size, subsets = map(int, found.groups())
    return f"pack {index + 1} of {math.ceil(subsets / size)}"


def run_label(cfg: Any) -> str:
    """How a running training is named on screen: `dataset/arch/variant/s<seed>`, with its noise rate and what
    part of a run it trains (a fold, a second-split half, a pack of subset models). `cfg` is a RunConfig."""
    label = f"{cfg.dataset}/{cfg.arch}/{cfg.variant}/s{cfg.seed} n{cfg.noise:g}"
    if cfg.cv_folds:
        label += f" fold {cfg.cv_fold + 1} of {cfg.cv_folds}"
    if cfg.ssft_half:
        label += f" ssft half {cfg.ssft_half}"
    return label + (f" {pack_label(cfg.run_id)}" if cfg.subsets else "")


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
    trainings_waiting: int = 0  # Tune trials not started yet
    tasks_running: int = 0
    tasks_queued: int = 0
    queue_held: bool = False  # the queued tasks would fit the CPUs, but the trainings still to run keep them
    started: float = field(default_factory=time.monotonic)
    _epoch_rates: dict[str, Rate] = field(default_factory=dict)  # arch -> seconds per epoch
    _task_rates: dict[str, Rate] = field(default_factory=dict)   # probe -> seconds per task
    _reported: dict[str, int] = field(default_factory=dict)  # run_id -> epochs reported by this call
    _labels: dict[str, str] = field(default_factory=dict)    # run_id -> its name on screen (run_label)
    _smoother: Smoother = field(default_factory=Smoother)

    def epoch_finished(self, run_id: str, arch: str, epoch: int, epochs: int, noisy_acc: float,
                       seconds: float | None, label: str = "") -> None:
        """One epoch of a training reported; `seconds` is its wall time (None for a trial's first report,
        which also holds the trial's start-up); `label` its name on screen (run_label; the run id if empty)."""
        self.training[run_id] = (epoch, epochs, noisy_acc)
        self._labels[run_id] = label or run_id
        self._reported[run_id] = self._reported.get(run_id, 0) + 1
        self.epochs_left[arch] = max(0, self.epochs_left.get(arch, 0) - 1)
        if seconds is not None:
            self._epoch_rates.setdefault(arch, Rate()).add(seconds)

    def run_finished(self, run_id: str, arch: str, epochs: int, ok: bool) -> None:
        """A training ended; epochs it never reported (it resumed from a saved epoch, or failed) are no longer
        left either."""
        unreported = epochs - self._reported.pop(run_id, 0)
        self.epochs_left[arch] = max(0, self.epochs_left.get(arch, 0) - unreported)
        self.training.pop(run_id, None)
        self._labels.pop(run_id, None)
        if ok:
            self.runs_done += 1
        else:
            self.failed += 1

    def trainings_over(self) -> None:
        """Tune has ended: a trial it ended without a report (counted failed by the engine) trains no more."""
        self.training.clear()
        self._labels.clear()
        self.epochs_left.clear()
        self.trainings_waiting = 0

    def task_finished(self, probe: str, seconds: float | None, ok: bool) -> None:
        self.tasks_left[probe] = max(0, self.tasks_left.get(probe, 0) - 1)
        if ok:
            self.tasks_done += 1
            if seconds is not None:
                self._task_rates.setdefault(probe, Rate()).add(seconds)
        else:
            self.failed += 1

    def estimate(self) -> Estimate | None:
        """Seconds left from the rates measured so far, before smoothing (sweep.eta.estimate); None while
        nothing left has a timing to go by."""
        return estimate({"trainings": (self._epoch_rates, self.epochs_left),
                         "analyses": (self._task_rates, self.tasks_left)}, self.slots,
                        {"trainings": len(self.training), "analyses": self.tasks_running})

    def eta(self, now: float | None = None) -> Estimate | None:
        """Seconds left as shown at `now` (monotonic; default: now): the estimate, smoothed (sweep.eta.Smoother)."""
        return self._smoother.update(self.estimate(), time.monotonic() if now is None else now)

    def eta_text(self, now: float | None = None) -> str:
        eta = self.eta(now)
        if eta is None:
            return "ETA after the first timings"
        if eta.point is None:  # a family with work left has no timing at all: only a lower bound is known
            return f"ETA >{hms(eta.low)} ({' and '.join(eta.untimed)} untimed)"
        return f"ETA {hms(eta.point)}" if eta.stable else f"ETA {hms(eta.low)}-{hms(eta.high)}"

    def header(self, now: float | None = None) -> str:
        """The counts, the ETA and the time so far: the first line on a terminal, in this order so that a
        narrow terminal cuts the elapsed time first."""
        parts = [f"runs {self.runs_done}/{self.runs_total}", f"analyses {self.tasks_done}/{self.tasks_total}"]
        if self.failed:
            parts.append(f"{self.failed} failed")
        now = time.monotonic() if now is None else now
        return " | ".join([*parts, self.eta_text(now), f"{hms(now - self.started)} elapsed"])

    def waits(self) -> list[str]:
        """What waits, and why (none when nothing does): trainings not started, analyses held back for the
        trainings' CPUs (only while trainings are left to keep them) or waiting for a CPU the others hold."""
        parts = [f"{self.trainings_waiting} training(s) waiting to start"] if self.trainings_waiting else []
        running = f"{self.tasks_running} analyses running"
        if self.tasks_queued:
            why = "queued (CPUs kept for trainings)" if self.queue_held else "waiting for a free CPU"
            parts.append(f"{running}, {self.tasks_queued} {why}")
        elif self.tasks_running:
            parts.append(running)
        return parts

    def trainings(self) -> list[str]:
        """One line per running training, by name: epoch reached and noisy-train accuracy (a pack's accuracies
        are NaN until its last epoch, sweep.packs, so none is shown for it)."""
        names = {run_id: self._labels.get(run_id, run_id) for run_id in self.training}
        width = max(map(len, names.values()), default=0)
        return [f"{names[run_id]:<{width}}  epoch {e}/{n}" + ("" if acc != acc else f"  noisy acc {acc:.0%}")
                for run_id, (e, n, acc) in sorted(self.training.items(), key=lambda item: names[item[0]])]

    def screen(self, rows: int, most: int = 8) -> list[str]:
        """The terminal's lines for a window of `rows` rows: header, what waits, then at most `most` trainings
        (fewer where the window is short; '+N more' names how many are not shown)."""
        lines = [self.header(), *self.waits()]
        trainings = self.trainings()
        room = max(1, min(most, rows - len(lines) - 1))
        if len(trainings) > room:
            trainings = [*trainings[:room - 1], f"+{len(trainings) - room + 1} more"]
        return lines + ["  " + line for line in trainings]

    def line(self) -> str:
        """The one line a log gets: the counts and ETA, the first trainings, what waits."""
        trainings = [re.sub(" {2,}", " ", t) for t in self.trainings()]  # no column padding in a log
        parts = [self.header()]
        if trainings:
            more = f" +{len(trainings) - 3} more" if len(trainings) > 3 else ""
            parts.append("training " + ", ".join(trainings[:3]) + more)
        return " | ".join(parts + self.waits())

    def key(self) -> tuple:
        """What a plain-text log reprints on: the counts, not the epochs ticking by."""
        return self.runs_done, self.tasks_done, self.failed, self.trainings_waiting > 0


class ProgressView:
    """Shows a Progress: a few lines redrawn in place on a terminal (rich's Live), plain lines otherwise."""

    def __init__(self, stream: TextIO | None = None, interactive: bool | None = None, every: float = 0.25,
                 heartbeat: float = 30.0) -> None:
        self.stream = stream or sys.stdout
        if interactive is None:  # a terminal that cannot move the cursor (TERM=dumb) gets the plain lines
            interactive = self.stream.isatty() and os.environ.get("TERM", "") not in ("dumb", "unknown")
        self.interactive = interactive
        self.every, self.heartbeat = every, heartbeat
        self._live: Live | None = None
        self._last, self._last_key = -math.inf, None

    def __getstate__(self) -> dict[str, Any]:
        """Tune pickles its callbacks (the engine's hold this view) with the experiment's state: the copy carries
        no terminal (neither a terminal's file nor rich's Live pickles) and would print plain lines to stdout."""
        return {**self.__dict__, "stream": None, "_live": None, "interactive": False}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, stream=sys.stdout)

    def show(self, progress: Progress, force: bool = False) -> None:
        """Redraw (at most every `every` seconds unless forced) or, in a log, print when a count changes."""
        now = time.monotonic()
        if self.interactive:
            if force or now - self._last >= self.every:
                self._draw(progress)
                self._last = now
            return
        key = progress.key()
        if key != self._last_key or now - self._last >= self.heartbeat:
            print(progress.line(), file=self.stream, flush=True)
            self._last, self._last_key = now, key

    def _draw(self, progress: Progress) -> None:
        if self._live is None:
            # No refresh thread: the engine's polling draws. Live sends the driver's other prints (Ray's worker
            # lines) above the display, and hides the cursor until close(), which atexit calls at the latest.
            console = Console(file=self.stream, force_terminal=True, highlight=False, markup=False, emoji=False)
            self._live = Live(console=console, auto_refresh=False, transient=False)
            self._live.start()
            atexit.register(self.close)
        console = self._live.console
        width, rows = console.size  # read again on every draw (the window may change); 80 x 25 when unknown
        overflow = "ellipsis" if console.encoding.lower().startswith("utf") else "crop"
        lines = [Text(line, no_wrap=True, overflow=overflow) for line in progress.screen(rows)]
        lines[0].stylize("bold")
        for line in lines:
            line.truncate(width, overflow=overflow)  # cut, never wrapped: a wrapped line breaks the redraw
        self._live.update(Group(*lines), refresh=True)

    def print(self, text: str) -> None:
        """A line of its own (a failure, say) above the status display."""
        if self._live is not None:
            self._live.console.print(text, soft_wrap=True, markup=False, highlight=False)
        else:
            print(text, file=self.stream, flush=True)

    def close(self) -> None:
        """Leave the last display on screen, move below it, and give the terminal back (cursor, stdout)."""
        if self._live is not None:
            live, self._live = self._live, None
            live.stop()
            atexit.unregister(self.close)
