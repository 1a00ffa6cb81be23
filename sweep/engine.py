"""The one module that knows about Ray: trainings as Tune trials, probes as Ray tasks, all writes to Parquet.

Flow: expand the grid; skip runs whose `runs` row exists; train the rest as Tune trials (one per run, resumed
from the run's own saved state, never from Tune's experiment state); the moment a run completes (or at start,
for runs finished earlier) submit one Ray task per (probe, shard) whose output files are missing. A task's
files are named by (run, probe, shard), written whole by that task alone, so re-running is idempotent.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sweep.config import CONFIG_COLUMNS, AnalysisConfig, RunConfig
from sweep.errors import UserError
from sweep.grids import Grid
from sweep.probes import PROBES, Probe
from sweep.store import Store
from sweep.train import checkpoint_dir, execute_run, load_run, pick_device, run_is_complete


def _token_auth_when_a_token_exists() -> None:
    """Ray 2.60: a local `ray.init()` saves a token in ~/.ray/auth_token and a `ray start --head` that finds it
    requires it, but a driver joining by address sends it only in token mode, which Ray reads at import time.
    Token mode also works against a cluster without auth, so choose it whenever a token is at hand."""
    has_token = (Path.home() / ".ray" / "auth_token").exists() or "RAY_AUTH_TOKEN" in os.environ
    if has_token and "RAY_AUTH_MODE" not in os.environ:
        os.environ["RAY_AUTH_MODE"] = "token"


_token_auth_when_a_token_exists()

import ray  # noqa: E402 - after the auth mode is settled
from ray import tune  # noqa: E402


@dataclass(frozen=True)
class Options:
    """How to run a grid (everything but the grid itself)."""

    results: str = "results"
    data_dir: str = "data"
    download: bool = False
    address: str | None = None
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_concurrent: int = 0
    only: tuple[str, ...] | None = None
    max_failures: int = 2


@dataclass(frozen=True)
class Task:
    """One probe shard of one run: the unit of fan-out and of resume."""

    cfg: RunConfig
    probe: str
    shard: str

    @property
    def file_name(self) -> str:
        return f"{self.cfg.run_id}-{self.probe}-{self.shard}"


def selected_probes(only: tuple[str, ...] | None) -> dict[str, Probe]:
    return {name: p for name, p in PROBES.items() if only is None or name in only}


def tasks_for(cfg: RunConfig, probes: dict[str, Probe], analysis: AnalysisConfig) -> list[Task]:
    return [Task(cfg, name, shard) for name, probe in probes.items() if probe.applies(cfg)
            for shard in probe.shards(cfg, analysis)]


def task_done(store: Store, task: Task) -> bool:
    return all(store.has_table_file(t, task.file_name) for t in PROBES[task.probe].tables)


def stale_files(store: Store, grid: Grid, probes: dict[str, Probe]) -> list[str]:
    """Probe files of this grid's runs that no task of this grid owns: made under other analysis settings.

    pandas reads every file of a table, so such a file would sit beside the new ones: a chunk of flips whose
    targets differ from what its name now means, or rows counted twice. Names of settings-dependent shards
    carry a digest of those settings (flip chunks do), which is what makes leftovers visible here.
    """
    listing = {table: set(store.list(table)) for p in probes.values() for table in p.tables}
    stale = []
    for cfg in grid.runs:
        for name, probe in probes.items():
            if not probe.applies(cfg):
                continue
            prefix = f"{cfg.run_id}-{name}-"
            owned = {f"{Task(cfg, name, shard).file_name}.parquet" for shard in probe.shards(cfg, grid.analysis)}
            for table in probe.tables:
                stale += [f"{table}/{f}" for f in sorted(listing[table]) if f.startswith(prefix) and f not in owned]
    return stale


def check_results_match(grid: Grid, opts: Options) -> None:
    """Refuse (UserError, before any work) to add to results that hold probe files from other settings."""
    store = Store(opts.results)
    stale = stale_files(store, grid, selected_probes(opts.only))
    if stale:
        raise UserError(f"{len(stale)} result file(s) under {store.uri} were made with other analysis settings "
                        f"than grid {grid.name!r} uses (first: {stale[0]}); delete them to recompute with these "
                        "settings, rerun with the settings that made them, or use another --results")


# Work that runs on cluster nodes ---------------------------------------------------------------------------

def _device(gpus: float) -> str:
    return "cuda" if gpus > 0 else "cpu"


def _train_trial(config: dict) -> None:
    """Tune trainable: train one run to completion, reporting (and pointing to the checkpoint of) every epoch."""
    cfg, opts = RunConfig(**config["run"]), Options(**config["options"])
    store = Store(opts.results)
    node = ray.get_runtime_context().get_node_id()[:12]

    def report(row: dict[str, float]) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            with open(os.path.join(tmp, "pointer.txt"), "w") as f:
                f.write(f"{store.path(checkpoint_dir(cfg))}/state.pt epoch={row['epoch']}\n")
            tune.report({k: row[k] for k in ("epoch", "train_loss", "clean_acc", "noisy_acc", "test_acc")},
                        checkpoint=tune.Checkpoint.from_directory(tmp))

    execute_run(cfg, store, pick_device(_device(opts.gpus_per_trial)), opts.data_dir, opts.download,
                on_epoch=report, node=node)


@ray.remote(max_retries=2, retry_exceptions=True)
def _probe_task(cfg_fields: dict, probe_name: str, shard: str, analysis_fields: dict, options: dict) -> int:
    """Run one probe shard on a finished run and write its tables; returns the number of rows written."""
    from sweep.probes import PROBES as registry  # the worker imports the registry with every probe module

    cfg, opts = RunConfig(**cfg_fields), Options(**options)
    analysis = AnalysisConfig(**analysis_fields)
    store = Store(opts.results)
    task = Task(cfg, probe_name, shard)
    run = load_run(store, cfg, pick_device(_device(opts.gpus_per_trial)), opts.data_dir, opts.download)
    frames = registry[probe_name].run(run, shard, analysis)
    columns = {"run_id": cfg.run_id, **cfg.columns()}
    for table in registry[probe_name].tables:
        frame = frames[table]
        store.write_table(table, task.file_name, frame.assign(**columns)[[*columns, *frame.columns]])
    return sum(len(f) for f in frames.values())


# The driver -----------------------------------------------------------------------------------------------

@dataclass
class Progress:
    """Counts for the live view; prints at most once a second (a line per update when not on a terminal)."""

    runs_total: int
    epochs_total: int
    print_fn: Callable[[str], None] = print
    runs_done: int = 0
    tasks_total: int = 0
    tasks_done: int = 0
    tasks_failed: int = 0
    epochs_done: int = 0
    current: dict[str, str] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    _last: float = 0.0
    _last_counts: tuple = ()

    def show(self, force: bool = False) -> None:
        """Print when the counts change (at most once a second) or every 30 s while nothing moves."""
        now = time.monotonic()
        counts = (self.runs_done, self.tasks_done, self.tasks_failed, self.tasks_total, tuple(self.current.items()))
        quiet = now - self._last < (1.0 if counts != self._last_counts else 30.0)
        if quiet and not force:
            return
        self._last, self._last_counts = now, counts
        elapsed = now - self.started
        units_total = self.epochs_total + self.tasks_total
        units_done = self.epochs_done + self.tasks_done + self.tasks_failed
        left = elapsed / units_done * (units_total - units_done) if units_done else float("nan")
        training = ", ".join(f"{k} {v}" for k, v in list(self.current.items())[:3])
        self.print_fn(f"[runs {self.runs_done}/{self.runs_total} | tasks {self.tasks_done}/{self.tasks_total}"
                      + (f" ({self.tasks_failed} failed)" if self.tasks_failed else "")
                      + f" | {elapsed:5.0f}s elapsed, ~{left:.0f}s left]"
                      + (f" training: {training}" if training else ""))


class _ProbeLauncher(tune.Callback):
    """Tune callback: records progress and submits a run's probe tasks the moment its trial completes."""

    def __init__(self, submit: Callable[[RunConfig], None], progress: Progress) -> None:
        self.submit, self.progress = submit, progress

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:  # noqa: ANN001
        cfg = RunConfig(**trial.config["run"])
        self.progress.epochs_done += 1
        self.progress.current[cfg.run_id] = f"epoch {result['epoch']}/{cfg.epochs}"
        self.progress.show()

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:  # noqa: ANN001
        cfg = RunConfig(**trial.config["run"])
        self.progress.current.pop(cfg.run_id, None)
        self.progress.runs_done += 1
        self.submit(cfg)
        self.progress.show(force=True)


