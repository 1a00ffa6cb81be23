"""Packs of subset models (sweep/packs.py): the vmapped pack gives the models the plain one-by-one loop gives,
membership is its hash, a killed pack resumes without retraining, and its outputs land in their tables."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from sweep import records
from sweep.config import RunConfig
from sweep.data import Dataset, load_dataset, make_synthetic
from sweep.dropout import _GOLDEN, _MASK32, _mix, _salt
from sweep.packs import (
    MAX_PACK,
    MEMBERSHIP,
    PackTrainer,
    auto_pack,
    execute_pack,
    membership,
    steps_per_epoch,
    train_pack_in_memory,
)
from sweep.packs_reference import train_one
from sweep.store import Store
from sweep.train import prepare

CPU = torch.device("cpu")


@pytest.fixture
def float64() -> Iterator[None]:
    """Both trainings in float64: there the pack must equal the loop to rounding (1e-10), where float32's
    rounding differences, amplified by a few epochs of SGD at lr 0.1, would hide a real discrepancy."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def as_double(data: Dataset) -> Dataset:
    return replace(data, train=replace(data.train, x=data.train.x.double()),
                   test=replace(data.test, x=data.test.x.double()))


def test_membership_is_the_hash_of_noise_seed_model_and_example() -> None:
    n, seed, fraction = 2000, 7, 0.7
    for j in (0, 1, 13):
        key = _salt(seed, j, MEMBERSHIP)
        expected = [_mix(_mix(((i * _GOLDEN) & _MASK32) ^ key) ^ key) / 2**32 < fraction for i in range(n)]
        assert membership(n, seed, j, fraction).tolist() == expected
    assert not torch.equal(membership(n, seed, 0, fraction), membership(n, seed + 1, 0, fraction))


def test_each_example_is_in_about_the_fraction_of_the_models_and_models_are_independent() -> None:
    n, m, fraction = 3000, 64, 0.7
    inside = torch.stack([membership(n, 3, j, fraction) for j in range(m)]).double()
    share = inside.mean(0)  # per example: the fraction of models that train on it
    assert abs(float(share.mean()) - fraction) < 0.005
    binomial_sd = (fraction * (1 - fraction) / m) ** 0.5
    assert 0.85 * binomial_sd < float(share.std()) < 1.15 * binomial_sd
    overlap = (inside @ inside.T / n)[~torch.eye(m, dtype=torch.bool)]  # pairs of models: fraction**2 if independent
    assert abs(float(overlap.mean()) - fraction**2) < 0.005 and float((overlap - fraction**2).abs().max()) < 0.05


def compare(cfg: RunConfig, data: Dataset, tol: float) -> None:
    """The pack's models against train_one's, model by model: every parameter and running statistic, and the
    eval-mode correctness on every training and test example."""
    prep = prepare(cfg.base(), CPU, data=data)
    pack = PackTrainer(cfg, prep, CPU)
    while pack.epoch < cfg.epochs:
        pack.train_epoch()
    train_correct, _, test_correct, _ = pack.final_predictions()
    for m, j in enumerate(cfg.models):
        ref = train_one(cfg, prep, j, CPU)
        mine = pack.model_state(m)
        for name, value in ref.state_dict().items():
            assert torch.allclose(mine[name].double(), value.double(), atol=tol, rtol=0), (j, name)
        with torch.no_grad():
            assert torch.equal(train_correct[m], ref(prep.data.train.x).argmax(1) == prep.labels), j
            assert torch.equal(test_correct[m], ref(prep.data.test.x).argmax(1) == prep.data.test.y), j


def test_digits_mlp_pack_equals_the_models_trained_one_by_one(float64: None) -> None:
    data = as_double(load_dataset("digits"))
    cfg = RunConfig(dataset="digits", epochs=3, batch_size=142, subsets=4, pack=4).validate()
    sizes = [int(membership(len(data.train.y), cfg.noise_seed, j, cfg.subset_fraction).sum()) for j in cfg.models]
    # the ragged cases are exercised: short last batches, a model whose last batch of one is left out, models
    # with fewer steps than the pack's longest (idle while it finishes its epoch); in both packs below
    assert any(s % 142 == 1 for s in sizes[2:]) and any(s % 142 > 1 for s in sizes[2:])
    assert len({steps_per_epoch(s, 142) for s in sizes[2:]}) == 2
    compare(cfg, data, 1e-10)
    # the same model j in another pack (another K and pack_index) is the same model
    compare(replace(cfg, pack=2, pack_index=1), data, 1e-10)


