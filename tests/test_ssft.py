"""Second-split forgetting time (sweep/ssft.py): the score, the halves, the grid's runs, a real run and resume."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch

from sweep.config import RunConfig
from sweep.errors import UserError
from sweep.grids import expand, load_grid
from sweep.plan import selected_probes, tasks_for
from sweep.ssft import forget_epochs, halves, split_for, train_epochs
from sweep.store import Store
from sweep.train import execute_run, prepare

N_DIGITS = 1437  # digits' training split


def plain_forget_epochs(correct: np.ndarray) -> list[object]:
    """The definition, one example and one epoch at a time: the first epoch e such that the example is wrong at
    e and at every later epoch; None when it is right at the last epoch."""
    epochs, n = correct.shape
    out: list[object] = []
    for i in range(n):
        found = None
        for e in range(1, epochs + 1):
            if not correct[e - 1:, i].any():
                found = e
                break
        out.append(found)
    return out


def test_forget_epoch_of_hand_made_correctness():
    # rows: fine-tuning epochs 1..4; columns: examples
    correct = np.array([
        [1, 1, 0, 0, 1, 0],
        [1, 1, 0, 1, 0, 0],
        [0, 1, 0, 0, 1, 1],
        [0, 1, 0, 1, 0, 0],
    ], dtype=bool)
    got = forget_epochs(correct)
    assert got.dtype == "Int64"
    # forgotten for good after epoch 2 -> 3; never forgotten -> NA; never right in phase 2 -> 1; right again at
    # the end -> NA; last right at epoch 3 -> 4 (twice)
    assert got.tolist() == [3, pd.NA, 1, pd.NA, 4, 4]


def test_forget_epoch_matches_the_plain_definition_on_random_traces():
    rng = np.random.default_rng(0)
    for epochs in (1, 2, 5):
        correct = rng.uniform(size=(epochs, 200)) < rng.uniform(0.1, 0.9, size=200)
        got = [None if v is pd.NA else int(v) for v in forget_epochs(correct)]
        assert got == plain_forget_epochs(correct)


@pytest.mark.parametrize("n", [10, 11, N_DIGITS])
def test_halves_partition_the_training_set_and_follow_the_noise_seed(n):
    one, two = halves(n, seed=3)
    assert torch.equal(torch.cat([one, two]).sort().values, torch.arange(n))
    assert len(one) - len(two) in (0, 1)
    assert torch.equal(one, one.sort().values) and torch.equal(two, two.sort().values)
    assert torch.equal(halves(n, 3)[0], one) and not torch.equal(halves(n, 4)[0], one)
    first, second = split_for(n, 2, seed=3)
    assert torch.equal(first, two) and torch.equal(second, one)


def test_a_grid_block_with_ssft_adds_two_runs_for_each_standard_run():
    runs = expand([{"dataset": "digits", "arch": "mlp", "variant": ["standard", "tied"], "seed": [0, 1],
                    "ssft": True}])
    main = [c for c in runs if not c.ssft_half]
    halves_ = [c for c in runs if c.ssft_half]
    assert len(main) == 4 and len(halves_) == 4 and {c.variant for c in halves_} == {"standard"}
    for cfg in halves_:
        assert dataclasses.replace(cfg, ssft_half=0) in main and cfg.auxiliary
        assert f"-ssft{cfg.ssft_half}-" in cfg.run_id and train_epochs(cfg) == 2 * cfg.epochs
        assert tasks_for(cfg, selected_probes(None), load_grid("smoke").analysis) == []  # no probes
    assert sorted(c.ssft_half for c in halves_) == [1, 1, 2, 2]
    assert len(expand([{"dataset": "digits", "arch": "mlp", "ssft": False}])) == 1


@pytest.mark.parametrize("bad", [1, 0, "yes", "true", [True]])
def test_an_ssft_value_that_is_not_true_or_false_is_refused_in_one_line(bad):
    with pytest.raises(UserError, match=r"^ssft must be true or false .* got ") as info:
        expand([{"dataset": "digits", "arch": "mlp", "ssft": bad}])
    assert "\n" not in str(info.value)


def test_the_smoke_and_demo_grids_train_ssft_runs():
    for grid, count in (("smoke", 2), ("demo", 4)):  # demo: the standard MLP at two seeds
        found = [c for c in load_grid(grid).runs if c.ssft_half]
        assert len(found) == count and {(c.arch, c.variant) for c in found} == {("mlp", "standard")}, grid


TINY = RunConfig(dataset="digits", arch="mlp", noise=0.1, epochs=3, batch_size=256, width=0.5)


def test_both_halves_score_every_example_exactly_once(tmp_path):
    store = Store(str(tmp_path))
    for half in (1, 2):
        execute_run(dataclasses.replace(TINY, ssft_half=half).validate(), store, torch.device("cpu"))
    ssft = pd.read_parquet(tmp_path / "ssft")
    assert sorted(ssft["example_id"]) == list(range(N_DIGITS)) and (ssft["of_run_id"] == TINY.run_id).all()
    prep = prepare(TINY, torch.device("cpu"))  # the ordinary run's noisy labels, drawn on the whole set
    rows = ssft.set_index("example_id").sort_index()
    assert rows["label"].tolist() == prep.labels.tolist() and rows["is_noisy"].tolist() == prep.is_noisy.tolist()
    forget = rows["forget_epoch"]
    assert forget.dtype == "Int64" and forget.dropna().between(1, TINY.epochs).all()
    assert ((rows["correct_epochs"] == TINY.epochs) <= forget.isna()).all()  # right at every epoch: never forgotten
    epochs = pd.read_parquet(tmp_path / "aux_epochs")
    for run_id, part in epochs.groupby("run_id"):  # phase 1, then phase 2 numbered after it
        assert sorted(part["epoch"]) == list(range(1, 2 * TINY.epochs + 1)), run_id
    examples = pd.read_parquet(tmp_path / "aux_examples")
    for run_id, part in ssft.groupby("run_id"):  # each run scores the half it trained on first
        assert sorted(part["example_id"]) == sorted(examples.loc[examples["run_id"] == run_id, "example_id"])
    assert not (tmp_path / "epochs").exists() and not (tmp_path / "runs").exists()  # auxiliary: aux_* only
    # the mislabeled examples of this tiny run are forgotten sooner (never forgotten counts as epochs + 1)
    filled = forget.astype("float").fillna(TINY.epochs + 1)
    assert filled[rows["is_noisy"]].mean() < filled[~rows["is_noisy"]].mean()


class Killed(Exception):
    pass


@pytest.mark.parametrize("kill_after", [TINY.epochs, TINY.epochs + 1])  # the end of phase 1, inside phase 2
def test_an_ssft_run_killed_and_resumed_writes_what_an_uninterrupted_one_does(tmp_path, kill_after):
    cfg = dataclasses.replace(TINY, ssft_half=1).validate()
    whole, parts = Store(str(tmp_path / "whole")), Store(str(tmp_path / "parts"))
    execute_run(cfg, whole, torch.device("cpu"))

    def kill(row: dict[str, float]) -> None:
        if row["epoch"] == kill_after:
            raise Killed

    with pytest.raises(Killed):
        execute_run(cfg, parts, torch.device("cpu"), on_epoch=kill, background_saves=False)
    assert not (tmp_path / "parts" / "ssft").exists()
    seen = []
    execute_run(cfg, parts, torch.device("cpu"), on_epoch=lambda row: seen.append(row["epoch"]))
    assert seen == list(range(kill_after + 1, 2 * cfg.epochs + 1))  # continued where it stopped
    for table in ("ssft", "aux_epochs", "aux_gradients", "aux_examples"):
        a, b = (pd.read_parquet(tmp_path / root / table).drop(columns="seconds", errors="ignore")
                for root in ("whole", "parts"))
        pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-6)
