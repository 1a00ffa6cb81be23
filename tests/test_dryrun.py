"""--dry-run as a table (issue 25, item 7) and its fast planning (issue 26, item 6): the analysis settings above a
table of the runs, the datasets' files looked for as the real run looks for them (the same line, exit 2), and the
fast paths of planning (ids by identity, one listing per folder, tasks made once) checked against plain per-run
computations on a 2,000-run grid."""

from __future__ import annotations

import dataclasses
import signal
from pathlib import Path

import pytest
import ray

from sweep import records
from sweep.cli import main
from sweep.config import AnalysisConfig, RunConfig
from sweep.data import check_dataset_files, load_dataset
from sweep.dryrun import WIDTH, _n_params, describe, short_id
from sweep.engine import Options
from sweep.errors import UserError
from sweep.grids import Grid, expand
from sweep.plan import (
    PROBES,
    Task,
    auxiliary_by_base,
    checkpoint_epochs,
    make_plan,
    misplaced_files,
    selected_probes,
    stale_files,
    task_record,
    tasks_for,
)
from sweep.plan_reference import plain_dry_run, plain_plan
from sweep.schemas import AUX_PREFIX, TRAINING_TABLES
from sweep.store import Store, table_for
from sweep.train import checkpoint_dir

HEADER = ["run", "dataset", "arch", "variant", "noise", "seed", "state", "probes to do", "storage"]


def small_grid() -> Grid:
    runs = expand([{"dataset": "digits", "arch": "mlp", "variant": ["standard", "tied"], "noise": 0.1, "seed": [0, 1],
                    "epochs": 3, "batch_size": 128}])
    return Grid("small", runs, AnalysisConfig(rewind_epochs=(0, 2), flip_clean=7, flip_eval_size=None))


def table(lines: list[str], n_runs: int) -> list[dict[str, str]]:
    """The run table's rows as {column: cell}, cut at the header's column starts (cells hold spaces)."""
    head = next(i for i, line in enumerate(lines) if line.split()[:2] == ["run", "dataset"])
    header = lines[head]
    starts = [0, *(header.index(f"  {name}") + 2 for name in HEADER[1:])]
    return [{name: line[a:b].strip() for name, a, b in zip(HEADER, starts, [*starts[1:], None], strict=True)}
            for line in lines[head + 1:head + 1 + n_runs]]


def finish(store: Store, cfg: RunConfig, grid: Grid) -> records.Record:
    """A done-record for `cfg` with one table file and the checkpoints of the epochs its analyses read."""
    data = f"rows of {cfg.run_id}".encode()
    rel = f"{table_for(cfg, 'epochs')}/{cfg.run_id}.parquet"
    files = {rel: store.write_bytes(rel, data)}
    for epoch in checkpoint_epochs(cfg, grid.analysis, auxiliary_by_base(grid.runs)) or []:
        name = f"{checkpoint_dir(cfg)}/epoch_{epoch:03d}.pt"
        files[name] = store.write_bytes(name, b"weights")
    record = records.Record(cfg.run_id, {}, files)
    records.write(store, records.run_record_path(cfg.run_id), record)
    return record


