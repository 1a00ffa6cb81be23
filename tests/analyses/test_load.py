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


def test_auxiliary_runs_are_only_in_the_aux_tables_and_their_outputs(tmp_path):
    """Fold and SSFT runs write the aux_* tables: a plain read of a main table and Results.table hold the
    ordinary run only; the aux tables and the outputs (oos_predictions, ssft) hold the auxiliary runs."""
    from analyses.curves import training_curves
    from tests.analyses.builders import STANDARD, run_config, write_folds, write_run, write_ssft

    cfg = run_config("digits", "mlp", "standard", 0.1, 0)
    write_run(tmp_path, cfg, STANDARD)
    write_folds(tmp_path, cfg, 3)
    write_ssft(tmp_path, cfg)
    results = Results(tmp_path)
    for name in ("runs", "epochs", "examples", "gradients"):
        plain = pd.read_parquet(tmp_path / name)
        assert plain["run_id"].nunique() == 1 and (plain["cv_folds"] == 0).all(), name
        assert (plain["ssft_half"] == 0).all(), name
        assert results.table(name)["run_id"].nunique() == 1, name
        aux = results.table(f"aux_{name}")
        assert aux["run_id"].nunique() == 5 and not ((aux["cv_folds"] == 0) & (aux["ssft_half"] == 0)).any(), name
    assert results.fold_runs() == 3 and results.ssft_runs() == 2
    assert results.table("oos_predictions")["cv_fold"].nunique() == 3
    assert sorted(results.table("ssft")["example_id"]) == sorted(results.table("examples")["example_id"])
    curves = training_curves(results.table("epochs")).table
    assert set(curves["config_id"]) == {cfg["config_id"]} and (curves["n_seeds"] == 1).all()
    status = results.status().set_index("table")
    assert status.loc["aux_epochs", "state"] == "ok" and status.loc["ssft", "state"] == "ok"


def test_an_older_folder_with_fold_runs_in_the_main_tables_is_upgraded_on_read(tmp_path):
    """Layout 2 put the fold runs' rows in runs / examples / epochs / gradients: Results moves them to the aux_*
    tables in memory, so the report reads such a folder as a new one; nothing on disk changes."""
    import shutil

    from tests.analyses.builders import STANDARD, run_config, write_folds, write_run

    cfg = run_config("digits", "mlp", "standard", 0.1, 0)
    write_run(tmp_path, cfg, STANDARD)
    write_folds(tmp_path, cfg, 3)
    for name in ("runs", "epochs", "examples", "gradients"):  # where layout 2 wrote them
        for path in (tmp_path / f"aux_{name}").iterdir():
            shutil.move(path, tmp_path / name / path.name)
        (tmp_path / f"aux_{name}").rmdir()
    results = Results(tmp_path)
    assert results.raw("epochs")["run_id"].nunique() == 4 and results.raw("aux_epochs") is None
    for name in ("runs", "epochs", "examples", "gradients"):
        assert (results.table(name)["cv_folds"] == 0).all() and results.table(name)["run_id"].nunique() == 1
        assert (results.table(f"aux_{name}")["cv_folds"] == 3).all(), name
        assert results.table(f"aux_{name}")["run_id"].nunique() == 3, name
    assert results.fold_runs() == 3 and results.ssft_runs() == 0
    assert len(results.table("epochs")) + len(results.table("aux_epochs")) == len(results.raw("epochs"))


def test_tables_without_cv_columns_read_whole(tmp_path):
    """Results written before out-of-sample runs existed have no cv columns: every row is an ordinary run's."""
    write(tmp_path, "epochs", "old", frame([{"epoch": 1, "clean_acc": 0.5}]).drop(columns=["cv_folds", "cv_fold"]))
    results = Results(tmp_path)
    assert len(results.table("epochs")) == 1 and results.fold_runs() == 0
