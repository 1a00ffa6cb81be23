"""Locations the user types (results, data and report folders): made absolute where they were typed, and
checked for writability before any work starts. No torch here: the report's CLI uses it too."""

from __future__ import annotations

import os

import pyarrow as pa
from pyarrow import fs as pafs

from sweep.errors import UserError


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


def check_writable(location: str, flag: str) -> None:
    """Refuse, as one UserError naming `flag`, an output folder this process could not write; creates nothing.

    A local path (or a file:// URI) must be a folder or be creatable: its nearest existing ancestor must be a
    folder this process may write into. Any other URI must name a filesystem pyarrow understands (whether the
    bucket is writable is only known on the first write). Call it before any work starts, so bad input fails
    in one line instead of after Ray started.
    """
    if "://" in location:
        try:
            filesystem, local = pafs.FileSystem.from_uri(location)
        except (ValueError, OSError, pa.ArrowException) as exc:  # pyarrow raises its own (ArrowInvalid, ...)
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            if "Unrecognized filesystem type" in reason:
                raise UserError(f"{flag} {location!r} has an unsupported URI scheme; accepted: file://, s3://, "
                                "gs://, hdfs:// (what pyarrow understands) or a local path") from exc
            raise UserError(f"{flag} {location!r} cannot be opened by pyarrow: {reason}") from exc
        if not isinstance(filesystem, pafs.LocalFileSystem):
            return
        location = local
    path = resolve_location(location)
    existing = path
    while not os.path.lexists(existing):  # lexists: a dangling link is "something there", not a free name
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        if existing == path:
            what = "is a file" if os.path.isfile(path) else "is not a folder"
            raise UserError(f"{flag} {path} {what}; give a folder (it is created if missing)")
        raise UserError(f"{flag} {path} cannot be created under a file ({existing} is not a folder)")
    if not os.access(existing, os.W_OK | os.X_OK):
        where = "" if existing == path else f" on {existing}"
        raise UserError(f"{flag} {path} is not writable (permission denied{where})")
