"""Reading the sweep's Parquet tables, tolerant of partial sweeps.

The engine writes one file per run (and per probe shard) under <results>/<table>/, each written whole and
renamed into place. A sweep that is still running or was interrupted has some tables missing or half of
their files; analyses must work on whatever is there, so a missing table reads as None, not an error.

Out-of-sample ("fold") runs (`cv_folds` > 0) are extra trainings whose only purpose is the `oos_predictions`
table (confident learning, analyses.confident). `Results.table` leaves their rows out of every other table but
`runs`, so no paper figure or table pools them with the ordinary runs; `Results.raw` keeps everything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

TABLES = (
    "runs",
    "examples",
    "epochs",
    "gradients",
    "rewinding",
    "retraining",
    "flips",
    "flip_units",
    "dropout",
    "dropout_examples",
    "oos_predictions",
)
# Tables whose fold-run rows `Results.table` keeps: the runs (the overview counts them) and their predictions.
WITH_FOLD_RUNS = ("runs", "oos_predictions")


def is_fold_run(df: pd.DataFrame) -> pd.Series:
    """True on the rows of out-of-sample fold runs (cv_folds > 0); all False for results written before the
    cv columns existed."""
    if "cv_folds" not in df.columns:
        return pd.Series(False, index=df.index)
    return pd.to_numeric(df["cv_folds"], errors="coerce").fillna(0).astype(float) > 0


def ordinary(df: pd.DataFrame | None) -> pd.DataFrame | None:
    """`df` without the rows of out-of-sample fold runs (unchanged when it has none or no cv columns)."""
    if df is None:
        return None
    folds = is_fold_run(df)
    return df if not folds.any() else df[~folds].reset_index(drop=True)


def table_files(results: str | Path, table: str) -> list[Path]:
    """The finished Parquet files of one table; hidden or temporary names are ignored because the engine
    writes under a temporary name before renaming."""
    folder = Path(results) / table
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*.parquet") if p.is_file() and not p.name.startswith((".", "_")))


def load_table(results: str | Path, table: str, problems: list[str] | None = None) -> pd.DataFrame | None:
    """One table as a DataFrame, or None when no file exists yet.

    Files are read one by one and concatenated (rather than as one pyarrow dataset) so that files whose
    schemas differ slightly, e.g. a shard whose list column is all empty, still combine. A file that cannot
    be read is skipped and described in `problems` instead of losing the whole table.
    """
    frames = []
    for path in table_files(results, table):
        try:
            frames.append(upgrade(table, pd.read_parquet(path)))
        except Exception as exc:  # noqa: BLE001 - any unreadable file is reported, the rest still load
            if problems is not None:
                reason = (str(exc).strip().splitlines() or [""])[0]
                problems.append(f"{path}: {type(exc).__name__}: {reason}")
    if not frames:
        return None
    nonempty = [f for f in frames if len(f)]
    if not nonempty:
        return frames[0]
    if len(nonempty) == 1:
        return nonempty[0].reset_index(drop=True)
    return pd.concat(nonempty, ignore_index=True)


def upgrade(table: str, frame: pd.DataFrame) -> pd.DataFrame:
    """A file written before the fixed schemas (results layout 1) in today's column names, so an older results
    folder still reads: retraining's `epoch` is `retrain_epoch`, and a first_learned_epoch of -1 (never
    learned) is null. (Old flips `units` structs are read as they are by analyses.flips; the `*_acc_base`
    columns such files lack stay absent, and the figures then draw no final-model marks.)"""
    if table == "retraining" and "epoch" in frame.columns and "retrain_epoch" not in frame.columns:
        frame = frame.rename(columns={"epoch": "retrain_epoch"})
    if table == "examples" and "first_learned_epoch" in frame.columns:
        learned = frame["first_learned_epoch"]
        if not isinstance(learned.dtype, pd.Int64Dtype):
            frame = frame.assign(first_learned_epoch=learned.astype("Int64").mask(learned < 0))
    return frame


@dataclass
class Results:
    """A results root with each table loaded at most once, for the report and notebooks."""

    root: Path
    problems: list[str] = field(default_factory=list)
    _cache: dict[str, pd.DataFrame | None] = field(default_factory=dict, repr=False)
    _kept: dict[str, pd.DataFrame | None] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.root = Path(self.root)

    def raw(self, name: str) -> pd.DataFrame | None:
        """The table as written, fold runs' rows included; None if missing."""
        if name not in self._cache:
            self._cache[name] = load_table(self.root, name, self.problems)
        return self._cache[name]

    def table(self, name: str) -> pd.DataFrame | None:
        """The table, or None if missing; an empty table is returned as an empty DataFrame. Rows of
        out-of-sample fold runs (cv_folds > 0) are left out, except in `runs` and `oos_predictions`."""
        if name not in self._kept:
            df = self.raw(name)
            self._kept[name] = df if name in WITH_FOLD_RUNS else ordinary(df)
        return self._kept[name]

    def fold_runs(self) -> int:
        """How many runs of the runs table are out-of-sample fold runs."""
        runs = self.raw("runs")
        return 0 if runs is None else int(runs.loc[is_fold_run(runs), "run_id"].nunique())

    def available(self, name: str) -> bool:
        """True when the table has at least one row."""
        df = self.table(name)
        return df is not None and len(df) > 0

    def status(self) -> pd.DataFrame:
        """Per table: number of files and rows (fold runs' rows included), or that it is missing/empty, for the
        report's overview."""
        rows = []
        for name in TABLES:
            df = self.raw(name)
            files = len(table_files(self.root, name))
            if df is None:
                state = "missing"
            elif len(df) == 0:
                state = "empty"
            else:
                state = "ok"
            rows.append({"table": name, "state": state, "files": files, "rows": 0 if df is None else len(df)})
        return pd.DataFrame(rows)
