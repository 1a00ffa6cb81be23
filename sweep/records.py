"""Done-records: the proof that a unit of work (one run, one probe shard) finished, which can be checked later.

A unit writes its files first and its record last, so a record exists only for complete work. The record lists
every file the unit made with its size and SHA-256, and the settings that made it; a probe shard's record also
names the run record it read. Before work is skipped, the record is checked against the files: sizes always
(one listing per folder, cheap even on object stores), checksums on request (`--verify`) and always for the
checkpoints a probe task is about to read. A missing record, a missing or altered file, or a run that was
trained again since means "not done", so the unit is redone; a record made under other settings is a conflict
the user settles (see sweep.engine.check_results_match).

Records live under <results>/_done/ (runs/<run_id>.json, tasks/<run_id>-<probe>-<shard>.json): table readers
skip folders starting with '_', so they never mix with the data.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field

from sweep.schemas import LAYOUT
from sweep.store import FileEntry, Store

RUNS = "_done/runs"
TASKS = "_done/tasks"


def run_record_path(run_id: str) -> str:
    return f"{RUNS}/{run_id}.json"


def task_record_path(file_name: str) -> str:
    return f"{TASKS}/{file_name}.json"


def plain(value: object) -> object:
    """Settings as JSON has them (tuples become lists), so a record read back compares equal to fresh settings."""
    return json.loads(json.dumps(value))


@dataclass(frozen=True)
class Record:
    """What one finished unit made (relative path -> entry) and what made it."""

    unit: str
    settings: dict[str, object]
    files: dict[str, FileEntry]
    run_record: str | None = None  # a probe shard: the record_id of the run record it read
    layout: int = LAYOUT  # the table layout its files were written in (sweep.schemas.LAYOUT)
    record_id: str = field(default_factory=lambda: uuid.uuid4().hex)  # new each write: dependants see a redo

    def to_json(self) -> str:
        files = {rel: [e.size, e.sha256] for rel, e in sorted(self.files.items())}
        return json.dumps({"unit": self.unit, "record_id": self.record_id, "run_record": self.run_record,
                           "layout": self.layout, "settings": plain(self.settings), "files": files}, indent=1)

    @classmethod
    def from_json(cls, text: str) -> Record:
        doc = json.loads(text)
        return cls(unit=doc["unit"], settings=doc["settings"], run_record=doc["run_record"],
                   record_id=doc["record_id"], layout=int(doc.get("layout", 1)),
                   files={rel: FileEntry(int(size), str(sha)) for rel, (size, sha) in doc["files"].items()})


def write(store: Store, rel: str, record: Record) -> None:
    store.write_bytes(rel, record.to_json().encode())


def read(store: Store, rel: str, listed: bool = False) -> Record | None:
    """The record at `rel`, or None when there is none or it cannot be read (then the unit counts as not done).
    `listed`: the caller found it in a listing of its folder, so no look of its own comes first (planning a big
    grid lists each record folder once instead of one look per unit)."""
    if not listed and not store.exists(rel):
        return None
    try:
        return Record.from_json(store.read_bytes(rel).decode())
    except FileNotFoundError:  # gone since the listing
        return None
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return None


def problem(store: Store, record: Record, checksums: bool = False,
            listings: dict[str, dict[str, int]] | None = None) -> str | None:
    """The first way the files differ from `record` ("<path> is missing", "... has N bytes, recorded M", "...
    differs from its SHA-256"), or None when they match. Sizes come from one listing per folder. Files of an
    older table layout count as a problem too: rewritten, they never mix renamed columns into a folder.
    `listings` (folder -> sizes) may be shared by the checks of many records, so a folder is listed once."""
    if record.layout != LAYOUT:
        return f"its tables are in an older layout ({record.layout}; this version writes {LAYOUT})"
    listings = {} if listings is None else listings
    for rel, entry in sorted(record.files.items()):
        folder, _, name = rel.rpartition("/")
        if folder not in listings:
            listings[folder] = store.sizes(folder)
        size = listings[folder].get(name)
        if size is None:
            return f"{rel} is missing"
        if size != entry.size:
            return f"{rel} has {size} bytes, recorded {entry.size}"
    if checksums:
        for rel, entry in sorted(record.files.items()):
            if hashlib.sha256(store.read_bytes(rel)).hexdigest() != entry.sha256:
                return f"{rel} differs from its recorded SHA-256"
    return None


