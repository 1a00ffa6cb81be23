"""Experiment trackers (`--logger tensorboard|wandb|mlflow|csv`): Tune's own logger callbacks for the trainings,
and each run's analysis metrics sent to the same trackers once the run's analyses have finished.

Trainings report every epoch to Tune, so Tune's callbacks (TBXLoggerCallback, CSVLoggerCallback,
WandbLoggerCallback, MLflowLoggerCallback) log them with the trial's config, which is the run's defining fields
(`run/<field>`). Tune adds its TensorBoard, CSV and JSON loggers by itself unless TUNE_DISABLE_AUTO_CALLBACK_LOGGERS
is set; an instance given here takes the place of its default (Tune checks by class), so nothing is logged twice.

Analyses run as Ray tasks outside Tune, so their results never pass through Tune's callbacks. When the last
analysis task of a run finishes, the driver computes a few cheap per-run numbers from the run's own table files
(`run_metrics`) and hands them to one sink per tracker, which writes them beside the trial's epoch metrics: the
trial's folder `<results>/_tune/sweep-<grid>/<run_id>/` (TensorBoard events tagged `analysis/<name>`,
`analysis.csv`), or the W&B / MLflow run named like the trial. A tracker that fails is one line; the sweep goes on.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import io
import os
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from sweep.config import AnalysisConfig, RunConfig
from sweep.errors import UserError
from sweep.plan import AuxMap, Task, tasks_for
from sweep.ssft import train_epochs
from sweep.store import Store, table_for

# name -> (the module it needs, the pip command that installs it); csv needs nothing beyond Tune
LOGGERS: dict[str, tuple[str | None, str]] = {
    "tensorboard": ("tensorboardX", "pip install tensorboardX"),
    "wandb": ("wandb", "pip install wandb"),
    "mlflow": ("mlflow", "pip install mlflow"),
    "csv": (None, ""),
}
# A rewind cell counts for the best rewind only if it keeps clean accuracy within this much (a fraction: 5 points)
# of the final model's, as the report's best single-layer rewind (analyses.layers.CLEAN_TOLERANCE) does, so that a
# rewind that wrecks the whole model is not read as removing memorization.
CLEAN_TOLERANCE = 0.05
# Per-example signals of the examples table scored against is_noisy: column -> +1 when high is suspicious, -1
# when low is (the published directions, as in the report's detection tables).
EXAMPLE_SIGNALS = {"aum": -1.0, "forgetting_events": 1.0, "final_loss": 1.0}
ANALYSIS_TABLES = ("rewinding", "retraining", "flips")
TB_SUFFIX = ".analysis"  # the analysis events file's name ends so; a rerun replaces it instead of adding one
WANDB_PROJECT = "memloc-sweep"  # used when WANDB_PROJECT is not set


def check_loggers(names: Iterable[str]) -> None:
    """Refuse, before anything starts, a logger whose package is not installed here (UserError: exit 2)."""
    for name in dict.fromkeys(names):
        module, pip = LOGGERS[name]
        if module is not None and not _installed(module):
            raise UserError(f"--logger {name} needs the {module} package, which is not installed here; install it "
                            f"with `{pip}`, or leave out --logger {name}")


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or a module entry without a spec
        return False


def experiment_folder(grid_name: str) -> str:
    """The Tune experiment of a grid, relative to the results root (sweep.engine._fit names it so)."""
    return f"_tune/sweep-{grid_name}"


def tune_callbacks(names: Sequence[str], grid_name: str) -> list:
    """Tune's own logger callbacks for the --logger names (one each, in the order given)."""
    callbacks = []
    for name in dict.fromkeys(names):
        if name == "tensorboard":
            from ray.tune.logger import TBXLoggerCallback

            callbacks.append(TBXLoggerCallback())
        elif name == "csv":
            from ray.tune.logger import CSVLoggerCallback

            callbacks.append(CSVLoggerCallback())
        elif name == "wandb":
            from ray.air.integrations.wandb import WandbLoggerCallback

            callbacks.append(WandbLoggerCallback(project=os.environ.get("WANDB_PROJECT") or WANDB_PROJECT,
                                                 group=f"sweep-{grid_name}"))
        elif name == "mlflow":
            from ray.air.integrations.mlflow import MLflowLoggerCallback

            callbacks.append(MLflowLoggerCallback(experiment_name=f"sweep-{grid_name}"))
    return callbacks


