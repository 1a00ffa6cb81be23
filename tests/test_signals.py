"""SIGTERM / SIGINT to the real command line at the edges: during Ray's start-up, and twice during training.

Each case: exit 143 / 130, the closing line as the last line, no traceback, and no Ray session folder left.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.test_storage_faults import TINY

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def sessions(ray_tmp: Path) -> list[Path]:
    return list(ray_tmp.glob("ray/session_2*"))


@pytest.mark.parametrize("moment, signals", [("start-up", (signal.SIGTERM,)),
                                             ("training", (signal.SIGINT, signal.SIGINT))])
def test_a_stop_signal_at_the_edges_is_its_exit_code_and_one_closing_line(tmp_path, moment, signals):
    grid = tmp_path / "tiny.toml"
    grid.write_text(TINY)
    results = tmp_path / "results"
    ray_tmp = Path(tempfile.mkdtemp(prefix="rs", dir="/tmp"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(RAY_TMPDIR=str(ray_tmp), PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    try:
        proc = subprocess.Popen([sys.executable, str(ROOT / "run_sweep.py"), "--grid", str(grid), "--results",
                                 str(results), "--only", "rewind", "--no-report"], cwd=tmp_path, env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 300
        if moment == "start-up":  # Ray has begun making its session folder: the cluster is half started
            while time.monotonic() < deadline and not sessions(ray_tmp):
                time.sleep(0.02)
        else:  # the resume state after epoch 1 is saved
            while time.monotonic() < deadline and not list(results.glob("checkpoints/*/state.pt")):
                time.sleep(0.1)
        for signum in signals:
            proc.send_signal(signum)
            time.sleep(0.3)
        out, err = proc.communicate(timeout=180)
        output = out + err
        assert proc.returncode == 128 + signals[0], output[-3000:]
        last = output.strip().splitlines()[-1]
        name = signal.Signals(signals[0]).name
        assert last.startswith(f"interrupted by {name}"), output[-3000:]
        assert "Traceback" not in output, output[-3000:]
        if moment == "training":  # checkpoints are there: the line counts what is finished, never "before"
            assert "before the sweep started" not in last and "of 1 runs" in last, last
        assert not sessions(ray_tmp), "the stopped driver's Ray session folder is still there"
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
