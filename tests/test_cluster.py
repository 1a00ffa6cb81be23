"""A two-node Ray cluster on this machine (head + one worker on 127.0.0.1): trials land on both nodes, and a
sweep survives the loss of the worker node."""

import subprocess
import sys
import tempfile
import time
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
                              cwd=ROOT, capture_output=True, text=True, env=ray_cluster.env(loopback=False),
                              timeout=600)
    finally:
        ray_cluster.stop(temp)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    runs = pd.read_parquet(tmp_path / "results" / "runs")
    assert len(runs) == 4 and runs["ray_node_id"].nunique() == 2  # both Ray nodes trained
    assert runs["node"].nunique() == 1 and runs["ray_node_id"].str.len().eq(56).all()  # one host; full ids
    assert pd.read_parquet(tmp_path / "results" / "rewinding")["run_id"].nunique() == 4


def test_lost_worker_node_resumes_its_run_elsewhere(tmp_path):
    """SIGKILL the worker node's raylet mid-training: its trial is retried on the head and resumes after its
    last saved epoch (earlier epochs' weights are not rewritten); every table ends complete, without duplicates.
    """
    grid = tmp_path / "lost.toml"
    grid.write_text("[[runs]]\ndataset = 'digits'\narch = 'resnet9'\nwidth = 0.25\nseed = [0, 1]\nepochs = 20\n"
                    "batch_size = 128\n\n[analysis]\nrewind_epochs = [0, 4]\n")
    results = tmp_path / "results"
    temp = tempfile.mkdtemp(prefix="ray3-", dir="/tmp")
    proc = None
    try:
        address = ray_cluster.start([1, 1], temp, worker_resource="doomed_node")
        proc = subprocess.Popen([sys.executable, "run_sweep.py", "--grid", str(grid), "--address", address,
                                 "--results", str(results), "--only", "rewind", "--no-report"],
                                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env=ray_cluster.env(loopback=False))
        # One trial per node (1 CPU each): wait until both have saved a few epochs, then take the worker away.
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            runs = [d for d in (results / "checkpoints").glob("*") if (d / "epoch_004.pt").exists()]
            if len(runs) == 2:
                break
            time.sleep(0.1)
        assert len(runs) == 2, "both trials did not reach epoch 4 in time"
        saved = {p: p.stat().st_mtime_ns for d in runs for p in sorted(d.glob("epoch_*.pt"))[:-1]}
        assert ray_cluster.kill_nodes("doomed_node"), "no worker raylet found"
        output, _ = proc.communicate(timeout=600)
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
        ray_cluster.stop(temp)
    assert proc.returncode == 0, output[-4000:]
    runs = pd.read_parquet(results / "runs")
    assert len(runs) == 2 and (runs["status"] == "complete").all()
    assert runs["ray_node_id"].nunique() == 1  # the worker is gone, so both runs finished on the head
    epochs = pd.read_parquet(results / "epochs")
    assert not epochs.duplicated(["run_id", "epoch"]).any()
    assert (epochs.groupby("run_id")["epoch"].apply(sorted) == [list(range(1, 21))] * 2).all()
    rewinding = pd.read_parquet(results / "rewinding")
    assert rewinding["run_id"].nunique() == 2 and not rewinding.duplicated(["run_id", "layer", "rewind_epoch"]).any()
    assert {p: p.stat().st_mtime_ns for p in saved} == saved  # resumed, not retrained from the start
