import pandas as pd
import pytest
import torch

from sweep.config import RunConfig
from sweep.errors import UserError
from sweep.paths import resolve_location
from sweep.store import Store
from tests.tables import sample_frame


def test_table_round_trip_through_pandas(tmp_path):
    store = Store(str(tmp_path))
    a, b = RunConfig(seed=0), RunConfig(seed=1)
    store.write_table("epochs", "run-a", sample_frame("epochs", a, n=2))
    store.write_table("epochs", "run-b", sample_frame("epochs", b, n=1))
    back = pd.read_parquet(tmp_path / "epochs").sort_values(["seed", "epoch"]).reset_index(drop=True)
    expected = pd.concat([sample_frame("epochs", a, n=2), sample_frame("epochs", b, n=1)], ignore_index=True)
    pd.testing.assert_frame_equal(back, expected)
    assert store.read_table("epochs").shape == expected.shape
    assert store.read_table("flips") is None


def test_a_frame_that_does_not_fit_its_table_is_refused_by_name(tmp_path):
    store = Store(str(tmp_path))
    with pytest.raises(ValueError, match=r"missing \['test_acc'\].*\['acc'\]"):
        store.write_table("epochs", "r", sample_frame("epochs").drop(columns="test_acc").assign(acc=1.0))
    assert not (tmp_path / "epochs").exists()


def test_rewrite_replaces_and_leaves_no_temporary_files(tmp_path):
    store = Store(str(tmp_path))
    for value in (1, 2):
        store.write_table("runs", "r", sample_frame("runs", n=1, n_train=value))
    assert pd.read_parquet(tmp_path / "runs")["n_train"].tolist() == [2]
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["r.parquet"]


def test_hidden_temporary_file_is_not_read_as_data(tmp_path):
    store = Store(str(tmp_path))
    store.write_table("runs", "r", sample_frame("runs", n=1))
    (tmp_path / "runs" / ".tmp-123-s.parquet").write_bytes(b"half a file")
    assert len(pd.read_parquet(tmp_path / "runs")) == 1


def test_checkpoint_round_trip_and_corrupt_file_is_a_clear_error(tmp_path):
    store = Store(str(tmp_path))
    state = {"w": torch.arange(6.0).reshape(2, 3), "epoch": 3, "rows": [{"a": 1.0}]}
    store.save_torch("checkpoints/r/state.pt", state)
    back = store.load_torch("checkpoints/r/state.pt")
    assert torch.equal(back["w"], state["w"]) and back["epoch"] == 3 and back["rows"] == [{"a": 1.0}]
    (tmp_path / "checkpoints/r/state.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="unreadable"):
        store.load_torch("checkpoints/r/state.pt")


def test_checkpoint_with_arbitrary_object_is_refused(tmp_path):
    import pickle

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (tmp_path / "x.pt").write_bytes(pickle.dumps(Evil()))
    with pytest.raises(UserError):
        Store(str(tmp_path)).load_torch("x.pt")


def test_locations_resolve_against_the_working_directory_and_uris_pass_through(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_location("results") == str(tmp_path / "results")
    assert resolve_location("./a/../b") == str(tmp_path / "b")
    assert resolve_location(str(tmp_path / "x")) == str(tmp_path / "x")
    for uri in ("s3://bucket/prefix", "gs://bucket/p", "file:///tmp/r"):
        assert resolve_location(uri) == uri


def test_engine_options_are_resolved_before_they_reach_ray(tmp_path, monkeypatch):
    from sweep.engine import Options

    monkeypatch.chdir(tmp_path)
    opts = Options(results="out", data_dir="data").resolved()
    assert (opts.results, opts.data_dir) == (str(tmp_path / "out"), str(tmp_path / "data"))
    assert Options(results="s3://b/p").resolved().results == "s3://b/p"


def test_rows_carry_every_config_field_and_a_config_id_shared_only_by_seeds():
    from sweep.config import CONFIG_COLUMNS, RunConfig
    from sweep.store import with_run_columns

    a, b = RunConfig(seed=0, noise_seed=0, p_mem=0.2), RunConfig(seed=1, noise_seed=1, p_mem=0.2)
    other = RunConfig(seed=0, noise_seed=0, p_mem=0.5)
    assert a.config_id == b.config_id != other.config_id and a.run_id != b.run_id
    assert RunConfig(epochs=20).config_id != RunConfig(epochs=30).config_id
    tagged = with_run_columns(pd.DataFrame({"epoch": [1, 2]}), other)
    assert list(tagged.columns) == ["run_id", *CONFIG_COLUMNS, "config_id", "epoch"]
    assert (tagged["p_mem"] == 0.5).all() and (tagged["config_id"] == other.config_id).all()
    with pytest.raises(ValueError, match="lr"):
        with_run_columns(pd.DataFrame({"lr": [0.1]}), a)  # a table column must never be overwritten
