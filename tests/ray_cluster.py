"""Start and stop real Ray clusters on 127.0.0.1 for tests: `ray start` processes, no dashboard, fixed CPUs."""

from __future__ import annotations

import os
import secrets
import shutil
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


def start(cpus_per_node: list[int], temp_dir: str) -> str:
    """Start a head (first entry) and worker nodes; returns the address to pass to `--address`."""
    port = free_port()
    common = ["--node-ip-address", "127.0.0.1", "--object-store-memory", str(150 * 2**20), "--disable-usage-stats"]
    subprocess.run([RAY, "start", "--head", "--port", str(port), "--num-cpus", str(cpus_per_node[0]),
                    "--include-dashboard", "false", "--temp-dir", temp_dir, *common],
                   check=True, env=env(), capture_output=True, timeout=120)
    address = f"127.0.0.1:{port}"
    for cpus in cpus_per_node[1:]:
        subprocess.run([RAY, "start", "--address", address, "--num-cpus", str(cpus), *common],
                       check=True, env=env(), capture_output=True, timeout=120)
    return address


def stop(temp_dir: str) -> None:
    subprocess.run([RAY, "stop", "--force"], env=env(), capture_output=True, timeout=120)
    shutil.rmtree(temp_dir, ignore_errors=True)