# The metrics --------------------------------------------------------------------------------------------------

def _auroc(is_noisy: pd.Series, score: pd.Series) -> float | None:
    """AUROC of `score` (higher = more suspicious) for is_noisy; None without both classes or scores."""
    from sklearn.metrics import roc_auc_score

    ok = score.notna() & is_noisy.notna()
    y, s = is_noisy[ok].astype(bool).to_numpy(), score[ok].astype(float).to_numpy()
    if y.all() or not y.any() or not np.isfinite(s).all():
        return None
    return float(roc_auc_score(y, s))


def _rewind_metrics(df: pd.DataFrame) -> dict[str, float]:
    """The rewind cell (layer group x rewind epoch) that lowers noisy accuracy most among those that keep clean
    accuracy within CLEAN_TOLERANCE of the final model's: its layer, epoch and the drops (final minus rewound)."""
    cells = df.dropna(subset=["noisy_acc", "noisy_acc_base", "clean_acc", "clean_acc_base"])
    cells = cells[cells["clean_acc"] >= cells["clean_acc_base"] - CLEAN_TOLERANCE - 1e-12]
    if cells.empty:
        return {}
    cells = cells.assign(drop=cells["noisy_acc_base"] - cells["noisy_acc"])
    best = cells.sort_values(["drop", "layer", "rewind_epoch"], ascending=[False, True, True]).iloc[0]
    return {"rewind_layer": float(best["layer"]), "rewind_epoch": float(best["rewind_epoch"]),
            "rewind_noisy_drop": float(best["drop"]),
            "rewind_clean_drop": float(best["clean_acc_base"] - best["clean_acc"])}


def _retrain_metrics(df: pd.DataFrame) -> dict[str, float]:
    """The layer group whose retraining from its initial weights on clean examples leaves the lowest noisy
    accuracy at its last retraining epoch (the group that held the memorization, if one did)."""
    last = df[df["retrain_epoch"] == df.groupby("layer")["retrain_epoch"].transform("max")].dropna(
        subset=["noisy_acc"])
    if last.empty:
        return {}
    best = last.sort_values(["noisy_acc", "layer"]).iloc[0]
    out = {"retrain_layer": float(best["layer"]), "retrain_noisy_acc": float(best["noisy_acc"])}
    if pd.notna(best.get("noisy_acc_base")):
        out["retrain_noisy_acc_base"] = float(best["noisy_acc_base"])
    return out


def _flip_metrics(df: pd.DataFrame) -> dict[str, float]:
    """Per target kind (noisy, clean): the fraction flipped and the median units removed to flip a flipped one;
    and the AUROC of 'few units to flip' for is_noisy over the flip subset."""
    noisy, flipped = df["is_noisy"].astype(bool), df["flipped"].astype(bool)
    out: dict[str, float] = {}
    for kind, mask in (("noisy", noisy), ("clean", ~noisy)):
        if mask.any():
            out[f"flip_rate_{kind}"] = float(flipped[mask].mean())
            if (mask & flipped).any():
                out[f"flip_units_{kind}"] = float(df.loc[mask & flipped, "n_units"].median())
    auroc = _auroc(noisy, -df["n_units"].astype(float))
    if auroc is not None:
        out["auroc_flip_units"] = auroc
    return out


def metrics_from(tables: dict[str, pd.DataFrame | None]) -> dict[str, float]:
    """A run's analysis metrics from its rows of the tables it has (any of examples, rewinding, retraining, flips;
    a missing or empty table gives no metric), as plain floats keyed by metric name."""
    out: dict[str, float] = {}
    examples = tables.get("examples")
    if examples is not None and len(examples):
        for column, direction in EXAMPLE_SIGNALS.items():
            if column in examples.columns:
                auroc = _auroc(examples["is_noisy"], direction * examples[column].astype(float))
                if auroc is not None:
                    out[f"auroc_{column}"] = auroc
    for name, compute in (("rewinding", _rewind_metrics), ("retraining", _retrain_metrics), ("flips", _flip_metrics)):
        df = tables.get(name)
        if df is not None and len(df):
            out.update(compute(df))
    return out


