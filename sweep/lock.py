"""One driver per results folder: a lock file naming its holder (host, pid, process start time, command).

Two drivers on one folder would train and probe the same runs twice over, on two Ray clusters. The lock is
`<results>/_lock.json`, created exclusively on a local filesystem (O_EXCL). A lock whose holder is gone (same
host, and no process with that pid and start time) is stale and taken over; one held from another host cannot
be checked from here, so the message says how to remove it by hand. On object stores, which have no exclusive
create, the same check runs without the exclusivity: it catches a second driver started later, not one started
in the same instant.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from sweep.errors import UserError
from sweep.store import Store

LOCK = "_lock.json"


def _start_time(pid: int) -> str | None:
    """When process `pid` started, in a form that tells it apart from a later process given the same pid
    (Linux: field 22 of /proc/PID/stat); None where that cannot be read. Raises ProcessLookupError when no such
    process exists."""
    os.kill(pid, 0)  # ProcessLookupError: gone; PermissionError: someone else's, but alive
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _me() -> dict[str, object]:
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "started": _start_time(pid),
            "command": " ".join(sys.argv)[:200], "since": time.strftime("%Y-%m-%d %H:%M:%S")}


def holder_alive(holder: dict[str, object]) -> bool | None:
    """Whether the process that wrote `holder` still runs (None: on another host, so unknown)."""
    if not holder:
        return False  # empty or unreadable: written half by a driver that crashed
    if holder.get("host") != socket.gethostname():
        return None
    try:
        return _start_time(int(holder["pid"])) == holder.get("started")  # type: ignore[arg-type]
    except PermissionError:
        return True
    except (ProcessLookupError, KeyError, TypeError, ValueError):
        return False


def _read(store: Store) -> dict[str, object] | None:
    try:
        holder = json.loads(store.read_bytes(LOCK))
        return holder if isinstance(holder, dict) else {}
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}  # unreadable: a lock written half by a crashed driver; its holder cannot be alive


def _create(store: Store, payload: bytes) -> bool:
    """Create the lock file if absent; False when it already exists."""
    if "://" in store.uri:
        if store.exists(LOCK):
            return False
        store.write_bytes(LOCK, payload)
        return True
    os.makedirs(store.base, exist_ok=True)
    try:
        fd = os.open(store.path(LOCK), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as out:
        out.write(payload)
    return True


def acquire(store: Store) -> dict[str, object]:
    """Take the folder's lock or raise UserError naming its holder; a stale lock is taken over."""
    me = _me()
    payload = json.dumps(me).encode()
    for _ in range(3):
        if _create(store, payload):
            return me
        holder = _read(store)
        if holder is None:
            continue  # released between our two looks
        alive = holder_alive(holder)
        if alive is False:
            print(f"taking over the lock of a driver that is gone (pid {holder.get('pid')} on "
                  f"{holder.get('host')})", file=sys.stderr)
            store.delete(LOCK)
            continue
        where = store.path(LOCK)
        hint = ("wait for it to finish or stop it, or use another --results" if alive else
                f"if that driver is gone (its machine is down), delete {where}")
        raise UserError(f"results folder {store.uri} is in use by another driver (pid {holder.get('pid')} on "
                        f"host {holder.get('host')}, since {holder.get('since')}: {holder.get('command')}); {hint}")
    raise UserError(f"could not take the lock {store.path(LOCK)}: other drivers keep taking it; use another --results")


def release(store: Store, me: dict[str, object]) -> None:
    """Remove the lock if it is still ours."""
    if _read(store) == me:
        store.delete(LOCK)


@contextmanager
def holding(store: Store) -> Iterator[None]:
    """Hold the lock for the block. A local results folder that the lock itself created is removed again if
    nothing else was written into it (bad input found after the lock leaves no empty folder behind)."""
    created = "://" not in store.uri and not os.path.exists(store.base)
    me = acquire(store)
    try:
        yield
    finally:
        release(store, me)
        if created:
            with suppress(OSError):  # not empty: the sweep wrote results
                os.rmdir(store.base)
