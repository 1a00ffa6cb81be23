"""Aggregation across seeds: mean, every seed's value, and a 95% t-interval only where enough seeds stand behind it.

Every run is one sample. Values are first averaged within a run (so a run with many rows per key counts
once), then summarised across the runs of one configuration: `<v>_mean`, `<v>_min`, `<v>_max`, `<v>_seeds` (each
run's value, in run order) and, from `MIN_SEEDS` runs on, `<v>_lo` / `<v>_hi`. With one or two seeds a t-interval
says nothing honest (two accuracies 80% and 84% give a "95% interval" over most of [0, 100]%), so the tables show
the seeds themselves and the figures draw them as points.

Each value's range comes from its unit: a table column's declared unit in `sweep.schemas` (its `UNIT_RANGES`), or,
for a quantity an analysis derives, the unit that analysis declares (`declare`), never from how the column is
named. The interval never leaves the range: a range bounded on both sides (accuracies and fractions in [0, 1],
cosines and accuracy differences in [-1, 1]) gets its t-interval on the logit scale of the range, mapped back
(values at a bound are moved in by 1e-3 of the range first, since a logit of 0 or 1 is infinite); a range bounded
on one side (counts, losses, norms on [0, inf)) gets the plain t-interval cut at the bound, which keeps its
coverage since the mean cannot lie beyond it. The mean is always the plain mean of the runs' values.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats as sstats

from sweep.schemas import ACC, UNIT_RANGES, column_units

# One configuration = one config_id (a run's identity without its seeds): only its runs are pooled as seeds.
# The fields it stands for come along so tables stay readable and the paper check can see the whole setting.
GROUP_COLUMNS = ("config_id", "dataset", "arch", "variant", "noise", "width", "epochs", "lr", "batch_size", "p_gen",
                 "p_mem", "cv_folds", "ssft_half", "dropout_places", "sparse_mask")
CONFIDENCE = 0.95
MIN_SEEDS = 3  # fewer seeds: each seed's value and their min-max, no t-interval
EDGE = 1e-3  # how far a value at a bound is moved inside before its logit is taken
SUFFIXES = ("mean", "lo", "hi", "min", "max", "seeds")  # the columns across_seeds makes per value

_SCHEMA_UNITS = column_units()
# Derived quantities, by exact name, with their unit: the detection metrics (analyses.detection, analyses.noise)
# here; each analysis adds its own with `declare` where it defines them.
_DERIVED: dict[str, str] = {}


def declare(units: Mapping[str, str]) -> None:
    """Record the unit of quantities an analysis derives (not table columns), so their intervals keep to its
    range. A unit outside `UNIT_RANGES`, one without a range, or a second unit for a name is refused."""
    for name, unit in units.items():
        if UNIT_RANGES.get(unit) is None:
            raise ValueError(f"{name}: unit {unit!r} has no range; declared units: "
                             + ", ".join(repr(u) for u, r in UNIT_RANGES.items() if r is not None))
        known = _DERIVED.get(name, _SCHEMA_UNITS.get(name))
        if known not in (None, unit):
            raise ValueError(f"{name} is already declared with unit {known!r}, not {unit!r}")
        _DERIVED[name] = unit


declare({"auroc": ACC, "average_precision": ACC, "precision_at_rate": ACC, "chance": ACC, "flag_precision": ACC,
         "flag_recall": ACC, "n": "examples"})


def unit_of(value: str, units: Mapping[str, str] | None = None) -> str:
    """The unit of a summarised value: `units` given by the caller, else an analysis's declaration, else the
    table column's declared unit; a value none of them knows is a bug and is named."""
    unit = (units or {}).get(value) or _DERIVED.get(value) or _SCHEMA_UNITS.get(value)
    if unit is None or UNIT_RANGES.get(unit) is None:
        raise ValueError(f"no range-able unit declared for {value!r} (got {unit!r}): declare it in sweep/schemas.py "
                         "or with analyses.stats.declare")
    return unit


def value_range(value: str, units: Mapping[str, str] | None = None) -> tuple[float, float]:
    """The range `value` lives in, from its unit (`unit_of`)."""
    bounds = UNIT_RANGES[unit_of(value, units)]
    assert bounds is not None  # unit_of refuses units without a range
    return bounds


