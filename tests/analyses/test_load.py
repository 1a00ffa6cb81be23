"""Reading tables: one file per run concatenated, missing tables as None, broken files reported."""

import pandas as pd

from analyses.load import Results, load_table, table_files
from tests.analyses.builders import frame, write


def test_missing_table_is_none(tmp_path):
    assert load_table(tmp_path, "epochs") is None
    assert Results(tmp_path).status().set_index("table").loc["epochs", "state"] == "missing"


def test_files_of_one_table_are_concatenated_and_temporaries_ignored(tmp_path):
    write(tmp_path, "epochs", "run-a", frame([{"epoch": 1, "clean_acc": 0.5}], seed=0))
    write(
        tmp_path,
        "epochs",
        "run-b",
        frame([{"epoch": 1, "clean_acc": 0.7}, {"epoch": 2, "clean_acc": 0.9}], seed=1),
    )
    (tmp_path / "epochs" / ".tmp-1234-run-c.parquet").write_bytes(b"half written")
    df = load_table(tmp_path, "epochs")
    assert len(table_files(tmp_path, "epochs")) == 2
    assert sorted(df["clean_acc"]) == [0.5, 0.7, 0.9]
    assert df["run_id"].nunique() == 2


def test_unreadable_file_is_skipped_and_reported(tmp_path):
    write(tmp_path, "dropout", "good", frame([{"mode": "tied", "clean_acc": 1.0}]))
    (tmp_path / "dropout" / "bad.parquet").write_bytes(b"not parquet")
    results = Results(tmp_path)
    assert len(results.table("dropout")) == 1
    assert len(results.problems) == 1 and "bad.parquet" in results.problems[0]


def test_empty_table_reads_as_empty_frame(tmp_path):
    write(tmp_path, "flips", "run", pd.DataFrame({"run_id": pd.Series([], dtype=str)}))
    results = Results(tmp_path)
    assert results.table("flips") is not None and results.table("flips").empty
    assert not results.available("flips")
    assert results.status().set_index("table").loc["flips", "state"] == "empty"


def test_files_written_before_the_fixed_schemas_read_in_todays_names(tmp_path):
    """Layout 1 (retraining.epoch, first_learned_epoch -1) beside a file of today's layout: one table."""
    write(tmp_path, "retraining", "old", frame([{"layer": 0, "layer_name": "fc1", "epoch": 2, "noisy_acc": 0.5}]))
    write(tmp_path, "retraining", "new", frame([{"layer": 0, "layer_name": "fc1", "retrain_epoch": 3,
                                                 "noisy_acc": 0.4, "noisy_acc_base": 0.9}], seed=1))
    retraining = load_table(tmp_path, "retraining")
    assert "epoch" not in retraining.columns and sorted(retraining["retrain_epoch"]) == [2, 3]
    write(tmp_path, "examples", "old", frame([{"example_id": 0, "first_learned_epoch": -1},
                                             {"example_id": 1, "first_learned_epoch": 4}]))
    learned = load_table(tmp_path, "examples")["first_learned_epoch"]
    assert str(learned.dtype) == "Int64" and learned.isna().tolist() == [True, False] and learned[1] == 4


def test_status_lists_the_flip_units_table(tmp_path):
    assert "flip_units" in set(Results(tmp_path).status()["table"])


def test_the_synthetic_tables_have_the_writers_columns(results_dir):
    """The builders write what sweep/schemas.py declares (the writers' fixed schema), so the analyses are tested
    against the engine's column names and types."""
    from sweep.schemas import TABLES as SCHEMAS
    from sweep.schemas import schema, to_arrow

    for table in SCHEMAS:
        df = load_table(results_dir, table)
        assert df is not None, table
        assert sorted(df.columns) == sorted(schema(table).names), table
        to_arrow(table, df)  # every value fits the declared Arrow type


def test_fold_runs_are_left_out_of_every_table_but_runs_and_their_predictions(tmp_path):
    from analyses.curves import training_curves
    from tests.analyses.builders import STANDARD, run_config, write_folds, write_run

    cfg = run_config("digits", "mlp", "standard", 0.1, 0)
    write_run(tmp_path, cfg, STANDARD)
    write_folds(tmp_path, cfg, 3)
    results = Results(tmp_path)
    raw = results.raw("epochs")
    assert raw["run_id"].nunique() == 4 and (raw["cv_folds"] == 3).sum() > 0  # the folds did write epochs
    for name in ("epochs", "examples", "gradients"):
        df = results.table(name)
        assert (df["cv_folds"] == 0).all() and df["run_id"].nunique() == 1, name
    assert results.table("runs")["run_id"].nunique() == 4 and results.fold_runs() == 3
    assert results.table("oos_predictions")["cv_fold"].nunique() == 3
    curves = training_curves(results.table("epochs")).table
    assert set(curves["config_id"]) == {cfg["config_id"]} and (curves["n_seeds"] == 1).all()
    status = results.status().set_index("table")
    assert status.loc["oos_predictions", "state"] == "ok" and status.loc["epochs", "rows"] == len(raw)


def test_tables_without_cv_columns_read_whole(tmp_path):
    """Results written before out-of-sample runs existed have no cv columns: every row is an ordinary run's."""
    write(tmp_path, "epochs", "old", frame([{"epoch": 1, "clean_acc": 0.5}]).drop(columns=["cv_folds", "cv_fold"]))
    results = Results(tmp_path)
    assert len(results.table("epochs")) == 1 and results.fold_runs() == 0
