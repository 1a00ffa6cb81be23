"""The sweep as a user starts it: `run_sweep.py` typed in a fresh folder with default paths, its own private Ray
(no --address), on a terminal; Ctrl-C and a rerun; an unreachable cluster; `import ray` first.

One uninterrupted smoke sweep (the module fixture) is the reference the interrupted one is compared with.
"""

from __future__ import annotations

import contextlib
import os
import pty
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest

from tests import ray_cluster
from tests.test_engine import KEYS, check_complete

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = str(ROOT / "run_sweep.py")
pytestmark = pytest.mark.slow


def short_tmp() -> Path:
    """A folder for Ray's session files with a short path: its socket paths must stay under 108 bytes."""
    return Path(tempfile.mkdtemp(prefix="r", dir="/tmp"))


def user_env(ray_tmp: Path) -> dict[str, str]:
    """A user's environment: no Ray variables set (RAY_TMPDIR only keeps this run's Ray session folder apart
    so the test can look inside it), the repository importable as after `pip install -e .`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    return {**env, "RAY_TMPDIR": str(ray_tmp), "PYTHONPATH": str(ROOT)}


@pytest.fixture
def ray_tmp():
    path = short_tmp()
    yield path
    shutil.rmtree(path, ignore_errors=True)


def listening_sockets(pids: set[int]) -> list[tuple[int, str]]:
    """(pid, local address) of every TCP socket in LISTEN state held by one of `pids`."""
    listening = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":  # TCP_LISTEN
                listening[fields[9]] = decode_address(fields[1])
    found = []
    for pid in pids:
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in listening:
                found.append((pid, listening[target[8:-1]]))
    return found


def decode_address(hex_addr: str) -> str:
    """/proc/net/tcp{,6} 'ADDR:PORT' (each 32-bit word of ADDR in host byte order) as 'ip:port'."""
    addr, port = hex_addr.split(":")
    raw = b"".join(bytes.fromhex(addr[i:i + 8])[::-1] for i in range(0, len(addr), 8))
    family = socket.AF_INET if len(raw) == 4 else socket.AF_INET6
    return f"{socket.inet_ntop(family, raw)}:{int(port, 16)}"


def is_loopback(address: str) -> bool:
    host = address.rsplit(":", 1)[0]
    return host.startswith("127.") or host == "::1" or host.startswith("::ffff:127.")


def run_on_terminal(args: list[str], cwd: Path, env: dict[str, str], watch=None, timeout: float = 600):
    """Run a command on a pseudo-terminal, as typed by a person; `watch(pid)` is called every 0.5 s while it
    runs. Returns (exit code, everything it printed)."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(args, cwd=cwd, env=env, stdin=follower, stdout=follower, stderr=follower,
                            start_new_session=True)
    os.close(follower)
    out, deadline, last_watch = b"", time.monotonic() + timeout, 0.0
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(leader, 65536)
                except OSError:  # the terminal closed: the command ended
                    chunk = b""
                out += chunk
                if not chunk and proc.poll() is not None:
                    break
            elif proc.poll() is not None:
                break
            if watch is not None and time.monotonic() - last_watch > 0.5:
                watch(proc.pid)
                last_watch = time.monotonic()
        else:
            pytest.fail(f"{args} still running after {timeout}s: {out[-2000:]!r}")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        os.close(leader)
    return proc.wait(), out.decode(errors="replace")


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    """`python run_sweep.py --grid smoke` from an empty folder, default paths, on a terminal, no --address;
    the listening sockets of its whole process tree are sampled while it runs."""
    cwd = tmp_path_factory.mktemp("user")
    ray_tmp = short_tmp()
    seen: dict[str, set] = {"sockets": set(), "commands": set()}

    def watch(pid: int) -> None:
        pids = ray_cluster.tree({pid})
        seen["sockets"] |= set(listening_sockets(pids))
        for p in pids:
            with contextlib.suppress(OSError):
                seen["commands"].add(Path(f"/proc/{p}/cmdline").read_bytes().split(b"\0")[0].decode())

    start = time.monotonic()
    code, out = run_on_terminal([sys.executable, SCRIPT, "--grid", "smoke"], cwd, user_env(ray_tmp), watch)
    yield {"cwd": cwd, "ray_tmp": ray_tmp, "code": code, "out": out, "seen": seen,
           "seconds": time.monotonic() - start}
    shutil.rmtree(ray_tmp, ignore_errors=True)


