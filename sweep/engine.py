"""The one module that knows about Ray: trainings as Tune trials, probes as Ray tasks, all writes to Parquet.

Flow: expand the grid; skip runs whose `runs` row exists; train the rest as Tune trials (one per run, resumed
from the run's own saved state, never from Tune's experiment state); the moment a run completes (or at start,
for runs finished earlier) queue one Ray task per (probe, shard) whose output files are missing. A task's
files are named by (run, probe, shard), written whole by that task alone, so re-running is idempotent.

The driver polls its tasks from Tune's own event loop (a callback runs after every step, about ten times a
second), so analyses are counted as they finish while trainings go on, and queued tasks are released only
into CPUs that the trainings do not need. SIGINT and SIGTERM stop trials and tasks, and the caller reports
what the results folder holds; nothing finished is lost, since every file is written whole by its owner.
"""

from __future__ import annotations

import errno
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
import uuid
import warnings
from collections import Counter, deque
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field, replace

import ray
import torch
from ray import tune

from sweep import compiled, lock, ownership, reaper, records, stopping
from sweep.config import AnalysisConfig, RunConfig
from sweep.data import Dataset, Split, load_dataset
from sweep.errors import DamagedFile, Interrupted, UserError
from sweep.grids import Grid
from sweep.paths import resolve_location
from sweep.plan import (
    AuxMap,
    Plan,
    Tally,
    Task,
    auxiliary_by_base,
    check_results_match,
    checkpoint_epochs,
    make_plan,
    needed_runs,
    repair,
    selected_probes,
    task_record,
    tasks_for,
    withdraw_run,
)
from sweep.probes import PROBES, Probe
from sweep.progress import Progress, ProgressView, run_label
from sweep.schemas import catalogue
from sweep.ssft import train_epochs
from sweep.status import clear_failures, run_failure_path, task_failure_path, write_failure, write_traceback
from sweep.store import FAULT_ENV, Store, table_for, with_run_columns
from sweep.trackers import Trackers
from sweep.train import execute_run, load_run, pick_device, run_is_complete

# Failures worth another try: a storage hiccup. A lost worker or node is a system failure that Ray and Tune
# retry on their own; anything else (a bug, a damaged file, bad data) fails the same way again, so it is
# reported once with its run id instead.
TRANSIENT = (OSError,)
# ...except storage that is full or read-only: another try meets the same disk, so that is reported at once.
STORAGE_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, TRANSIENT) and getattr(exc, "errno", None) not in STORAGE_FULL


class _TransientCheck(type):
    """Makes `isinstance(exc, Transient)` mean `_transient(exc)`."""

    def __instancecheck__(cls, instance: object) -> bool:
        return isinstance(instance, BaseException) and _transient(instance)


class Transient(Exception, metaclass=_TransientCheck):
    """Ray's retry allowlist for analysis tasks (`retry_exceptions`), which Ray checks with isinstance and takes
    no predicate: an OSError is retried, a full or read-only disk (STORAGE_FULL) is not, so it reaches the driver
    at once as the worker's own OSError and its FAILED line reads like a training's. Never raised."""


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
    verify: bool = False  # check every recorded file's SHA-256 before skipping work (sizes are always checked)
    share_data: bool = True  # each dataset loaded once by the driver, read from each node's object store
    compile: str = "auto"  # torch.compile for trainings: auto = on CUDA (sweep.compiled)
    # user modules (names or resolved .py paths) every worker imports before it resolves a name (sweep.plugins)
    plugins: tuple[str, ...] = ()
    loggers: tuple[str, ...] = ()  # experiment trackers added to Tune and fed the analysis metrics (sweep.trackers)

    def resolved(self) -> Options:
        """Local paths made absolute against the driver's working directory, URIs unchanged: trials and tasks
        run in other processes and other working directories, so only the driver may resolve them."""
        from sweep.plugins import resolve

        return replace(self, results=resolve_location(self.results), data_dir=resolve_location(self.data_dir),
                       plugins=resolve(self.plugins))


