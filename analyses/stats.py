"""Aggregation across seeds: mean and a 95% t-interval, always with the number of seeds behind it.

Every run is one sample. Values are first averaged within a run (so a run with many rows per key counts
once), then summarised across the runs of one configuration. A single run gives a mean and no interval,
and the tables say so rather than showing a zero-width interval.

Bounded quantities (accuracies and fractions in [0, 1], cosines and accuracy differences in [-1, 1]) get their
t-interval on the logit scale of the range, mapped back, so it never leaves the range: with two or three seeds
a plain t-interval on an accuracy near 100% reaches far above it. Values at a bound are moved in by 1e-3 of
the range first (a logit of 0 or 1 is infinite). The mean is always the plain mean of the runs' values.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
from scipy import stats as sstats

# One configuration = one config_id (a run's identity without its seeds): only its runs are pooled as seeds.
# The fields it stands for come along so tables stay readable and the paper check can see the whole setting.
GROUP_COLUMNS = ("config_id", "dataset", "arch", "variant", "noise", "width", "epochs", "lr", "batch_size", "p_gen",
                 "p_mem")
CONFIDENCE = 0.95
EDGE = 1e-3  # how far a value at a bound is moved inside before its logit is taken


def bounds_of(value: str) -> tuple[float, float] | None:
    """The range a summarised column lives in, from its name (None: unbounded, a plain t-interval)."""
    if value.endswith(("_acc", "_frac", "_auroc")) or value in (
        "fraction", "auroc", "precision_at_rate", "chance", "average_precision", "flag_precision", "flag_recall"
    ):
        return 0.0, 1.0
    if value == "cosine" or value.endswith("_drop"):
        return -1.0, 1.0
    return None


def mean_interval(values: Iterable[float], confidence: float = CONFIDENCE) -> tuple[float, float, float, int]:
    """(mean, low, high, n) of the finite values; low/high are NaN when n < 2 (no interval from one seed)."""
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
) -> pd.DataFrame:
    """Summarise `values` over runs for each configuration and key.

    Returns one row per (configuration columns, keys) with `<v>_mean`, `<v>_lo`, `<v>_hi` per value and
    `n_seeds` (number of runs). The interval is a two-sided t-interval on the per-run values, on the logit
    scale for bounded values (`bounds_of`), so it stays within their range.
    """
    cols = list(group) if group is not None else group_columns(df)
    cols = cols + [k for k in keys if k not in cols]
    values = list(values)
    if "run_id" not in df.columns:
        raise ValueError("across_seeds needs a run_id column to count seeds")
    if df.empty:
        out = {c: [] for c in cols}
        for v in values:
            out.update({f"{v}_mean": [], f"{v}_lo": [], f"{v}_hi": []})
        out["n_seeds"] = []
        return pd.DataFrame(out)
    numeric = df[cols + ["run_id"]].copy()
    for v in values:
        numeric[v] = pd.to_numeric(df[v], errors="coerce").astype(float)
    per_run = numeric.groupby(cols + ["run_id"], dropna=False, sort=True)[values].mean().reset_index()
    grouped = per_run.groupby(cols, dropna=False, sort=True)
    mean = grouped[values].mean()
    std = grouped[values].std(ddof=1)
    count = grouped[values].count()
    out = pd.DataFrame(index=mean.index)
    for v in values:
        n = count[v].to_numpy(dtype=float)
        with np.errstate(invalid="ignore", divide="ignore"):
            tq = np.where(n >= 2, sstats.t.ppf(0.5 + confidence / 2, np.maximum(n - 1, 1)), np.nan)
        m = mean[v].to_numpy(dtype=float)
        bounds = bounds_of(v)
        if bounds is None:
            half = tq * std[v].to_numpy(dtype=float) / np.sqrt(n)
            lo, hi = m - half, m + half
        else:
            low, high = bounds
            unit = ((per_run[v] - low) / (high - low)).clip(EDGE, 1 - EDGE)
            logit = np.log(unit / (1 - unit))
            by = logit.groupby([per_run[c] for c in cols], dropna=False, sort=True)
            centre = by.mean().reindex(mean.index).to_numpy(dtype=float)
            half = tq * by.std(ddof=1).reindex(mean.index).to_numpy(dtype=float) / np.sqrt(n)
            with np.errstate(over="ignore"):
                lo = low + (high - low) / (1 + np.exp(-(centre - half)))
                hi = low + (high - low) / (1 + np.exp(-(centre + half)))
            lo, hi = np.fmin(lo, m), np.fmax(hi, m)  # the interval holds the plain mean it is printed beside
            lo[~np.isfinite(tq)], hi[~np.isfinite(tq)] = np.nan, np.nan
        out[f"{v}_mean"] = m
        out[f"{v}_lo"] = lo
        out[f"{v}_hi"] = hi
    out["n_seeds"] = grouped["run_id"].nunique().to_numpy()
    return out.reset_index()


def fmt_interval(mean: float, lo: float, hi: float, n: int, scale: float = 100.0, digits: int = 1) -> str:
    """'mean [lo, hi]' for tables; with one seed 'mean (n=1, no interval)'; '-' when there is no value."""
    if mean is None or not np.isfinite(mean):
        return "-"
    m = f"{mean * scale:.{digits}f}"
    if n is None or n < 2 or not (np.isfinite(lo) and np.isfinite(hi)):
        return f"{m} (n={n}, no interval)"
    return f"{m} [{lo * scale:.{digits}f}, {hi * scale:.{digits}f}]"


def format_summary(
    df: pd.DataFrame, values: Sequence[str], scale: float = 100.0, digits: int = 1
) -> pd.DataFrame:
    """Collapse each value's mean/lo/hi triple into one readable string column, keeping other columns.

    Used for the HTML tables; notebooks keep the numeric columns.
    """
    out = df.copy()
    n = out["n_seeds"] if "n_seeds" in out else pd.Series(1, index=out.index)
    for v in values:
        text = [
            fmt_interval(m, lo, hi, k, scale, digits)
            for m, lo, hi, k in zip(out[f"{v}_mean"], out[f"{v}_lo"], out[f"{v}_hi"], n, strict=False)
        ]
        at = out.columns.get_loc(f"{v}_mean")
        out = out.drop(columns=[f"{v}_mean", f"{v}_lo", f"{v}_hi"])
        out.insert(at, v, text)
    return out
