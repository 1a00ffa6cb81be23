"""What is done and what is left of a grid, read from the results folder alone (no Ray): the engine plans with
it, `--dry-run` prints it, and the driver's closing line counts with it.

"Done" means a done-record whose files match it (sweep.records). Damaged work is redone together with all
that depends on it: a run whose files no longer match its record is trained again from the start, and every
probe shard of it is redone. Probe results made under other analysis settings are never mixed with new ones:
they are conflicts the user settles (`check_results_match`).

Auxiliary trainings (out-of-sample folds, SSFT halves) write the `aux_*` twins of the training tables
(sweep.store.table_for). A run's file found in the twin it does not write (a fold run's `epochs/<run_id>.parquet`
from layout 2) is named by the plan and removed before anything runs (`misplaced_files`), so a plain read of a
main table never mixes the two kinds; its older-layout record already makes the run pending.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from sweep import records
from sweep.bulk import gc_paused
from sweep.config import AnalysisConfig, RunConfig
from sweep.errors import UserError
from sweep.grids import Grid
from sweep.probes import PROBES, Probe
from sweep.schemas import AUX_PREFIX, TRAINING_TABLES
from sweep.store import Store, table_for
from sweep.train import checkpoint_dir, record_epochs

# Every table a training writes a file of: the training tables and their aux_* twins (an auxiliary training writes
# the twins; the other of each pair may hold a stale file from layout 2, which put fold runs in the main tables),
# and the auxiliary trainings' own outputs (a pack of subset models: its models' predictions).
RUN_TABLES = (*TRAINING_TABLES, *(f"{AUX_PREFIX}{t}" for t in TRAINING_TABLES), "oos_predictions", "ssft",
              "subset_predictions")
# base run_id -> the grid's auxiliary trainings of that run (sweep.plan.auxiliary_by_base)
AuxMap = Mapping[str, Sequence[RunConfig]]


@dataclass(frozen=True)
class Task:
    """One probe shard of one run: the unit of fan-out and of resume."""

    cfg: RunConfig
    probe: str
    shard: str

    @property
    def file_name(self) -> str:
        return f"{self.cfg.run_id}-{self.probe}-{self.shard}"

    @property
    def label(self) -> str:
        return f"{self.probe} {self.shard} of {self.cfg.run_id}"


def selected_probes(only: tuple[str, ...] | None) -> dict[str, Probe]:
    return {name: p for name, p in PROBES.items() if only is None or name in only}


def auxiliary_by_base(runs: Sequence[RunConfig]) -> dict[str, list[RunConfig]]:
    """The auxiliary trainings among `runs`, grouped by the run id of the ordinary run they belong to
    (RunConfig.base): one pass, so planning stays linear in the grid's size however many packs it holds."""
    found: dict[str, list[RunConfig]] = {}
    for cfg in runs:
        if cfg.auxiliary:
            found.setdefault(cfg.base().run_id, []).append(cfg)
    return found


def needed_runs(cfg: RunConfig, probe: Probe, aux: AuxMap | None) -> list[RunConfig]:
    """The auxiliary trainings of `cfg` that `probe` reads (Probe.needs): its tasks on `cfg` wait for all of them.
    Empty for a probe without `needs`, and when no grid context (`aux`) is given."""
    if probe.needs is None or aux is None:
        return []
    return [r for r in aux.get(cfg.run_id, ()) if probe.needs(r)]


def tasks_for(cfg: RunConfig, probes: dict[str, Probe], analysis: AnalysisConfig,
              aux: AuxMap | None = None) -> list[Task]:
    """The probe shards of a run. An auxiliary training (out-of-sample fold, SSFT half, pack) has none: it exists
    for its predictions or scores. A probe with `needs` applies only where the grid (`aux`, from
    `auxiliary_by_base(grid.runs)`) holds at least one auxiliary training of the run that it needs."""
    if cfg.auxiliary:
        return []
    return [Task(cfg, name, shard) for name, probe in probes.items()
            if probe.applies(cfg) and (probe.needs is None or needed_runs(cfg, probe, aux))
            for shard in probe.shards(cfg, analysis)]