def test_the_table_has_its_header_and_each_run_its_cells(tmp_path):
    grid = small_grid()
    store = Store(str(tmp_path / "res"))
    a = grid.analysis
    aux = auxiliary_by_base(grid.runs)
    done = next(c for c in grid.runs if c.variant == "standard" and c.seed == 1)
    run = finish(store, done, grid)
    finished = tasks_for(done, PROBES, a, aux)[-1]  # one of its tasks finished too
    rel = f"{PROBES[finished.probe].tables[0]}/{finished.file_name}.parquet"
    records.write(store, records.task_record_path(finished.file_name),
                  task_record(finished, run.record_id, a, {rel: store.write_bytes(rel, b"rows")}))
    lines = describe(grid, Options(results=str(tmp_path / "res")))
    header = next(line for line in lines if line.startswith("run "))
    assert [c.strip() for c in header.split("  ") if c.strip()] == HEADER
    rows = {row["run"]: row for row in table(lines, len(grid.runs))}
    assert list(rows) == [short_id(c) for c in grid.runs]
    for cfg in grid.runs:
        row = rows[short_id(cfg)]
        assert cfg.run_id.endswith(row["run"]) and len(row["run"]) == 10  # the digest of an ordinary run
        assert (row["dataset"], row["arch"], row["variant"], row["noise"], row["seed"]) == (
            "digits", "mlp", cfg.variant, "0.1", str(cfg.seed))
        assert row["state"] == ("done" if cfg is done else "to train")
        left = [t for t in tasks_for(cfg, PROBES, a, aux) if t != finished]
        counts = {p: sum(t.probe == p for t in left) for p in PROBES}
        assert row["probes to do"] == ", ".join(f"{p} {n}" for p, n in counts.items() if n)
        n = _n_params("mlp", "digits", 1.0, cfg.variant)
        assert row["storage"] == f"{n * 4 * (len(checkpoint_epochs(cfg, a, aux)) + 3) / 2**20:.1f} MiB"
    assert rows[short_id(done)]["probes to do"] != rows[short_id(grid.runs[0])]["probes to do"]
    every = next(line for line in lines if line.startswith("every run:"))
    assert "epochs 3" in every and "batch_size 128" in every and "lr 0.1" in every
    assert lines[-1].startswith(f"{len(grid.runs)} runs, ")


def test_the_analysis_settings_come_first_wrapped(tmp_path):
    grid = small_grid()
    lines = describe(grid, Options(results=str(tmp_path / "res")))
    header = lines.index(next(line for line in lines if line.startswith("run ")))
    settings = lines[:lines.index(next(line for line in lines if line.startswith("every run:")))]
    assert settings[0].startswith("analysis settings: ") and header > len(settings)
    assert all(len(line) <= WIDTH for line in settings) and all(s.startswith("  ") for s in settings[1:])
    text = " ".join(settings)
    for name in AnalysisConfig.__dataclass_fields__:
        assert f" {name} " in text, name
    assert " rewind_epochs 0,2 " in text and " flip_clean 7 " in text and " flip_eval_size all " in text
    assert " rewind_buffers false " in text and " keep_checkpoints probes " in text