def test_default_paths_resolve_where_the_user_runs_the_command(fresh):
    assert fresh["code"] == 0, fresh["out"][-4000:]
    results = fresh["cwd"] / "results"
    check_complete(results)
    assert (results / "report" / "index.html").exists()
    written = [p for p in fresh["cwd"].rglob("*") if p.suffix in (".parquet", ".pt")]
    assert written and all(p.is_relative_to(results) for p in written)
    # Nothing of ours under Ray's session folder (Tune trials run in their own folders there) or Tune's default.
    for elsewhere in (fresh["ray_tmp"], Path.home() / "ray_results"):
        assert not [p for p in elsewhere.rglob("*") if p.suffix in (".parquet", ".pt")], elsewhere
    print(f"smoke grid from a fresh folder took {fresh['seconds']:.0f}s")


def test_private_cluster_listens_on_loopback_only(fresh):
    sockets, commands = fresh["seen"]["sockets"], fresh["seen"]["commands"]
    # The sampling saw the real cluster: Ray's own servers and the trial workers were in the process tree.
    assert any(c.endswith("gcs_server") for c in commands) and any(c.endswith("raylet") for c in commands)
    assert len({addr for _, addr in sockets}) >= 4, sockets
    outward = [(pid, addr) for pid, addr in sockets if not is_loopback(addr)]
    assert not outward, outward
    assert not any(addr.endswith(":8265") for _, addr in sockets)  # no dashboard


def test_progress_is_drawn_in_place_on_a_terminal(fresh):
    """Replayed on a model terminal (tests/vt.py) of the size the display drew for (the pseudo-terminal reports
    none: 80 x 25): drawn many times, and what stays on screen and in its scroll-back is one display."""
    import re

    from tests.test_engine import smoke_counts
    from tests.vt import Screen

    out = fresh["out"]
    assert out.count("| analyses ") >= 5, out[-3000:]  # redrawn many times ...
    screen = Screen(80, 25).feed(out)
    headers = [line for line in screen.scrolled + screen.lines() if re.match(r"runs \d+/\d+ \| analyses ", line)]
    runs, tasks = smoke_counts()
    assert len(headers) == 1, headers  # ... in place (the last one is left on screen)
    assert headers[0].startswith(f"runs {runs}/{runs} | analyses {tasks}/{tasks} | ETA "), headers
    assert not [line for line in screen.wraps if line.startswith(("runs ", "  "))], screen.wraps  # cut, not wrapped
    assert "nan" not in out


def test_tune_experiment_is_one_stable_folder_with_trials_named_by_run(fresh):
    tune_dir = fresh["cwd"] / "results" / "_tune"
    assert [p.name for p in tune_dir.iterdir()] == ["sweep-smoke"]
    runs = pd.concat([pd.read_parquet(fresh["cwd"] / "results" / t) for t in ("runs", "aux_runs")])
    trial_dirs = {p.name for p in (tune_dir / "sweep-smoke").iterdir() if p.is_dir()}
    assert trial_dirs == set(runs["run_id"])


