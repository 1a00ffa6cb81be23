"""`run_sweep.py --status`: where a grid stands, read from the results folder alone, typed as a user would.

Run states come from real files: a run trained by `python -m sweep.train`, a progress.json written the way
training writes it, a failure note written by the engine's own helper, a training stopped after an epoch while
it holds the lock; and once from a real sweep (Ray) that fails a run and then finishes it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from sweep.grids import load_grid, select_runs
from sweep.plan import auxiliary_by_base, selected_probes, tasks_for
from sweep.status import run_failure_path, task_failure_path, write_failure
from sweep.store import Store
from sweep.train import write_progress

ROOT = Path(__file__).resolve().parents[1]
SELECT = ["--grid", "smoke", "--set", "epochs=2"]  # the smoke grid, trained for 2 epochs: quick to make


def status(results: Path, *args: str) -> tuple[list[str], str]:
    proc = subprocess.run([sys.executable, "run_sweep.py", "--status", "--results", str(results), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stderr == "", proc.stderr
    return proc.stdout.splitlines(), proc.stdout


def n_tasks(grid) -> int:  # noqa: ANN001 - a Grid
    """Analysis tasks of a grid, every registered probe, as the status counts them."""
    aux = auxiliary_by_base(grid.runs)
    return sum(len(tasks_for(c, selected_probes(None), grid.analysis, aux)) for c in grid.runs)


def run_line(lines: list[str], run_id: str) -> str:
    (line,) = [line for line in lines if line.startswith(run_id + " ")]
    return line[len(run_id):].strip()


def train(results: Path, variant: str, epochs: int, **popen) -> subprocess.Popen | subprocess.CompletedProcess:
    """`python -m sweep.train` for the smoke grid's run of `variant` (digits, mlp, batch 128) for `epochs`."""
    argv = [sys.executable, "-m", "sweep.train", "--dataset", "digits", "--arch", "mlp", "--variant", variant,
            "--noise", "0.1", "--seed", "0", "--epochs", str(epochs), "--batch-size", "128", "--device", "cpu",
            "--curvature-every", "5", "--curvature-directions", "2",
            "--results", str(results)]
    if popen:
        return subprocess.Popen(argv, cwd=ROOT, **popen)
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_status_of_an_empty_folder_says_nothing_is_started_and_writes_nothing(tmp_path):
    results = tmp_path / "results"
    lines, out = status(results, *SELECT)
    grid = select_runs(load_grid("smoke"), sets=["epochs=2"])
    assert lines[:3] == [f"grid smoke: 9 runs under {results}", "--set epochs=2", "no sweep running"]
    assert [run_line(lines, c.run_id) for c in grid.runs] == ["not started"] * 5 + [
        "pack 1 of 1 (models 0..7): not started"] + ["not started"] * 3  # the pack of the 8 subset models
    assert "runs: 0 done, 0 partly trained, 0 failed, 9 not started (of 9)" in lines
    assert f"analysis tasks: 0 done, {n_tasks(grid)} left (of {n_tasks(grid)})" in lines
    assert "  rewind: 0 done, 4 left (of 4)" in lines and "  dropout: 0 done, 3 left (of 3)" in lines
    assert not results.exists() and list(tmp_path.iterdir()) == []


