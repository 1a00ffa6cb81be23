"""The sweep engine end to end on a real local Ray cluster started here (2 CPUs, shared by this module)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest

from sweep.store import TABLE_KEYS
from tests import ray_cluster

ROOT = Path(__file__).resolve().parents[1]
KEYS = TABLE_KEYS

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster():
    temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    address = ray_cluster.start([2], temp)
    yield address
    ray_cluster.stop(temp)


def sweep(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "run_sweep.py", *args], cwd=ROOT, capture_output=True, text=True,
                          env=ray_cluster.env(), timeout=600, **kwargs)


def check_complete(results: Path) -> dict[str, pd.DataFrame]:
    """Every table present, no duplicate keys, each run with epochs 1..E and gradients for every group."""
    from sweep.grids import load_grid

    grid = load_grid("smoke")
    tables = {t: pd.read_parquet(results / t) for t in KEYS}
    for table, key in KEYS.items():
        frame = tables[table]
        assert not frame.empty, table
        assert not frame.duplicated(key).any(), f"duplicate rows in {table}"
    runs = tables["runs"]
    assert sorted(runs["run_id"]) == sorted(c.run_id for c in grid.runs)
    assert (runs["status"] == "complete").all()
    for cfg in grid.runs:
        epochs = tables["epochs"].query("run_id == @cfg.run_id")
        assert sorted(epochs["epoch"]) == list(range(1, cfg.epochs + 1))
        grads = tables["gradients"].query("run_id == @cfg.run_id")
        assert len(grads) == cfg.epochs * grads["layer"].nunique() and grads["layer"].nunique() >= 2
    standard = [c for c in grid.runs if c.variant == "standard"]
    for table in ("rewinding", "retraining", "flips"):
        assert set(tables[table]["run_id"]) == {c.run_id for c in standard}, table
    assert set(tables["dropout"]["run_id"]) == {c.run_id for c in grid.runs if c.variant != "standard"}
    n_groups = tables["gradients"].query("run_id == @standard[0].run_id")["layer"].nunique()
    assert tables["rewinding"]["layer"].nunique() == n_groups == tables["retraining"]["layer"].nunique()
    return tables


def test_smoke_grid_end_to_end_then_rerun_does_nothing(cluster, tmp_path):
    results = tmp_path / "results"
    start = time.monotonic()
    proc = sweep("--grid", "smoke", "--address", cluster, "--results", str(results))
    elapsed = time.monotonic() - start
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "runs 4/4" in proc.stdout and "read_parquet" in proc.stdout
    assert "4 of 4 runs and 13 of 13 analysis tasks finished" in proc.stdout
    check_complete(results)
    from analyses.report import SECTIONS
    from tests.analyses.test_report import sections

    found = sections((results / "report" / "index.html").read_text())
    assert list(found) == [key for key, _, _ in SECTIONS]
    for key, body in found.items():  # real smoke output: every section drawn, none failed or missing
        assert 'class="error"' not in body and 'class="missing"' not in body, (key, body[:1500])
        assert key == "overview" or "<img " in body, key
    stamps = {p: p.stat().st_mtime_ns for p in results.rglob("*.parquet")}
    again = sweep("--grid", "smoke", "--address", cluster, "--results", str(results), "--no-report")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "(this call trained 0 runs and ran 0 analysis tasks)" in again.stdout
    assert {p: p.stat().st_mtime_ns for p in results.rglob("*.parquet")} == stamps
    print(f"smoke grid took {elapsed:.0f}s")


def test_killed_driver_resumes_without_loss_or_duplicates(cluster, tmp_path):
    results = tmp_path / "results"
    proc = subprocess.Popen([sys.executable, "run_sweep.py", "--grid", "smoke", "--address", cluster, "--results",
                             str(results), "--no-report"], cwd=ROOT, env=ray_cluster.env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not list((results / "runs").glob("*.parquet")):
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = {p.stem for p in (results / "runs").glob("*.parquet")}
    assert finished, "no run finished before the deadline"
    weights = {p: p.stat().st_mtime_ns for run in finished for p in (results / "checkpoints" / run).glob("epoch_*")}
    again = sweep("--grid", "smoke", "--address", cluster, "--results", str(results), "--no-report")
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    check_complete(results)
    assert {p: p.stat().st_mtime_ns for p in weights} == weights  # finished runs were not trained again


@pytest.mark.parametrize("args, needle", [
    (["--grid", "huge"], "unknown grid"),
    (["--grid", "missing.toml"], "does not exist"),
    (["--grid", "{bad}"], "TOML"),
    (["--grid", "{noise}"], "noise"),
    (["--grid", "{field}"], "unknown grid field"),
    (["--only", "telepathy"], "unknown analysis"),
    (["--cpus-per-trial", "0"], "cpus-per-trial"),
    (["--grid", "{cifar}"], "cifar10"),
])
def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path, args, needle):
    files = {"{bad}": "[[runs]\ndataset = ", "{noise}": "[[runs]]\ndataset='digits'\narch='mlp'\nnoise=1.5\n",
             "{field}": "[[runs]]\ndataset='digits'\narch='mlp'\ncolour='red'\n",
             "{cifar}": "[[runs]]\ndataset='cifar10'\narch='resnet9'\n"}
    for i, arg in enumerate(args):
        if arg in files:
            path = tmp_path / f"{arg.strip('{}')}.toml"
            path.write_text(files[arg])
            args[i] = str(path)
    results = tmp_path / "results"
    proc = sweep(*args, "--results", str(results), "--data-dir", str(tmp_path / "data"))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], proc.stderr
    assert not results.exists()


def test_dry_run_lists_runs_tasks_and_storage(tmp_path):
    proc = sweep("--grid", "paper", "--dry-run", "--results", str(tmp_path / "r"))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert sum("[to train]" in line for line in lines) == 18
    assert "GiB" in lines[-1] and "probe tasks" in lines[-1]
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("dry_run", [False, True])
def test_results_from_other_flip_settings_are_refused(tmp_path, dry_run):
    """A flip chunk written under other settings (here: the old unsigned name) is not taken for a finished one:
    the sweep stops before any work with one clear line, and writes nothing."""
    from sweep.grids import load_grid
    from sweep.probes.flip import empty_flips

    results = tmp_path / "results"
    run = next(c for c in load_grid("smoke").runs if c.variant == "standard")
    (results / "flips").mkdir(parents=True)
    empty_flips().to_parquet(results / "flips" / f"{run.run_id}-flip-0.parquet")
    before = sorted(p.relative_to(results) for p in results.rglob("*"))
    proc = sweep("--grid", "smoke", "--results", str(results), "--no-report", *(["--dry-run"] if dry_run else []))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "other analysis settings" in lines[0] and f"{run.run_id}-flip-0" in lines[0]
    assert sorted(p.relative_to(results) for p in results.rglob("*")) == before


def test_a_bug_fails_once_with_its_run_id_and_the_rest_completes(cluster, tmp_path):
    """A damaged resume state cannot heal by retrying: the trial reports it once (no Tune retry), the sweep
    lists it with the run id and the first line of the error and exits 1; every other run finishes."""
    from sweep.grids import load_grid

    results = tmp_path / "results"
    runs = load_grid("smoke").runs
    broken = runs[0].run_id
    (results / "checkpoints" / broken).mkdir(parents=True)
    (results / "checkpoints" / broken / "state.pt").write_bytes(b"not a checkpoint")
    proc = sweep("--grid", "smoke", "--address", cluster, "--results", str(results), "--only", "rewind")
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    failed = [line for line in proc.stderr.splitlines() if line.startswith("FAILED")]
    assert failed == [f"FAILED training {broken}: UserError: checkpoint {results}/checkpoints/{broken}/state.pt "
                      "is unreadable (UnpicklingError); delete it (or its run's checkpoint folder) to retrain that run"]
    assert "error: the sweep is not complete (3 of 4 runs" in proc.stderr
    assert not (results / "report").exists()
    trial_results = (results / "_tune" / "sweep-smoke" / broken / "result.json").read_text().splitlines()
    assert len(trial_results) == 1 and '"error"' in trial_results[0]  # tried once, not retried
    assert sorted(pd.read_parquet(results / "runs")["run_id"]) == sorted(c.run_id for c in runs[1:])


def test_joining_a_token_cluster_after_importing_ray_first(cluster):
    """`import ray` before the engine: the driver still sends the cluster's token (found in RAY_AUTH_TOKEN)."""
    code = ("import sys, ray\nfrom sweep.engine import Options, init_ray\ninit_ray(Options(address=sys.argv[1]))\n"
            "print(ray.get(ray.remote(lambda: 42).remote()))\n")
    env = {k: v for k, v in ray_cluster.env().items() if k != "RAY_AUTH_MODE"}
    proc = subprocess.run([sys.executable, "-c", code, cluster], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["42"]
