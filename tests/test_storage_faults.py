"""A full disk is one line and leaves no temporary file; a killed writer's leftovers go with the next sweep; stop
signals wait out Ray's start-up and shutdown.

The faults come from the store's test hook (sweep.store.FAULT_ENV), which Ray's workers inherit.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from sweep import store as store_module
from sweep.errors import Interrupted
from sweep.stopping import held, ignore_further
from sweep.store import FAULT_ENV, Store

ROOT = Path(__file__).resolve().parents[1]
TINY = """[[runs]]
dataset = "digits"
arch = "mlp"
variant = "standard"
noise = 0.1
seed = 0
epochs = 3
[analysis]
rewind_epochs = [0, 2]
retrain_epochs = 1
"""


@pytest.fixture
def fault(monkeypatch):
    """Set the hook for this process, with a fresh byte count."""
    monkeypatch.setattr(store_module, "_fault_budget_used", [0])

    def set_hook(spec: str) -> None:
        monkeypatch.setenv(FAULT_ENV, spec)

    return set_hook


def test_a_write_that_fills_the_disk_raises_and_leaves_neither_file(tmp_path, fault):
    store = Store(str(tmp_path))
    fault("ENOSPC:10:checkpoints/")
    store.write_bytes("checkpoints/a/ok.pt", b"12345")  # within the budget
    with pytest.raises(OSError) as info:
        store.save_torch("checkpoints/a/state.pt", {"x": list(range(1000))})
    assert info.value.errno == errno.ENOSPC and "No space left on device" in str(info.value)
    assert sorted(p.name for p in (tmp_path / "checkpoints" / "a").iterdir()) == ["ok.pt"]  # no .tmp-*, no state.pt
    store.write_bytes("epochs/r.parquet", b"x" * 100)  # paths the hook does not name are unaffected
    assert (tmp_path / "epochs" / "r.parquet").stat().st_size == 100


def test_leftover_temporaries_of_ours_are_removed_and_nothing_else(tmp_path):
    ours = [tmp_path / "checkpoints" / "r" / ".tmp-0123abcd-state.pt", tmp_path / "epochs" / ".tmp-ffffffff-r.parquet",
            tmp_path / ".tmp-89abcdef-README.md"]
    others = [tmp_path / "checkpoints" / "r" / "epoch_000.pt", tmp_path / ".tmp-notours-x", tmp_path / "tmp-0123abcd-x",
              tmp_path / "epochs" / ".tmp-0123ABCD-r.parquet", tmp_path / "notes.txt"]
    for path in [*ours, *others]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"partial")
    removed = Store(str(tmp_path)).remove_leftover_temporaries()
    assert sorted(removed) == sorted(str(p.relative_to(tmp_path)) for p in ours)
    assert not any(p.exists() for p in ours) and all(p.exists() for p in others)


def test_stop_signals_wait_for_the_end_of_a_held_step_and_then_stop(monkeypatch):
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Interrupted) as info, held():
        os.kill(os.getpid(), signal.SIGTERM)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # as ray.init installs its own handler
        reached = True
    assert reached and info.value.signum == signal.SIGTERM and info.value.exit_code == 143
    assert signal.getsignal(signal.SIGTERM) is before  # put back over the step's own
    try:
        ignore_further()
        os.kill(os.getpid(), signal.SIGINT)  # ignored: no KeyboardInterrupt
    finally:
        signal.signal(signal.SIGTERM, before)
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.mark.slow
def test_a_full_disk_during_training_is_one_failed_line_exit_1_and_no_temporary_file(tmp_path):
    """A real sweep (digits MLP, 3 epochs, its rewind probes) on its own local Ray cluster, whose checkpoint
    writes hit ENOSPC in the training worker: one FAILED training line, exit 1, no traceback, no .tmp-* left;
    the same command on a 'freed' disk then finishes, and removes a killed writer's leftover first."""
    grid = tmp_path / "tiny.toml"
    grid.write_text(TINY)
    results = tmp_path / "results"
    ray_tmp = Path(os.path.join("/tmp", f"rf{os.getpid()}"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(RAY_TMPDIR=str(ray_tmp), PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    command = [sys.executable, str(ROOT / "run_sweep.py"), "--grid", str(grid), "--results", str(results),
               "--only", "rewind", "--no-report"]
    proc = subprocess.run(command, cwd=tmp_path, env={**env, FAULT_ENV: "ENOSPC:100000:checkpoints/"},
                          capture_output=True, text=True, timeout=400)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output[-3000:]
    failed = sorted({line for line in proc.stderr.splitlines() if line.startswith("FAILED")})
    assert len(failed) == 1 and failed[0].startswith("FAILED training digits-mlp-standard-"), output[-3000:]
    assert "OSError: [Errno 28] No space left on device" in failed[0]
    assert "Traceback" not in output and "TuneError" not in output
    assert not list(results.rglob(".tmp-*"))
    leftover = results / "epochs" / ".tmp-0123abcd-killed.parquet"
    leftover.parent.mkdir(parents=True, exist_ok=True)
    leftover.write_bytes(b"partial")
    again = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=400)
    assert again.returncode == 0, (again.stdout + again.stderr)[-3000:]
    assert not list(results.rglob(".tmp-*"))


def _sweep(tmp_path: Path, results: Path, fault: str | None = None) -> subprocess.CompletedProcess:
    """The TINY grid's rewind probes as a real sweep on its own local Ray cluster, the store's fault hook set to
    `fault` (inherited by Ray's workers) when given."""
    grid = tmp_path / "tiny.toml"
    grid.write_text(TINY)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_") and k != FAULT_ENV}
    env.update(RAY_TMPDIR=os.path.join("/tmp", f"rf{os.getpid()}"), PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    if fault:
        env[FAULT_ENV] = fault
    command = [sys.executable, str(ROOT / "run_sweep.py"), "--grid", str(grid), "--results", str(results),
               "--only", "rewind", "--no-report"]
    return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=400)


def _failed_lines(proc: subprocess.CompletedProcess) -> list[str]:
    return sorted({line for line in proc.stderr.splitlines() if line.startswith("FAILED")})


def _kept_logs(proc: subprocess.CompletedProcess) -> Path:
    """The logs folder of the Ray session a failed sweep keeps and names ('worker logs (tracebacks): ...')."""
    logs = [line.split(": ", 1)[1] for line in proc.stderr.splitlines() if line.startswith("worker logs")]
    assert len(logs) == 1, proc.stderr[-3000:]
    return Path(logs[0])


def test_only_a_storage_hiccup_is_retried_never_a_full_or_read_only_disk():
    """Ray checks an analysis task's retry allowlist with isinstance and takes no predicate: `Transient` is that
    allowlist, so a full disk (and a quota, a read-only disk) reaches the driver at the first failure."""
    from sweep.engine import Transient, _probe_task

    assert _probe_task._default_options["retry_exceptions"] == [Transient]
    for code in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
        assert not isinstance(OSError(code, os.strerror(code), "/r/x"), Transient)
    assert isinstance(OSError(errno.EIO, os.strerror(errno.EIO), "/r/x"), Transient)
    assert isinstance(OSError("a pyarrow error without an errno"), Transient)
    assert not isinstance(ValueError("a bug"), Transient) and not isinstance("not an error", Transient)


@pytest.mark.slow
def test_a_full_disk_in_the_drivers_writes_and_in_analysis_tasks_is_one_line_each_and_no_temporary_file(tmp_path):
    """Three calls of one sweep on one folder. (1) The catalogue (README.md, written by the driver through the
    store) hits ENOSPC: one `error: writing the results failed` line, exit 1. (2) Every write of the rewind
    tasks' table hits ENOSPC in the Ray workers: the training finishes, each task is one FAILED line after its
    first try (no resubmission in Ray's driver log), exit 1. (3) On a 'freed' disk every task runs.
    No call leaves a traceback or a .tmp-* file. (The report is written by analyses.report with pathlib,
    matplotlib and pandas, not through the store, so the hook does not reach it.)"""
    from sweep.grids import load_grid
    from sweep.probes.rewind import group_names

    results = tmp_path / "results"
    catalogue = _sweep(tmp_path, results, fault="ENOSPC:0:README.md")
    output = catalogue.stdout + catalogue.stderr
    assert catalogue.returncode == 1, output[-3000:]
    errors = [line for line in catalogue.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: writing the results failed: OSError: [Errno 28] No space left on device: "
                      f"'{results}/README.md'; free space or fix the folder, then rerun the same command"], output
    assert "Traceback" not in output and not list(results.rglob(".tmp-*")) and not (results / "README.md").exists()

    tasks = _sweep(tmp_path, results, fault="ENOSPC:0:rewinding/")
    output = tasks.stdout + tasks.stderr
    assert tasks.returncode == 1, output[-3000:]
    cfg = load_grid(str(tmp_path / "tiny.toml")).runs[0]
    groups = group_names(cfg)
    assert len(groups) > 1
    assert _failed_lines(tasks) == sorted(
        f"FAILED rewind {group} of {cfg.run_id}: OSError: [Errno 28] No space left on device: "
        f"'{results}/rewinding/{cfg.run_id}-rewind-{group}.parquet'" for group in groups), output[-3000:]
    assert "Traceback" not in output
    # Ray's driver log names every resubmission ("Will resubmit task", as for EIO); a failed sweep keeps it
    logs = _kept_logs(tasks)
    driver_logs = list(logs.glob("python-core-driver-*.log"))
    try:
        assert driver_logs and not any("Will resubmit task" in log.read_text() for log in driver_logs)
    finally:
        shutil.rmtree(logs.parent, ignore_errors=True)
    assert not list(results.rglob(".tmp-*")) and not list((results / "rewinding").glob("*.parquet"))
    assert len(list((results / "checkpoints" / cfg.run_id).glob("epoch_*.pt"))) > 1  # the training was not hit

    freed = _sweep(tmp_path, results)
    assert freed.returncode == 0, (freed.stdout + freed.stderr)[-3000:]
    assert f"this call trained 0 runs and ran {len(groups)} analysis tasks" in freed.stdout
    assert len(list((results / "rewinding").glob("*.parquet"))) == len(groups)
    assert not list(results.rglob(".tmp-*"))


@pytest.fixture
def small_disk(tmp_path):
    """A real 3 MiB tmpfs (one TINY checkpoint is about 2.2 MB, its resume state 4.5 MB, so a training fills it);
    unmounted afterwards whatever happens. Skipped where this machine does not permit mounting one (no root, a
    container without the capability): the issue asks for this test only where the machine allows it."""
    disk = tmp_path / "disk"
    disk.mkdir()
    try:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(disk)], capture_output=True,
                                 text=True, timeout=30)
    except OSError as exc:  # no mount command at all
        pytest.skip(f"mounting a tmpfs is not permitted here: {exc}")
    if mounted.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here: {mounted.stderr.strip() or mounted.returncode}")
    try:
        yield disk
    finally:
        if subprocess.run(["umount", str(disk)], capture_output=True, timeout=30).returncode != 0:
            subprocess.run(["umount", "-l", str(disk)], capture_output=True, timeout=30)  # a straggler holds a file