@dataclass
class Summary:
    runs: int
    trained: int
    tasks_run: int
    tasks_skipped: int
    failures: list[str]


def init_ray(opts: Options) -> None:
    """Join the given cluster, or start a private local one bound to 127.0.0.1 with no dashboard."""
    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    # One small checkpoint per epoch is the design; Tune's warning about frequent snapshots is noise here.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    if opts.address:
        ray.init(address=opts.address, log_to_driver=False, configure_logging=False)
    else:
        ray.init(include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False,
                 configure_logging=False)


def run_grid(grid: Grid, opts: Options, print_fn: Callable[[str], None] = print) -> Summary:
    """Run every training and probe of `grid` that is not finished yet; returns what was done and what failed."""
    check_results_match(grid, opts)
    store = Store(opts.results)
    probes = selected_probes(opts.only)
    done_runs = [cfg for cfg in grid.runs if run_is_complete(store, cfg)]
    pending = [cfg for cfg in grid.runs if not run_is_complete(store, cfg)]
    progress = Progress(runs_total=len(grid.runs), epochs_total=sum(c.epochs for c in pending), print_fn=print_fn)
    progress.runs_done = len(done_runs)
    init_ray(opts)
    options = asdict(opts)
    refs: dict[ray.ObjectRef, Task] = {}
    skipped = 0
    resources = {"num_cpus": 1, "num_gpus": opts.gpus_per_trial}

    def submit(cfg: RunConfig) -> None:
        nonlocal skipped
        for task in tasks_for(cfg, probes, grid.analysis):
            if task_done(store, task):
                skipped += 1
                continue
            probe = PROBES[task.probe]
            ref = _probe_task.options(**{**resources, "num_cpus": probe.num_cpus}).remote(
                asdict(cfg), task.probe, task.shard, asdict(grid.analysis), options)
            refs[ref] = task
            progress.tasks_total += 1

    for cfg in done_runs:
        submit(cfg)
    failures: list[str] = []
    if pending:
        trainable = tune.with_resources(_train_trial, {"cpu": opts.cpus_per_trial, "gpu": opts.gpus_per_trial})
        tuner = tune.Tuner(
            trainable,
            param_space={"run": tune.grid_search([asdict(c) for c in pending]), "options": options},
            tune_config=tune.TuneConfig(max_concurrent_trials=opts.max_concurrent or None, reuse_actors=False),
            run_config=tune.RunConfig(
                name=f"sweep-{grid.name}-{time.strftime('%Y%m%d-%H%M%S')}",
                storage_path=f"{store.uri}/_tune", verbose=0,
                failure_config=tune.FailureConfig(max_failures=opts.max_failures),
                checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                callbacks=[_ProbeLauncher(submit, progress)]),
        )
        results = tuner.fit()
        for result in results:
            if result.error is not None:
                failures.append(f"training {RunConfig(**result.config['run']).run_id}: {result.error}")
    while refs:
        ready, _ = ray.wait(list(refs), num_returns=1, timeout=1.0)
        for ref in ready:
            task = refs.pop(ref)
            try:
                ray.get(ref)
                progress.tasks_done += 1
            except Exception as exc:  # noqa: BLE001 - a failed task is reported, the rest go on
                progress.tasks_failed += 1
                failures.append(f"{task.probe} {task.shard} of {task.cfg.run_id}: {type(exc).__name__}: "
                                f"{str(exc).splitlines()[-1] if str(exc) else ''}")
        progress.show()
    progress.show(force=True)
    return Summary(runs=len(grid.runs), trained=len(pending) - sum(f.startswith("training") for f in failures),
                   tasks_run=progress.tasks_done, tasks_skipped=skipped, failures=failures)