def mean_interval(values: Iterable[float], confidence: float = CONFIDENCE) -> tuple[float, float, float, int]:
    """(mean, low, high, n) of the finite values, a plain t-interval; low/high are NaN when n < 2."""
    v = np.asarray(list(values), dtype=float)
    v = v[np.isfinite(v)]
    n = int(v.size)
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    mean = float(v.mean())
    if n == 1:
        return mean, math.nan, math.nan, 1
    half = float(sstats.t.ppf(0.5 + confidence / 2, n - 1) * v.std(ddof=1) / math.sqrt(n))
    return mean, mean - half, mean + half, n


def group_columns(df: pd.DataFrame) -> list[str]:
    """The configuration columns present in `df`, in canonical order (a notebook frame may lack some)."""
    return [c for c in GROUP_COLUMNS if c in df.columns]


def across_seeds(
    df: pd.DataFrame,
    values: Sequence[str],
    keys: Sequence[str] = (),
    group: Sequence[str] | None = None,
    confidence: float = CONFIDENCE,
    units: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Summarise `values` over runs for each configuration and key.

    Returns one row per (configuration columns, keys) with, per value, `<v>_mean`, `<v>_min`, `<v>_max`,
    `<v>_seeds` (the runs' finite values, a tuple in run order) and `<v>_lo` / `<v>_hi`, a two-sided t-interval
    kept inside the value's range (`value_range`; `units` names the unit of a value no declaration knows), NaN
    below `MIN_SEEDS` values; and `n_seeds` (number of runs). An infinite value (a censored statistic: 'more
    than the cap') makes the mean infinite and leaves no interval.
    """
    cols = list(group) if group is not None else group_columns(df)
    cols = cols + [k for k in keys if k not in cols]
    values = list(values)
    ranges = {v: value_range(v, units) for v in values}
    if "run_id" not in df.columns:
        raise ValueError("across_seeds needs a run_id column to count seeds")
    if df.empty:
        out = {c: [] for c in cols}
        for v in values:
            out.update({f"{v}_{s}": [] for s in SUFFIXES})
        out["n_seeds"] = []
        return pd.DataFrame(out)
    numeric = df[cols + ["run_id"]].copy()
    for v in values:
        numeric[v] = pd.to_numeric(df[v], errors="coerce").astype(float)
    per_run = numeric.groupby(cols + ["run_id"], dropna=False, sort=True)[values].mean().reset_index()
    grouped = per_run.groupby(cols, dropna=False, sort=True)
    mean = grouped[values].mean()
    columns: dict[str, object] = {}
    for v in values:
        by = [per_run[c] for c in cols]
        seeds = per_run[v].groupby(by, dropna=False, sort=True).agg(
            lambda s: tuple(float(x) for x in s if not math.isnan(x))).reindex(mean.index)
        n = np.array([len(t) for t in seeds], dtype=float)
        finite = np.array([all(math.isfinite(x) for x in t) for t in seeds], dtype=bool)
        lo, hi = _interval(per_run[v], by, mean.index, np.where(finite, n, 0), ranges[v], confidence)
        m = mean[v].to_numpy(dtype=float)
        missing = ~np.isfinite(lo) | ~np.isfinite(hi)
        columns[f"{v}_mean"] = m
        columns[f"{v}_lo"] = np.where(missing, np.nan, np.fmin(lo, m))  # the interval holds the mean beside it
        columns[f"{v}_hi"] = np.where(missing, np.nan, np.fmax(hi, m))
        columns[f"{v}_min"] = [min(t) if t else math.nan for t in seeds]
        columns[f"{v}_max"] = [max(t) if t else math.nan for t in seeds]
        columns[f"{v}_seeds"] = list(seeds)
    columns["n_seeds"] = grouped["run_id"].nunique().to_numpy()
    return pd.DataFrame(columns, index=mean.index).reset_index()


def _interval(
    values: pd.Series, by: list[pd.Series], index: pd.Index, n: np.ndarray, bounds: tuple[float, float],
    confidence: float,
) -> tuple[np.ndarray, np.ndarray]:
    """The t-interval of each group's mean inside `bounds`: on the logit scale of a two-sided range, cut at the
    bound of a one-sided one; NaN where a group has fewer than MIN_SEEDS values (`n`; 0 for a group with an
    infinite value)."""
    low, high = bounds
    with np.errstate(invalid="ignore", divide="ignore"):
        tq = np.where(n >= MIN_SEEDS, sstats.t.ppf(0.5 + confidence / 2, np.maximum(n - 1, 1)), np.nan)
    if math.isfinite(low) and math.isfinite(high):
        unit = ((values - low) / (high - low)).clip(EDGE, 1 - EDGE)
        logit = np.log(unit / (1 - unit))
        groups = logit.groupby(by, dropna=False, sort=True)
        centre = groups.mean().reindex(index).to_numpy(dtype=float)
        with np.errstate(invalid="ignore", divide="ignore"):
            half = tq * groups.std(ddof=1).reindex(index).to_numpy(dtype=float) / np.sqrt(n)
        with np.errstate(over="ignore"):
            lo = low + (high - low) / (1 + np.exp(-(centre - half)))
            hi = low + (high - low) / (1 + np.exp(-(centre + half)))
        return lo, hi
    groups = values.groupby(by, dropna=False, sort=True)
    centre = groups.mean().reindex(index).to_numpy(dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        half = tq * groups.std(ddof=1).reindex(index).to_numpy(dtype=float) / np.sqrt(n)
    return np.fmax(centre - half, low) if math.isfinite(low) else centre - half, (
        np.fmin(centre + half, high) if math.isfinite(high) else centre + half)


def _number(value: float, scale: float, digits: int) -> str:
    return f"{value * scale:.{digits}f}"


def fmt_interval(
    mean: float, lo: float, hi: float, n: int, scale: float = 100.0, digits: int = 1,
    seeds: Sequence[float] | None = None,
) -> str:
    """'mean [lo, hi]' for tables; below MIN_SEEDS values each seed's value and their min-max instead (one seed:
    'mean (n=1, no interval)'); '-' when there is no value; '> max' style text is the caller's (censored)."""
    if mean is None or not (np.isfinite(mean) or mean == math.inf):
        return "-"
    m = _number(mean, scale, digits)
    values = [float(x) for x in seeds] if seeds is not None and not _missing(seeds) else None
    count = len(values) if values is not None else n
    if count is not None and count >= MIN_SEEDS and np.isfinite(lo) and np.isfinite(hi):
        return f"{m} [{_number(lo, scale, digits)}, {_number(hi, scale, digits)}]"
    if values is not None and len(values) >= 2:
        each = ", ".join(_number(v, scale, digits) for v in values)
        return (f"{m} (n={len(values)} seeds: {each}; min-max {_number(min(values), scale, digits)} to "
                f"{_number(max(values), scale, digits)})")
    return f"{m} (n={count}, no interval)"


def _missing(cell: object) -> bool:
    return cell is None or (isinstance(cell, float) and math.isnan(cell))


def format_summary(
    df: pd.DataFrame, values: Sequence[str], scale: float = 100.0, digits: int = 1
) -> pd.DataFrame:
    """Collapse each value's summary columns into one readable string column, keeping other columns.

    Used for the HTML tables; notebooks and the CSVs keep the numeric columns.
    """
    out = df.copy()
    n = out["n_seeds"] if "n_seeds" in out else pd.Series(1, index=out.index)
    for v in values:
        seeds = out[f"{v}_seeds"] if f"{v}_seeds" in out else pd.Series([None] * len(out), index=out.index)
        text = [
            fmt_interval(m, lo, hi, k, scale, digits, s)
            for m, lo, hi, k, s in zip(out[f"{v}_mean"], out[f"{v}_lo"], out[f"{v}_hi"], n, seeds, strict=False)
        ]
        at = out.columns.get_loc(f"{v}_mean")
        out = out.drop(columns=[f"{v}_{s}" for s in SUFFIXES if f"{v}_{s}" in out.columns])
        out.insert(at, v, text)
    return out
