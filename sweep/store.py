"""Results storage: Parquet tables and checkpoints on any filesystem pyarrow understands (local path or URI).

Every file is written whole: bytes go to a hidden temporary name in the same directory, then are moved into
place, so a crash leaves either the complete file or none. Table readers (pyarrow datasets, hence pandas)
ignore names starting with '.', so a half-written temporary file is never read as data.

`table_for` routes the rows of auxiliary trainings (RunConfig.auxiliary) to the `aux_*` twins of the training
tables; every writer of run rows asks it for the table name.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import pickle
import re
import uuid
from contextlib import suppress
from dataclasses import dataclass

import pandas as pd
import pyarrow.parquet as pq
import torch
from pyarrow import fs as pafs

from sweep import schemas
from sweep.config import RunConfig
from sweep.errors import DamagedFile
from sweep.paths import resolve_location

# Every table and the columns that identify one of its rows: a row is never written twice under one key.
TABLE_KEYS = {name: ["run_id", *spec.keys] for name, spec in schemas.TABLES.items()}
TABLES = tuple(TABLE_KEYS)

# The temporary name every write goes through first: `.tmp-<8 hex>-<final name>`. Only names of exactly this
# form are ever removed as leftovers of a killed writer (Store.remove_leftover_temporaries).
_TMP_NAME = re.compile(r"^\.tmp-[0-9a-f]{8}-.+$")

# TEST HOOK, never set in normal use: "ERRNO_NAME:BYTES:SUBSTRING" (e.g. "ENOSPC:0:checkpoints/") makes every
# write of this process to a path containing SUBSTRING fail with that errno once BYTES bytes have gone to such
# paths: the write that crosses the budget puts its bytes up to it (at least one) into its temporary file, as a
# filling disk does, then raises. It is an environment variable so that Ray's worker processes see it too (the
# engine forwards it to a joined cluster's workers); tests use it to check that a full disk ends a sweep in one
# line with no temporary file left behind.
FAULT_ENV = "MEMLOC_TEST_STORAGE_FAULT"
_fault_budget_used = [0]  # bytes this process has written to paths the hook covers


def _write_through_fault_hook(out: object, data: bytes, path: str) -> None:
    """Write `data` to the open stream `out`, or fail as the test hook (FAULT_ENV) says."""
    spec = os.environ.get(FAULT_ENV)
    if spec:
        name, budget, needle = spec.split(":", 2)
        if needle in path:
            room = int(budget) - _fault_budget_used[0]
            if len(data) > room:
                out.write(data[:max(room, 1)])  # type: ignore[attr-defined]
                code = getattr(errno, name)
                raise OSError(code, os.strerror(code), path)
            _fault_budget_used[0] += len(data)
    out.write(data)  # type: ignore[attr-defined]


def table_for(cfg: RunConfig, table: str) -> str:
    """The table run `cfg` writes its `table` rows to: the `aux_` twin for an auxiliary training (an
    out-of-sample fold run, an SSFT half: `cfg.auxiliary`) where `table` has one (schemas.TRAINING_TABLES),
    else `table` itself. Every writer of run rows goes through here, so a plain read of `runs`, `examples`,
    `epochs`, `gradients` (and any per-run training table added to TRAINING_TABLES) never mixes them in."""
    if table not in schemas.TABLES:
        raise ValueError(f"unknown table {table!r}")
    twin = f"{schemas.AUX_PREFIX}{table}"
    return twin if cfg.auxiliary and table in schemas.TRAINING_TABLES else table


def with_run_columns(frame: pd.DataFrame, cfg: RunConfig) -> pd.DataFrame:
    """`frame` with `run_id` and the run's config columns (every defining field, `config_id`) in front: every
    row of every table carries them, so tables filter and group without joins. A table column named like a
    config field would be overwritten without a word, so that is refused."""
    columns = {"run_id": cfg.run_id, **cfg.columns()}
    clash = sorted(set(columns) & set(frame.columns))
    if clash:
        raise ValueError(f"table column(s) {', '.join(clash)} collide with the run's config columns")
    return frame.assign(**columns)[[*columns, *frame.columns]]


@dataclass(frozen=True)
class FileEntry:
    """What a finished file must look like: its size (checked cheaply, from a listing) and its SHA-256 (checked
    when the file is read, or for every file with --verify)."""

    size: int
    sha256: str

    @classmethod
    def of(cls, data: bytes) -> FileEntry:
        return cls(len(data), hashlib.sha256(data).hexdigest())


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

    def write_bytes(self, rel: str, data: bytes) -> FileEntry:
        """Atomically place `data` at `rel` (temporary name, then move); returns its entry for a done-record."""
        final = self.path(rel)
        parent, name = final.rsplit("/", 1)
        tmp = f"{parent}/.tmp-{uuid.uuid4().hex[:8]}-{name}"
        try:
            self.fs.create_dir(parent, recursive=True)
            with self.fs.open_output_stream(tmp) as out:
                _write_through_fault_hook(out, data, final)
            self.fs.move(tmp, final)
        except BaseException as exc:  # a full disk, a signal: the partial temporary file goes, the error stays
            with suppress(OSError):
                self.fs.delete_file(tmp)
            if isinstance(exc, OSError) and exc.errno and exc.filename is None:
                # pyarrow's own ("[Errno 28] Error writing bytes to file. Detail: [errno 28] No space left on
                # device"): the plain errno line naming the file, as a failed run's or task's FAILED line shows it
                raise OSError(exc.errno, os.strerror(exc.errno), final) from exc
            raise
        return FileEntry.of(data)

    def remove_leftover_temporaries(self) -> list[str]:
        """Remove the temporary files (`.tmp-<8 hex>-<name>`, ours only) that writers killed mid-write left
        anywhere under the root; returns their relative paths. Only a driver holding the lock may call this: a
        running writer's temporary file looks the same."""
        selector = pafs.FileSelector(self.base, recursive=True, allow_not_found=True)
        removed = []
        for info in self.fs.get_file_info(selector):
            if info.type == pafs.FileType.File and _TMP_NAME.match(info.base_name):
                with suppress(FileNotFoundError):
                    self.fs.delete_file(info.path)
                    removed.append(info.path[len(self.base) + 1:])
        return removed

    def read_bytes(self, rel: str) -> bytes:
        with self.fs.open_input_stream(self.path(rel)) as f:
            return f.read()

    def delete(self, rel: str) -> None:
        """Remove a file or a folder (with everything in it); nothing there is fine."""
        info = self.fs.get_file_info(self.path(rel))
        if info.type == pafs.FileType.Directory:
            self.fs.delete_dir(self.path(rel))
        elif info.type == pafs.FileType.File:
            self.fs.delete_file(self.path(rel))

    def sizes(self, rel_dir: str) -> dict[str, int]:
        """Size of every file directly under a directory, from one listing ({} when it does not exist)."""
        selector = pafs.FileSelector(self.path(rel_dir), allow_not_found=True)
        return {info.base_name: info.size for info in self.fs.get_file_info(selector)
                if info.type == pafs.FileType.File}

    def list(self, rel_dir: str) -> list[str]:
        """Visible file names directly under a directory ([] when it does not exist)."""
        selector = pafs.FileSelector(self.path(rel_dir), allow_not_found=True)
        return sorted(info.base_name for info in self.fs.get_file_info(selector)
                      if info.type == pafs.FileType.File and not info.base_name.startswith((".", "_")))

    def write_table(self, table: str, name: str, frame: pd.DataFrame) -> FileEntry:
        """Write one file of a table with the table's fixed schema (sweep.schemas), so every file of a folder
        agrees and the folder reads whole; the owner of `name` is the only writer, so rewriting is idempotent."""
        buf = io.BytesIO()
        pq.write_table(schemas.to_arrow(table, frame), buf)
        return self.write_bytes(self.table_file(table, name), buf.getvalue())

    @staticmethod
    def table_file(table: str, name: str) -> str:
        return f"{table}/{name}.parquet"

    def has_table_file(self, table: str, name: str) -> bool:
        return self.exists(f"{table}/{name}.parquet")

    def read_table(self, table: str) -> pd.DataFrame | None:
        """A whole table as one DataFrame, or None when nothing was written yet."""
        if not self.list(table):
            return None
        return pq.read_table(self.path(table), filesystem=self.fs).to_pandas()

    # Checkpoints -----------------------------------------------------------------------------------------

    def save_torch(self, rel: str, obj: object) -> FileEntry:
        buf = io.BytesIO()
        torch.save(obj, buf)
        return self.write_bytes(rel, buf.getvalue())

    def load_torch(self, rel: str, expect: FileEntry | None = None) -> object:
        """Load a file we wrote, never unpickling arbitrary objects. With `expect` (its done-record entry) the
        bytes are checked against it first. A damaged file raises DamagedFile."""
        try:
            data = self.read_bytes(rel)
        except FileNotFoundError as exc:
            raise DamagedFile(rel, f"{self.path(rel)} is missing") from exc
        if expect is not None and FileEntry.of(data) != expect:
            raise DamagedFile(rel, f"{self.path(rel)} differs from its done-record ({len(data)} bytes, recorded "
                                   f"{expect.size}; or another SHA-256)")
        try:
            return torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
        except (RuntimeError, EOFError, ValueError, OSError, KeyError, pickle.UnpicklingError) as exc:
            raise DamagedFile(rel, f"checkpoint {self.path(rel)} is unreadable ({type(exc).__name__})") from exc