def interrupt(results: Path, env: dict[str, str], cwd: Path, group: bool, signum: int):
    """Start the smoke sweep, wait until its trainings have saved three new epochs, send `signum` (to the whole
    process group, as a terminal's Ctrl-C does, or to the driver alone, as `kill` does); returns (exit code,
    everything printed)."""
    before = set(results.glob("checkpoints/*/epoch_*.pt"))
    proc = subprocess.Popen([sys.executable, SCRIPT, "--grid", "smoke"], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and len(set(results.glob("checkpoints/*/epoch_*.pt")) - before) < 3:
        time.sleep(0.1)
    (os.killpg if group else os.kill)(proc.pid, signum)
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out + err


def test_ctrl_c_and_sigterm_stop_honestly_and_the_rerun_completes_the_same_rows(fresh, tmp_path, ray_tmp):
    """SIGINT to the terminal's process group mid-training: exit 130, one line saying what is finished and how
    to resume, no report, no process of the sweep left; then SIGTERM to the driver alone during the rerun: exit
    143; the same command once more finishes with exactly the uninterrupted run's rows."""
    env, results = user_env(ray_tmp), tmp_path / "results"
    for signum, group in ((signal.SIGINT, True), (signal.SIGTERM, False)):
        code, output = interrupt(results, env, tmp_path, group, signum)
        assert code == 128 + signum, output[-3000:]
        last = output.strip().splitlines()[-1]
        name = signal.Signals(signum).name
        assert last.startswith(f"interrupted by {name}: ") and "rerun the same command to resume" in last, output
        # ordinary runs write runs/, the out-of-sample and SSFT runs aux_runs/: the closing line counts both
        finished = sum(len(list((results / t).glob("*.parquet"))) for t in ("runs", "aux_runs"))
        assert f"{finished} of 9 runs" in last  # 8 trainings and the pack of subset models
        assert not (results / "report").exists()
        deadline = time.monotonic() + 30
        while ray_cluster.cluster_pids(str(ray_tmp)) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not ray_cluster.cluster_pids(str(ray_tmp)), "processes of the stopped sweep are still running"
    assert finished < 4
    code, again = run_on_terminal([sys.executable, SCRIPT, "--grid", "smoke"], tmp_path, env)
    assert code == 0, again[-3000:]
    check_complete(results)
    for table, key in KEYS.items():
        ours = pd.read_parquet(results / table)[key]
        reference = pd.read_parquet(fresh["cwd"] / "results" / table)[key]
        assert len(ours) == len(reference), table
        pd.testing.assert_frame_equal(ours.sort_values(key).reset_index(drop=True),
                                      reference.sort_values(key).reset_index(drop=True))
    assert [p.name for p in (results / "_tune").iterdir()] == ["sweep-smoke"]  # the reruns continued it


def test_unreachable_address_fails_fast_in_one_line(tmp_path, ray_tmp):
    start = time.monotonic()
    proc = subprocess.run([sys.executable, SCRIPT, "--grid", "smoke", "--address", "127.0.0.1:1"], cwd=tmp_path,
                          env=user_env(ray_tmp), capture_output=True, text=True, timeout=60)
    assert time.monotonic() - start < 30
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot reach a Ray cluster at 127.0.0.1:1" in lines[0], proc.stderr
    assert not (tmp_path / "results").exists()


def test_importing_ray_before_the_engine_still_starts_a_private_cluster(tmp_path, ray_tmp):
    code = ("import ray\nfrom sweep.engine import Options, init_ray\ninit_ray(Options())\n"
            "print(ray.get(ray.remote(lambda: 42).remote()), ray.get_runtime_context().gcs_address)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=user_env(ray_tmp), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    answer, gcs = proc.stdout.split()
    assert answer == "42" and gcs.startswith("127.0.0.1:")


def test_report_cli_resolves_a_relative_results_folder(fresh, ray_tmp):
    """`python -m analyses.report --results results` from the folder that holds them."""
    proc = subprocess.run([sys.executable, "-m", "analyses.report", "--results", "results", "--out", "page"],
                          cwd=fresh["cwd"], env=user_env(ray_tmp), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    page = fresh["cwd"] / "page" / "index.html"
    assert proc.stdout.strip() == str(page) and page.exists()


def test_a_second_driver_is_refused_and_a_killed_one_leaves_nothing_running(tmp_path, ray_tmp):
    """While a sweep trains, the same command in a second terminal is refused in one line (exit 2). Then
    `kill -9` of the first driver: within 30 s no process of its cluster is left and its Ray session folder is
    gone; the rerun takes the dead driver's lock over and completes."""
    env, results = user_env(ray_tmp), tmp_path / "results"
    first = subprocess.Popen([sys.executable, SCRIPT, "--grid", "smoke"], cwd=tmp_path, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not list(results.glob("checkpoints/*/epoch_004.pt")):
        time.sleep(0.1)
    second = subprocess.run([sys.executable, SCRIPT, "--grid", "smoke"], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=120)
    assert second.returncode == 2, second.stdout + second.stderr
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1 and f"is in use by another driver (pid {first.pid} on host" in lines[0], lines
    cluster = ray_cluster.tree({first.pid}) - {first.pid}
    sessions = list(ray_tmp.rglob("session_2*"))
    assert len(cluster) >= 4 and len(sessions) == 1, (cluster, sessions)
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (left := {p for p in cluster if ray_cluster._alive(p)}
                                           | ray_cluster.cluster_pids(str(ray_tmp))):
        time.sleep(0.5)
    assert not left, [Path(f"/proc/{p}/cmdline").read_bytes()[:80] for p in left]
    assert not sessions[0].exists()
    code, again = run_on_terminal([sys.executable, SCRIPT, "--grid", "smoke", "--no-report"], tmp_path, env)
    assert code == 0, again[-3000:]
    assert "taking over the lock of a driver that is gone" in again
    check_complete(results)
