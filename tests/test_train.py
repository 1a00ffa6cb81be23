"""Training: schedule shape, gradient accounting against a brute-force computation, memorization, persistence."""

import math
import socket
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from sweep.config import RunConfig
from sweep.schedule import lr_at
from sweep.store import Store
from sweep.train import Trainer, execute_run, prepare, train_in_memory
from tests.gradients_reference import brute_force_gradient_rows


def test_schedule_is_a_triangle_peaking_at_one_fifth():
    total, peak = 500, 0.1
    lrs = np.array([lr_at(s, total, peak) for s in range(total)])
    top = int(lrs.argmax())
    assert top in (total // 5 - 1, total // 5)
    assert lrs.max() == pytest.approx(peak, rel=0.01)
    assert lrs[0] < peak * 0.01 and lrs[-1] < peak * 0.01
    assert np.all(np.diff(lrs[:top]) > 0) and np.all(np.diff(lrs[top + 1:]) < 0)
    rise, fall = np.diff(lrs[:top]), np.diff(lrs[top + 1:])
    assert np.allclose(rise, rise[0]) and np.allclose(fall, fall[0])  # linear pieces


@pytest.mark.parametrize("arch", ["mlp", "resnet9"])
def test_gradient_accounting_matches_brute_force(arch, digits):
    cfg = RunConfig(arch=arch, width=0.25, noise=0.2, epochs=2, batch_size=256, seed=3).validate()
    prep = prepare(cfg, torch.device("cpu"), data=digits)
    trainer = Trainer(cfg, prep, torch.device("cpu"))
    ours = pd.DataFrame([row for _ in range(2) for row in trainer.train_epoch()[1]])
    brute = brute_force_gradient_rows(cfg, digits, epochs=2)
    assert len(ours) == len(brute) == 2 * len(trainer.group_names)
    for col in ("clean_norm", "noisy_norm", "cosine", "cosine_flat"):
        np.testing.assert_allclose(ours[col].to_numpy(), brute[col].to_numpy(), rtol=2e-4, atol=1e-7)
    assert (ours["clean_norm"] > 0).all() and (ours["noisy_norm"] > 0).all()


def test_flat_cosine_differs_from_the_mean_over_tensors_by_hand():
    """Group "a" holds two tensors: (1, 0) against (1, 0) (cosine 1) and (0, 10) against (0, -10) (cosine -1).
    Mean over tensors: 0. Flattened: (1, 0, 0, 10) . (1, 0, 0, -10) / (sqrt(101) sqrt(101)) = -99/101. Group "b"
    has one tensor, where both definitions agree, and group "c" a zero noisy gradient (NaN in both)."""
    clean = [torch.tensor([1.0, 0.0]), torch.tensor([0.0, 10.0]), torch.tensor([3.0, 4.0]), torch.tensor([1.0])]
    noisy = [torch.tensor([1.0, 0.0]), torch.tensor([0.0, -10.0]), torch.tensor([4.0, 3.0]), torch.tensor([0.0])]
    total = [c + n for c, n in zip(clean, noisy, strict=True)]
    owner = SimpleNamespace(device=torch.device("cpu"), param_group=[0, 0, 1, 2], group_names=["a", "b", "c"],
                            epoch=1)
    rows = {r["layer_name"]: r for r in Trainer._gradient_rows(owner, clean, total)}
    assert rows["a"]["cosine"] == pytest.approx(0.0, abs=1e-7)
    assert rows["a"]["cosine_flat"] == pytest.approx(-99 / 101, rel=1e-6)
    assert rows["b"]["cosine"] == pytest.approx(24 / 25) and rows["b"]["cosine_flat"] == pytest.approx(24 / 25)
    assert math.isnan(rows["c"]["cosine"]) and math.isnan(rows["c"]["cosine_flat"])
    assert rows["a"]["clean_norm"] == pytest.approx(1 / math.sqrt(2) + 10 / math.sqrt(2))


def test_mlp_memorizes_noisy_digits_and_still_generalizes(digits):
    cfg = RunConfig(arch="mlp", noise=0.1, epochs=30, batch_size=128, seed=0)
    prep = prepare(cfg, torch.device("cpu"), data=digits)
    trainer = Trainer(cfg, prep, torch.device("cpu"))
    rows = [trainer.train_epoch()[0] for _ in range(cfg.epochs)]
    last = rows[-1]
    assert last["noisy_acc"] >= 0.9, last  # noisy examples fit to their wrong labels: memorized
    assert last["test_acc"] >= 0.85, last
    assert last["noisy_true_acc"] < 0.2, last
    assert rows[0]["noisy_acc"] < 0.5  # early on the noisy examples are not yet memorized


def test_same_seed_same_numbers_and_model_seed_does_not_change_noise(digits):
    a = train_in_memory(RunConfig(epochs=2, batch_size=256), data=digits)
    b = train_in_memory(RunConfig(epochs=2, batch_size=256), data=digits)
    c = train_in_memory(RunConfig(epochs=2, batch_size=256, seed=5), data=digits)
    for key, value in a.state(2).items():
        assert torch.equal(value, b.state(2)[key])
    assert any(not torch.equal(v, c.state(2)[k]) for k, v in a.state(2).items())
    assert torch.equal(a.labels, c.labels) and torch.equal(a.is_noisy, c.is_noisy)


class Crash(Exception):
    """A training process dying after an epoch was saved."""


def crash_after_two(row: dict) -> None:
    if row["epoch"] == 2:
        raise Crash


def test_interrupted_run_resumes_to_identical_tables(tmp_path, digits):
    cfg = RunConfig(epochs=4, batch_size=256, width=0.5).validate()
    straight = Store(str(tmp_path / "a"))
    execute_run(cfg, straight, torch.device("cpu"))

    resumed = Store(str(tmp_path / "b"))
    with pytest.raises(Crash):
        execute_run(cfg, resumed, torch.device("cpu"), on_epoch=crash_after_two)
    assert not resumed.has_table_file("runs", cfg.run_id)
    seen = []
    execute_run(cfg, resumed, torch.device("cpu"), on_epoch=lambda row: seen.append(row["epoch"]))
    assert seen == [3, 4]  # epochs 1-2 were not trained again
    for table in ("epochs", "gradients", "examples"):
        left = pd.read_parquet(tmp_path / "a" / table).drop(columns=["seconds"], errors="ignore")
        right = pd.read_parquet(tmp_path / "b" / table).drop(columns=["seconds"], errors="ignore")
        pd.testing.assert_frame_equal(left, right)
    epochs = pd.read_parquet(tmp_path / "b" / "epochs")
    assert epochs["epoch"].tolist() == [1, 2, 3, 4]
    examples = pd.read_parquet(tmp_path / "b" / "examples")
    assert len(examples) == len(digits.train.y) and examples["example_id"].is_unique
    learned = examples["first_learned_epoch"]
    assert str(learned.dtype) == "Int64" and set(learned.dropna()) <= {1, 2, 3, 4}
    assert learned.isna().any() and learned.notna().any()  # after 4 epochs some examples are not learned yet
    run = pd.read_parquet(tmp_path / "b" / "runs").iloc[0]
    assert run["n_noisy"] == round(0.1 * len(digits.train.y)) == int(examples["is_noisy"].sum())
    assert run["status"] == "complete" and run["dataset"] == "digits" and run["run_id"] == cfg.run_id
    assert run["node"] == socket.gethostname() and pd.isna(run["ray_node_id"])  # trained here, without Ray


def test_resumed_dropout_run_ends_bit_identical_to_an_uninterrupted_one(tmp_path):
    """Standard dropout draws a new mask every step from torch's generator; a run killed after epoch 2 and
    resumed must continue that stream, not replay it, and end with exactly the uninterrupted weights."""
    cfg = RunConfig(variant="dropout", epochs=4, batch_size=256, width=0.5).validate()
    straight, resumed = Store(str(tmp_path / "a")), Store(str(tmp_path / "b"))
    execute_run(cfg, straight, torch.device("cpu"))

    with pytest.raises(Crash):
        execute_run(cfg, resumed, torch.device("cpu"), on_epoch=crash_after_two)
    torch.manual_seed(12345)  # a fresh process: whatever the generator holds now must not matter
    execute_run(cfg, resumed, torch.device("cpu"))
    final = f"checkpoints/{cfg.run_id}/epoch_004.pt"
    a, b = straight.load_torch(final), resumed.load_torch(final)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "sweep.train", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.parametrize("args, needle", [
    (["--dataset", "imagenet"], "unknown dataset"),
    (["--arch", "lenet"], "unknown architecture"),
    (["--noise", "1.0"], "noise"),
    (["--noise", "-0.5"], "noise"),
    (["--epochs", "0"], "epochs"),
    (["--dataset", "cifar10"], "cifar10"),
])
def test_cli_refuses_bad_input_with_one_line_and_writes_nothing(tmp_path, args, needle):
    results = tmp_path / "out"
    proc = _cli(*args, "--results", str(results), "--data-dir", str(tmp_path / "nodata"), cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in proc.stderr
    assert not results.exists()


def test_cli_trains_and_writes_tables(tmp_path):
    proc = _cli("--epochs", "2", "--results", str(tmp_path / "out"), "--device", "cpu", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("epoch ") >= 2
    for table in ("runs", "examples", "epochs", "gradients"):
        frame = pd.read_parquet(tmp_path / "out" / table)
        assert {"run_id", "dataset", "arch", "variant", "noise", "seed", "width"} <= set(frame.columns)
    ckpts = sorted(p.name for p in (tmp_path / "out" / "checkpoints").iterdir().__next__().iterdir())
    assert ckpts == ["epoch_000.pt", "epoch_001.pt", "epoch_002.pt", "progress.json", "state.pt"]


def test_background_saves_write_the_same_files_as_inline_ones(tmp_path, digits):
    """Checkpoints written off the training thread (a CUDA run's default) hold exactly the bytes an inline run
    writes: the copies are taken before the next step changes the weights."""
    cfg = RunConfig(epochs=3, batch_size=256, width=0.5).validate()
    inline, background = Store(str(tmp_path / "a")), Store(str(tmp_path / "b"))
    execute_run(cfg, inline, torch.device("cpu"), data=digits, background_saves=False)
    execute_run(cfg, background, torch.device("cpu"), data=digits, background_saves=True)
    for epoch in range(cfg.epochs + 1):
        rel = f"checkpoints/{cfg.run_id}/epoch_{epoch:03d}.pt"
        assert inline.read_bytes(rel) == background.read_bytes(rel), rel
    state_a, state_b = (s.load_torch(f"checkpoints/{cfg.run_id}/state.pt") for s in (inline, background))
    assert state_a["files"] == state_b["files"] and len(state_b["files"]) == cfg.epochs + 1
    for key, value in state_a["trainer"]["opt"]["state"].items():
        assert torch.equal(value["momentum_buffer"], state_b["trainer"]["opt"]["state"][key]["momentum_buffer"])
    for table in ("epochs", "examples"):
        pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "a" / table).drop(columns="seconds", errors="ignore"),
                                      pd.read_parquet(tmp_path / "b" / table).drop(columns="seconds", errors="ignore"))


def test_a_failed_background_write_fails_the_run(tmp_path, digits, monkeypatch):
    cfg = RunConfig(epochs=3, batch_size=256, width=0.5).validate()
    store = Store(str(tmp_path))
    real = Store.save_torch

    def flaky(self, rel, obj):
        if rel.endswith("epoch_002.pt"):
            raise OSError("disk full")
        return real(self, rel, obj)

    monkeypatch.setattr(Store, "save_torch", flaky)
    with pytest.raises(OSError, match="disk full"):
        execute_run(cfg, store, torch.device("cpu"), data=digits, background_saves=True)
    assert not store.exists(f"_done/runs/{cfg.run_id}.json")  # no record: the run is not done
