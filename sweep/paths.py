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


def check_results_root(location: str, flag: str = "--results") -> None:
    """Refuse, as one UserError, a results location that is not a folder of its own: empty (it would mean the
    current folder), the filesystem's root, or a repository's top folder (one holding .git: a sweep would put
    its tables, checkpoints and catalogue among the project's files). Creates nothing."""
    if not location.strip():
        raise UserError(f"{flag} is empty; give a folder for the results (it is created if missing), e.g. "
                        f"{flag} results")
    if "://" in location:
        scheme, _, rest = location.partition("://")
        if scheme != "file":
            return
        location = rest
    path = os.path.realpath(resolve_location(location))
    if path == os.path.realpath(os.sep):
        raise UserError(f"{flag} {location!r} is the filesystem's root; give a folder of its own for the results")
    if os.path.exists(os.path.join(path, ".git")):
        raise UserError(f"{flag} {location!r} is the top folder of a repository ({path} holds .git); give a folder "
                        f"of its own for the results, e.g. {flag} {os.path.join(location, 'results')}")
