"""Start and stop real Ray clusters on 127.0.0.1 for tests: `ray start` processes, no dashboard, fixed CPUs."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

RAY = str(Path(sys.executable).with_name("ray"))
# Token auth, as Ray's own local clusters use it, with a token of this test session's own: every `ray start`
# and every driver gets it through the environment, so nothing depends on what ~/.ray holds on this machine.
TOKEN = secrets.token_hex(32)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env(loopback: bool = True) -> dict[str, str]:
    """The environment of a cluster's `ray start` and of its drivers.

    `loopback`: RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 keeps a single node on 127.0.0.1 (otherwise Ray swaps a
    requested 127.0.0.1 for the machine's outward address and listens on every interface), as the engine does
    for its private cluster. Ray refuses a second node in that mode, so multi-node clusters go without it.
    """
    extra = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"} if loopback else {}
    return {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_DEDUP_LOGS": "0", "PYTHONUNBUFFERED": "1",
            "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": TOKEN, **extra}


def start(cpus_per_node: list[int], temp_dir: str, worker_resource: str | None = None) -> str:
    """Start a head (first entry) and worker nodes; returns the address to pass to `--address`.

    `worker_resource` names a custom resource given to every worker node: it appears on their raylets'
    command lines, which is how `kill_nodes` finds them. A single node listens on loopback only; drivers of a
    multi-node cluster use `env(loopback=False)`.
    """
    node_env = env(loopback=len(cpus_per_node) == 1)
    port = free_port()
    common = ["--node-ip-address", "127.0.0.1", "--object-store-memory", str(150 * 2**20), "--disable-usage-stats"]
    subprocess.run([RAY, "start", "--head", "--port", str(port), "--num-cpus", str(cpus_per_node[0]),
                    "--include-dashboard", "false", "--temp-dir", temp_dir, *common],
                   check=True, env=node_env, capture_output=True, timeout=120)
    address = f"127.0.0.1:{port}"
    for cpus in cpus_per_node[1:]:
        extra = ["--resources", json.dumps({worker_resource: 1})] if worker_resource else []
        subprocess.run([RAY, "start", "--address", address, "--num-cpus", str(cpus), *extra, *common],
                       check=True, env=node_env, capture_output=True, timeout=120)
    return address


def _processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line) of every process visible now."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):  # it ended meanwhile
            continue
        table[int(entry.name)] = (ppid, args)
    return table


def tree(roots: set[int], table: dict[int, tuple[int, str]] | None = None) -> set[int]:
    """The given processes and all their descendants."""
    table = table if table is not None else _processes()
    found, frontier = set(roots), set(roots)
    while frontier:
        frontier = {pid for pid, (ppid, _) in table.items() if ppid in frontier} - found
        found |= frontier
    return found


def kill_nodes(worker_resource: str) -> list[int]:
    """SIGKILL the raylet of every node started with `worker_resource`, as a machine failure would end it.

    The node's workers and agents share its fate. Returns the killed process ids (empty: nothing matched).
    """
    pids = [pid for pid, (_, args) in _processes().items() if "raylet/raylet" in args and worker_resource in args]
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    return pids


def cluster_pids(temp_dir: str) -> set[int]:
    """Every process of the cluster started with `temp_dir`: its Ray processes name that folder on their command
    lines (GCS, raylets, monitors, dashboard), and workers and agents are their children."""
    table = _processes()
    ours, pid = set(), os.getpid()
    while pid in table and pid not in ours:  # this process and its ancestors may name the folder too
        ours.add(pid)
        pid = table[pid][0]
    return tree({pid for pid, (_, args) in table.items() if temp_dir in args} - ours, table) - ours


def stop(temp_dir: str) -> None:
    """Stop this cluster's processes only (SIGTERM, then SIGKILL after 10 s), never every Ray on the machine as
    `ray stop --force` would, a user's running sweep included."""
    pids = cluster_pids(temp_dir)
    for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and (pids := {p for p in pids if _alive(p)}):
            time.sleep(0.1)
        if not pids:
            break
    shutil.rmtree(temp_dir, ignore_errors=True)


def _alive(pid: int) -> bool:
    """Running (a zombie of an exited child counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False