def checkpoint_epochs(cfg: RunConfig, analysis: AnalysisConfig, aux: AuxMap | None = None,
                      tasks: Sequence[Task] | None = None) -> list[int] | None:
    """The epochs whose weights a training of `cfg` keeps: those every registered analysis that applies to it
    (in the grid whose auxiliary trainings `aux` maps) reads (all of them, whatever --only says today, so a later
    sweep still finds them) and the last; None for keep_checkpoints = "all". `tasks`: `tasks_for(cfg, PROBES,
    analysis, aux)` where the caller has it already (a dry run of a huge grid), so shards are not made twice."""
    if analysis.keep_checkpoints == "all":
        return None
    epochs = {cfg.epochs}
    # what a probe reads depends on the run and the settings, not on the shard: asked once per probe
    for probe in dict.fromkeys(t.probe for t in (tasks_for(cfg, PROBES, analysis, aux) if tasks is None else tasks)):
        epochs.update(PROBES[probe].reads(cfg, analysis))
    return sorted(epochs)


def missing_epochs(store: Store, grid: Grid, probes: dict[str, Probe], plan: Plan) -> None:
    """Refuse (UserError) a sweep whose analyses would read an epoch that a finished run did not keep (say,
    after adding a rewind epoch to a grid trained with keep_checkpoints = "probes"): training it again
    silently would throw away a finished run, and probing without the epoch would give other rows."""
    needed: dict[str, set[int]] = {}
    for task in plan.tasks if plan.kept else ():  # only finished runs' tasks read kept epochs
        if task.cfg.run_id in plan.kept:
            needed.setdefault(task.cfg.run_id, set()).update(probes[task.probe].reads(task.cfg, grid.analysis))
    for run_id, reads in needed.items():
        missing, kept = sorted(reads - set(plan.kept[run_id])), plan.kept[run_id]
        if missing:
            raise UserError(
                f"run {run_id} kept no checkpoint for epoch(s) {', '.join(map(str, missing))}, which grid "
                f"{grid.name!r}'s analyses read (it kept epochs {', '.join(map(str, kept))}); delete "
                f"{store.uri}/{records.run_record_path(run_id)} to train it again, or choose analysis settings "
                "within the epochs it kept")


def probe_settings(probe: Probe, analysis: AnalysisConfig) -> dict[str, object]:
    """The analysis settings a probe's rows depend on, as its records store them."""
    return records.plain({name: getattr(analysis, name) for name in probe.settings})


def task_record(task: Task, run_record_id: str, analysis: AnalysisConfig, files: dict) -> records.Record:
    return records.Record(task.file_name, probe_settings(PROBES[task.probe], analysis), files, run_record_id)


@dataclass(frozen=True)
class Tally:
    """What the results folder holds for a grid: the only source of 'done' the driver reports."""

    runs_done: int
    runs_total: int
    tasks_done: int
    tasks_total: int

    @property
    def complete(self) -> bool:
        return self.runs_done == self.runs_total and self.tasks_done == self.tasks_total

    def __str__(self) -> str:
        return (f"{self.runs_done} of {self.runs_total} runs and {self.tasks_done} of {self.tasks_total} "
                "analysis tasks finished")


@dataclass
class Plan:
    """One look at the results folder: runs to train, tasks to run, damaged units, settings conflicts."""

    runs: list[RunConfig] = field(default_factory=list)
    pending: list[RunConfig] = field(default_factory=list)
    tasks: list[Task] = field(default_factory=list)
    todo: list[Task] = field(default_factory=list)
    damaged_runs: dict[str, str] = field(default_factory=dict)  # run_id -> what is wrong
    damaged_tasks: dict[Task, str] = field(default_factory=dict)
    conflicts: list[str] = field(default_factory=list)
    misplaced: list[str] = field(default_factory=list)  # run table files in the table their run does not write
    kept: dict[str, list[int]] = field(default_factory=dict)  # done run_id -> the epochs its record lists

    @property
    def tally(self) -> Tally:
        return Tally(len(self.runs) - len(self.pending), len(self.runs), len(self.tasks) - len(self.todo),
                     len(self.tasks))

    def damage_lines(self) -> list[str]:
        """One line per damaged unit, saying what is wrong and that it is redone."""
        lines = [f"run {run_id}: {what}; training it again, and redoing its analyses"
                 for run_id, what in self.damaged_runs.items()]
        lines += [f"{task.label}: {what}; redoing it" for task, what in self.damaged_tasks.items()]
        lines += [f"{rel}: a run's rows in the table its kind of run no longer writes (auxiliary trainings write "
                  "the aux_* tables since results layout 3); removing it" for rel in self.misplaced]
        return lines


def tally(store: Store, grid: Grid, probes: dict[str, Probe]) -> Tally:
    """What the results folder holds for `grid`, counted from done-records checked against their files."""
    return make_plan(store, grid, probes).tally