def first_line(exc: BaseException) -> str:
    """An error as one line: its type and the first line of its message, Ray's wrappers unwrapped. A wrapper
    that carries only a traceback as text (`ray::ImplicitFunc.train() (pid=...)` and the lines under it) gives
    the traceback's last line, which names the real error."""
    cause = getattr(exc, "cause", None) or exc
    text = [line.strip() for line in str(cause).strip().splitlines() if line.strip()]
    if text and text[0].startswith("ray::") and len(text) > 1:
        return text[-1]
    return f"{type(cause).__name__}: {text[0]}" if text else type(cause).__name__


# Work that runs on cluster nodes ---------------------------------------------------------------------------

def _device(gpus: float) -> str:
    return "cuda" if gpus > 0 else "cpu"


# Data once per node ---------------------------------------------------------------------------------------

def _to_arrays(data: Dataset) -> dict[str, object]:
    """A loaded, normalised dataset as numpy arrays: what Ray's object store shares without copying (every
    trial and task on a node maps the same memory) instead of each reading and normalising the files again."""
    return {"name": data.name, "num_classes": data.num_classes, "shape": data.shape,
            **{f"{split}_{part}": getattr(getattr(data, split), part).numpy()
               for split in ("train", "test") for part in ("x", "y")}}


def _from_arrays(arrays: dict[str, object]) -> Dataset:
    """The Dataset over the shared arrays, without a copy. They are read-only, and nothing writes into a
    dataset: training and probes index it (a copy) or move it to a GPU (a copy)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        split = {part: Split(torch.from_numpy(arrays[f"{part}_x"]), torch.from_numpy(arrays[f"{part}_y"]))
                 for part in ("train", "test")}
    return Dataset(arrays["name"], split["train"], split["test"], arrays["num_classes"], tuple(arrays["shape"]))


def _share_datasets(names: set[str], opts: Options,
                    loaded: dict[str, Dataset] | None = None) -> dict[str, ray.ObjectRef | None]:
    """Put each dataset in the object store, loading here those not `loaded` yet (None for each when sharing
    is off)."""
    if not opts.share_data:
        return {name: None for name in names}
    loaded = loaded or {}
    return {name: ray.put(_to_arrays(loaded.get(name) or load_dataset(name, opts.data_dir, opts.download)))
            for name in sorted(names)}


def _shared(ref: ray.ObjectRef | dict | None) -> Dataset | None:
    if ref is None:
        return None
    return _from_arrays(ray.get(ref) if isinstance(ref, ray.ObjectRef) else ref)


def _train_trial(config: dict, datasets: dict[str, ray.ObjectRef | None] | None = None, options: dict | None = None,
                 keep: dict[str, list[int] | None] | None = None) -> None:
    """Tune trainable: train one run, or one pack of subset models (sweep.packs), to completion, reporting every
    epoch.

    It resumes from the run's own state.pt, so a trial that Tune restarts (a lost node) needs no Tune checkpoint.
    An error that another try cannot mend is reported as the trial's last result instead of raised, so Tune
    does not retry it; its traceback goes to the worker's log. `config` holds the run's fields alone (what
    Tune's loggers record as the trial's config); the options and kept epochs come through tune.with_parameters.
    """
    cfg, opts = RunConfig(**config["run"]), Options(**(options or {}))
    keep = (keep or {}).get(cfg.run_id)
    store = Store(opts.results)
    node_id = ray.get_runtime_context().get_node_id()

    def report(row: dict[str, float]) -> None:  # a pack reports its models' means
        tune.report({k: row[k] for k in ("epoch", "train_loss", "clean_acc", "noisy_acc", "test_acc") if k in row})

    device = pick_device(_device(opts.gpus_per_trial))
    data = _shared((datasets or {}).get(cfg.dataset))
    try:
        from sweep.plugins import activate

        activate(opts.plugins)  # the user's datasets and models, before anything below resolves their names
        if cfg.subsets:
            from sweep.packs import execute_pack  # torch.func stacking: only trials that train packs load it

            execute_pack(cfg, store, device, opts.data_dir, opts.download, on_epoch=report, ray_node_id=node_id,
                         data=data, compile=compiled.wanted(opts.compile, device))
        else:
            execute_run(cfg, store, device, opts.data_dir, opts.download, on_epoch=report, ray_node_id=node_id,
                        keep=None if keep is None else set(keep), compile=compiled.wanted(opts.compile, device),
                        data=data)
    except Exception as exc:  # noqa: BLE001 - reported to the driver as this run's failure
        # kept before a retry too: if every try fails, this is the last one's (a try that then succeeds leaves a
        # traceback without a note, which --status ignores and the next sweep clears)
        _keep_traceback(store, run_failure_path(cfg.run_id), traceback.format_exc())
        if _transient(exc):
            raise
        traceback.print_exc()
        tune.report({"error": first_line(exc)})


def _keep_traceback(store: Store, note: str, text: str) -> None:
    """A failed training's whole traceback where a person looks for it: beside its failure note in the results
    folder (`_failed/runs/<run_id>.txt`) and as Tune's own `error.txt` in the trial's folder (which Tune writes only
    for a raised error; ours are reported as results, so that Tune does not retry what cannot heal)."""
    write_traceback(store, note, text)
    with suppress(Exception):  # no trial folder (a test calling the trainable directly): the note's copy is enough
        trial_dir = tune.get_context().get_trial_dir()
        if trial_dir:
            with open(os.path.join(trial_dir, "error.txt"), "w") as f:
                f.write(text)


@ray.remote(max_retries=2, retry_exceptions=[Transient])
def _probe_task(cfg_fields: dict, probe_name: str, shard: str, analysis_fields: dict,
                options: dict, dataset: dict | None = None) -> tuple[int, float]:
    """Run one probe shard on a finished run and write its tables; returns (rows written, seconds). `dataset`
    is the node's shared copy (Ray resolves the driver's ObjectRef to it), or None to load it here."""
    from sweep.probes import PROBES as registry  # the worker imports the registry with every probe module

    start = time.monotonic()
    cfg, opts = RunConfig(**cfg_fields), Options(**options)
    from sweep.plugins import activate

    activate(opts.plugins)  # the user's datasets, models and localizers, before a probe resolves their names
    analysis = AnalysisConfig(**analysis_fields)
    store = Store(opts.results)
    task = Task(cfg, probe_name, shard)
    try:
        run = load_run(store, cfg, pick_device(_device(opts.gpus_per_trial)), opts.data_dir, opts.download,
                       data=_shared(dataset))
        frames = registry[probe_name].run(run, shard, analysis)
    except DamagedFile as exc:
        withdraw_run(store, cfg, exc.rel)
        raise UserError(f"{exc}; the run's done-record is withdrawn, so the next sweep trains it again") from exc
    files = {store.table_file(table_for(cfg, table), task.file_name):
             store.write_table(table_for(cfg, table), task.file_name, with_run_columns(frames[table], cfg))
             for table in registry[probe_name].tables}
    records.write(store, records.task_record_path(task.file_name), task_record(task, run.record_id, analysis, files))
    return sum(len(f) for f in frames.values()), time.monotonic() - start


# The driver -----------------------------------------------------------------------------------------------

@dataclass
class Summary:
    """What one call did, and what the results folder holds after it (`tally`, counted from the files)."""

    tally: Tally
    trained: int
    tasks_run: int
    failures: list[str]
    interrupted: int | None = None


@dataclass
class _Driver:
    """Driver-side state of one sweep: the task queue and its CPU cap, failures, progress and signals."""

    grid: Grid
    opts: Options
    store: Store
    probes: dict[str, Probe]
    progress: Progress
    view: ProgressView
    cpus: float
    trainings_left: int
    queue: deque[Task] = field(default_factory=deque)
    in_flight: dict[ray.ObjectRef, Task] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    failed_runs: set[str] = field(default_factory=set)
    trained: int = 0
    tasks_run: int = 0
    signum: int | None = None
    datasets: dict[str, ray.ObjectRef | None] = field(default_factory=dict)  # name -> the shared copy
    aux: AuxMap = field(default_factory=dict)  # base run_id -> the grid's auxiliary trainings of it
    unfinished: set[str] = field(default_factory=set)  # run ids this sweep trains that have not completed yet
    held: dict[Task, set[str]] = field(default_factory=dict)  # task -> needed runs it still waits for
    holders: dict[str, list[Task]] = field(default_factory=dict)  # run_id -> the held tasks waiting for it
    trackers: Trackers = field(default_factory=Trackers)  # --logger: a run's metrics once its tasks are done

    def queue_tasks(self, cfg: RunConfig) -> None:
        """Offer every probe task of a run just trained: results of an earlier training of it are void."""
        self.offer(tasks_for(cfg, self.probes, self.grid.analysis, self.aux))
        self.trackers.settle(cfg)  # a run with no task to run has its metrics logged now

    def offer(self, tasks: list[Task]) -> None:
        """Queue tasks whose needed auxiliary trainings (Probe.needs) are all done; hold the others until they
        are (`run_completed`). A task needing a training that failed in this sweep is reported as not run."""
        self.trackers.expect(tasks)
        for task in tasks:
            needed = {r.run_id for r in needed_runs(task.cfg, self.probes[task.probe], self.aux)}
            failed = sorted(needed & self.failed_runs)
            waiting = needed & self.unfinished
            if failed:
                self.not_run(task, failed[0])
            elif waiting:
                self.held[task] = waiting
                for run_id in waiting:
                    self.holders.setdefault(run_id, []).append(task)
            else:
                self.queue.append(task)

    def run_completed(self, cfg: RunConfig) -> None:
        """A training finished: release the held tasks that waited for it alone."""
        self.unfinished.discard(cfg.run_id)
        for task in self.holders.pop(cfg.run_id, []):
            waiting = self.held.get(task)
            if waiting is None:
                continue
            waiting.discard(cfg.run_id)
            if not waiting:
                del self.held[task]
                self.queue.append(task)

    def not_run(self, task: Task, run_id: str) -> None:
        """A task that cannot run, since a training it reads failed: one line, counted as failed."""
        self.progress.task_finished(task.probe, None, ok=False)
        self.fail(f"{task.label}: not run: it needs {run_id}, which failed")
        self.trackers.task_done(task)

    def release_failed(self, run_id: str) -> None:
        """A training failed: the held tasks that need it will not run; say so for each."""
        self.unfinished.discard(run_id)
        for task in self.holders.pop(run_id, []):
            if self.held.pop(task, None) is not None:
                self.not_run(task, run_id)

    def fail(self, what: str) -> None:
        self.failures.append(what)
        self.view.print(f"FAILED {what}")

    def fail_run(self, cfg: RunConfig, error: str) -> None:
        """A training failed: say so, and leave its note for --status (<results>/_failed/runs/<run_id>.json)."""
        self.failed_runs.add(cfg.run_id)
        self.fail(f"training {cfg.run_id}: {error}")
        self.release_failed(cfg.run_id)
        with suppress(OSError):  # on a full disk the note cannot be written either; the line above stays
            write_failure(self.store, run_failure_path(cfg.run_id), cfg.run_id, error)

    def fail_task(self, task: Task, error: str) -> None:
        """An analysis task failed: say so, and leave its note (<results>/_failed/tasks/<file_name>.json)."""
        self.fail(f"{task.label}: {error}")
        with suppress(OSError):  # as for a training's note
            write_failure(self.store, task_failure_path(task.file_name), task.file_name, error)

    def task_cap(self) -> float:
        """CPUs analysis tasks may hold at once: what the remaining trainings leave free, at least one task."""
        slots = self.trainings_left if not self.opts.max_concurrent else min(self.trainings_left,
                                                                             self.opts.max_concurrent)
        return self.cpus - self.opts.cpus_per_trial * slots

    def pump(self, trials_waiting: int | None = None) -> None:
        """Collect finished tasks, release queued ones under the cap, redraw; raise Interrupted when signalled."""
        if self.signum is not None:
            raise Interrupted(self.signum)
        if self.in_flight:
            ready, _ = ray.wait(list(self.in_flight), num_returns=len(self.in_flight), timeout=0)
            for ref in ready:
                task = self.in_flight.pop(ref)
                try:
                    _, seconds = ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - a failed task is reported, the rest go on
                    self.progress.task_finished(task.probe, None, ok=False)
                    # Ray's error carries the worker's traceback as text: kept whole beside the note
                    write_traceback(self.store, task_failure_path(task.file_name),
                                    f"{task.label} failed in a Ray worker: {first_line(exc)}\n\n"
                                    + re.sub(r"\x1b\[[0-9;]*m", "", str(exc)) + "\n")
                    self.fail_task(task, first_line(exc))
                else:
                    self.tasks_run += 1
                    self.progress.task_finished(task.probe, seconds, ok=True)
                self.trackers.task_done(task)
        held = sum(PROBES[t.probe].num_cpus for t in self.in_flight.values())
        self.progress.queue_held = False
        while self.queue:
            need = PROBES[self.queue[0].probe].num_cpus
            if self.in_flight and held + need > self.task_cap():
                self.progress.queue_held = held + need <= self.cpus  # it would fit but for the trainings' CPUs
                break
            task = self.queue.popleft()
            ref = _probe_task.options(num_cpus=need, num_gpus=self.opts.gpus_per_trial).remote(
                asdict(task.cfg), task.probe, task.shard, asdict(self.grid.analysis), asdict(self.opts),
                self.datasets[task.cfg.dataset])
            self.in_flight[ref] = task
            held += need
        self.progress.tasks_queued, self.progress.tasks_running = len(self.queue), len(self.in_flight)
        if trials_waiting is not None:
            self.progress.trainings_waiting = trials_waiting
        self.view.show(self.progress)

    def cancel(self) -> None:
        for ref in self.in_flight:
            ray.cancel(ref, force=True)
        self.in_flight.clear()
        self.queue.clear()
        self.held.clear()
        self.holders.clear()


class _TuneHooks(tune.Callback):
    """Tune callback: epoch results into the progress, a finished run's probes into the queue, and the
    driver's polling after every step of Tune's event loop."""

    def __init__(self, driver: _Driver) -> None:
        self.driver = driver
        self.last_seen: dict[str, float] = {}

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:  # noqa: ANN001
        cfg = RunConfig(**trial.config["run"])
        if "error" in result:
            self.driver.fail_run(cfg, result["error"])
            return
        now = time.monotonic()
        previous = self.last_seen.get(cfg.run_id)
        self.last_seen[cfg.run_id] = now
        self.driver.progress.epoch_finished(cfg.run_id, cfg.arch, int(result["epoch"]), train_epochs(cfg),
                                            float(result.get("noisy_acc", float("nan"))),
                                            None if previous is None else now - previous, run_label(cfg))

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:  # noqa: ANN001
        cfg = RunConfig(**trial.config["run"])
        self._finished(cfg)
        ok = cfg.run_id not in self.driver.failed_runs and run_is_complete(self.driver.store, cfg)
        self.driver.progress.run_finished(cfg.run_id, cfg.arch, train_epochs(cfg), ok)
        if ok:
            self.driver.trained += 1
            self.driver.run_completed(cfg)
            self.driver.queue_tasks(cfg)
        elif cfg.run_id not in self.driver.failed_runs:
            self.driver.fail_run(cfg, "the trial ended without writing its runs row")

    def on_trial_error(self, iteration, trials, trial, **info) -> None:  # noqa: ANN001
        cfg = RunConfig(**trial.config["run"])
        self._finished(cfg)
        self.driver.progress.run_finished(cfg.run_id, cfg.arch, train_epochs(cfg), ok=False)
        error = trial.get_pickled_error() or trial.get_error()
        self.driver.fail_run(cfg, first_line(error) if error else "the trial failed")

    def _finished(self, cfg: RunConfig) -> None:
        self.driver.trainings_left -= 1
        self.last_seen.pop(cfg.run_id, None)

    def on_step_end(self, iteration, trials, **info) -> None:  # noqa: ANN001
        self.driver.pump(trials_waiting=sum(t.status == "PENDING" for t in trials))


@contextmanager
def _stop_signals(driver: _Driver) -> Iterator[None]:
    """SIGINT and SIGTERM mark the driver as interrupted; its next poll stops the sweep. A second signal stops at
    once. Tune's own SIGINT handler (which would end the sweep as if it had finished) is turned off."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        stopping.note(signum)
        if driver.signum is not None:
            raise Interrupted(driver.signum)  # the first signal stays the one the closing line names
        driver.signum = signum

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _check_reachable(address: str) -> None:
    """Fail in seconds, not minutes, when nothing listens at a HOST:PORT address (Ray itself retries for long)."""
    target = address.split("://", 1)[-1]
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        return  # 'auto' and the like: Ray resolves them, and says so itself when no cluster is found
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=5):
            pass
    except OSError as exc:
        raise UserError(f"cannot reach a Ray cluster at {address} ({exc.strerror or exc}); start one with "
                        "`ray start --head`, or leave out --address to run on a private local cluster") from exc


