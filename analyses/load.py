"""Reading the sweep's Parquet tables, tolerant of partial sweeps.

The engine writes one file per run (and per probe shard) under <results>/<table>/, each written whole and
renamed into place. A sweep that is still running or was interrupted has some tables missing or half of
their files; analyses must work on whatever is there, so a missing table reads as None, not an error.
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
)


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

    def __post_init__(self) -> None:
        self.root = Path(self.root)

    def table(self, name: str) -> pd.DataFrame | None:
        """The table, or None if missing; an empty table is returned as an empty DataFrame."""
        if name not in self._cache:
            self._cache[name] = load_table(self.root, name, self.problems)
        return self._cache[name]

    def available(self, name: str) -> bool:
        """True when the table has at least one row."""
        df = self.table(name)
        return df is not None and len(df) > 0

    def status(self) -> pd.DataFrame:
        """Per table: number of files and rows, or that it is missing/empty, for the report's overview."""
        rows = []
        for name in TABLES:
            df = self.table(name)
            files = len(table_files(self.root, name))
            if df is None:
                state = "missing"
            elif len(df) == 0:
                state = "empty"
            else:
                state = "ok"
            rows.append({"table": name, "state": state, "files": files, "rows": 0 if df is None else len(df)})
        return pd.DataFrame(rows)
