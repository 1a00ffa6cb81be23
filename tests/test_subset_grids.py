"""Grids with subset models: the packs each standard run gets, and probes that wait for auxiliary trainings."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from sweep.config import RunConfig
from sweep.errors import UserError
from sweep.grids import Grid, expand, load_grid, subset_runs
from sweep.plan import auxiliary_by_base, needed_runs, tasks_for
from sweep.probes import Probe
from sweep.progress import pack_label
from sweep.store import Store

BLOCK = {"dataset": "digits", "arch": "mlp", "variant": ["standard", "tied"], "noise": 0.1, "seed": [0, 1],
         "epochs": 2, "subsets": 10, "pack": 4}


def test_each_standard_run_gets_ceil_m_over_k_packs_covering_every_model_once():
    runs = expand([BLOCK])
    standard = [c for c in runs if c.variant == "standard" and not c.auxiliary]
    assert len(standard) == 2 and sum(c.variant == "tied" for c in runs) == 2
    by_base = auxiliary_by_base(runs)
    assert set(by_base) == {c.run_id for c in standard}  # tied runs get none
    for cfg in standard:
        packs = by_base[cfg.run_id]
        assert [p.pack_index for p in packs] == [0, 1, 2]  # ceil(10 / 4)
        assert all(p.base() == cfg and p.auxiliary and p.subset_fraction == 0.7 for p in packs)
        models = [j for p in packs for j in p.models]
        assert models == list(range(10))  # 0..M-1, each once: 4 + 4 + 2
        assert [pack_label(p.run_id) for p in packs] == ["pack 1 of 3", "pack 2 of 3", "pack 3 of 3"]
        assert tasks_for(packs[0], {}, load_grid("smoke").analysis) == []
    assert [c.run_id for c in expand([BLOCK])] == [c.run_id for c in runs]  # stable ids, same order
    assert len({c.run_id for c in runs}) == len(runs) == 4 + 2 * 3


def test_subset_runs_is_the_block_fields_expansion_and_the_fraction_is_kept():
    base = RunConfig(dataset="digits", arch="mlp", noise=0.1, epochs=2)
    packs = subset_runs(base, 5, 0.5, 5)
    assert len(packs) == 1 and list(packs[0].models) == [0, 1, 2, 3, 4] and packs[0].subset_fraction == 0.5
    block = {**BLOCK, "variant": "standard", "seed": 0, "subsets": 5, "subset_fraction": 0.5, "pack": 5}
    assert [c for c in expand([block]) if c.subsets] == packs


def test_pack_size_defaults_to_auto_pack():
    from sweep.packs import auto_pack

    base = RunConfig(dataset="digits", arch="mlp", noise=0.1, epochs=2)
    k = auto_pack(base, 50)
    packs = subset_runs(base, 50)
    assert {p.pack for p in packs} == {k} and [j for p in packs for j in p.models] == list(range(50))


def test_smoke_demo_and_memorization_grids_hold_packs():
    smoke, demo = load_grid("smoke"), load_grid("demo")
    (pack,) = [c for c in smoke.runs if c.subsets]
    assert (pack.subsets, pack.pack, pack.epochs) == (8, 8, 20)
    assert {c.base().seed for c in demo.runs if c.subsets} == {0, 1}
    assert all(c.arch == "mlp" for c in demo.runs if c.subsets)
    memo = load_grid("memorization")
    ordinary = [c for c in memo.runs if not c.auxiliary]
    assert {c.dataset for c in ordinary} == {"cifar10", "mnist", "svhn", "fashion-mnist"}
    assert {(c.arch, c.variant) for c in ordinary} == {("resnet9", "standard")}
    for cfg in ordinary:
        packs = [c for c in memo.runs if c.subsets and c.base() == cfg]
        assert sorted(j for p in packs for j in p.models) == list(range(2000))
        assert {p.subset_fraction for p in packs} == {0.7}


@pytest.mark.parametrize("change, needle", [
    ({"subsets": 1}, "subsets must be 0 (off) or an integer >= 2"),
    ({"subsets": -3}, "subsets must be 0 (off) or an integer >= 2"),
    ({"subsets": True}, "subsets must be 0 (off) or an integer >= 2"),
    ({"subset_fraction": 1.0}, "subset_fraction must be a number strictly between 0 and 1"),
    ({"subset_fraction": 0}, "subset_fraction must be a number strictly between 0 and 1"),
    ({"pack": 11}, "pack must be an integer from 1 to subsets (10)"),
    ({"pack": 0}, "pack must be an integer from 1 to subsets (10)"),
    ({"subsets": 0}, "pack need subsets = M"),
    ({"variant": "tied"}, "subsets are added for a block's standard runs only"),
])
def test_bad_subset_settings_are_one_user_error(change, needle):
    with pytest.raises(UserError) as err:
        expand([{**BLOCK, **change}])
    assert needle in str(err.value) and "\n" not in str(err.value)


def _needs_probe(predicate) -> dict[str, Probe]:  # noqa: ANN001
    probe = Probe("waits", ("flips",), lambda cfg, analysis: ["all"], lambda run, shard, analysis: {},
                  applies=lambda cfg: cfg.variant == "standard", needs=predicate)
    return {"waits": probe}


def test_a_probe_with_needs_applies_only_where_the_grid_has_what_it_needs():
    runs = expand([{**BLOCK, "cv_folds": 2}])
    grid = Grid("t", runs, load_grid("smoke").analysis)
    aux = auxiliary_by_base(runs)
    standard = [c for c in runs if c.variant == "standard" and not c.auxiliary]
    packs = _needs_probe(lambda r: r.subsets > 0)
    for cfg in standard:
        (task,) = tasks_for(cfg, packs, grid.analysis, aux)
        assert [r.run_id for r in needed_runs(cfg, packs["waits"], aux)] == [
            r.run_id for r in runs if r.subsets and r.base() == cfg]
        assert tasks_for(cfg, packs, grid.analysis) == []  # without the grid's auxiliary trainings: none
        assert tasks_for(cfg, _needs_probe(lambda r: r.ssft_half > 0), grid.analysis, aux) == []  # none in the grid
    (fold_task,) = tasks_for(standard[0], _needs_probe(lambda r: r.cv_folds > 0), grid.analysis, aux)
    assert fold_task.probe == "waits"


def test_a_done_task_is_redone_when_a_training_it_needs_is_to_be_trained():
    """The plan's last step: a finished task whose needed pack is to be trained (again) read inputs that are gone
    or void, so it is redone; one whose packs are all done stays done."""
    from sweep.plan import Plan, _redo_dependents

    runs = expand([{**BLOCK, "variant": "standard", "seed": 0}])
    probes = _needs_probe(lambda r: r.subsets > 0)
    aux = auxiliary_by_base(runs)
    (task,) = tasks_for(runs[0], probes, load_grid("smoke").analysis, aux)
    plan = Plan(runs=list(runs), pending=[runs[2]], tasks=[task])
    _redo_dependents(plan, probes, aux)
    assert plan.todo == [task]
    plan = Plan(runs=list(runs), pending=[], tasks=[task])
    _redo_dependents(plan, probes, aux)
    assert plan.todo == []


def test_dry_run_of_the_memorization_grid_states_trials_packs_and_storage(tmp_path):
    from sweep.dryrun import describe, prediction_row_bytes
    from sweep.engine import Options

    grid = load_grid("memorization")
    lines = describe(grid, Options(results=str(tmp_path / "r")))
    packs = [c for c in grid.runs if c.subsets]
    trials = next(line for line in lines if line.endswith("models of 4 standard runs)"))
    assert trials.startswith(f"{len(grid.runs)} trials: 4 runs and {len(packs)} packs of ")
    assert "(8,000 models" in trials
    storage = next(line for line in lines if line.startswith("subset_predictions: "))
    rows = 2000 * (60_000 + 10_000) * 2 + 2000 * (50_000 + 10_000) + 2000 * (73_257 + 26_032)
    assert storage.startswith(f"subset_predictions: {rows:,} rows x {prediction_row_bytes()} bytes = about ")
    assert not (tmp_path / "r").exists()
    print(trials, storage, sep="\n")


def test_pack_rows_stay_out_of_the_main_tables(tmp_path):
    """A real pack (digits MLP, 2 models, 1 epoch) writes aux_runs, aux_epochs and subset_predictions only: no
    row of a subset model reaches a table the paper's figures read."""
    import torch

    from sweep.packs import execute_pack
    from sweep.schemas import TRAINING_TABLES

    base = RunConfig(dataset="digits", arch="mlp", noise=0.1, epochs=1, batch_size=256, width=0.5)
    (pack,) = subset_runs(base, 2, 0.7, 2)
    execute_pack(pack, Store(str(tmp_path)), torch.device("cpu"))
    assert not any((tmp_path / t).exists() for t in TRAINING_TABLES)
    written = {p.name for p in tmp_path.iterdir() if p.is_dir() and not p.name.startswith("_")} - {"checkpoints"}
    assert written == {"aux_runs", "aux_epochs", "subset_predictions"}
    for table in written:
        frame = pd.read_parquet(tmp_path / table)
        assert set(frame["run_id"]) == {pack.run_id} and (frame["subsets"] == 2).all(), table
    assert dataclasses.replace(pack, subsets=0, pack=0, pack_index=0) == base


