"""What `--dry-run` prints: the analysis settings, a table of the runs (or, for more than a screenful, counts per
dataset, arch and variant), and the storage the sweep needs: checkpoints, packs of subset models, predictions.

Nothing here writes: the plan is read from the results folder alone (sweep.plan), so a dry run of a folder that
does not exist leaves none behind. The dry run plans once; everything per run (its tasks, its kept epochs) is
taken from that one plan, so a 100,000-run grid prints in seconds (bench/grid_plan.py).
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Sequence

from sweep.bulk import gc_paused
from sweep.config import CONFIG_COLUMNS, LATE_FIELDS, AnalysisConfig, RunConfig
from sweep.data import SYNTHETIC_SIZES
from sweep.engine import Options
from sweep.grids import Grid
from sweep.models.for_run import build_model_for
from sweep.plan import Task, auxiliary_by_base, check_results_match, checkpoint_epochs, make_plan, selected_probes
from sweep.probes import PROBES
from sweep.schemas import TABLES
from sweep.ssft import train_epochs
from sweep.store import Store
from sweep.summary import SCREEN_RUNS, summary_lines

WIDTH = 100  # the settings lines wrap here: a terminal of 100 columns shows them whole
# The run table's columns; the run is named by its short id (RunConfig.run_id less the readable part that the
# dataset .. seed columns already show): the digest, after the fold, half or pack an auxiliary training is.
TABLE_COLUMNS = ("run", "dataset", "arch", "variant", "noise", "seed")
# fields that the short id spells out (an auxiliary training's part of a run), never a column or a line of their own
_IN_SHORT_ID = ("cv_folds", "cv_fold", "ssft_half", "subsets", "pack", "pack_index")


@functools.cache
def _n_params(arch: str, dataset: str, width: float, variant: str) -> int:
    """Parameters of a run's model (built once per kind: a grid repeats them over seeds and noise rates)."""
    cfg = RunConfig(dataset=dataset, arch=arch, width=width, variant=variant)
    return sum(p.numel() for p in build_model_for(cfg).parameters())


# Examples per split (train, test) of the built-in datasets, for the storage estimate of subset predictions
# without loading the data (digits: scikit-learn's 1,797 images split 80/20, sweep.data)
SPLIT_SIZES = {"digits": (1437, 360), "mnist": (60_000, 10_000), "fashion-mnist": (60_000, 10_000),
               "cifar10": (50_000, 10_000), "svhn": (73_257, 26_032), **SYNTHETIC_SIZES}
# stored bytes per value of a column type before compression; the run's config columns are left out (constant
# in a file, Parquet's dictionary and run-length encoding make them next to free)
_TYPE_BYTES = {"int64": 8, "double": 8, "float": 4, "bool": 1, "string": 8}


def prediction_row_bytes() -> int:
    """Bytes per `subset_predictions` row: its own columns' values, from the table's declared schema."""
    spec = TABLES["subset_predictions"]
    return sum(_TYPE_BYTES.get(str(c.type), 8) for c in spec.columns)


def _size(n_bytes: int) -> str:
    return f"{n_bytes / 2**30:.2f} GiB" if n_bytes >= 2**30 else f"{n_bytes / 2**20:.1f} MiB"


def pack_lines(grid: Grid) -> list[str]:
    """What --dry-run adds for a grid with subset models: trials, packs, models and the subset_predictions
    storage (each model predicts every training and test example: one row each)."""
    packs = [cfg for cfg in grid.runs if cfg.subsets]
    if not packs:
        return []
    bases = {cfg.base().run_id for cfg in packs}
    models = sum(len(cfg.models) for cfg in packs)
    unknown = sorted({cfg.dataset for cfg in packs} - set(SPLIT_SIZES))
    rows = sum(len(cfg.models) * sum(SPLIT_SIZES[cfg.dataset]) for cfg in packs if cfg.dataset in SPLIT_SIZES)
    row_bytes = prediction_row_bytes()
    sizes = sorted({cfg.pack for cfg in packs})
    return [f"{len(grid.runs)} trials: {len(grid.runs) - len(packs)} runs and {len(packs)} packs of "
            f"{'/'.join(map(str, sizes))} subset models ({models:,} models of {len(bases)} standard runs)",
            f"subset_predictions: {rows:,} rows x {row_bytes} bytes = about {_size(rows * row_bytes)} before "
            "compression" + (f" (and the rows of {', '.join(unknown)}, of unknown size)" if unknown else "")]


def show(value: object) -> str:
    """A setting's value as a grid file or --set takes it: "all" for None, true/false, lists with commas."""
    if value is None:
        return "all"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(show(v) for v in value) or "(none)"
    return f"{value:g}" if isinstance(value, float) else str(value)


def wrapped(title: str, pairs: Sequence[tuple[str, object]], width: int = WIDTH) -> list[str]:
    """`title` then `name value` pairs, two spaces apart, wrapped to `width` columns (a pair is never split;
    continuation lines are indented)."""
    lines, line = [], title
    for name, value in pairs:
        cell = f"{name} {show(value)}"
        if line != title and len(line) + 2 + len(cell) > width:
            lines.append(line)
            line = f"  {cell}"
        else:
            line = f"{line} {cell}" if line == title else f"{line}  {cell}"
    return [*lines, line]


def analysis_lines(analysis: AnalysisConfig, width: int = WIDTH) -> list[str]:
    """Every [analysis] setting of the grid (its file's values and the defaults it leaves), a few per line."""
    return wrapped("analysis settings:", [(name, getattr(analysis, name)) for name in analysis.__dataclass_fields__],
                   width)


