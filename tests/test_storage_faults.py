"""A full disk is one line and leaves no temporary file; a killed writer's leftovers go with the next sweep; stop
signals wait out Ray's start-up and shutdown.

The faults come from the store's test hook (sweep.store.FAULT_ENV), which Ray's workers inherit.
"""

from __future__ import annotations

import errno
import os
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