def test_a_write_to_a_full_tmpfs_is_the_plain_errno_line_naming_the_file_and_leaves_nothing(small_disk):
    """pyarrow's own ENOSPC reads '[Errno 28] Error writing bytes to file. Detail: [errno 28] No space left on
    device' and names no file: the store turns it into the line a FAILED line shows, with the file's path."""
    store = Store(str(small_disk))
    with pytest.raises(OSError) as info:
        store.write_bytes("checkpoints/r/state.pt", b"x" * (4 << 20))
    assert info.value.errno == errno.ENOSPC
    assert str(info.value) == f"[Errno 28] No space left on device: '{small_disk}/checkpoints/r/state.pt'"
    assert list((small_disk / "checkpoints" / "r").iterdir()) == []  # the partial temporary file went
    store.write_bytes("checkpoints/r/ok.pt", b"x" * (2 << 20))  # and gave its space back


@pytest.mark.slow
def test_a_sweep_on_a_full_tmpfs_is_one_failed_line_and_finishes_once_the_disk_is_larger(tmp_path, small_disk):
    """The TINY sweep with --results on a real 3 MiB tmpfs: its training fills the disk, which ends the sweep in
    one FAILED training line (the run's probe tasks never start), exit 1, no traceback, no .tmp-* file; after a
    remount at 64 MiB the same command trains and analyses everything and leaves no .tmp-* either."""
    from sweep.grids import load_grid

    results = small_disk / "results"
    full = _sweep(tmp_path, results)
    output = full.stdout + full.stderr
    assert full.returncode == 1, output[-3000:]
    shutil.rmtree(_kept_logs(full).parent, ignore_errors=True)
    run_id = load_grid(str(tmp_path / "tiny.toml")).runs[0].run_id
    failed = _failed_lines(full)
    assert len(failed) == 1, output[-3000:]
    assert failed[0].startswith(f"FAILED training {run_id}: OSError: [Errno 28] No space left on device: "
                                f"'{results}/checkpoints/{run_id}/"), output[-3000:]
    assert "Traceback" not in output and "TuneError" not in output
    assert not list(results.rglob(".tmp-*"))
    remount = subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], capture_output=True, text=True)
    assert remount.returncode == 0, remount.stderr
    larger = _sweep(tmp_path, results)
    assert larger.returncode == 0, (larger.stdout + larger.stderr)[-3000:]
    assert "this call trained 1 runs" in larger.stdout
    assert not list(results.rglob(".tmp-*"))
