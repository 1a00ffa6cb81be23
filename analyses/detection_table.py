"""The detection comparison as a Parquet table in the results folder (`detection`, sweep.schemas.REPORT_TABLES).

One row per ordinary run, example set and signal, with the run's columns first (every row of every table carries
them), the signal's direction and natural source, the metrics, and the cost: what the report's CSVs show, for a
notebook to read with `pd.read_parquet("results/detection")`. The report rewrites the one file whole each time
(temporary name, then rename), so the table always matches the report beside it; a run not in the runs table
(its run columns unknown, say while a sweep is writing it) is left out and counted.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from analyses.signals import REGISTRY

TABLE = "detection"
FILE = f"{TABLE}/comparison.parquet"


def comparison_frame(per_run: pd.DataFrame, runs: pd.DataFrame | None) -> tuple[pd.DataFrame, list[str]]:
    """(rows of the `detection` table, run ids left out because the runs table does not have them)."""
    from sweep.schemas import REPORT_TABLES, RUN_COLUMNS  # the declarations only (pyarrow, no training code)

    names = [c.name for c in RUN_COLUMNS]
    own = [c.name for c in REPORT_TABLES[TABLE].columns]
    dtypes = {c.name: c.pandas_dtype for c in (*RUN_COLUMNS, *REPORT_TABLES[TABLE].columns)}
    if per_run.empty or runs is None or runs.empty:
        left = sorted(per_run["run_id"].astype(str).unique()) if len(per_run) else []
        return pd.DataFrame({n: pd.Series(dtype=dtypes[n]) for n in names + own}), left
    known = runs.drop_duplicates("run_id")[[c for c in names if c in runs.columns]]
    rows = per_run.drop(columns=[c for c in names if c != "run_id" and c in per_run.columns])
    rows = rows.merge(known, on="run_id", how="inner")
    left = sorted(set(per_run["run_id"].astype(str)) - set(known["run_id"].astype(str)))
    rows["source"] = rows["signal"].map(lambda s: REGISTRY[s].source if s in REGISTRY else "")
    from sweep.config import LATE_FIELDS  # run fields added later: absent from older runs tables, at their default

    for name in names + own:
        if name not in rows.columns:
            rows[name] = LATE_FIELDS[name] if name in LATE_FIELDS else pd.Series([None] * len(rows), dtype=object)
    rows = rows[names + own]
    for name, dtype in dtypes.items():
        if dtype == "Int64":
            rows[name] = pd.to_numeric(rows[name], errors="coerce").round().astype("Int64")
        elif dtype in ("int64", "float64", "bool"):
            rows[name] = rows[name].astype(dtype)
    return rows.reset_index(drop=True), left


def write_comparison(per_run: pd.DataFrame, runs: pd.DataFrame | None, results: str | Path) -> tuple[Path, list[str]]:
    """Write the `detection` table to <results>/detection/comparison.parquet (whole, atomically); returns its
    path and the run ids left out (not in the runs table)."""
    from sweep.schemas import to_arrow

    frame, left = comparison_frame(per_run, runs)
    path = Path(results) / FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    pq.write_table(to_arrow(TABLE, frame), buf)
    tmp = path.parent / f".tmp-{os.getpid()}-{path.name}"
    tmp.write_bytes(buf.getvalue())
    os.replace(tmp, path)
    return path, left