def test_pack_in_float32_stays_within_float_tolerance_of_the_loop() -> None:
    cfg = RunConfig(dataset="digits", epochs=1, batch_size=128, subsets=3, pack=3).validate()
    compare(cfg, load_dataset("digits"), 1e-4)


@pytest.fixture
def tiny_images() -> Dataset:
    return make_synthetic(150, 40)  # made in float32, before the float64 fixture switches the default


def test_tiny_resnet9_pack_equals_the_models_trained_one_by_one(tiny_images: Dataset, float64: None) -> None:
    """BatchNorm2d under vmap: batch statistics over the real rows, running statistics in eval mode."""
    data = as_double(tiny_images)
    cfg = RunConfig(dataset="synthetic", arch="resnet9", width=0.125, epochs=2, batch_size=32, subsets=3,
                    pack=3).validate()
    compare(cfg, data, 1e-9)


def test_a_killed_pack_resumes_from_its_saved_epoch(tmp_path: Path) -> None:
    cfg = RunConfig(dataset="digits", epochs=4, batch_size=256, subsets=3, pack=3).validate()
    store = Store(str(tmp_path / "killed"))

    def kill(row: dict[str, float]) -> None:
        if row["epoch"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        execute_pack(cfg, store, CPU, on_epoch=kill, keep_weights=True)
    assert records.read(store, records.run_record_path(cfg.run_id)) is None
    state = f"checkpoints/{cfg.run_id}/state.pt"
    assert store.exists(state)  # what the rerun resumes from
    seen: list[int] = []
    execute_pack(cfg, store, CPU, on_epoch=lambda row: seen.append(int(row["epoch"])), keep_weights=True)
    assert seen == [3, 4]  # epochs 1-2 came from the saved state
    assert not store.exists(state)  # a finished pack keeps no resume state
    whole = Store(str(tmp_path / "whole"))
    execute_pack(cfg, whole, CPU, keep_weights=True)
    resumed = store.load_torch(f"checkpoints/{cfg.run_id}/models.pt")
    straight = whole.load_torch(f"checkpoints/{cfg.run_id}/models.pt")
    assert resumed.keys() == straight.keys() and all(torch.equal(resumed[k], straight[k]) for k in resumed)

    record = records.read(store, records.run_record_path(cfg.run_id))
    assert record is not None and records.problem(store, record, checksums=True) is None
    epochs = store.read_table("aux_epochs")
    assert epochs.epoch.tolist() == [1, 2, 3, 4] and epochs.test_acc.isna().tolist() == [True, True, True, False]
    assert store.read_table("runs") is None and store.read_table("epochs") is None  # never the paper's tables
    assert store.read_table("aux_runs").run_id.tolist() == [cfg.run_id]
    preds = store.read_table("subset_predictions")
    data = load_dataset("digits")
    n, t = len(data.train.y), len(data.test.y)
    assert len(preds) == 3 * (n + t) and sorted(preds.model.unique()) == [0, 1, 2]
    train = preds[preds.split == "train"]
    for j in range(3):
        rows = train[train.model == j].sort_values("example_id")
        assert rows.in_subset.tolist() == membership(n, cfg.noise_seed, j, cfg.subset_fraction).tolist()
    assert not preds[preds.split == "test"].in_subset.any()
    assert preds.p_label.between(0, 1).all() and ((preds.p_label > 0.5) <= preds.correct).all()
    # trained on: predicted as labelled more often than left out (the signal memorization scores read)
    assert train[train.in_subset].correct.mean() > train[~train.in_subset].correct.mean()


def test_train_pack_in_memory_gives_the_tables_rows() -> None:
    cfg = RunConfig(dataset="digits", epochs=1, batch_size=256, subsets=5, pack=2, pack_index=2).validate()
    frame = train_pack_in_memory(cfg)
    assert frame.model.unique().tolist() == [4] and (frame.run_id == cfg.run_id).all()
    assert {"model", "split", "example_id", "in_subset", "correct", "p_label", "label"} <= set(frame.columns)


def test_auto_pack_is_capped_and_follows_the_model_size() -> None:
    mlp = RunConfig(dataset="digits", batch_size=256)
    big = RunConfig(dataset="cifar10", arch="resnet9", width=1.0, batch_size=512)
    assert auto_pack(mlp, 2000) == MAX_PACK and auto_pack(mlp, 5) == 5
    gpu = 141 * 2**30
    assert auto_pack(big, 2000, gpu) < auto_pack(replace(big, width=0.25), 2000, gpu) <= MAX_PACK
    assert auto_pack(big, 2000, device_memory=1) == 1
    assert auto_pack(big, 2000, gpu) > auto_pack(big, 2000) >= 1
    assert auto_pack(big, 2000, gpu) == auto_pack(big, 2000, gpu)
