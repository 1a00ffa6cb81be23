"""A two-node Ray cluster on this machine (head + one worker on 127.0.0.1): trials land on both nodes."""

import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import pytest

from tests import ray_cluster

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def test_trials_run_on_both_nodes(tmp_path):
    grid = tmp_path / "two.toml"
    grid.write_text("[[runs]]\ndataset = 'digits'\narch = 'mlp'\nseed = [0, 1, 2, 3]\nepochs = 6\nbatch_size = 128\n"
                    "width = 0.5\n\n[analysis]\nrewind_epochs = [0, 2]\n")
    temp = tempfile.mkdtemp(prefix="ray2-", dir="/tmp")
    try:
        address = ray_cluster.start([1, 1], temp)
        proc = subprocess.run([sys.executable, "run_sweep.py", "--grid", str(grid), "--address", address,
                               "--results", str(tmp_path / "results"), "--only", "rewind", "--no-report"],
                              cwd=ROOT, capture_output=True, text=True, env=ray_cluster.env(), timeout=600)
    finally:
        ray_cluster.stop(temp)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    runs = pd.read_parquet(tmp_path / "results" / "runs")
    assert len(runs) == 4 and runs["node"].nunique() == 2
    assert pd.read_parquet(tmp_path / "results" / "rewinding")["run_id"].nunique() == 4