def test_status_shows_done_training_failed_and_not_started_runs(tmp_path):
    results = tmp_path / "results"
    proc = train(results, "standard", 2)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    grid = select_runs(load_grid("smoke"), sets=["epochs=2"])
    # the standard run's two out-of-sample runs, two SSFT runs and its pack of subset models
    standard, fold0, fold1, half1, half2, pack, tied, dropout, sparse = grid.runs
    store = Store(str(results))
    # A note from an earlier failure of the run that has completed since: the run is done all the same.
    write_failure(store, run_failure_path(standard.run_id), standard.run_id, "OSError: disk gone")
    # tied: one epoch of two written, as training writes it after each epoch.
    write_progress(store, tied, {"epoch": 1, "noisy_acc": 0.25, "test_acc": 0.9})
    # an SSFT run trains 2 x epochs: its first phase done, one epoch of fine-tuning
    write_progress(store, half1, {"epoch": 3, "noisy_acc": 0.5, "test_acc": 0.9})
    # the pack: one epoch of its models (sweep.packs writes the same progress file)
    write_progress(store, pack, {"epoch": 1, "noisy_acc": float("nan"), "test_acc": float("nan")})
    # dropout: trained an epoch, then failed; the note is newer than its progress.
    write_progress(store, dropout, {"epoch": 1, "noisy_acc": 0.1, "test_acc": 0.8})
    time.sleep(0.01)
    write_failure(store, run_failure_path(dropout.run_id), dropout.run_id, "KeyError: 'model'")
    # an analysis task of the done run failed
    rewind = f"{standard.run_id}-rewind-fc2"
    write_failure(store, task_failure_path(rewind), rewind, "RuntimeError: out of memory")
    before = sorted((p, p.stat().st_mtime_ns) for p in results.rglob("*"))

    lines, out = status(results, *SELECT)
    assert run_line(lines, standard.run_id) == "done"
    assert run_line(lines, tied.run_id).startswith("epoch 1 of 2 (noisy-train accuracy 0.250, ")
    assert run_line(lines, half1.run_id).startswith("epoch 3 of 4 (noisy-train accuracy 0.500, ")
    assert run_line(lines, pack.run_id).startswith("pack 1 of 1 (models 0..7): epoch 1 of 2 (")
    assert run_line(lines, dropout.run_id) == "failed: KeyError: 'model'"
    assert run_line(lines, sparse.run_id) == "not started"
    assert "runs: 1 done, 3 partly trained, 1 failed, 4 not started (of 9)" in lines
    # the done run's probes are not run yet
    assert f"analysis tasks: 0 done, {n_tasks(grid)} left (of {n_tasks(grid)})" in lines
    assert f"  failed: rewind fc2 of {standard.run_id}: RuntimeError: out of memory" in lines
    assert "no sweep running" in lines
    assert sorted((p, p.stat().st_mtime_ns) for p in results.rglob("*")) == before  # read only

    # --where and --only choose what is shown, as they choose what a sweep runs
    lines, _ = status(results, *SELECT, "--where", "variant=standard,dropout", "--only", "rewind")
    assert lines[1] == "--where variant=standard,dropout: 7 of 9 runs"
    shown = [line.split()[0] for line in lines if line.startswith("digits-")]
    assert shown == [standard.run_id, fold0.run_id, fold1.run_id, half1.run_id, half2.run_id, pack.run_id,
                     dropout.run_id]
    assert "analysis tasks: 0 done, 4 left (of 4)" in lines and "  rewind: 0 done, 4 left (of 4)" in lines