def describe(grid: Grid, opts: Options) -> list[str]:
    """What a dry run prints: each run with its state, its probe tasks, and the checkpoint storage it needs."""
    from sweep.probes import build_model_for

    check_results_match(grid, opts)
    store = Store(opts.results)
    probes = selected_probes(opts.only)
    lines, total_bytes, n_tasks = [], 0, 0
    for cfg in grid.runs:
        n_params = sum(p.numel() for p in build_model_for(cfg).parameters())
        ckpt = n_params * 4 * (cfg.epochs + 1) + n_params * 4 * 3
        total_bytes += ckpt
        tasks = tasks_for(cfg, probes, grid.analysis)
        todo = [t for t in tasks if not task_done(store, t)]
        n_tasks += len(todo)
        state = "done" if run_is_complete(store, cfg) else "to train"
        fields = " ".join(f"{k}={getattr(cfg, k)}" for k in (*CONFIG_COLUMNS, "epochs", "batch_size"))
        counts = {p: sum(t.probe == p for t in todo) for p in probes}
        per_probe = ", ".join(f"{p} {n}" for p, n in counts.items() if n)
        lines.append(f"{cfg.run_id}  [{state}]  {fields}  params={n_params:,}  ckpt={ckpt / 2**20:.1f} MiB"
                     f"  tasks: {per_probe or 'none left'}")
    lines.append(f"{len(grid.runs)} runs, {n_tasks} probe tasks to run; checkpoints need about "
                 f"{total_bytes / 2**30:.2f} GiB under {store.uri}/checkpoints (reachable by every node)")
    return lines


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use run_sweep.py")
