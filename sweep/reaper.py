"""The private Ray cluster's undertaker: stops every process of it when its driver dies without cleaning up.

A driver killed with SIGKILL cannot stop the cluster it started. Ray's own processes notice late: its agents
and workers poll for their raylet and linger for up to two minutes, one agent listening on a port meanwhile.
So `init_ray` starts this small watcher in its own session (a Ctrl-C in the terminal does not reach it). While
the driver lives it notes, twice a second, the process tree under the cluster's head processes; once the driver
is gone it stops that tree, and any process still carrying the sweep's mark in its environment (workers started
after the last look), with SIGTERM and then SIGKILL, and removes the cluster's session folder. A driver that
ends normally shuts Ray down itself and stops this watcher first.

    python -m sweep.reaper DRIVER_PID MARK SESSION_DIR HEAD_PID...
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time

import psutil

MARK = "MEMLOC_SWEEP_CLUSTER"  # environment variable the driver sets before starting Ray; Ray's processes inherit it


def _tree(pids: set[int]) -> set[psutil.Process]:
    """The processes `pids` and all their descendants that are alive now."""
    found = set()
    for pid in pids:
        try:
            process = psutil.Process(pid)
            found.add(process)
            found.update(process.children(recursive=True))
        except psutil.Error:
            continue
    return found


def _marked(mark: str) -> set[psutil.Process]:
    found = set()
    for process in psutil.process_iter():
        try:
            if process.environ().get(MARK) == mark:
                found.add(process)
        except psutil.Error:
            continue
    return found


def stop(processes: set[psutil.Process], grace: float = 3.0) -> None:
    """SIGTERM, then SIGKILL for whatever is still up after `grace` seconds."""
    for process in processes:
        try:
            process.terminate()
        except psutil.Error:
            continue
    _, alive = psutil.wait_procs(list(processes), timeout=grace)
    for process in alive:
        try:
            process.kill()
        except psutil.Error:
            continue


def remove_session(session_dir: str) -> None:
    """Remove a cluster's session folder, and Ray's `session_latest` link when it points there."""
    shutil.rmtree(session_dir, ignore_errors=True)
    latest = os.path.join(os.path.dirname(session_dir), "session_latest")
    if os.path.islink(latest) and os.path.realpath(latest) == os.path.realpath(session_dir):
        os.unlink(latest)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def watch(driver: int, mark: str, session_dir: str, heads: set[int], poll: float = 0.5) -> None:
    """Note the cluster's processes while `driver` lives; when it is gone, stop them and remove the session."""
    me = os.getpid()
    known: set[psutil.Process] = set()
    while _alive(driver):
        known = {p for p in _tree(heads) | known if p.is_running()}
        time.sleep(poll)
    stop({p for p in _tree({p.pid for p in known}) | known | _marked(mark) if p.pid != me})
    remove_session(session_dir)


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # the driver ended normally and cleaned up itself
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    driver, mark, session_dir, *heads = argv
    watch(int(driver), mark, session_dir, {int(h) for h in heads})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