def init_ray(opts: Options) -> None:
    """Join the given cluster, or start a private local one that listens on 127.0.0.1 only, with no dashboard.

    Loopback: Ray binds its servers to the node's IP address, and turns a requested 127.0.0.1 into the machine's
    outward address unless multi-node clusters are switched off (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, read by
    Ray at import; set here for the processes ray.init starts and in Ray's loaded constants for this one).
    Token authentication stays on (Ray's default for a new local cluster). Joining a cluster by address sends
    a token when one is at hand; Ray decides that from RAY_AUTH_MODE and its cached config, so both are set
    here, at connect time, whatever was imported before.
    """
    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # the storage test hook reaches a joined cluster's workers too (a private cluster's inherit it)
    hook = {"env_vars": {FAULT_ENV: os.environ[FAULT_ENV]}} if os.environ.get(FAULT_ENV) else None
    if opts.address:  # the plug-ins' files reach a joined cluster's nodes (a private cluster's workers see them)
        from sweep.plugins import shipped

        modules = shipped(opts.plugins)
        hook = {**(hook or {}), "py_modules": modules} if modules else hook
    from ray._private import utils as ray_utils

    # ray.init installs a SIGTERM handler that exits on the spot (status 15, no closing line, often swallowed as
    # "Exception ignored"); it is kept from doing so, and a signal meanwhile waits for the end of the start-up
    # (cut off half-way, it would leave a cluster behind that nothing stops).
    install = ray_utils.set_sigterm_handler
    ray_utils.set_sigterm_handler = lambda handler: None
    try:
        with stopping.held():
            _connect(opts, hook)
    except (ConnectionError, TimeoutError) as exc:
        raise UserError(f"cannot connect to Ray at {opts.address or 'a new local cluster'}: {first_line(exc)}") from exc
    finally:
        ray_utils.set_sigterm_handler = install


