"""A probe with `needs` waits on a real Ray cluster until the auxiliary trainings it reads are done, and is reported
as not run (one line) when one of them failed."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import pytest

from tests import ray_cluster

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

# The driver: register the probe here and, by Ray's worker setup hook, in every worker; sweep a 2-epoch digits MLP
# with 2 fold runs (the base run finishes first: 2 CPUs, 3 trainings), running only the test probe.
DRIVER = """
import sys, ray
from ray._private.authentication.authentication_token_setup import maybe_enable_token_auth_if_token_available
from tests import needs_probe
from sweep.config import AnalysisConfig
from sweep.engine import Options, run_grid
from sweep.grids import Grid, expand
needs_probe.register()
maybe_enable_token_auth_if_token_available(warn_if_disabled=False)
ray.init(address=sys.argv[1], log_to_driver=False, configure_logging=False,
         runtime_env={"worker_process_setup_hook": "tests.needs_probe.register",
                      "env_vars": {"PYTHONPATH": sys.argv[3]}})  # workers import the hook before the driver's path
runs = expand([{"dataset": "digits", "arch": "mlp", "noise": 0.1, "seed": 0, "epochs": 2, "batch_size": 256,
                "width": 0.5, "cv_folds": 2}])
summary = run_grid(Grid("needs", runs, AnalysisConfig()), Options(results=sys.argv[2], address=sys.argv[1],
                   only=("waits_for_folds",), max_concurrent=2))
print("TALLY", summary.tally)
for failure in summary.failures:
    print("FAILURE", failure)
"""


def drive(address: str, results: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", DRIVER, address, str(results), str(ROOT)], cwd=ROOT,
                          capture_output=True, text=True, env=ray_cluster.env(), timeout=180)


def test_a_task_with_needs_waits_for_its_trainings_or_says_it_did_not_run(tmp_path):
    import torch

    from sweep.grids import expand

    runs = expand([{"dataset": "digits", "arch": "mlp", "noise": 0.1, "seed": 0, "epochs": 2, "batch_size": 256,
                    "width": 0.5, "cv_folds": 2}])
    base, fold0, fold1 = runs
    results = tmp_path / "results"
    # fold 1 cannot train: a resume state that lacks the model (as test_engine's bug case), so it fails once
    folder = results / "checkpoints" / fold1.run_id
    folder.mkdir(parents=True)
    (folder / "epoch_000.pt").write_bytes(b"0123456789")
    torch.save({"trainer": {"version": __import__("sweep.train").train.Trainer.STATE_VERSION},
                "files": {f"checkpoints/{fold1.run_id}/epoch_000.pt": [10, "x"]}}, folder / "state.pt")
    temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    address = ray_cluster.start([2], temp)
    try:
        proc = drive(address, results)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        failures = [line for line in proc.stdout.splitlines() if line.startswith("FAILURE")]
        assert failures[0].startswith(f"FAILURE training {fold1.run_id}: KeyError"), failures
        assert failures[1:] == [f"FAILURE waits_for_folds all of {base.run_id}: not run: it needs {fold1.run_id}, "
                                "which failed"]
        assert not (results / "needs_check").exists()
        assert "TALLY 2 of 3 runs and 0 of 1 analysis tasks finished" in proc.stdout
        for path in folder.iterdir():  # the broken state goes: the next sweep trains the fold from the start
            path.unlink()
        proc = drive(address, results)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert "TALLY 3 of 3 runs and 1 of 1 analysis tasks finished" in proc.stdout, proc.stdout
        assert "FAILURE" not in proc.stdout
        assert pd.read_parquet(results / "needs_check")["folds_done"].tolist() == [2]
    finally:
        ray_cluster.stop(temp)