def test_status_works_while_a_training_holds_the_lock(tmp_path):
    """A real training (`python -m sweep.train` takes the sweep's lock) is looked at after its first epoch: the
    status reads its progress, names the lock's holder, and leaves the lock alone."""
    results = tmp_path / "results"
    grid = select_runs(load_grid("smoke"), ["variant=standard,cv_folds=0,ssft_half=0,subsets=0"], ["epochs=50"])
    (cfg,) = grid.runs
    progress = results / "checkpoints" / cfg.run_id / "progress.json"
    proc = train(results, "standard", 50, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not progress.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert progress.exists(), "no epoch finished"
        lock = (results / "_lock.json").read_bytes()
        lines, out = status(results, "--grid", "smoke", "--where", "variant=standard,cv_folds=0,ssft_half=0,subsets=0",
                            "--set", "epochs=50")
        assert proc.poll() is None, "the training ended before the status was read"
        assert (results / "_lock.json").read_bytes() == lock
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert lines[3].startswith(f"sweep in progress: pid {proc.pid} on "), out
    assert "sweep/train.py --dataset digits" in lines[3]  # the holder's command
    epoch = json.loads(progress.read_text())["epoch"]
    state = run_line(lines, cfg.run_id)
    assert state.startswith("epoch ") and state.split()[1].isdigit() and 1 <= int(state.split()[1]) <= epoch
    assert " of 50 (noisy-train accuracy " in state
    assert "runs: 0 done, 1 partly trained, 0 failed, 0 not started (of 1)" in lines

    lines, out = status(results, "--grid", "smoke", "--where", "variant=standard", "--set", "epochs=50")
    assert lines[3].startswith(f"no sweep running (the lock of pid {proc.pid} on "), out  # killed: a stale lock


@pytest.mark.slow
def test_a_real_sweep_notes_its_failures_and_a_rerun_that_finishes_them_shows_done(tmp_path):
    """A real sweep (the installed `memloc-sweep`, a private Ray) fails one training and one analysis task, each on
    storage it cannot write (a file where the run's checkpoint folder goes; a folder where the task's table file
    goes): their notes land under _failed/ and --status shows both; once the way is clear, the next sweep finishes
    them, removes the notes, and --status says done."""
    script = Path(sys.executable).with_name("memloc-sweep")
    assert script.exists(), f"{script} is missing: run `pip install -e '.[test]'`"
    args = ["--grid", "smoke", "--where", "variant=tied,dropout", "--set", "epochs=2", "--only", "dropout",
            "--no-report"]
    tied, dropout = select_runs(load_grid("smoke"), ["variant=tied,dropout"], ["epochs=2"]).runs
    results = tmp_path / "results"
    (results / "checkpoints").mkdir(parents=True)
    (results / "checkpoints" / tied.run_id).write_text("in the way")
    (results / "dropout" / f"{dropout.run_id}-dropout-all.parquet").mkdir(parents=True)

    def sweep() -> subprocess.CompletedProcess:
        ray_tmp = tempfile.mkdtemp(prefix="r", dir="/tmp")  # Ray's session folder: short socket paths, our own
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("RAY_")}, "RAY_USAGE_STATS_ENABLED": "0",
               "RAY_TMPDIR": ray_tmp}
        try:
            return subprocess.run([str(script), *args], cwd=tmp_path, env=env, capture_output=True, text=True,
                                  timeout=400)
        finally:
            shutil.rmtree(ray_tmp, ignore_errors=True)

    first = sweep()
    assert first.returncode == 1, first.stdout[-3000:] + first.stderr[-3000:]
    failed = sorted(line for line in first.stderr.splitlines() if line.startswith("FAILED "))
    assert len(failed) == 2, first.stderr[-3000:]
    run_note = json.loads((results / "_failed" / "runs" / f"{tied.run_id}.json").read_text())
    task_note = json.loads((results / "_failed" / "tasks" / f"{dropout.run_id}-dropout-all.json").read_text())
    assert f"FAILED training {tied.run_id}: {run_note['error']}" in failed
    assert f"FAILED dropout all of {dropout.run_id}: {task_note['error']}" in failed
    assert run_note["error"].startswith("FileExistsError: ") and task_note["error"].startswith("IsADirectoryError: ")
    assert abs(run_note["time"] - time.time()) < 600
    lines, out = status(results, *args)
    run_txt = results / "_failed" / "runs" / f"{tied.run_id}.txt"
    task_txt = results / "_failed" / "tasks" / f"{dropout.run_id}-dropout-all.txt"
    assert run_txt.read_text().startswith("Traceback") and "FileExistsError" in run_txt.read_text()
    task_text = task_txt.read_text()  # the first line, then the worker's frames as Ray sends them
    assert task_text.startswith(f"dropout all of {dropout.run_id} failed in a Ray worker: {task_note['error']}")
    assert 'in _probe_task' in task_text and "Is a directory" in task_text and "\x1b[" not in task_text
    assert "whole tracebacks: " in first.stderr
    assert run_line(lines, tied.run_id) == f"failed: {run_note['error']} (traceback: {run_txt})", out
    assert run_line(lines, dropout.run_id) == "done", out
    assert f"  failed: dropout all of {dropout.run_id}: {task_note['error']} (traceback: {task_txt})" in lines, out
    assert "analysis tasks: 0 done, 2 left (of 2)" in lines

    (results / "checkpoints" / tied.run_id).unlink()  # the way cleared
    (results / "dropout" / f"{dropout.run_id}-dropout-all.parquet").rmdir()
    second = sweep()
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert not list((results / "_failed").rglob("*.json"))
    lines, out = status(results, *args)
    assert [run_line(lines, c.run_id) for c in (tied, dropout)] == ["done", "done"], out
    assert "analysis tasks: 2 done, 0 left (of 2)" in lines and "no sweep running" in lines
    assert not any("failed" in line for line in lines if not line.startswith("runs: ")), out
