"""Start and stop real Ray clusters on 127.0.0.1 for tests: `ray start` processes, no dashboard, fixed CPUs."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

RAY = str(Path(sys.executable).with_name("ray"))
# Token auth, as Ray's own local clusters use it, with a token of this test session's own: every `ray start`
# and every driver gets it through the environment, so nothing depends on what ~/.ray holds on this machine.
TOKEN = secrets.token_hex(32)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env() -> dict[str, str]:
    return {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_DEDUP_LOGS": "0", "PYTHONUNBUFFERED": "1",
            "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": TOKEN}


def start(cpus_per_node: list[int], temp_dir: str, worker_resource: str | None = None) -> str:
    """Start a head (first entry) and worker nodes; returns the address to pass to `--address`.

    `worker_resource` names a custom resource given to every worker node: it appears on their raylets'
    command lines, which is how `kill_nodes` finds them.
    """
    port = free_port()
    common = ["--node-ip-address", "127.0.0.1", "--object-store-memory", str(150 * 2**20), "--disable-usage-stats"]
    subprocess.run([RAY, "start", "--head", "--port", str(port), "--num-cpus", str(cpus_per_node[0]),
                    "--include-dashboard", "false", "--temp-dir", temp_dir, *common],
                   check=True, env=env(), capture_output=True, timeout=120)
    address = f"127.0.0.1:{port}"
    for cpus in cpus_per_node[1:]:
        extra = ["--resources", json.dumps({worker_resource: 1})] if worker_resource else []
        subprocess.run([RAY, "start", "--address", address, "--num-cpus", str(cpus), *extra, *common],
                       check=True, env=env(), capture_output=True, timeout=120)
    return address


def kill_nodes(worker_resource: str) -> list[int]:
    """SIGKILL the raylet of every node started with `worker_resource`, as a machine failure would end it.

    The node's workers and agents share its fate. Returns the killed process ids (empty: nothing matched).
    """
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            args = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # not a process, or it ended meanwhile
            continue
        if "raylet/raylet" in args and worker_resource in args:
            pids.append(int(entry.name))
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    return pids


def stop(temp_dir: str) -> None:
    subprocess.run([RAY, "stop", "--force"], env=env(), capture_output=True, timeout=120)
    shutil.rmtree(temp_dir, ignore_errors=True)