def test_the_progress_line_names_a_pack_and_shows_no_nan_accuracy():
    from sweep.progress import Progress, run_label

    pack = expand([{**BLOCK, "variant": "standard", "seed": 0}])[2]
    progress = Progress(runs_total=4, tasks_total=0)
    progress.epoch_finished(pack.run_id, "mlp", 1, 2, float("nan"), None,  # a pack's accuracies: NaN mid-training
                            run_label(pack))
    line = progress.line()
    assert "training digits/mlp/standard/s0 n0.1 pack 2 of 3 epoch 1/2" in line and "nan" not in line.lower()


def test_the_driver_holds_a_task_until_every_needed_training_completes_and_reports_it_when_one_fails(tmp_path):
    """The engine's holding area alone (no Ray): offered tasks wait for their packs; the last pack to complete
    releases them; a failed pack turns its waiting tasks into one 'not run' line each."""
    import io

    from sweep.engine import Options, _Driver
    from sweep.progress import Progress, ProgressView

    runs = expand([{**BLOCK, "variant": "standard"}])
    grid = Grid("t", runs, load_grid("smoke").analysis)
    probes = _needs_probe(lambda r: r.subsets > 0)
    aux = auxiliary_by_base(runs)
    seed0, seed1 = (c for c in runs if not c.auxiliary)
    out = io.StringIO()
    driver = _Driver(grid, Options(results=str(tmp_path)), Store(str(tmp_path)), probes,
                     Progress(runs_total=len(runs), tasks_total=2), ProgressView(out, interactive=False), 2.0,
                     trainings_left=len(runs), aux=aux, unfinished={c.run_id for c in runs})
    for cfg in (seed0, seed1):
        driver.run_completed(cfg)
        driver.queue_tasks(cfg)
    assert not driver.queue and len(driver.held) == 2  # both wait for their 3 packs
    first, second, third = aux[seed0.run_id]
    driver.run_completed(first)
    driver.run_completed(third)
    assert not driver.queue
    driver.run_completed(second)
    assert [t.cfg for t in driver.queue] == [seed0]  # released by the last of its packs
    driver.fail_run(aux[seed1.run_id][1], "KeyError: 'model'")
    assert not driver.held and len(driver.queue) == 1
    (training, not_run) = driver.failures
    assert not_run == f"waits all of {seed1.run_id}: not run: it needs {aux[seed1.run_id][1].run_id}, which failed"
    assert f"FAILED {not_run}" in out.getvalue() and driver.progress.failed == 1  # the task (the hooks count runs)