def _connect(opts: Options, runtime_env: dict | None) -> None:
    """Join or start the cluster (init_ray's work, run with the stop signals held)."""
    if opts.address:
        _check_reachable(opts.address)
        from ray._private.authentication.authentication_token_setup import (
            maybe_enable_token_auth_if_token_available,
        )

        maybe_enable_token_auth_if_token_available(warn_if_disabled=False)
        ray.init(address=opts.address, log_to_driver=False, configure_logging=False, runtime_env=runtime_env)
    else:
        from ray._private import ray_constants

        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
        os.environ[reaper.MARK] = uuid.uuid4().hex  # inherited by every process of the cluster
        ray_constants.ENABLE_RAY_CLUSTER = False
        ray.init(address="local", include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False,
                 configure_logging=False, runtime_env=runtime_env)
        _start_reaper()


_private: dict[str, object] = {}  # the private cluster of this driver: its session folder and its reaper


def _start_reaper() -> None:
    """Start the watcher that stops the private cluster if this driver is killed (sweep.reaper)."""
    node = ray._private.worker._global_node
    heads = [str(info.process.pid) for infos in node.all_processes.values() for info in infos]
    session = node.get_session_dir_path()
    _private["session"] = session
    _private["reaper"] = subprocess.Popen(
        [sys.executable, "-m", "sweep.reaper", str(os.getpid()), os.environ[reaper.MARK], session, *heads],
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))), stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def shutdown_ray(keep_logs: bool = False) -> str | None:
    """Disconnect; a private local cluster stops with its driver, and its session folder is removed unless
    `keep_logs`. With `keep_logs` the session folder's path is returned: the workers' logs there (on each node
    of a joined cluster) hold the tracebacks of what failed."""
    if not ray.is_initialized():
        return None
    joined = None if "session" in _private else ray._private.worker._global_node.get_session_dir_path()
    with stopping.held():  # cut short, it would leave the cluster's processes or its session folder behind
        ray.shutdown()
        watcher = _private.pop("reaper", None)
        if isinstance(watcher, subprocess.Popen):
            watcher.terminate()
            watcher.wait()
        session = _private.pop("session", None)
        if isinstance(session, str) and not keep_logs:
            reaper.remove_session(session)
    return (session or joined) if keep_logs else None


