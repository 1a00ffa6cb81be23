"""Experiment trackers (sweep.trackers): the per-run analysis metrics on hand-made tables (values worked out by
hand in the comments), each sink read back, the driver-side counting that logs a run once its last task is done,
and one real sweep through the command line whose TensorBoard files are read back."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pandas as pd
import pytest

from sweep import trackers
from sweep.config import AnalysisConfig, RunConfig
from sweep.errors import UserError
from sweep.plan import tasks_for
from sweep.probes import PROBES
from sweep.store import Store
from tests.event_files import hparams, scalars
from tests.test_storage_faults import TINY  # one training of 3 epochs: the grid the slow command-line tests share

ROOT = Path(__file__).resolve().parents[1]
CFG = RunConfig(dataset="digits", arch="mlp", noise=0.1, epochs=3)

EXAMPLES = pd.DataFrame({
    "is_noisy": [True, True, False, False, False],
    "aum": [-1.0, 0.5, 2.0, 0.2, 3.0],  # low = suspicious: noisy -1 beats all 3 clean; 0.5 beats 2.0 and 3.0 -> 5/6
    "forgetting_events": [3, 0, 0, 1, 0],  # 3 beats all; 0 ties two (0.5 each), loses to 1 -> 4/6
    "final_loss": [2.0, float("nan"), 0.1, 0.3, 0.2],  # the NaN row left out: 2.0 beats all three -> 1
})
REWINDING = pd.DataFrame({  # final model: clean 0.9, noisy 0.8
    "layer": [0, 0, 1, 1], "rewind_epoch": [0, 2, 0, 2],
    "clean_acc": [0.5, 0.88, 0.86, 0.9],  # (0, 0) loses 40 points of clean accuracy: not a candidate
    "noisy_acc": [0.0, 0.6, 0.3, 0.7],  # drops 0.2, 0.5, 0.1 for the other three: (1, 0) is the best, 0.04 clean
    "clean_acc_base": [0.9] * 4, "noisy_acc_base": [0.8] * 4,
})
RETRAINING = pd.DataFrame({  # the last retraining epoch of each layer counts: 0.4, 0.25, 0.9 -> layer 1
    "layer": [0, 0, 0, 1, 1, 2, 2], "retrain_epoch": [0, 1, 2, 0, 1, 0, 3],
    "noisy_acc": [0.1, 0.2, 0.4, 0.0, 0.25, 0.3, 0.9], "noisy_acc_base": [0.8] * 7,
})
FLIPS = pd.DataFrame({
    "is_noisy": [True, True, True, False, False, False],
    "flipped": [True, True, False, True, False, True],  # 2 of 3 of each kind flipped
    "n_units": [2, 4, 50, 10, 50, 20],  # medians over the flipped: noisy (2, 4) -> 3, clean (10, 20) -> 15
})  # AUROC of few units: noisy 2 and 4 beat all three clean; 50 loses to 10, 20, ties 50 -> (3 + 3 + 0.5) / 9


def test_metrics_from_hand_made_tables():
    got = trackers.metrics_from({"examples": EXAMPLES, "rewinding": REWINDING, "retraining": RETRAINING,
                                 "flips": FLIPS})
    assert got == pytest.approx({
        "auroc_aum": 5 / 6, "auroc_forgetting_events": 4 / 6, "auroc_final_loss": 1.0,
        "rewind_layer": 1, "rewind_epoch": 0, "rewind_noisy_drop": 0.5, "rewind_clean_drop": 0.04,
        "retrain_layer": 1, "retrain_noisy_acc": 0.25, "retrain_noisy_acc_base": 0.8,
        "flip_rate_noisy": 2 / 3, "flip_rate_clean": 2 / 3, "flip_units_noisy": 3, "flip_units_clean": 15,
        "auroc_flip_units": 6.5 / 9,
    })


def test_missing_tables_and_unusable_rows_give_no_metric_rather_than_nan():
    assert trackers.metrics_from({"examples": None, "rewinding": REWINDING.iloc[:0]}) == {}
    only_flips = trackers.metrics_from({"flips": FLIPS})
    assert set(only_flips) == {"flip_rate_noisy", "flip_rate_clean", "flip_units_noisy", "flip_units_clean",
                               "auroc_flip_units"}
    wrecked = REWINDING.assign(clean_acc=0.1)  # no rewind keeps clean accuracy: no best rewind
    all_clean = EXAMPLES.assign(is_noisy=False)  # one class: no AUROC
    assert trackers.metrics_from({"rewinding": wrecked, "examples": all_clean}) == {}


def test_a_logger_whose_package_is_missing_is_refused_with_its_pip_command(monkeypatch):
    real = trackers.importlib.util.find_spec
    monkeypatch.setattr(trackers.importlib.util, "find_spec", lambda name: None if name == "tensorboardX"
                        else real(name))
    trackers.check_loggers(["csv"])  # needs nothing
    with pytest.raises(UserError, match=r"--logger tensorboard needs the tensorboardX package.*`pip install "
                                        r"tensorboardX`"):
        trackers.check_loggers(["csv", "tensorboard"])


def _write(store: Store, rel: str, frame: pd.DataFrame) -> None:
    path = Path(store.path(rel))
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path)


def test_the_driver_logs_a_run_once_its_last_task_is_done_to_csv_and_tensorboard(tmp_path):
    """The run's own files (examples, one rewind shard, one flip shard; the other shards wrote nothing) are read
    when the last of its tasks is reported done, not before; both sinks' files read back with the same values."""
    store = Store(str(tmp_path))
    tasks = tasks_for(CFG, PROBES, AnalysisConfig(), {})
    rewind = next(t for t in tasks if t.probe == "rewind")
    flip = next(t for t in tasks if t.probe == "flip")
    _write(store, f"examples/{CFG.run_id}.parquet", EXAMPLES)
    _write(store, f"rewinding/{rewind.file_name}.parquet", REWINDING)
    _write(store, f"flips/{flip.file_name}.parquet", FLIPS)
    _write(store, f"flips/{CFG.run_id}x-flip-0.parquet", FLIPS.assign(n_units=1))  # another run's: never read
    lines: list[str] = []
    t = trackers.Trackers(["csv", "tensorboard"], store, "g", PROBES, AnalysisConfig(), {}, say=lines.append)
    t.expect(tasks)
    folder = tmp_path / "_tune" / "sweep-g" / CFG.run_id
    for task in tasks[:-1]:
        t.task_done(task)
    assert not folder.exists()
    t.task_done(tasks[-1])
    expected = trackers.metrics_from({"examples": EXAMPLES, "rewinding": REWINDING, "flips": FLIPS})
    assert lines == [] and "retrain_layer" not in expected and expected["flip_units_noisy"] == 3
    with open(folder / "analysis.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1 and rows[0].pop("run_id") == CFG.run_id
    assert {k: float(v) for k, v in rows[0].items()} == pytest.approx(expected)
    logged = scalars(folder)
    assert set(logged) == {f"analysis/{k}" for k in expected}
    for name, value in expected.items():
        assert logged[f"analysis/{name}"] == [(3, pytest.approx(value, rel=1e-6))]  # float32, at the last epoch
    (folder / "analysis.csv").unlink()
    t.settle(CFG)  # once per sweep: queue_tasks settles after offering, which may have finished the run already
    assert not (folder / "analysis.csv").exists()
    t.log(CFG)  # a rerun's metrics replace the earlier events file instead of adding a second
    assert len(list(folder.glob("events.out.tfevents.*"))) == 1


def test_a_failing_tracker_is_one_line_and_the_others_still_log(tmp_path, monkeypatch):
    store = Store(str(tmp_path))
    _write(store, f"examples/{CFG.run_id}.parquet", EXAMPLES)
    monkeypatch.setitem(sys.modules, "wandb", types.SimpleNamespace(init=lambda **k: (_ for _ in ()).throw(
        ConnectionError("no network\nmore"))))
    lines: list[str] = []
    t = trackers.Trackers(["wandb", "csv"], store, "g", PROBES, AnalysisConfig(), {}, say=lines.append)
    t.settle(CFG)  # no task expected: logged at once
    assert lines == [f"--logger wandb: the analysis metrics of {CFG.run_id} were not logged: ConnectionError: "
                     "no network"]
    assert (tmp_path / "_tune" / "sweep-g" / CFG.run_id / "analysis.csv").exists()


class _Recorder:
    """Stands in for a tracker's client module (wandb, mlflow are not installed here): records every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple, dict]] = []

    def __getattr__(self, name: str):
        def call(*args, **kwargs):
            self.calls.append((name, args, kwargs))
            return self
        return call


def test_wandb_sink_resumes_the_trials_run_by_id_and_name(monkeypatch):
    fake = _Recorder()
    fake.summary = _Recorder()
    monkeypatch.setitem(sys.modules, "wandb", fake)
    monkeypatch.delenv("WANDB_PROJECT", raising=False)
    trackers.wandb_sink(CFG, {"auroc_aum": 0.75}, "g", "abc_00000")
    (init, log, finish) = fake.calls
    assert init[0] == "init" and init[2]["id"] == "abc_00000" and init[2]["name"] == CFG.run_id
    assert init[2]["resume"] == "allow" and init[2]["group"] == "sweep-g" and init[2]["project"] == "memloc-sweep"
    assert log == ("log", ({"analysis/auroc_aum": 0.75},), {}) and finish[0] == "finish"
    assert fake.summary.calls == [("update", ({"analysis/auroc_aum": 0.75},), {})]
    fake.calls.clear()
    trackers.wandb_sink(CFG, {"auroc_aum": 0.75}, "g", None)  # trained by an earlier sweep: a stable id
    assert fake.calls[0][2]["id"] == trackers.wandb_id(CFG.run_id) != trackers.wandb_id(CFG.run_id + "x")


def test_mlflow_sink_logs_into_the_trials_run_or_makes_one(monkeypatch):
    made: list[dict] = []
    logged: list[tuple[str, list]] = []
    found: list[object] = []

    class Client:
        def get_experiment_by_name(self, name):
            return types.SimpleNamespace(experiment_id="7") if name == "sweep-g" else None

        def search_runs(self, ids, filter_string, order_by, max_results):
            assert ids == ["7"] and filter_string == f"tags.trial_name = '{CFG.run_id}'"
            return found

        def create_run(self, experiment_id, run_name, tags):
            made.append({"experiment": experiment_id, "name": run_name, **tags})
            return types.SimpleNamespace(info=types.SimpleNamespace(run_id="new"))

        def log_batch(self, run_id, metrics):
            logged.append((run_id, [(m.key, m.value, m.step) for m in metrics]))

        def set_terminated(self, run_id):
            made.append({"terminated": run_id})

    Metric = lambda key, value, timestamp, step: types.SimpleNamespace(key=key, value=value, step=step)  # noqa: E731
    monkeypatch.setitem(sys.modules, "mlflow", types.ModuleType("mlflow"))
    monkeypatch.setitem(sys.modules, "mlflow.entities", types.SimpleNamespace(Metric=Metric))
    monkeypatch.setitem(sys.modules, "mlflow.tracking", types.SimpleNamespace(MlflowClient=Client))
    trackers.mlflow_sink(CFG, {"flip_units_noisy": 3.0}, "g")
    assert made == [{"experiment": "7", "name": CFG.run_id, "trial_name": CFG.run_id}, {"terminated": "new"}]
    found.append(types.SimpleNamespace(info=types.SimpleNamespace(run_id="tune-run")))
    trackers.mlflow_sink(CFG, {"flip_units_noisy": 3.0}, "g")
    assert logged == [("new", [("analysis/flip_units_noisy", 3.0, 3)]),
                      ("tune-run", [("analysis/flip_units_noisy", 3.0, 3)])] and len(made) == 2


@pytest.mark.slow
def test_a_sweep_with_tensorboard_and_csv_loggers_writes_epochs_config_and_analysis_metrics(tmp_path):
    """A real sweep on its own local Ray cluster (digits MLP, 3 epochs, its rewind probes) through the command
    line: the trial's folder holds one Tune events file (no duplicate of Tune's default logger) with the epoch
    metrics and the run's fields as hyperparameters, params.json with the run's fields alone, and the analysis
    metrics in TensorBoard and analysis.csv."""
    grid = tmp_path / "tiny.toml"
    grid.write_text(TINY)
    results = tmp_path / "results"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    ray_tmp = f"/tmp/rt{os.getpid()}"  # short: Ray's socket paths must fit in 107 bytes
    env.update(RAY_TMPDIR=ray_tmp, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    try:
        proc = subprocess.run([sys.executable, str(ROOT / "run_sweep.py"), "--grid", str(grid), "--results",
                               str(results), "--only", "rewind", "--logger", "tensorboard", "--logger", "csv",
                               "--no-report"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)  # the sweep removes its session folder, not this one
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    (trial,) = [p for p in (results / "_tune" / "sweep-tiny").iterdir() if p.is_dir()]
    assert trial.name == CFG.run_id
    assert len([p for p in trial.glob("events.out.tfevents.*") if not p.name.endswith(".analysis")]) == 1
    logged = scalars(trial)
    assert [step for step, _ in logged["ray/tune/noisy_acc"]] == [1, 2, 3]
    epochs = pd.read_parquet(results / "epochs").sort_values("epoch")
    assert [v for _, v in logged["ray/tune/test_acc"]] == pytest.approx(epochs["test_acc"].tolist(), rel=1e-6)
    params = hparams(trial)
    assert params["run/dataset"] == "digits" and params["run/noise"] == pytest.approx(0.1)
    assert params["run/epochs"] == 3 and not any(k.startswith(("options", "keep")) for k in params)
    assert set(pd.read_json(trial / "params.json", typ="series").index) == {"run"}
    rewinding = pd.read_parquet(results / "rewinding")
    expected = trackers.metrics_from({"rewinding": rewinding, "examples": pd.read_parquet(results / "examples")})
    assert {"rewind_layer", "rewind_noisy_drop", "auroc_aum"} <= set(expected)
    assert {k: v[-1][1] for k, v in logged.items() if k.startswith("analysis/")} == pytest.approx(
        {f"analysis/{k}": v for k, v in expected.items()}, rel=1e-6)
    with open(trial / "analysis.csv") as f:
        (row,) = list(csv.DictReader(f))
    assert {k: float(v) for k, v in row.items() if k != "run_id"} == pytest.approx(expected)