def make_plan(store: Store, grid: Grid, probes: dict[str, Probe], checksums: bool = False) -> Plan:
    """Compare the grid with the results folder. Sizes of recorded files are always checked, their SHA-256
    too with `checksums` (--verify)."""
    with gc_paused():  # a task per probe shard per run, all kept: the collector would walk them again and again
        return _make_plan(store, grid, probes, checksums)


def _make_plan(store: Store, grid: Grid, probes: dict[str, Probe], checksums: bool) -> Plan:
    plan = Plan(runs=list(grid.runs))
    plan.misplaced = misplaced_files(store, grid.runs)
    aux = auxiliary_by_base(grid.runs)
    # One listing per record folder, not one look per run or task: a record is read only where it is listed, and
    # every record's files are checked against one shared listing per folder (big grids plan in seconds).
    done_runs, done_tasks = set(store.list(records.RUNS)), set(store.list(records.TASKS))
    listings: dict[str, dict[str, int]] = {}
    for cfg in grid.runs:
        run = (records.read(store, records.run_record_path(cfg.run_id), listed=True)
               if f"{cfg.run_id}.json" in done_runs else None)
        problem = None if run is None else records.problem(store, run, checksums, listings)
        tasks = tasks_for(cfg, probes, grid.analysis, aux)
        plan.tasks += tasks
        if run is None or problem is not None:
            plan.pending.append(cfg)
            plan.todo += tasks
            if problem is not None:
                plan.damaged_runs[cfg.run_id] = problem
            continue
        plan.kept[cfg.run_id] = record_epochs(run)
        for task in tasks:
            record = (records.read(store, records.task_record_path(task.file_name), listed=True)
                      if f"{task.file_name}.json" in done_tasks else None)
            if record is None:
                plan.todo.append(task)
                continue
            wanted = probe_settings(PROBES[task.probe], grid.analysis)
            trouble = records.problem(store, record, checksums, listings)
            if record.settings != wanted and trouble is None:
                plan.conflicts.append(f"{min(record.files)} ({task.label}) was made with "
                                      f"{_differences(record.settings, wanted)}")
            elif record.settings != wanted or record.run_record != run.record_id:
                plan.todo.append(task)  # its files are gone, or it read a run that was trained again since
            elif trouble is not None:
                plan.todo.append(task)
                plan.damaged_tasks[task] = trouble
    _redo_dependents(plan, probes, aux)
    return plan


def _redo_dependents(plan: Plan, probes: dict[str, Probe], aux: AuxMap) -> None:
    """A finished task whose needed auxiliary training is to be trained (again) read results that are gone or
    void: it is redone after that training, like a task of a retrained run."""
    pending = {cfg.run_id for cfg in plan.pending}
    waiting = {name for name, probe in probes.items() if probe.needs is not None}  # the others need nothing
    if not pending or not waiting:
        return
    todo = {task for task in plan.todo if task.probe in waiting}  # hashing every task (its config) is slow
    for task in plan.tasks:
        if (task.probe in waiting and task not in todo
                and any(r.run_id in pending for r in needed_runs(task.cfg, probes[task.probe], aux))):
            plan.todo.append(task)


def misplaced_files(store: Store, runs: list[RunConfig] | tuple[RunConfig, ...]) -> list[str]:
    """Files of these runs in a training table that is not theirs (sweep.store.table_for): a fold run's
    `epochs/<run_id>.parquet` written under layout 2, before auxiliary tables. pandas would read it with the
    ordinary runs, so it is removed before anything else (its run's old-layout record makes the run pending, so it
    is trained again into the aux_* tables); one listing per table."""
    listings: dict[str, set[str]] = {}
    found = []
    # table_for depends on the run only through `auxiliary`: asked once per kind of run, not once per run
    kinds = [cfg.auxiliary for cfg in runs]
    one_of_each = dict(zip(kinds, runs, strict=True))  # a run of each kind
    for table in TRAINING_TABLES:
        twin = f"{AUX_PREFIX}{table}"
        writes = {aux: table_for(cfg, table) for aux, cfg in one_of_each.items()}
        wrongs = [twin if writes[aux] == table else table for aux in kinds]
        for wrong in dict.fromkeys(wrongs):  # each table a run of the grid does not write, listed once
            listings.setdefault(wrong, set(store.list(wrong)))
        if not (listings.get(table) or listings.get(twin)):
            continue  # nothing there to misplace (a new folder): no look per run
        for cfg, wrong in zip(runs, wrongs, strict=True):
            if f"{cfg.run_id}.parquet" in listings[wrong]:
                found.append(store.table_file(wrong, cfg.run_id))
    return found


