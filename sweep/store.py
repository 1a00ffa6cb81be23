"""Results storage: Parquet tables and checkpoints on any filesystem pyarrow understands (local path or URI).

Every file is written whole: bytes go to a hidden temporary name in the same directory, then are moved into
place, so a crash leaves either the complete file or none. Table readers (pyarrow datasets, hence pandas)
ignore names starting with '.', so a half-written temporary file is never read as data.
"""

from __future__ import annotations

import io
import os
import pickle
import uuid

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from pyarrow import fs as pafs

from sweep.config import RunConfig
from sweep.errors import UserError

# Every table and the columns that identify one of its rows: a row is never written twice under one key.
TABLE_KEYS = {
    "runs": ["run_id"], "examples": ["run_id", "example_id"], "epochs": ["run_id", "epoch"],
    "gradients": ["run_id", "epoch", "layer"], "rewinding": ["run_id", "layer", "rewind_epoch"],
    "retraining": ["run_id", "layer", "epoch"], "flips": ["run_id", "example_id"], "dropout": ["run_id", "mode"],
    "dropout_examples": ["run_id", "example_id"],
}
TABLES = tuple(TABLE_KEYS)


def resolve_location(location: str) -> str:
    """A local path made absolute against this process's working directory; a URI (s3://, gs://, file://)
    unchanged.

    Call it where the user typed the path (the driver, a CLI), before the path travels anywhere else: Ray runs
    trials and tasks in other processes with other working directories (a Tune trial runs inside its own trial
    folder), where a relative path would name another place.
    """
    if "://" in location:
        return location
    return os.path.abspath(os.path.expanduser(location))


def with_run_columns(frame: pd.DataFrame, cfg: RunConfig) -> pd.DataFrame:
    """`frame` with `run_id` and the run's config columns (every defining field, `config_id`) in front: every
    row of every table carries them, so tables filter and group without joins. A table column named like a
    config field would be overwritten without a word, so that is refused."""
    columns = {"run_id": cfg.run_id, **cfg.columns()}
    clash = sorted(set(columns) & set(frame.columns))
    if clash:
        raise ValueError(f"table column(s) {', '.join(clash)} collide with the run's config columns")
    return frame.assign(**columns)[[*columns, *frame.columns]]


class Store:
    """One results root. Paths given to methods are relative ('epochs/<run_id>.parquet')."""

    def __init__(self, root: str) -> None:
        if "://" in root:
            self.fs, self.base = pafs.FileSystem.from_uri(root)
            self.uri = root.rstrip("/")
        else:
            self.fs, self.base = pafs.LocalFileSystem(), resolve_location(root)
            self.uri = self.base
        self.base = self.base.rstrip("/")

    def path(self, rel: str) -> str:
        return f"{self.base}/{rel}"

    def exists(self, rel: str) -> bool:
        return self.fs.get_file_info(self.path(rel)).type != pafs.FileType.NotFound

    def write_bytes(self, rel: str, data: bytes) -> None:
        """Atomically place `data` at `rel` (temporary name, then move)."""
        final = self.path(rel)
        parent, name = final.rsplit("/", 1)
        self.fs.create_dir(parent, recursive=True)
        tmp = f"{parent}/.tmp-{uuid.uuid4().hex[:8]}-{name}"
        with self.fs.open_output_stream(tmp) as out:
            out.write(data)
        self.fs.move(tmp, final)

    def read_bytes(self, rel: str) -> bytes:
        with self.fs.open_input_stream(self.path(rel)) as f:
            return f.read()

    def list(self, rel_dir: str) -> list[str]:
        """Visible file names directly under a directory ([] when it does not exist)."""
        selector = pafs.FileSelector(self.path(rel_dir), allow_not_found=True)
        return sorted(info.base_name for info in self.fs.get_file_info(selector)
                      if info.type == pafs.FileType.File and not info.base_name.startswith((".", "_")))

    def write_table(self, table: str, name: str, frame: pd.DataFrame) -> None:
        """Write one file of a table; the owner of `name` is the only writer, so rewriting it is idempotent.

        pandas' own schema metadata is dropped: it may name extension dtypes (such as a list-of-struct
        ArrowDtype) that older readers cannot rebuild, while the plain Arrow types read back everywhere.
        """
        buf = io.BytesIO()
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(None), buf)
        self.write_bytes(f"{table}/{name}.parquet", buf.getvalue())

    def has_table_file(self, table: str, name: str) -> bool:
        return self.exists(f"{table}/{name}.parquet")

    def read_table(self, table: str) -> pd.DataFrame | None:
        """A whole table as one DataFrame, or None when nothing was written yet."""
        if not self.list(table):
            return None
        return pq.read_table(self.path(table), filesystem=self.fs).to_pandas()

    # Checkpoints -----------------------------------------------------------------------------------------

    def save_torch(self, rel: str, obj: object) -> None:
        buf = io.BytesIO()
        torch.save(obj, buf)
        self.write_bytes(rel, buf.getvalue())

    def load_torch(self, rel: str) -> object:
        """Load a file we wrote, never unpickling arbitrary objects; a damaged file is a clear UserError."""
        try:
            return torch.load(io.BytesIO(self.read_bytes(rel)), weights_only=True, map_location="cpu")
        except (RuntimeError, EOFError, ValueError, OSError, KeyError, pickle.UnpicklingError) as exc:
            raise UserError(f"checkpoint {self.path(rel)} is unreadable ({type(exc).__name__}); "
                            "delete it (or its run's checkpoint folder) to retrain that run") from exc