def run_metrics(store: Store, cfg: RunConfig, tasks: Iterable[Task], probes: dict) -> dict[str, float]:
    """`metrics_from` the run's own files: its examples file and the files its analysis tasks (`probes`: name ->
    sweep.probes.Probe) wrote to the tables read here; a file that is not there (its task failed, or was not
    selected) is left out. Reads only those files, never a listing of a whole table."""
    files: dict[str, list[str]] = {"examples": [Store.table_file(table_for(cfg, "examples"), cfg.run_id)]}
    for task in tasks:
        for table in set(probes[task.probe].tables) & set(ANALYSIS_TABLES):
            files.setdefault(table, []).append(Store.table_file(table_for(cfg, table), task.file_name))
    tables = {}
    for table, rels in files.items():
        frames = [_read(store, rel) for rel in dict.fromkeys(rels)]
        frames = [f for f in frames if f is not None]
        tables[table] = pd.concat(frames, ignore_index=True) if frames else None
    return metrics_from(tables)


def _read(store: Store, rel: str) -> pd.DataFrame | None:
    try:
        return pq.read_table(store.path(rel), filesystem=store.fs).to_pandas()
    except (FileNotFoundError, OSError):
        return None


# The sinks ----------------------------------------------------------------------------------------------------

def tensorboard_sink(store: Store, folder: str, cfg: RunConfig, metrics: dict[str, float]) -> None:
    """`analysis/<name>` scalars at the run's last training step, in a TensorBoard events file of the trial's
    folder (written locally, then placed whole through the store, so URIs work too; an earlier one is replaced)."""
    from tensorboardX import SummaryWriter

    with tempfile.TemporaryDirectory() as local:
        writer = SummaryWriter(logdir=local, filename_suffix=TB_SUFFIX)
        for name, value in metrics.items():
            writer.add_scalar(f"analysis/{name}", value, global_step=train_epochs(cfg))
        writer.close()
        (written,) = [n for n in os.listdir(local) if n.endswith(TB_SUFFIX)]
        with open(os.path.join(local, written), "rb") as f:
            data = f.read()
    for old in store.sizes(folder):
        if old.endswith(TB_SUFFIX) and "tfevents" in old:
            store.delete(f"{folder}/{old}")
    store.write_bytes(f"{folder}/{written}", data)