@pytest.fixture
def cli(tmp_path, monkeypatch, capsys):
    """sweep.cli.main in tmp_path with an empty data folder, Ray forbidden; returns (code, out, err)."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    monkeypatch.setattr(ray, "init", lambda *a, **k: pytest.fail("ray.init was called"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()

    def call(*argv: str) -> tuple[int, str, str]:
        code = main(["--results", str(tmp_path / "res"), "--data-dir", str(tmp_path / "data"), *argv])
        out, err = capsys.readouterr()
        return code, out, err

    yield call
    for s, handler in saved.items():
        signal.signal(s, handler)


def test_a_missing_dataset_is_the_real_runs_line_in_the_dry_run(cli, tmp_path):
    grid = tmp_path / "mnist.toml"
    grid.write_text('[[runs]]\ndataset = "mnist"\narch = "mlp"\nnoise = 0.1\nseed = 0\nepochs = 2\n\n'
                    "[analysis]\nrewind_epochs = [0, 2]\n")
    real = cli("--grid", str(grid))
    dry = cli("--grid", str(grid), "--dry-run")
    assert real[0] == dry[0] == 2
    assert real[2] == dry[2] and dry[2].count("\n") == 1, (real, dry)
    assert dry[2].startswith("error: dataset 'mnist' not found: looked for train-images-idx3-ubyte[.gz]")
    assert str(tmp_path / "data" / "MNIST" / "raw") in dry[2] and dry[1] == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "mnist.toml"]  # nothing written
    code, out, err = cli("--grid", str(grid), "--dry-run", "--download")  # fetched when the sweep starts
    assert code == 0, err
    assert out.splitlines()[0] == (f"dataset 'mnist': not in {tmp_path / 'data' / 'MNIST' / 'raw'} yet; --download "
                                   "fetches it when the sweep starts")
    assert not (tmp_path / "data" / "MNIST").exists()


def test_the_paper_grid_without_cifar10_exits_2_in_the_dry_run_as_in_the_real_run(cli, tmp_path):
    real = cli("--grid", "paper")
    dry = cli("--grid", "paper", "--dry-run")
    assert real[0] == dry[0] == 2 and real[2] == dry[2] and dry[1] == "", (real, dry)
    assert dry[2].startswith("error: dataset 'cifar10' not found: looked for data_batch_1, ")


def test_files_are_looked_for_where_the_loader_reads_them(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    with pytest.raises(UserError) as missing:
        check_dataset_files("mnist", tmp_path)
    with pytest.raises(UserError) as loading:
        load_dataset("mnist", tmp_path)
    assert str(missing.value) == str(loading.value)
    raw.mkdir(parents=True)
    for stem in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte.gz",
                 "t10k-labels-idx1-ubyte"):
        (raw / stem).write_bytes(b"not idx")
    assert check_dataset_files("mnist", tmp_path) is None  # found without reading
    with pytest.raises(UserError, match="cannot read"):  # the loader finds the same files, and reads them
        load_dataset("mnist", tmp_path)
    assert check_dataset_files("digits", tmp_path) is None  # made in code: no files
    with pytest.raises(UserError, match="unknown dataset 'nope'"):
        check_dataset_files("nope", tmp_path)


# The fast paths against plain per-run computations ---------------------------------------------------------

def seeds_grid(n_seeds: int) -> Grid:
    runs = expand([{"dataset": "digits", "arch": "mlp", "variant": ["standard", "tied", "dropout", "sparse"],
                    "noise": [0.1, 0.2], "seed": list(range(n_seeds)), "epochs": 3, "batch_size": 128}])
    return Grid("seeds", runs, AnalysisConfig(rewind_epochs=(0, 2)))


def aux_grid() -> Grid:
    runs = expand([{"dataset": "digits", "arch": "mlp", "variant": ["standard", "tied"], "noise": 0.1,
                    "seed": list(range(6)), "epochs": 4, "cv_folds": 3, "ssft": True, "subsets": 6, "pack": 4}])
    return Grid("aux", runs, AnalysisConfig(rewind_epochs=(0, 2), flip_clean=30, flip_chunk=7))


@pytest.mark.parametrize("make", [lambda: seeds_grid(250), aux_grid], ids=["2000-runs", "auxiliary"])
def test_planning_equals_a_plain_per_run_computation(tmp_path, make):
    grid = make()
    store = Store(str(tmp_path / "res"))
    for i, cfg in enumerate(grid.runs):
        fresh = RunConfig(**dataclasses.asdict(cfg))  # another instance: nothing cached for it
        assert cfg.run_id == cfg._run_id() == fresh.run_id and cfg.config_id == cfg._config_id() == fresh.config_id
        if i % 3 == 0:
            run = finish(store, cfg, grid)
            for task in tasks_for(cfg, PROBES, grid.analysis, auxiliary_by_base(grid.runs))[::2]:
                rel = f"{PROBES[task.probe].tables[0]}/{task.file_name}.parquet"
                entry = store.write_bytes(rel, b"rows")
                records.write(store, records.task_record_path(task.file_name),
                              task_record(task, run.record_id, grid.analysis, {rel: entry}))
    plan = make_plan(store, grid, selected_probes(None))
    pending, tasks, todo = plain_plan(store, grid)
    assert [c.run_id for c in plan.pending] == pending and len(pending) < len(grid.runs)
    assert [t.file_name for t in plan.tasks] == tasks
    assert sorted(t.file_name for t in plan.todo) == sorted(todo) and len(todo) < len(tasks)
    aux = auxiliary_by_base(grid.runs)
    by_run: dict[str, list[Task]] = {}
    for task in plan.tasks:
        by_run.setdefault(task.cfg.run_id, []).append(task)
    _, _, kept, stale = plain_dry_run(store, grid)
    # what the dry run passes for the kept epochs: the plan's own tasks of the run
    assert [checkpoint_epochs(cfg, grid.analysis, aux, by_run.get(cfg.run_id, [])) for cfg in grid.runs] == kept
    assert stale_files(store, grid, PROBES) == stale == []


def test_misplaced_and_stale_files_equal_a_look_per_run(tmp_path):
    grid = aux_grid()
    store = Store(str(tmp_path / "res"))
    assert misplaced_files(store, grid.runs) == [] and stale_files(store, grid, PROBES) == []
    for cfg in grid.runs[::5]:  # a run's rows in the table it does not write; a flip chunk of other settings
        wrong = "epochs" if cfg.auxiliary else f"{AUX_PREFIX}epochs"
        store.write_bytes(f"{wrong}/{cfg.run_id}.parquet", b"x")
        store.write_bytes(f"flips/{cfg.run_id}-flip-0-0000beef.parquet", b"x")
    plain_misplaced = [store.table_file(t, c.run_id) for table in TRAINING_TABLES for c in grid.runs
                       for t in [f"{AUX_PREFIX}{table}" if table_for(c, table) == table else table]
                       if store.exists(f"{t}/{c.run_id}.parquet")]
    assert misplaced_files(store, grid.runs) == plain_misplaced and len(plain_misplaced) == len(grid.runs[::5])
    plain_stale = [f"flips/{c.run_id}-flip-0-0000beef.parquet" for c in grid.runs
                   if PROBES["flip"].applies(c) and c in grid.runs[::5]]
    assert stale_files(store, grid, PROBES) == plain_stale and plain_stale


def test_a_huge_grids_dry_run_lines_equal_a_plain_computation(tmp_path):
    """The dry run's totals for 2,000 runs from the one plan it makes: storage from each run's kept epochs."""
    grid = seeds_grid(250)
    lines = describe(grid, Options(results=str(tmp_path / "res")))
    aux = auxiliary_by_base(grid.runs)
    total = sum(_n_params(c.arch, c.dataset, c.width, c.variant) * 4
                * (len(checkpoint_epochs(c, grid.analysis, aux)) + 3) for c in grid.runs)
    n_tasks = sum(len(tasks_for(c, PROBES, grid.analysis, aux)) for c in grid.runs)
    assert lines[-1].startswith(f"2000 runs, {n_tasks} probe tasks to run; checkpoints need about "
                                f"{total / 2**30:.2f} GiB under {Path(tmp_path / 'res')}/checkpoints")
    assert not (tmp_path / "res").exists()


def test_the_collector_pause_gives_the_collector_back_as_it_was():
    import gc

    from sweep.bulk import gc_paused

    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the inner block leaves the outer one's pause alone
    assert gc.isenabled()
    gc.disable()
    try:
        with pytest.raises(ValueError), gc_paused():
            raise ValueError
        assert not gc.isenabled()  # a caller that turned it off keeps it off
    finally:
        gc.enable()


def test_a_stale_file_is_found_when_its_run_id_holds_the_probes_name(tmp_path):
    """A dropout run's id holds "-dropout-" too: the candidates from the listing include its real prefix."""
    runs = expand([{"dataset": "digits", "arch": "mlp", "variant": ["dropout", "tied"], "noise": 0.1, "seed": [0, 1],
                    "epochs": 3}])
    grid = Grid("dropouts", runs, AnalysisConfig(rewind_epochs=(0, 2)))
    store = Store(str(tmp_path / "res"))
    store.write_bytes(f"dropout/{runs[0].run_id}-dropout-old.parquet", b"x")
    store.write_bytes(f"dropout/{runs[0].run_id}-dropout-all.parquet", b"x")  # its own shard: not stale
    assert stale_files(store, grid, PROBES) == [f"dropout/{runs[0].run_id}-dropout-old.parquet"]
    assert plain_dry_run(store, grid)[3] == stale_files(store, grid, PROBES)