def short_id(cfg: RunConfig) -> str:
    """The run id less its readable part (dataset-arch-variant-n<noise>-s<seed>-): the digest, after the fold,
    SSFT half or pack for an auxiliary training. Unique within a grid as the run id is (the digest hashes every
    field), and what its files are found by (`ls results/*/ | grep <short id>`)."""
    prefix = f"{cfg.dataset}-{cfg.arch}-{cfg.variant}-n{cfg.noise:g}-s{cfg.seed}-"
    run_id = cfg.run_id
    return run_id[len(prefix):] if run_id.startswith(prefix) else run_id


def _run_fields(runs: Sequence[RunConfig]) -> tuple[list[tuple[str, object]], list[str]]:
    """The run fields outside the table's columns: (those equal on every run, with their value; those that vary,
    which get columns of their own). Late fields at their default on every run (sweep.config.LATE_FIELDS) and
    noise_seed where it follows seed on every run (the grids' rule) are left out; the fold, half and pack fields
    are in the short id."""
    same, varying = [], []
    for name in CONFIG_COLUMNS:
        if name in TABLE_COLUMNS or name in _IN_SHORT_ID:
            continue
        values = {getattr(cfg, name) for cfg in runs}
        if name == "noise_seed" and all(cfg.noise_seed == cfg.seed for cfg in runs):
            continue
        if len(values) > 1:
            varying.append(name)
        elif not (name in LATE_FIELDS and values == {LATE_FIELDS[name]}):
            same.append((name, values.pop()))
    return same, varying


def table_lines(rows: list[list[str]]) -> list[str]:
    """Rows of cells as aligned columns (two spaces apart), the first row the header."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]


def describe(grid: Grid, opts: Options) -> list[str]:
    """What a dry run prints: the analysis settings, then each run with its state, its probe tasks left and the
    checkpoint storage it needs (more runs than a screen holds: counts per dataset, arch and variant instead),
    then the storage in all; for a grid with subset models, its trials, packs and prediction storage too."""
    with gc_paused():  # the plan's objects and the per-run ones, all kept until the lines are made (sweep.bulk)
        return _describe(grid, opts)


def _describe(grid: Grid, opts: Options) -> list[str]:
    opts = opts.resolved()
    store = Store(opts.results)
    probes = selected_probes(opts.only)
    plan = make_plan(store, grid, probes, checksums=opts.verify)
    check_results_match(store, grid, probes, plan)
    pending = {cfg.run_id for cfg in plan.pending}
    aux = auxiliary_by_base(grid.runs)
    todo_by_run: dict[str, Counter[str]] = {}
    for task in plan.todo:
        counts = todo_by_run.get(task.cfg.run_id)
        if counts is None:
            counts = todo_by_run[task.cfg.run_id] = Counter()
        counts[task.probe] += 1
    # Every registered probe planned (no --only): the plan's tasks of a run are the ones its kept epochs follow
    # from (checkpoint_epochs), so no run's shards are made twice. Keyed by the config object the plan's tasks
    # hold (the grid's own), which is cheaper to look up than its id string.
    tasks_by_run: dict[int, list[Task]] | None = None
    if set(probes) == set(PROBES):
        tasks_by_run = {}
        for task in plan.tasks:
            listed = tasks_by_run.get(id(task.cfg))
            if listed is None:
                listed = tasks_by_run[id(task.cfg)] = []
            listed.append(task)
    lines = [*analysis_lines(grid.analysis), *plan.damage_lines()]
    per_run = len(grid.runs) <= SCREEN_RUNS
    same, varying = _run_fields(grid.runs) if per_run else ([], [])
    rows = [[*TABLE_COLUMNS, *varying, "state", "probes to do", "storage"]]
    total_bytes, pack_peak = 0, 0
    for cfg in grid.runs:
        n_params = _n_params(cfg.arch, cfg.dataset, cfg.width, cfg.variant)
        tasks = None if tasks_by_run is None else tasks_by_run.get(id(cfg), [])
        kept = checkpoint_epochs(cfg, grid.analysis, aux, tasks)
        n_kept = train_epochs(cfg) + 1 if kept is None else len(kept)
        # the kept epochs and the resume state; a pack keeps nothing once done (sweep.packs.execute_pack removes its
        # resume state), and holds its models' state only while it trains
        ckpt = n_params * 4 * 3 * len(cfg.models) if cfg.subsets else n_params * 4 * n_kept + n_params * 4 * 3
        pack_peak = max(pack_peak, ckpt) if cfg.subsets else pack_peak
        total_bytes += 0 if cfg.subsets else ckpt
        if not per_run:
            continue
        counts = todo_by_run.get(cfg.run_id, Counter())
        rows.append([short_id(cfg), cfg.dataset, cfg.arch, cfg.variant, show(cfg.noise), str(cfg.seed),
                     *(show(getattr(cfg, name)) for name in varying),
                     "to train" if cfg.run_id in pending else "done",
                     ", ".join(f"{p} {counts[p]}" for p in probes if counts[p]) or "none",
                     f"{ckpt / 2**20:.1f} MiB" + (" while training" if cfg.subsets else "")])
    if per_run:
        lines += [*wrapped("every run:", same), *table_lines(rows)] if same else table_lines(rows)
    else:  # more runs than a screen holds: counts per dataset, arch and variant instead
        lines += summary_lines(grid.runs, pending, todo_by_run, tuple(probes))
    lines += pack_lines(grid)
    lines.append(f"{len(grid.runs)} runs, {len(plan.todo)} probe tasks to run; checkpoints need about "
                 f"{total_bytes / 2**30:.2f} GiB under {store.uri}/checkpoints (reachable by every node; "
                 f"keep_checkpoints = {grid.analysis.keep_checkpoints!r})")
    if pack_peak:
        lines.append(f"each pack also holds up to {pack_peak / 2**20:,.1f} MiB of resume state while it trains, and "
                     "removes it when done")
    return lines