def csv_sink(store: Store, folder: str, cfg: RunConfig, metrics: dict[str, float]) -> None:
    """`analysis.csv` in the trial's folder: a header and one row (run_id, then the metrics by name)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["run_id", *metrics])
    writer.writerow([cfg.run_id, *(repr(float(v)) for v in metrics.values())])
    store.write_bytes(f"{folder}/analysis.csv", out.getvalue().encode())


def wandb_id(run_id: str) -> str:
    """The W&B run id of a sweep run whose Tune trial id is not known (trained by an earlier sweep): stable, so a
    later sweep resumes the same W&B run."""
    return "memloc-" + hashlib.sha256(run_id.encode()).hexdigest()[:20]


def wandb_sink(cfg: RunConfig, metrics: dict[str, float], grid_name: str, trial_id: str | None) -> None:
    """The metrics in the W&B run of the trial (Tune's callback names it the trial name, the run id, and gives it
    the trial id), resumed, or a run of that name when this sweep did not train it; also in its summary."""
    import wandb

    run = wandb.init(project=os.environ.get("WANDB_PROJECT") or WANDB_PROJECT, group=f"sweep-{grid_name}",
                     name=cfg.run_id, id=trial_id or wandb_id(cfg.run_id), resume="allow", reinit=True,
                     config={"run": asdict(cfg)})
    try:
        run.log({f"analysis/{k}": v for k, v in metrics.items()})
        run.summary.update({f"analysis/{k}": v for k, v in metrics.items()})
    finally:
        run.finish()


def mlflow_sink(cfg: RunConfig, metrics: dict[str, float], grid_name: str) -> None:
    """The metrics in the MLflow run that Tune's callback made for the trial (experiment `sweep-<grid>`, tag
    `trial_name` = the run id), or in a new run of that name there when there is none."""
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    name = f"sweep-{grid_name}"
    experiment = client.get_experiment_by_name(name)
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(name)
    found = client.search_runs([experiment_id], filter_string=f"tags.trial_name = '{cfg.run_id}'",
                               order_by=["attributes.start_time DESC"], max_results=1)
    run_id = found[0].info.run_id if found else client.create_run(
        experiment_id, run_name=cfg.run_id, tags={"trial_name": cfg.run_id}).info.run_id
    now = int(time.time() * 1000)
    client.log_batch(run_id, metrics=[Metric(f"analysis/{k}", float(v), now, train_epochs(cfg))
                                      for k, v in metrics.items()])
    if not found:
        client.set_terminated(run_id)


class Trackers:
    """Driver side: counts each run's analysis tasks as they are offered and finish, and when a run has none
    left logs its metrics to every tracker. Without loggers it does nothing at all."""

    def __init__(self, names: Sequence[str] = (), store: Store | None = None, grid_name: str = "",
                 probes: dict | None = None, analysis: AnalysisConfig | None = None, aux: AuxMap | None = None,
                 say: Callable[[str], None] = print) -> None:
        self.names = tuple(dict.fromkeys(names))
        self.store, self.grid_name, self.say = store, grid_name, say
        self.probes, self.analysis, self.aux = probes or {}, analysis, aux
        self.left: Counter[str] = Counter()  # run_id -> its analysis tasks offered and not finished
        self.trial_ids: dict[str, str] = {}  # run_id -> Tune's trial id (W&B's run id for the trial)
        self.logged: set[str] = set()  # runs whose metrics went out in this sweep: once each

    def tune_callbacks(self) -> list:
        """Tune's logger callbacks for the trainings, and (for W&B) one that notes each trial's id, which Tune's
        W&B callback uses as the W&B run id, so the analysis metrics go to that same W&B run."""
        callbacks = tune_callbacks(self.names, self.grid_name)
        if "wandb" in self.names:
            from ray import tune

            ids = self.trial_ids

            class _TrialIds(tune.Callback):
                def on_trial_start(self, iteration, trials, trial, **info) -> None:  # noqa: ANN001
                    ids[RunConfig(**trial.config["run"]).run_id] = trial.trial_id

            callbacks.append(_TrialIds())
        return callbacks

    def expect(self, tasks: Iterable[Task]) -> None:
        if self.names:
            self.left.update(task.cfg.run_id for task in tasks)

    def task_done(self, task: Task) -> None:
        """A task finished (done, failed or not run): the run's metrics go out when it was the last."""
        if self.names:
            self.left[task.cfg.run_id] -= 1
            self.settle(task.cfg)

    def settle(self, cfg: RunConfig) -> None:
        """Log the run's metrics if none of its tasks is left (a run just trained with no task to run, too)."""
        if self.names and self.left[cfg.run_id] <= 0 and cfg.run_id not in self.logged:
            self.left.pop(cfg.run_id, None)
            self.logged.add(cfg.run_id)
            self.log(cfg)

    def log(self, cfg: RunConfig) -> dict[str, float]:
        """Compute the run's metrics and send them to every tracker; returns them ({}: nothing logged)."""
        tasks = tasks_for(cfg, self.probes, self.analysis, self.aux) if self.analysis is not None else []
        try:
            metrics = run_metrics(self.store, cfg, tasks, self.probes)
        except Exception as exc:  # noqa: BLE001 - a tracker is a convenience: the sweep goes on without it
            self.say(f"trackers: the analysis metrics of {cfg.run_id} could not be computed: {_line(exc)}")
            return {}
        if not metrics:
            return {}
        folder = f"{experiment_folder(self.grid_name)}/{cfg.run_id}"
        for name in self.names:
            try:
                if name == "tensorboard":
                    tensorboard_sink(self.store, folder, cfg, metrics)
                elif name == "csv":
                    csv_sink(self.store, folder, cfg, metrics)
                elif name == "wandb":
                    wandb_sink(cfg, metrics, self.grid_name, self.trial_ids.get(cfg.run_id))
                elif name == "mlflow":
                    mlflow_sink(cfg, metrics, self.grid_name)
            except Exception as exc:  # noqa: BLE001 - as above: one line, the other trackers still get them
                self.say(f"--logger {name}: the analysis metrics of {cfg.run_id} were not logged: {_line(exc)}")
        return metrics


def _line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
