"""Reading the sweep's Parquet tables, tolerant of partial sweeps.

The engine writes one file per run (and per probe shard) under <results>/<table>/, each written whole and
renamed into place. A sweep that is still running or was interrupted has some tables missing or half of
their files; analyses must work on whatever is there, so a missing table reads as None, not an error.

Auxiliary trainings, out-of-sample ("fold") runs (`cv_folds` > 0, for `oos_predictions`: confident learning,
analyses.confident) and second-split forgetting runs (`ssft_half` > 0, for `ssft`), write their runs / examples
/ epochs / gradients rows to the `aux_*` twins of those tables (sweep.store.table_for), so a plain
`pd.read_parquet` of a main table, and `Results.table`, hold ordinary runs only.

Older results folders (layout 2 and before) have the fold runs' rows in the main tables. They are upgraded on
read, in memory: `Results.table("epochs")` leaves them out and `Results.table("aux_epochs")` holds them, so
the report reads such a folder as it reads a new one (nothing on disk changes; a sweep over the folder moves
them for good, see sweep.plan.misplaced_files). `Results.raw` is each folder as written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from sweep.errors import Interrupted
from sweep.schemas import AUX_PREFIX, TRAINING_TABLES

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
    "ssft",
    "memorization",
    "mem_influence",
    "mem_flips",
    *(f"{AUX_PREFIX}{name}" for name in TRAINING_TABLES),
)
# Tables whose auxiliary rows `Results.table` keeps: the auxiliary trainings' own outputs.
WITH_FOLD_RUNS = ("oos_predictions", "ssft", *(f"{AUX_PREFIX}{name}" for name in TRAINING_TABLES))


def _positive(df: pd.DataFrame, column: str) -> pd.Series:
    if column not in df.columns:
        return pd.Series(False, index=df.index)
    return pd.to_numeric(df[column], errors="coerce").fillna(0).astype(float) > 0


def is_fold_run(df: pd.DataFrame) -> pd.Series:
    """True on the rows of out-of-sample fold runs (cv_folds > 0); all False for results written before the
    cv columns existed."""
    return _positive(df, "cv_folds")


def is_auxiliary(df: pd.DataFrame) -> pd.Series:
    """True on the rows of auxiliary trainings (cv_folds > 0, ssft_half > 0 or subsets > 0; RunConfig.auxiliary)."""
    return _positive(df, "cv_folds") | _positive(df, "ssft_half") | _positive(df, "subsets")


def ordinary(df: pd.DataFrame | None) -> pd.DataFrame | None:
    """`df` without the rows of auxiliary trainings (unchanged when it has none or no such columns)."""
    if df is None:
        return None
    aux = is_auxiliary(df)
    return df if not aux.any() else df[~aux].reset_index(drop=True)


def _auxiliary_part(df: pd.DataFrame | None) -> pd.DataFrame | None:
    if df is None:
        return None
    aux = is_auxiliary(df)
    return df[aux].reset_index(drop=True) if aux.any() else None


def _concat(frames: list[pd.DataFrame | None]) -> pd.DataFrame | None:
    present = [f for f in frames if f is not None]
    if not present:
        return None
    nonempty = [f for f in present if len(f)]
    return pd.concat(nonempty, ignore_index=True) if len(nonempty) > 1 else (nonempty or present)[0]


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
        except Interrupted:  # a stop signal is no unreadable file
            raise
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
        """The table's files as written (a main table of an older folder may hold fold runs); None if missing."""
        if name not in self._cache:
            self._cache[name] = load_table(self.root, name, self.problems)
        return self._cache[name]

    def table(self, name: str) -> pd.DataFrame | None:
        """The table, or None if missing; an empty table is returned as an empty DataFrame. A main table holds
        ordinary runs only; an `aux_*` table the auxiliary trainings, with those an older folder wrote into its
        main table (upgraded on read, module docstring)."""
        if name not in self._kept:
            main = name.removeprefix(AUX_PREFIX)
            if name.startswith(AUX_PREFIX) and main in TRAINING_TABLES:
                df = _concat([self.raw(name), _auxiliary_part(self.raw(main))])
            else:
                df = self.raw(name) if name in WITH_FOLD_RUNS else ordinary(self.raw(name))
            self._kept[name] = df
        return self._kept[name]

    def fold_runs(self) -> int:
        """How many out-of-sample fold runs the results hold (their runs rows)."""
        runs = self.table(f"{AUX_PREFIX}runs")
        return 0 if runs is None else int(runs.loc[is_fold_run(runs), "run_id"].nunique())

    def ssft_runs(self) -> int:
        """How many second-split forgetting runs the results hold (their runs rows)."""
        runs = self.table(f"{AUX_PREFIX}runs")
        return 0 if runs is None else int(runs.loc[_positive(runs, "ssft_half"), "run_id"].nunique())

    def available(self, name: str) -> bool:
        """True when the table has at least one row."""
        df = self.table(name)
        return df is not None and len(df) > 0

    def status(self) -> pd.DataFrame:
        """Per table: number of files and rows as written (an older folder's main tables with its fold runs), or
        that it is missing/empty, for the report's overview."""
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
