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
