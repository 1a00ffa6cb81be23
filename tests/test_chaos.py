"""Chaos: the real command line killed with SIGKILL at three random moments, then finished, gives the same tables as
an uninterrupted sweep, compared row by row on every table's natural keys (run_id + the table's keys).

The moments are drawn from a seeded generator and printed (`pytest -s` shows them), so a failure can be replayed.
SIGKILL leaves no chance to clean up: a stale lock, half-written temporaries, a private Ray cluster whose driver is
gone and a trial's resume state mid-epoch are all what the next sweep meets. Columns that measure the machine
rather than the science (wall times, host and node names, the checkpoint folder's path) are left out of the
comparison; everything else must be equal, floats included (CPU training here is deterministic given the seeds).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest

from sweep.schemas import TABLES

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

# Two trainings (one with the flip probe and an injection-free localize, one example-tied with its dropout probe),
# a few epochs: long enough that the kills land in start-up, training and analyses, short enough for CI.
GRID = """
[[runs]]
dataset = "digits"
arch = "mlp"
variant = ["standard", "tied"]
noise = 0.1
seed = 0
width = 0.5
epochs = 6
batch_size = 128

[analysis]
rewind_epochs = [0, 2]
retrain_epochs = 2
flip_clean = 6
flip_noisy = 6
flip_cap = 30
flip_population = 64
flip_eval_size = 100
flip_chunk = 6
localizers = ["greedy", "zero_out", "activation"]
localize_clean = 2
localize_noisy = 2
localize_cap = 8
localize_chunk = 4
inject_targets = 0
"""
MACHINE_COLUMNS = {"seconds", "node", "ray_node_id", "device", "checkpoint_dir", "dynamics_seconds",
                   "curvature_seconds", "versions"}
SEED = 20261202


def sweep(grid: Path, results: Path, ray_tmp: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(RAY_TMPDIR=str(ray_tmp), OMP_NUM_THREADS="1", RAY_USAGE_STATS_ENABLED="0")
    return subprocess.Popen([sys.executable, str(ROOT / "run_sweep.py"), "--grid", str(grid), "--results",
                             str(results), "--only", "rewind,retrain,flip,dropout,localize", "--no-report"],
                            cwd=results.parent, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)


def comparable(results: Path, table: str) -> pd.DataFrame | None:
    folder = results / table
    if not folder.exists():
        return None
    frame = pd.read_parquet(folder)
    keys = ["run_id", *TABLES[table].keys]
    frame = frame.drop(columns=[c for c in frame.columns if c in MACHINE_COLUMNS])
    return frame.sort_values(keys).reset_index(drop=True)


def test_three_sigkills_then_a_finish_give_the_tables_of_a_clean_sweep(tmp_path):
    grid = tmp_path / "chaos.toml"
    grid.write_text(GRID)
    ray_tmp = Path(tempfile.mkdtemp(prefix="rc", dir="/tmp"))  # short socket paths, our own
    try:
        clean_dir, chaos_dir = tmp_path / "clean", tmp_path / "chaos"
        start = time.monotonic()
        clean = sweep(grid, clean_dir, ray_tmp)
        assert clean.wait(timeout=600) == 0, clean.stderr.read()[-3000:]
        full = time.monotonic() - start
        draw = random.Random(SEED)
        # each moment counts from its own start; later starts have less left to do, so the draws shrink
        moments = [draw.uniform(0.3, 0.8) * full, draw.uniform(0.2, 0.6) * full, draw.uniform(0.15, 0.4) * full]
        print(f"chaos seed {SEED}: a clean sweep took {full:.1f} s; SIGKILL after {[round(m, 1) for m in moments]} s")
        killed = 0
        for moment in moments:
            proc = sweep(grid, chaos_dir, ray_tmp)
            try:
                proc.wait(timeout=moment)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=60)
                killed += 1
        print(f"chaos: {killed} of 3 sweeps killed before they finished")
        assert killed >= 1  # the first start has the whole sweep to do: its kill always lands
        final = sweep(grid, chaos_dir, ray_tmp)
        assert final.wait(timeout=600) == 0, final.stderr.read()[-3000:]
        compared = []
        for table in TABLES:
            want, got = comparable(clean_dir, table), comparable(chaos_dir, table)
            assert (want is None) == (got is None), table
            if want is None:
                continue
            pd.testing.assert_frame_equal(got, want, check_like=True, obj=table)
            compared.append(table)
        assert {"runs", "epochs", "examples", "rewinding", "retraining", "flips", "dropout", "localize"} <= set(
            compared), compared
        assert not list(chaos_dir.rglob(".tmp-*"))  # leftovers of the killed writers are gone
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