def check_resources(opts: Options) -> None:
    """Refuse, before any trial waits for them, trials or tasks that no node of the cluster can hold."""
    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    for flag, name, wanted in (("--cpus-per-trial", "CPU", opts.cpus_per_trial),
                               ("--gpus-per-trial", "GPU", opts.gpus_per_trial)):
        most = max((n.get(name, 0.0) for n in nodes), default=0.0)
        if wanted > most:
            raise UserError(f"{flag} {wanted:g} asks for more than any node of the Ray cluster has ({most:g} "
                            f"{name}s on its largest node); accepted here: 0 to {most:g}")


def write_catalogue(store: Store) -> None:
    """Put the tables' catalogue (every column, its type, unit and meaning) beside the tables as README.md, so
    a results folder copied anywhere explains itself; rewritten only when this version's catalogue differs. A
    README.md the user wrote is never replaced: the catalogue then goes to _catalogue.md, and a line says so."""
    ownership.write_catalogue(store, catalogue())  # README.md only where absent or ours (sweep.ownership)


def run_grid(grid: Grid, opts: Options, view: ProgressView | None = None,
             loaded: dict[str, Dataset] | None = None) -> Summary:
    """Run every training and probe of `grid` that is not finished yet; returns what was done and what failed.
    `loaded`: datasets the caller has loaded already (the command line does, to refuse missing files early),
    shared as they are instead of being loaded again.

    On SIGINT or SIGTERM it stops trials and tasks and returns with `interrupted` set to the signal.
    """
    from sweep.plugins import activate

    opts = replace(opts, plugins=(*opts.plugins, *grid.plugins)).resolved()  # a grid file's own plug-ins too
    activate(opts.plugins)  # here too for callers of the Python API; the command line imported them already
    store = Store(opts.results)
    probes = selected_probes(opts.only)
    ownership.check_results_folder(opts.results)  # nothing of the user's in the way of what a sweep writes
    with lock.holding(store):
        plan = make_plan(store, grid, probes, checksums=opts.verify)
        check_results_match(store, grid, probes, plan)
        if "localize" in probes:  # the command line checked already; this covers callers of the Python API
            from sweep.probes.localize import check_localize_grid

            check_localize_grid(grid.runs, grid.analysis, {n: len(d.train) for n, d in (loaded or {}).items()})
        view = view or ProgressView()
        for line in plan.damage_lines():
            view.print(line)
        repair(store, plan, grid)
        store.remove_leftover_temporaries()  # of writers killed mid-write; no one else writes here: we hold the lock
        init_ray(opts)
        check_resources(opts)
        write_catalogue(store)  # after every refusal: bad input leaves no results folder behind
        # This sweep tries every unfinished unit of the grid again, so notes of their earlier failures go now; a
        # unit that fails again gets a new one. (--status shows a finished unit as done whatever notes it has.)
        clear_failures(store, [run_failure_path(c.run_id) for c in grid.runs]
                       + [task_failure_path(t.file_name) for t in plan.tasks])
        return _drive(grid, opts, store, probes, plan, view, loaded or {})


