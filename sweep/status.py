"""`run_sweep.py --status`: where a grid stands, read from the results folder alone (no Ray, no lock).

Per run: `done` (a done-record whose files match it, as sweep.plan counts), `epoch k of E` (the small
checkpoints/<run_id>/progress.json that training writes after each epoch, with the epochs it trains in all: 2 x
epochs for an SSFT run, sweep.ssft), `failed: <error's first line>` (a
failure note, below) or `not started`; then the analysis tasks done and left, per analysis and in total; and
whether a driver holds the folder's lock now. It never writes, so it works from a second terminal while a
sweep runs.

Failure notes: the driver writes one small JSON per failed unit, `_failed/runs/<run_id>.json` and
`_failed/tasks/<run_id>-<analysis>-<shard>.json` (the error's first line, the time, the host) with the whole
traceback beside it (`.txt`: the worker writes a training's, the driver a task's), and removes the
notes of a grid's units when a sweep over them starts (it tries them all again). A finished unit shows `done`
whatever notes it has (say, a run that `python -m sweep.train` finished after a sweep failed it), and a run
trained on since its note was written shows its epoch. Table readers skip folders starting with '_', so notes
never mix with the data.

No torch at import: the engine imports the note helpers from here; the status itself reads done-records and
plans the grid's tasks with sweep.plan, which is imported when the status is drawn.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterable
from contextlib import suppress
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sweep.grids import Grid
    from sweep.probes import Probe
    from sweep.store import Store

FAILED_RUNS = "_failed/runs"
FAILED_TASKS = "_failed/tasks"


def run_failure_path(run_id: str) -> str:
    return f"{FAILED_RUNS}/{run_id}.json"


def task_failure_path(file_name: str) -> str:
    return f"{FAILED_TASKS}/{file_name}.json"


def traceback_path(rel: str) -> str:
    """Where a failure note's whole traceback lives: beside the note, `.txt` for `.json`."""
    return rel.removesuffix(".json") + ".txt"


def write_failure(store: Store, rel: str, unit: str, error: str) -> None:
    """Leave a note that `unit` failed with `error` (one line). A storage error here is swallowed: the note is a
    convenience for --status, never a reason to stop the sweep that is reporting the failure anyway."""
    note = {"unit": unit, "error": error, "time": time.time(), "when": time.strftime("%Y-%m-%d %H:%M:%S"),
            "host": socket.gethostname()}
    with suppress(OSError):
        store.write_bytes(rel, json.dumps(note).encode())


def write_traceback(store: Store, rel: str, text: str) -> str:
    """The whole traceback of a failed unit beside its note (`traceback_path(rel)`), so nobody has to search Ray's
    session logs for it; returns where it went. Swallows storage errors, as `write_failure` does."""
    where = traceback_path(rel)
    with suppress(OSError):
        store.write_bytes(where, text.encode())
    return where


def _see(store: Store, listed: set[str], rel: str) -> str:
    """' (traceback: <path>)' when the note at `rel` has its traceback file in the listing, else ''."""
    where = traceback_path(rel)
    return f" (traceback: {store.path(where)})" if where.rpartition("/")[2] in listed else ""


def clear_failures(store: Store, rels: Iterable[str]) -> None:
    """Remove the notes at `rels` that exist (one listing per notes folder, then one delete per note found)."""
    listings: dict[str, set[str]] = {}
    for rel in rels:
        folder, _, name = rel.rpartition("/")
        if folder not in listings:
            listings[folder] = set(store.list(folder))
        for note in (name, traceback_path(name)):  # the note and its traceback
            if note in listings[folder]:
                with suppress(OSError):
                    store.delete(f"{folder}/{note}")


def read_json(store: Store, rel: str) -> dict | None:
    """A small JSON object the sweep wrote (a failure note, progress.json, the lock), or None when absent or
    unreadable (say, being replaced this instant)."""
    try:
        doc = json.loads(store.read_bytes(rel))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _ago(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f}s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


