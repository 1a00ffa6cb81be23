"""An ETA that does not jump: smoothed rates, a range while they are uncertain, and a display that moves slowly.

Two things made the old single-figure ETA jump (2:59 -> 20:09 -> 5:08 within 35 s): a plain mean of every
timing, so one slow epoch on a busy machine moved it at once, and work with no timing of its own (a probe not run
yet) priced at the mean of unrelated work, repriced in one step when its own first timing came. Here:

- `Rate` keeps an exponentially weighted mean and spread of one kind of work's seconds (an architecture's epoch,
  a probe's task), so recent timings count most and a single outlier moves it by a fraction only.
- `estimate` turns rates and the work left into a range (low, point, high): tight when every kind of work left
  has a few timings of its own that agree, wide for kinds with one timing, and for kinds with none it borrows the
  fastest and slowest rates of the same family (epochs or tasks), widened by `BORROW`. Work is counted in
  whole units, so the low end leaves out the units under way and the high end lets the last one run alone. A
  family with work left and no timing at all leaves the range open above (`high` is inf): nothing measured
  says how long it takes.
- `Smoother` moves what is shown towards each new estimate with a time constant (an eighth of the time left,
  within `TAU_RANGE`), counting down between estimates, and never by more than a factor `MAX_STEP` from one
  display to the next.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

WEIGHT = 0.2           # weight of the newest timing in a Rate's means: about the last 9 timings count
EFFECTIVE = (2 - WEIGHT) / WEIGHT  # how many timings an exponentially weighted mean with WEIGHT is worth
ONE_TIMING = 2.0       # a rate from one timing: the truth within a factor of 2 either way
BORROW = 3.0           # work priced with another kind's rates: the fastest's low / 3 .. the slowest's high x 3
FLOOR = 0.05           # the least relative uncertainty a measured rate is given (machines drift)
STABLE_TIMINGS = 3     # a single figure needs this many timings of every kind of work left ...
STABLE_RATIO = 1.35    # ... and a range no wider than this (high / low): about +-15%
TAU_RANGE = (10.0, 60.0)  # seconds: the least and most time the display takes to follow a changed estimate
MAX_STEP = 2.0         # the most the time left shown changes by from one draw to the next (past the first second)


@dataclass
class Rate:
    """Seconds per unit of one kind of work: an exponentially weighted mean and variance of its timings."""

    mean: float = 0.0
    var: float = 0.0
    count: int = 0

    def add(self, seconds: float) -> None:
        if self.count == 0:
            self.mean, self.var = seconds, 0.0
        else:
            delta = seconds - self.mean
            self.mean += WEIGHT * delta
            self.var = (1 - WEIGHT) * (self.var + WEIGHT * delta * delta)
        self.count += 1

    def factor(self) -> float:
        """How far the mean may be from the truth, as a ratio: two standard errors of the weighted mean."""
        if self.count <= 1:
            return ONE_TIMING
        relative = math.sqrt(self.var) / self.mean if self.mean > 0 else 1.0
        return 1.0 + max(2.0 * relative / math.sqrt(min(self.count, EFFECTIVE)), FLOOR)


@dataclass(frozen=True)
class Estimate:
    """Seconds left: `point` is the best guess (None when part of the work has no timing at all), `low` and `high`
    bound it (`high` inf then); `stable` when a single figure may stand for the range."""

    low: float
    point: float | None
    high: float
    stable: bool
    untimed: tuple[str, ...] = ()  # the families (e.g. "analyses") with work left and no timing at all


def estimate(families: Mapping[str, tuple[Mapping[str, Rate], Mapping[str, int]]], slots: float,
             running: Mapping[str, int] | None = None) -> Estimate | None:
    """The time left for work spread over `slots` parallel slots. `families` maps a family's name (e.g.
    "trainings") to (its rates by kind, its units left by kind); `running`, a family's name to how many of its
    units are under way now. None when nothing left has a timing to go by."""
    low = point = high = granule = under_way = 0.0
    stable, timed, untimed = True, False, []
    for name, (rates, left) in families.items():
        measured = [r for r in rates.values() if r.count]
        if measured:  # what the units under way may have done already: at most a whole unit each
            under_way += (running or {}).get(name, 0) * max(r.mean for r in measured)
        for kind, n in left.items():
            if n <= 0:
                continue
            rate = rates.get(kind)
            if rate is not None and rate.count:
                f = rate.factor()
                low, point, high = low + n * rate.mean / f, point + n * rate.mean, high + n * rate.mean * f
                stable &= rate.count >= STABLE_TIMINGS
                timed, granule = True, max(granule, rate.mean)
            elif measured:  # priced with the same family's other kinds, their own uncertainty and BORROW's
                low += n * min(r.mean / r.factor() for r in measured) / BORROW
                point += n * sum(r.mean for r in measured) / len(measured)
                high += n * max(r.mean * r.factor() for r in measured) * BORROW
                stable, timed, granule = False, True, max(granule, *(r.mean for r in measured))
            else:
                stable = False
                if name not in untimed:
                    untimed.append(name)
    if not timed:
        return None if untimed else Estimate(0.0, 0.0, 0.0, True)
    stable = stable and not untimed and high <= STABLE_RATIO * low  # the rates agree, before the allowance:
    # work is counted in whole units, so the ones under way may be nearly done, and the last may run alone
    slots = max(slots, 1.0)
    low, point, high = max(low - under_way, 0.0) / slots, point / slots, high / slots + granule
    if untimed:
        return Estimate(low, None, math.inf, False, tuple(untimed))
    return Estimate(low, point, high, stable)


def _follow(finish: float, target: float, shown: float, now: float, dt: float, tau: float) -> float:
    """One figure of the display, as a finish time (seconds on the monotonic clock): moved towards the
    estimate's by the fraction that `dt` of time constant `tau` gives; the time left it shows is within a factor
    MAX_STEP of the one shown last (`shown`, plus a second's slack). Following finish times, not times left, is
    what lets the display count down between estimates: an estimate only changes when work completes, so its
    finish time rises a little in between and drops when a unit completes, and the display averages that out."""
    if not math.isfinite(finish) or not math.isfinite(target):
        return target
    moved = finish + (1.0 - math.exp(-dt / tau)) * (target - finish)
    least = max(min(shown / MAX_STEP, shown - dt), 0.0)
    return now + min(max(moved - now, least), shown * MAX_STEP + 1.0)


class Smoother:
    """What the view shows: the estimates, followed slowly (see the module's docstring). The time constant is
    an eighth of the time left, within TAU_RANGE: a two-hour sweep's ETA moves over a minute, a short one's
    over seconds."""

    def __init__(self) -> None:
        self.finish: tuple[float, float | None, float] | None = None  # (low, point, high) as finish times
        self.shown: tuple[float, float | None, float] = (0.0, None, 0.0)  # and as times left, when last shown
        self.at = 0.0

    def update(self, raw: Estimate | None, now: float) -> Estimate | None:
        """The figures to show at time `now` (seconds, monotonic) given the latest estimate. Calling it twice at
        one moment gives the same figures."""
        if raw is None or raw.high == 0.0:  # nothing to go by, or nothing left
            self.finish, self.at = None, now
            return raw
        target = (now + raw.low, None if raw.point is None else now + raw.point, now + raw.high)
        if self.finish is None:
            self.finish, self.shown, self.at = target, (raw.low, raw.point, raw.high), now
            return raw
        dt, (low, point, high) = max(now - self.at, 0.0), self.finish
        tau = min(max((point if point is not None else low) - now, 0.0) / 8, TAU_RANGE[1])
        tau = max(tau, TAU_RANGE[0])
        shown = self.shown
        low, high = _follow(low, target[0], shown[0], now, dt, tau), _follow(high, target[2], shown[2], now, dt, tau)
        if target[1] is None:
            point = None
        elif point is None:  # a first figure: the estimate's, within the range shown
            point = min(max(target[1], low), high)
        else:
            point = _follow(point, target[1], shown[1], now, dt, tau)
            low, high = min(low, point), max(high, point)
        self.finish, self.at = (low, point, high), now
        self.shown = tuple(None if f is None else max(f - now, 0.0) for f in (low, point, high))
        low, point, high = self.shown
        return Estimate(low, point, high, raw.stable and point is not None, raw.untimed)