def _drive(grid: Grid, opts: Options, store: Store, probes: dict[str, Probe], plan: Plan,
           view: ProgressView, loaded: dict[str, Dataset]) -> Summary:
    """Train the plan's pending runs and run its tasks on the connected cluster, until done or interrupted."""
    pending, todo = plan.pending, plan.todo
    epochs_left: Counter[str] = Counter()
    for cfg in pending:
        epochs_left[cfg.arch] += train_epochs(cfg)
    tally = plan.tally
    progress = Progress(runs_total=tally.runs_total, tasks_total=tally.tasks_total, runs_done=tally.runs_done,
                        tasks_done=tally.tasks_done, epochs_left=dict(epochs_left),
                        tasks_left=dict(Counter(t.probe for t in todo)))
    cpus = float(ray.cluster_resources().get("CPU", 1.0))
    progress.slots = cpus / max(opts.cpus_per_trial, 1.0)
    driver = _Driver(grid, opts, store, probes, progress, view, cpus, trainings_left=len(pending),
                     aux=auxiliary_by_base(grid.runs), unfinished={c.run_id for c in pending})
    driver.trackers = Trackers(opts.loggers, store, grid.name, probes, grid.analysis, driver.aux, say=view.print)
    driver.datasets = _share_datasets({c.dataset for c in pending} | {t.cfg.dataset for t in todo}, opts, loaded)
    waits = {c.run_id for c in pending}
    driver.offer([t for t in todo if t.cfg.run_id not in waits])  # runs finished earlier: their probes now
    with _stop_signals(driver):
        try:
            driver.pump()
            if pending:
                _fit(pending, opts, store, grid, driver, driver.datasets)
            driver.trainings_left = 0  # Tune is done: no CPUs kept for trainings, none shown as running or left
            progress.trainings_over()
            for run_id in sorted(driver.unfinished):  # a trial Tune ended without a report of either kind
                driver.release_failed(run_id)
            while driver.in_flight or driver.queue:
                driver.pump()
                time.sleep(0.1)
        except Interrupted as stop:
            driver.signum = stop.signum if driver.signum is None else driver.signum
            driver.cancel()
    view.show(progress, force=True)
    view.close()
    return Summary(tally=make_plan(store, grid, probes).tally, trained=driver.trained, tasks_run=driver.tasks_run,
                   failures=driver.failures, interrupted=driver.signum)


