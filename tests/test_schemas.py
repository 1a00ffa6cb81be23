"""Fixed schemas: every table folder reads whole with plain pandas, whatever its files hold, and the results
catalogue (results/README.md) is exactly what the declarations say."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from sweep.config import CONFIG_COLUMNS, RunConfig
from sweep.schemas import RUN_COLUMNS, TABLES, catalogue, schema
from sweep.store import Store
from tests.tables import sample_frame

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("table", list(TABLES))
def test_every_table_reads_back_whole_with_its_edge_cases(tmp_path, table):
    """First file by name: zero rows; then a run whose nullable columns are all null and lists all empty (the
    case that gave a `null` type before); then ordinary rows. `pd.read_parquet(folder)` reads them as one."""
    store = Store(str(tmp_path))
    empty = sample_frame(table, RunConfig(seed=0), n=0)
    nulls = sample_frame(table, RunConfig(seed=1), n=1)
    for column in TABLES[table].columns:
        if column.nullable_int or column.name == "ray_node_id":
            nulls[column.name] = pd.Series([None], dtype=nulls[column.name].dtype)
        if column.name == "units":
            nulls[column.name] = pd.Series([[]], dtype=object)
    full = sample_frame(table, RunConfig(seed=2), n=5)
    for name, frame in (("a", empty), ("b", nulls), ("c", full)):
        store.write_table(table, name, frame)
    for name in ("a", "b", "c"):
        assert pq.read_schema(tmp_path / table / f"{name}.parquet").remove_metadata() == schema(table).remove_metadata()
    back = pd.read_parquet(tmp_path / table)
    expected = pd.concat([nulls, full], ignore_index=True)
    assert list(back.columns) == list(expected.columns) and len(back) == 6
    for column in TABLES[table].columns:
        if column.nullable_int:
            assert str(back[column.name].dtype) == "Int64" and back[column.name].isna().sum() == 2
    if table == "oos_predictions":
        np.testing.assert_allclose(np.stack(back["probs"].to_numpy()), np.stack(expected["probs"].to_numpy()))
    if table == "flips":
        assert [len(u) for u in back["units"]] == [len(u) for u in expected["units"]]
        assert back["units"].iloc[2][0] == expected["units"].iloc[2][0]


def test_run_columns_come_first_in_every_table_and_match_the_config():
    names = [c.name for c in RUN_COLUMNS]
    assert names == ["run_id", *CONFIG_COLUMNS, "config_id"]
    for table in TABLES:
        assert schema(table).names[: len(names)] == names
    frame = sample_frame("epochs", RunConfig(arch="resnet9", noise=0.2))
    assert frame["arch"].unique().tolist() == ["resnet9"] and frame["noise"].unique().tolist() == [0.2]


def test_names_are_tidy_across_tables():
    """`layer` is the group's integer index and `layer_name` its name wherever layers appear (flip units too);
    retraining's epoch does not collide with the training epoch; the layer probes carry their baselines."""
    for table in ("gradients", "rewinding", "retraining", "flip_units"):
        types = {c.name: str(c.type) for c in TABLES[table].columns}
        assert types["layer"] == "int64" and types["layer_name"] == "string"
    units = schema("flips").field("units").type.value_type
    assert [units.field(i).name for i in range(units.num_fields)] == ["layer", "layer_name", "module", "unit"]
    assert "epoch" not in schema("retraining").names and "retrain_epoch" in schema("retraining").names
    for table in ("rewinding", "retraining", "flips"):
        assert {"clean_acc_base", "noisy_acc_base", "test_acc_base"} <= set(schema(table).names)


def test_the_catalogue_in_results_readme_is_generated_from_the_schemas():
    text = (ROOT / "results" / "README.md").read_text()
    assert text == catalogue(), "regenerate it: python -m sweep.schemas > results/README.md"
    for spec in TABLES.values():
        assert f"## {spec.name}\n" in text
        for column in spec.columns:
            assert f"| `{column.name}` |" in text
    assert "null (pd.NA) = never learned" in text


@pytest.mark.parametrize("table", list(TABLES))
def test_each_tables_pandas_example_runs(tmp_path, monkeypatch, table):
    """The catalogue's example for a table, run as written (relative `results/` path) on a folder of that
    table's rows, gives a non-empty answer. tests/test_engine.py runs them on a real sweep too."""
    store = Store(str(tmp_path / "results"))
    for seed in (0, 1):
        store.write_table(table, f"r{seed}", sample_frame(table, RunConfig(seed=seed), n=6, seed=seed))
    monkeypatch.chdir(tmp_path)
    answer = run_example(table)
    assert answer is not None and len(answer) > 0


def run_example(table: str) -> object:
    """Execute the catalogue's example of `table` and return the value of its last line."""
    *body, last = TABLES[table].example.splitlines()
    scope: dict[str, object] = {"pd": pd}
    exec("\n".join(body), scope)  # noqa: S102 - our own documentation's code
    return eval(last, scope)  # noqa: S307
