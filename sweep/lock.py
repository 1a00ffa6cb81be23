"""One driver per results folder: a lock file naming its holder (host, pid, process start time, command).

Two drivers on one folder would train and probe the same runs twice over, on two Ray clusters. The lock is
`<results>/_lock.json`, created whole and exclusively on a local filesystem (a hard link of a complete file:
fails where the name exists). A lock whose holder is gone (same host, and no process with that pid and start
time), or one that cannot be read, is stale and taken over: under an flock of the results folder, re-read, then
replaced by a rename, so two drivers racing for it end with one holder; one held from another host cannot
be checked from here, so the message says how to remove it by hand. On object stores, which have no exclusive
create, the same check runs without the exclusivity: it catches a second driver started later, not one started
in the same instant.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from sweep import stopping
from sweep.errors import UserError
from sweep.store import Store

LOCK = "_lock.json"
_HELD: dict[str, int] = {}  # results folders whose lock this process holds -> nesting depth


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
    """Create the lock file, whole, if absent; False when it already exists.

    Locally the payload is written to a private temporary file first and then hard-linked to the lock's name:
    link() fails if the name exists, like O_EXCL, but the lock appears complete, so no other driver ever reads
    a half-written lock and mistakes it for a damaged one (the window in which two drivers could both hold it).
    """
    if "://" in store.uri:
        if store.exists(LOCK):
            return False
        store.write_bytes(LOCK, payload)
        return True
    os.makedirs(store.base, exist_ok=True)
    tmp = _private_copy(store, payload)
    try:
        os.link(tmp, store.path(LOCK))
    except FileExistsError:
        return False
    except OSError:  # a filesystem without hard links: an exclusive create, written at once
        try:
            fd = os.open(store.path(LOCK), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as out:
            out.write(payload)
    finally:
        with suppress(OSError):
            os.unlink(tmp)
    return True


def _private_copy(store: Store, payload: bytes) -> str:
    """`payload` in a hidden file of this process beside the lock (table readers skip names starting with '.')."""
    tmp = store.path(f".{LOCK}.{os.getpid()}.{uuid.uuid4().hex[:8]}")
    with open(tmp, "wb") as out:
        out.write(payload)
    return tmp


@contextmanager
def _takeover_guard(store: Store) -> Iterator[None]:
    """Serialise takeovers of one folder's lock among the drivers of this machine: an exclusive flock on the
    results folder itself (no extra file to go stale: the kernel drops the flock when its holder dies).
    Object stores have no such thing; there the takeover stays a plain replace."""
    if "://" in store.uri:
        yield
        return
    fd = os.open(store.base, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the flock


def _take_over(store: Store, seen: dict[str, object], payload: bytes, me: dict[str, object]) -> bool:
    """Replace a stale lock (`seen`) by ours, atomically: under the takeover guard, the lock is read again and
    replaced (rename over it, so the name never goes missing) only if it still shows a holder that is gone, then
    read back. True when we hold it; False when another driver took it first (the caller looks again)."""
    with _takeover_guard(store):
        now = _read(store)
        if now is None or now != seen or holder_alive(now) is not False:
            return False  # released, or taken over by someone else, since our look
        if "://" in store.uri:
            store.write_bytes(LOCK, payload)
        else:
            os.replace(_private_copy(store, payload), store.path(LOCK))
        return _read(store) == me


def acquire(store: Store) -> dict[str, object]:
    """Take the folder's lock or raise UserError naming its holder; a stale or damaged lock is taken over.

    Every interleaving of drivers ends with one holder: the fresh lock is created whole and exclusively
    (`_create`), a takeover is one replace under a guard that only one driver passes at a time, re-checked
    after (`_take_over`), and the lock's name never goes missing in between (no delete-then-create)."""
    me = _me()
    payload = json.dumps(me).encode()
    for _ in range(5):
        if _create(store, payload):
            return me
        holder = _read(store)
        if holder is None:
            continue  # released between our two looks
        alive = holder_alive(holder)
        if alive is False:
            if _take_over(store, holder, payload, me):
                print(f"taking over the lock of a driver that is gone (pid {holder.get('pid')} on "
                      f"{holder.get('host')})", file=sys.stderr)
                return me
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
    nothing else was written into it (bad input found after the lock leaves no empty folder behind).

    Re-entrant within a process: the command line holds the lock from before the sweep until its report is
    written, around the engine's own `holding`, which then holds nothing more (one driver, one lock)."""
    if store.uri in _HELD:
        _HELD[store.uri] += 1
        try:
            yield
        finally:
            _HELD[store.uri] -= 1
        return
    created = "://" not in store.uri and not os.path.exists(store.base)
    me: dict[str, object] | None = None
    try:
        # a stop signal between creating the lock and noting it, or in the middle of the release, would leave the
        # lock behind: both run with the signals held, the signal raised after (as Interrupted), lock released
        with stopping.held():
            me = acquire(store)
            _HELD[store.uri] = 1
        yield
    finally:
        if me is not None:
            del _HELD[store.uri]
            with stopping.held():
                release(store, me)
                if created:
                    with suppress(OSError):  # not empty: the sweep wrote results
                        os.rmdir(store.base)
