"""The results folder is ours only where we made it: what a sweep may write there, and what it refuses.

A user may point --results at a folder that holds their own files. A sweep never replaces a file it did not
write:

- The tables' catalogue goes to `README.md` only when there is none or it is ours: it carries CATALOGUE_MARK
  (a comment line every catalogue of this version starts with), or it is an older version's catalogue (which
  began with OLD_CATALOGUE_START). A foreign `README.md` stays as it is; the catalogue is written to
  `_catalogue.md` instead and one line says so. If that name is foreign too, the sweep is refused.
- Any other foreign thing in the way of a name a sweep writes (a user's file named like one of our folders, a
  folder named like one of our files) is refused in one line before anything is written.

No torch here: the command line checks this before it loads anything.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from pyarrow import fs as pafs

from sweep.errors import UserError
from sweep.schemas import CATALOGUE_MARK, TABLES

if TYPE_CHECKING:
    from sweep.store import Store

# How catalogues began before they carried the mark: still ours, so they are updated in place.
OLD_CATALOGUE_START = "# results/\n\nWhat `python run_sweep.py` and `python -m sweep.train` write"
README = "README.md"
OWN_CATALOGUE = "_catalogue.md"  # where the catalogue goes when README.md is the user's

# Folders a sweep (or the report at its end) writes into, relative to the results root.
FOLDERS = (*TABLES, "_done", "_done/runs", "_done/tasks", "_failed", "_failed/runs", "_failed/tasks", "checkpoints",
           "_tune", "report")
# Single files a sweep writes at the root (README.md and _catalogue.md are settled by `catalogue_target`).
FILES = ("_lock.json",)


def is_ours(text: bytes) -> bool:
    """Whether `text` is a catalogue a sweep wrote (this version's, by its mark, an HTML comment invisible where
    Markdown is rendered; or an older one's)."""
    head = text[:4096].decode("utf-8", errors="replace")
    return head.startswith(CATALOGUE_MARK) or head.startswith(OLD_CATALOGUE_START)


def _infos(fs: pafs.FileSystem, base: str, rels: tuple[str, ...]) -> dict[str, pafs.FileInfo]:
    return dict(zip(rels, fs.get_file_info([f"{base}/{rel}" for rel in rels]), strict=True))


def check_nothing_in_the_way(fs: pafs.FileSystem, base: str, uri: str) -> None:
    """Refuse (UserError, one line) a results folder where something not ours sits at a name a sweep writes: a
    file where we make a folder, a folder where we write a file. One metadata call for all the names."""
    infos = _infos(fs, base, (*FOLDERS, *FILES, README, OWN_CATALOGUE))
    for rel in FOLDERS:
        if infos[rel].type not in (pafs.FileType.NotFound, pafs.FileType.Directory):
            raise UserError(f"{uri}/{rel} is a file that a sweep did not write, where it keeps its {rel}/ folder; "
                            "move it away, or use another --results")
    for rel in (*FILES, README, OWN_CATALOGUE):
        if infos[rel].type == pafs.FileType.Directory:
            raise UserError(f"{uri}/{rel} is a folder that a sweep did not make, where it writes its {rel} file; "
                            "move it away, or use another --results")
    catalogue_target(fs, base, uri)


def _read(fs: pafs.FileSystem, path: str) -> bytes | None:
    try:
        with fs.open_input_stream(path) as f:
            return f.read()
    except FileNotFoundError:
        return None


def catalogue_target(fs: pafs.FileSystem, base: str, uri: str) -> str:
    """Where the catalogue goes: README.md when absent or ours, else _catalogue.md when absent or ours; a
    UserError when both are the user's."""
    for rel in (README, OWN_CATALOGUE):
        text = _read(fs, f"{base}/{rel}")
        if text is None or is_ours(text):
            return rel
    raise UserError(f"{uri}/{README} and {uri}/{OWN_CATALOGUE} are files a sweep did not write; it replaces "
                    "neither (its tables' catalogue goes to one of them): move one away, or use another --results")


def write_catalogue(store: Store, text: str) -> str:
    """Write the catalogue `text` (which starts with CATALOGUE_MARK) where `catalogue_target` says, only when it
    differs from what is there; returns the relative path. Telling the user, on stderr, when README.md is theirs
    and so was left alone."""
    rel = catalogue_target(store.fs, store.base, store.uri)
    data = text.encode()
    if _read(store.fs, store.path(rel)) != data:
        store.write_bytes(rel, data)
    if rel != README:
        uri = store.uri
        print(f"{uri}/{README} is not a file a sweep wrote, so it is left as it is; the tables' catalogue is in "
              f"{uri}/{rel}", file=sys.stderr)
    return rel


def check_results_folder(location: str) -> None:
    """`check_nothing_in_the_way` for a results location as the user gave it (resolved: sweep.paths), before a
    Store exists; a location that does not exist yet has nothing in the way."""
    if "://" in location:
        fs, base = pafs.FileSystem.from_uri(location)
    else:
        fs, base = pafs.LocalFileSystem(), location
    if fs.get_file_info(base).type == pafs.FileType.Directory:
        check_nothing_in_the_way(fs, base.rstrip("/"), location.rstrip("/"))
