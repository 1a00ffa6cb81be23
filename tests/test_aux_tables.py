"""Auxiliary trainings write tables of their own (sweep.store.table_for), and a rerun clears older leftovers."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest
import torch

from sweep import records
from sweep.config import RunConfig
from sweep.grids import Grid, load_grid
from sweep.plan import make_plan, repair, selected_probes
from sweep.schemas import TABLES, TRAINING_TABLES
from sweep.store import Store, table_for
from sweep.train import execute_run
from tests.tables import sample_frame

ORDINARY = RunConfig(dataset="digits", arch="mlp", noise=0.1, epochs=2, batch_size=256, width=0.5)
FOLD = dataclasses.replace(ORDINARY, cv_folds=2, cv_fold=1)
HALF = dataclasses.replace(ORDINARY, ssft_half=2)


def test_table_for_routes_the_training_tables_of_auxiliary_runs_only():
    for table in TRAINING_TABLES:
        assert table_for(ORDINARY, table) == table
        assert table_for(FOLD, table) == table_for(HALF, table) == f"aux_{table}"
        assert TABLES[f"aux_{table}"].columns == TABLES[table].columns  # same columns, in the catalogue
    for table in ("oos_predictions", "ssft", "flips", "rewinding"):  # outputs and probes: never routed
        assert table_for(FOLD, table) == table_for(HALF, table) == table_for(ORDINARY, table) == table
    with pytest.raises(ValueError, match="unknown table 'epoch'"):
        table_for(ORDINARY, "epoch")


def test_a_fold_run_writes_its_rows_to_the_aux_tables_and_an_ordinary_run_to_the_main_ones(tmp_path):
    store = Store(str(tmp_path))
    execute_run(FOLD.validate(), store, torch.device("cpu"))
    assert not any((tmp_path / t).exists() for t in TRAINING_TABLES)  # nothing in the main tables
    for table in TRAINING_TABLES:
        rows = pd.read_parquet(tmp_path / f"aux_{table}")
        assert set(rows["run_id"]) == {FOLD.run_id} and (rows["cv_folds"] == 2).all(), table
    assert set(pd.read_parquet(tmp_path / "oos_predictions")["run_id"]) == {FOLD.run_id}
    record = records.read(store, records.run_record_path(FOLD.run_id))
    assert {rel.split("/")[0] for rel in record.files if rel.endswith(".parquet")} == {
        *(f"aux_{t}" for t in TRAINING_TABLES), "oos_predictions"}
    execute_run(ORDINARY.validate(), store, torch.device("cpu"))
    for table in TRAINING_TABLES:
        assert set(pd.read_parquet(tmp_path / table)["run_id"]) == {ORDINARY.run_id}, table
        assert set(pd.read_parquet(tmp_path / f"aux_{table}")["run_id"]) == {FOLD.run_id}, table


def test_a_fold_runs_rows_left_in_the_main_tables_by_an_older_layout_are_removed_and_the_run_redone(tmp_path):
    """Layout 2 wrote fold runs into runs / examples / epochs / gradients with a layout-2 record: the plan names
    each such file, repair removes it (with the run's record), and the run counts as not done."""
    store = Store(str(tmp_path))
    grid = Grid("t", (ORDINARY, FOLD), load_grid("smoke").analysis)
    files = {}
    for table in TRAINING_TABLES:
        files[store.table_file(table, FOLD.run_id)] = store.write_table(table, FOLD.run_id, sample_frame(table, FOLD))
        files[store.table_file(table, ORDINARY.run_id)] = store.write_table(table, ORDINARY.run_id,
                                                                            sample_frame(table, ORDINARY))
    records.write(store, records.run_record_path(FOLD.run_id),
                  records.Record(FOLD.run_id, {}, {k: v for k, v in files.items() if FOLD.run_id in k}, layout=2))
    plan = make_plan(store, grid, selected_probes(None))
    stale = sorted(f"{t}/{FOLD.run_id}.parquet" for t in TRAINING_TABLES)
    assert sorted(plan.misplaced) == stale and FOLD in plan.pending
    assert sum("no longer writes" in line for line in plan.damage_lines()) == len(TRAINING_TABLES)
    repair(store, plan, grid)
    for table in TRAINING_TABLES:  # a plain read now holds the ordinary run only
        assert set(pd.read_parquet(tmp_path / table)["run_id"]) == {ORDINARY.run_id}, table
    assert records.read(store, records.run_record_path(FOLD.run_id)) is None
    assert make_plan(store, grid, selected_probes(None)).misplaced == []