def _fit(pending: list[RunConfig], opts: Options, store: Store, grid: Grid, driver: _Driver,
         datasets: dict[str, ray.ObjectRef | None]) -> None:
    """Train the pending runs as Tune trials, in one experiment per grid and results folder (a rerun continues
    the same experiment folder), each trial's folder named by its run id."""
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # with verbose=0: no experiment banner, no trial tables
    keep = {c.run_id: checkpoint_epochs(c, grid.analysis, driver.aux) for c in pending}
    trainable = tune.with_resources(tune.with_parameters(_train_trial, datasets=datasets, options=asdict(opts),
                                                         keep=keep),
                                    {"cpu": opts.cpus_per_trial, "gpu": opts.gpus_per_trial})
    run_id = lambda trial: RunConfig(**trial.config["run"]).run_id  # noqa: E731
    tuner = tune.Tuner(
        trainable,
        param_space={"run": tune.grid_search([asdict(c) for c in pending])},  # the trial's config: the run's fields
        tune_config=tune.TuneConfig(max_concurrent_trials=opts.max_concurrent or None, reuse_actors=False,
                                    trial_name_creator=run_id, trial_dirname_creator=run_id),
        run_config=tune.RunConfig(
            name=f"sweep-{grid.name}", storage_path=f"{store.uri}/_tune", verbose=0,
            failure_config=tune.FailureConfig(max_failures=opts.max_failures),
            callbacks=[_TuneHooks(driver), *driver.trackers.tune_callbacks()]),  # --logger: sweep.trackers
    )
    try:
        tuner.fit()
    except Interrupted:
        raise
    except Exception as exc:  # Tune's own writes (its experiment state under <results>/_tune) on a full disk
        cause = _storage_error(exc)
        if cause is None:
            raise
        for cfg in pending:  # one line per run it left unfinished, as a failed trial gives
            if cfg.run_id not in driver.failed_runs and not run_is_complete(store, cfg):
                driver.fail_run(cfg, first_line(cause))


def _storage_error(exc: BaseException) -> OSError | None:
    """The OSError behind a wrapped error (Tune's TuneError and the like), if there is one."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, OSError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__ or getattr(exc, "cause", None)
    return None


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use run_sweep.py")
