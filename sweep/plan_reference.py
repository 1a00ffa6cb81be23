"""Planning the plain way, run by run: the reference that sweep.plan's fast paths are checked against
(tests/test_dryrun.py) and the baseline of bench/grid_plan.py.

One look at the results folder per run and per task, every run's auxiliary trainings searched in the whole grid,
every id hashed afresh (no cache), each run's shards made for each use: obviously what sweep.plan.make_plan
means, and too slow for a huge grid (quadratic in the auxiliary trainings).
"""

from __future__ import annotations

from sweep import records
from sweep.grids import Grid
from sweep.plan import Task, checkpoint_epochs, probe_settings
from sweep.probes import PROBES, Probe
from sweep.store import Store


def plain_tasks(cfg, grid: Grid, probes: dict[str, Probe]) -> list[Task]:  # noqa: ANN001 - a RunConfig
    """The probe shards of `cfg`, its needed auxiliary trainings found by a search of the whole grid."""
    if cfg.auxiliary:
        return []
    extra = [r for r in grid.runs if r.auxiliary and r.base()._run_id() == cfg._run_id()]
    return [Task(cfg, name, shard) for name, probe in probes.items()
            if probe.applies(cfg) and (probe.needs is None or any(probe.needs(r) for r in extra))
            for shard in probe.shards(cfg, grid.analysis)]


def plain_plan(store: Store, grid: Grid, probes: dict[str, Probe] = PROBES) -> tuple[list[str], list[str], list[str]]:
    """(pending run ids, task names, task names to do) of `grid` against `store`, as make_plan defines them."""
    pending, tasks, todo, done_tasks = [], [], [], []
    for cfg in grid.runs:
        mine = plain_tasks(cfg, grid, probes)
        tasks += mine
        run = records.read(store, records.run_record_path(cfg._run_id()))
        if run is None or records.problem(store, run) is not None:
            pending.append(cfg._run_id())
            todo += mine
            continue
        for task in mine:
            record = records.read(store, records.task_record_path(task.file_name))
            if (record is None or record.settings != probe_settings(probes[task.probe], grid.analysis)
                    or record.run_record != run.record_id or records.problem(store, record) is not None):
                todo.append(task)
            else:
                done_tasks.append(task)
    for task in done_tasks:  # a finished task that reads an auxiliary training to be trained again: redone
        needs = probes[task.probe].needs
        if needs is not None and any(r.auxiliary and r.base()._run_id() == task.cfg._run_id() and needs(r)
                                     and r._run_id() in pending for r in grid.runs):
            todo.append(task)
    return pending, [t.file_name for t in tasks], [t.file_name for t in todo]


def plain_dry_run(store: Store, grid: Grid) -> tuple[list[str], list[str], list[list[int] | None], list[str]]:
    """What a dry run computes, run by run: the plan, each run's kept epochs (its shards made again, as
    checkpoint_epochs does alone) and the probe files of other settings (a listing per table, each run's shards
    made again): (pending, to do, kept epochs per run, stale files)."""
    pending, _, todo = plain_plan(store, grid)
    kept = [checkpoint_epochs(cfg, grid.analysis, {cfg._run_id(): [r for r in grid.runs if r.auxiliary
                                                                   and r.base()._run_id() == cfg._run_id()]})
            for cfg in grid.runs]
    listing = {table: sorted(store.list(table)) for p in PROBES.values() for table in p.tables}
    stale = []
    for cfg in grid.runs:
        for name, probe in PROBES.items():
            if not probe.applies(cfg):
                continue
            prefix = f"{cfg._run_id()}-{name}-"
            owned = {f"{Task(cfg, name, shard).file_name}.parquet" for shard in probe.shards(cfg, grid.analysis)}
            stale += [f"{table}/{f}" for table in probe.tables for f in listing[table]
                      if f.startswith(prefix) and f not in owned]
    return pending, todo, kept, stale