def lock_line(store: Store) -> str:
    """Whether a driver (a sweep, or `python -m sweep.train`) holds the results folder's lock now."""
    from sweep import lock

    if not store.exists(lock.LOCK):
        return "no sweep running"
    holder = read_json(store, lock.LOCK) or {}
    alive = lock.holder_alive(holder)
    who = f"pid {holder.get('pid')} on {holder.get('host')}, started {holder.get('since')}: {holder.get('command')}"
    if alive:
        return f"sweep in progress: {who}"
    if alive is None:
        return f"sweep in progress, as far as can be told from {socket.gethostname()} (the lock names {who})"
    return (f"no sweep running (the lock of pid {holder.get('pid')} on {holder.get('host')} is left from a driver "
            "that is gone; the next sweep takes it over)")


def status_lines(store: Store, grid: Grid, probes: dict[str, Probe], now: float | None = None) -> list[str]:
    """The status view of `grid` under `store`: the lock, one line per run, then the analysis tasks."""
    from sweep.plan import make_plan
    from sweep.progress import pack_label
    from sweep.train import progress_path

    now = time.time() if now is None else now
    plan = make_plan(store, grid, probes)
    pending = {cfg.run_id for cfg in plan.pending}
    failed_runs = set(store.list(FAILED_RUNS))
    width = max(len(cfg.run_id) for cfg in grid.runs)
    counts = {"done": 0, "training": 0, "failed": 0, "not started": 0}
    lines = [lock_line(store)]
    for cfg in grid.runs:
        progress = None if cfg.run_id not in pending else read_json(store, progress_path(cfg.run_id))
        note = None
        if cfg.run_id in pending and f"{cfg.run_id}.json" in failed_runs:
            note = read_json(store, run_failure_path(cfg.run_id))
        if note is not None and progress is not None and float(progress.get("time", 0)) > float(note.get("time", 0)):
            note = None  # trained on since it failed (say, by `python -m sweep.train`)
        if cfg.run_id not in pending:
            state, key = "done", "done"
        elif note is not None:
            state, key = f"failed: {note.get('error')}{_see(store, failed_runs, run_failure_path(cfg.run_id))}", \
                "failed"
        elif cfg.run_id in plan.damaged_runs:
            state, key = f"not started ({plan.damaged_runs[cfg.run_id]}: a sweep trains it again)", "not started"
        elif progress is not None:
            epochs = progress.get("epochs", cfg.epochs)  # an SSFT run trains 2 x epochs
            noisy = float(progress.get("noisy_acc", 0))  # NaN: a pack, which evaluates after its last epoch only
            accuracy = "" if noisy != noisy else f"noisy-train accuracy {noisy:.3f}, "
            state, key = (f"epoch {progress.get('epoch')} of {epochs} ({accuracy}"
                          f"{_ago(now - float(progress.get('time', now)))} on {progress.get('host')})"), "training"
        else:
            state, key = "not started", "not started"
        counts[key] += 1
        if cfg.subsets:  # a pack of subset models: which pack, which models (its epochs count like a run's)
            state = f"{pack_label(cfg.run_id)} (models {cfg.models.start}..{cfg.models.stop - 1}): {state}"
        lines.append(f"{cfg.run_id:<{width}}  {state}")
    lines.append(f"runs: {counts['done']} done, {counts['training']} partly trained, {counts['failed']} failed, "
                 f"{counts['not started']} not started (of {len(grid.runs)})")
    tally = plan.tally
    lines.append(f"analysis tasks: {tally.tasks_done} done, {tally.tasks_total - tally.tasks_done} left "
                 f"(of {tally.tasks_total})")
    for name in probes:
        total = sum(t.probe == name for t in plan.tasks)
        if total:
            left = sum(t.probe == name for t in plan.todo)
            lines.append(f"  {name}: {total - left} done, {left} left (of {total})")
    failed_tasks = set(store.list(FAILED_TASKS))
    for task in plan.todo:
        if f"{task.file_name}.json" in failed_tasks:
            note = read_json(store, task_failure_path(task.file_name))
            if note is not None:
                lines.append(f"  failed: {task.label}: {note.get('error')}"
                             f"{_see(store, failed_tasks, task_failure_path(task.file_name))}")
    if plan.conflicts:
        lines.append(f"{len(plan.conflicts)} analysis result(s) were made with other settings than this grid's "
                     f"(first: {plan.conflicts[0]}); a sweep refuses to add to them")
    return lines