def _differences(made: dict[str, object], wanted: dict[str, object]) -> str:
    diffs = [f"{k}={made.get(k)!r} (this grid: {wanted.get(k)!r})" for k in sorted(set(made) | set(wanted))
             if made.get(k) != wanted.get(k)]
    return ", ".join(diffs)


def repair(store: Store, plan: Plan, grid: Grid) -> None:
    """Clear what the plan found damaged, so it is redone from scratch: a damaged run loses its record, its
    checkpoints (a resume would start from them), its tables and every probe result and record of it; a damaged
    task loses its record (its files are rewritten when it runs again). Misplaced run files (`misplaced_files`)
    are removed."""
    by_id = {cfg.run_id: cfg for cfg in grid.runs}
    for rel in plan.misplaced:
        store.delete(rel)
    for run_id in plan.damaged_runs:
        store.delete(records.run_record_path(run_id))
        store.delete(checkpoint_dir(by_id[run_id]))
        for table in RUN_TABLES:
            store.delete(store.table_file(table, run_id))
        prefix = f"{run_id}-"
        for name in store.list(records.TASKS):
            if name.startswith(prefix):
                store.delete(f"{records.TASKS}/{name}")
        for table in {t for p in PROBES.values() for t in p.tables}:
            for name in store.list(table):
                if name.startswith(prefix):
                    store.delete(f"{table}/{name}")
    for task in plan.damaged_tasks:
        store.delete(records.task_record_path(task.file_name))


def withdraw_run(store: Store, cfg: RunConfig, damaged: str) -> None:
    """Called where a probe finds a checkpoint of a finished run damaged: the run's record and the damaged file
    go, so the next sweep trains the run again (from the start: its saved state no longer matches)."""
    store.delete(records.run_record_path(cfg.run_id))
    store.delete(damaged)


def stale_files(store: Store, grid: Grid, probes: dict[str, Probe]) -> list[str]:
    """Probe files of this grid's runs that no task of this grid owns: made under other analysis settings.

    pandas reads every file of a table, so such a file would sit beside the new ones: a chunk of flips whose
    targets differ from what its name now means, or rows counted twice. Names of settings-dependent shards
    carry a digest of those settings (flip chunks do), which is what makes leftovers visible here.
    """
    listing = {table: set(store.list(table)) for p in probes.values() for table in p.tables}
    # Only runs with a file in these tables can have a stale one: a file of run r and probe p starts with
    # "r-p-", so what comes before any "-p-" in a name is a candidate run id; the other runs' shards are never made.
    listed = {name[:i] for names in listing.values() for name in names for i in _dashed(name, probes)}
    stale = []
    for cfg in (c for c in grid.runs if c.run_id in listed):
        for name, probe in probes.items():
            if not probe.applies(cfg):
                continue
            prefix = f"{cfg.run_id}-{name}-"
            owned = {f"{Task(cfg, name, shard).file_name}.parquet" for shard in probe.shards(cfg, grid.analysis)}
            for table in probe.tables:
                stale += [f"{table}/{f}" for f in sorted(listing[table]) if f.startswith(prefix) and f not in owned]
    return stale


def _dashed(name: str, probes: Mapping[str, Probe]) -> list[int]:
    """Every position in `name` where "-<probe>-" begins, for each probe name."""
    found = []
    for probe in probes:
        needle = f"-{probe}-"
        at = name.find(needle)
        while at != -1:
            found.append(at)
            at = name.find(needle, at + 1)
    return found


def check_results_match(store: Store, grid: Grid, probes: dict[str, Probe], plan: Plan) -> None:
    """Refuse (UserError, before any work) to add to results that hold probe results from other settings:
    flip chunks of another digest, or any shard whose record names other settings than this grid's."""
    stale = stale_files(store, grid, probes)
    ways_out = ("delete those result files to recompute with these settings, rerun with the settings that made "
                "them, or use another --results")
    if stale:
        raise UserError(f"{len(stale)} result file(s) under {store.uri} were made with other analysis settings "
                        f"than grid {grid.name!r} uses (first: {stale[0]}); {ways_out}")
    if plan.conflicts:
        raise UserError(f"{len(plan.conflicts)} analysis result(s) under {store.uri} were made with other "
                        f"settings than grid {grid.name!r} uses (first: {plan.conflicts[0]}); {ways_out}")
    missing_epochs(store, grid, probes, plan)
