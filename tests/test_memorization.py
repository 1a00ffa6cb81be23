"""Held-out memorization scores and influence (sweep.memorization) on hand-computed frames, and the fast
influence against a plain pair-by-pair loop."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from sweep.memorization import influence, mem_scores


def _frame(member: dict[int, list[bool]], correct: dict[int, list[bool]], test: dict[int, list[bool]],
           p_label: dict[int, list[float]] | None = None) -> pd.DataFrame:
    """Rows for models 0..M-1: training example i is in model j's subset when member[i][j]."""
    rows = []
    for i, inside in member.items():
        for j, flag in enumerate(inside):
            rows.append({"model": j, "split": "train", "example_id": i, "in_subset": flag,
                         "correct": correct[i][j], "p_label": (p_label or {}).get(i, [0.5] * len(inside))[j],
                         "label": i % 3})
    for t, right in test.items():
        for j, flag in enumerate(right):
            rows.append({"model": j, "split": "test", "example_id": t, "in_subset": False, "correct": flag,
                         "p_label": 0.5, "label": 0})
    return pd.DataFrame(rows)


MEMBER = {0: [True, True, False, False], 1: [True, True, True, True], 2: [False, False, True, True]}
CORRECT = {0: [True, True, False, True], 1: [True, True, True, False], 2: [True, False, True, True]}
TEST = {0: [True, True, False, False], 1: [False, True, True, False]}
P_LABEL = {0: [0.9, 0.7, 0.2, 0.6]}


def test_mem_scores_by_hand() -> None:
    got = mem_scores(_frame(MEMBER, CORRECT, TEST, P_LABEL)).set_index("example_id")
    # example 0: in models 0, 1 (both right), out 2, 3 (one right): 1 - 1/2
    assert got.loc[0, "in_acc"] == 1.0 and got.loc[0, "out_acc"] == 0.5 and got.loc[0, "mem"] == 0.5
    assert got.loc[0, "mem_se"] == pytest.approx(math.sqrt(0.0 / 2 + 0.25 / 2))
    assert got.loc[0, "mem_prob"] == pytest.approx(0.8 - 0.4)
    assert (got.loc[0, "n_in"], got.loc[0, "n_out"]) == (2, 2)
    # example 1: in every model: no held-out estimate
    assert got.loc[1, "n_out"] == 0 and np.isnan(got.loc[1, "mem"]) and np.isnan(got.loc[1, "mem_se"])
    assert got.loc[1, "in_acc"] == 0.75 and np.isnan(got.loc[1, "out_acc"])
    # example 2: in 2, 3 (both right), out 0, 1 (one right)
    assert got.loc[2, "mem"] == 0.5
    assert list(got["label"]) == [0, 1, 2]


def test_mem_scores_refuses_two_runs_mixed() -> None:
    frame = _frame(MEMBER, CORRECT, TEST)
    with pytest.raises(ValueError, match="twice"):
        mem_scores(pd.concat([frame, frame]))


def test_influence_by_hand() -> None:
    pred = _frame(MEMBER, CORRECT, TEST)
    top = influence(pred, 3)
    # example 0 (in 0, 1): test 0 right in both in-models, wrong in both out-models -> 1; test 1: 1/2 - 1/2 = 0.
    # example 2 (in 2, 3): test 0 -> 0 - 1 = -1; test 1 -> 1/2 - 1/2 = 0. example 1 is in every model: no pair.
    assert list(zip(top.example_id, top.test_id, top.influence, strict=True)) == [(0, 0, 1.0), (0, 1, 0.0),
                                                                                   (2, 1, 0.0)]
    assert list(top.in_acc) == [1.0, 0.5, 0.5] and list(top.out_acc) == [0.0, 0.5, 0.5]
    assert influence(pred, 0).empty and list(influence(pred, 0).columns) == list(top.columns)
    assert len(influence(pred, 100)) == 4  # every pair with an estimate


def _plain_influence(pred: pd.DataFrame) -> pd.DataFrame:
    train, test = pred[pred.split == "train"], pred[pred.split == "test"]
    rows = []
    for i, part in train.groupby("example_id"):
        inside = set(part.loc[part.in_subset, "model"])
        outside = set(part.loc[~part.in_subset, "model"])
        if not inside or not outside:
            continue
        for t, tp in test.groupby("example_id"):
            right = dict(zip(tp.model, tp.correct, strict=True))
            acc_in = np.mean([right[m] for m in inside])
            acc_out = np.mean([right[m] for m in outside])
            rows.append((i, t, acc_in - acc_out))
    return pd.DataFrame(rows, columns=["example_id", "test_id", "influence"])


def test_influence_matches_plain_loop_in_any_chunking() -> None:
    rng = np.random.default_rng(0)
    models, n_train, n_test = 9, 23, 7
    member = {i: list(rng.random(models) < 0.6) for i in range(n_train)}
    member[5] = [True] * models  # no estimate for this one
    correct = {i: list(rng.random(models) < 0.7) for i in range(n_train)}
    test = {t: list(rng.random(models) < 0.5) for t in range(n_test)}
    pred = _frame(member, correct, test)
    plain = _plain_influence(pred).sort_values(["influence", "example_id", "test_id"],
                                               ascending=[False, True, True]).reset_index(drop=True)
    for chunk in (8 * n_test, 8 * n_test * 5, 1 << 20):
        got = influence(pred, 40, chunk_bytes=chunk)
        assert list(got.example_id) == list(plain.example_id[:40])
        assert list(got.test_id) == list(plain.test_id[:40])
        np.testing.assert_allclose(got.influence, plain.influence[:40])
    assert 5 not in set(influence(pred, 10**6).example_id)


def test_mem_scores_match_plain_loop() -> None:
    rng = np.random.default_rng(1)
    models, n_train = 11, 17
    member = {i: list(rng.random(models) < 0.7) for i in range(n_train)}
    correct = {i: list(rng.random(models) < 0.6) for i in range(n_train)}
    p_label = {i: list(rng.random(models)) for i in range(n_train)}
    got = mem_scores(_frame(member, correct, {}, p_label)).set_index("example_id")
    for i in range(n_train):
        inside = [c for c, m in zip(correct[i], member[i], strict=True) if m]
        outside = [c for c, m in zip(correct[i], member[i], strict=True) if not m]
        p_in = [p for p, m in zip(p_label[i], member[i], strict=True) if m]
        p_out = [p for p, m in zip(p_label[i], member[i], strict=True) if not m]
        if inside and outside:
            assert got.loc[i, "mem"] == pytest.approx(np.mean(inside) - np.mean(outside))
            assert got.loc[i, "mem_prob"] == pytest.approx(np.mean(p_in) - np.mean(p_out))
        assert got.loc[i, "n_in"] == len(inside) and got.loc[i, "n_out"] == len(outside)


def planted_toy(per_class: int = 20, classes: int = 9, seed: int = 0, spread: float = 0.3):
    """Digits-shaped toy data: `classes` tight clusters of `per_class` examples (typical: any model that sees
    a cluster's other members gets each right; `spread`: their scatter about its centre), plus one unique input
    far from every cluster with a label of its own (atypical, the last training example: only a model that
    trained on it can predict its label)."""
    import torch

    from sweep.data import Dataset, Split

    g = torch.Generator().manual_seed(seed)
    protos = torch.randn(classes + 1, 1, 8, 8, generator=g) * 2
    x = torch.cat([protos[c] + spread * torch.randn(per_class, 1, 8, 8, generator=g) for c in range(classes)]
                  + [protos[classes][None]])
    y = torch.cat([torch.arange(classes).repeat_interleave(per_class), torch.tensor([classes])])
    test_x = torch.cat([protos[c] + spread * torch.randn(5, 1, 8, 8, generator=g) for c in range(classes)])
    test_y = torch.arange(classes).repeat_interleave(5)
    return Dataset("digits", Split(x, y), Split(test_x, test_y), 10, (1, 8, 8))


def test_planted_atypical_example_scores_near_one() -> None:
    from sweep.config import RunConfig
    from sweep.packs import train_pack_in_memory

    data = planted_toy()
    cfg = RunConfig(dataset="digits", arch="mlp", noise=0.0, epochs=20, batch_size=32, lr=0.1, width=0.25,
                    subsets=16, subset_fraction=0.5, pack=16, pack_index=0)
    scores = mem_scores(train_pack_in_memory(cfg, data)).set_index("example_id")
    atypical = len(data.train) - 1
    assert scores.loc[atypical, "n_in"] > 0 and scores.loc[atypical, "n_out"] > 0
    assert scores.loc[atypical, "mem"] > 0.5
    assert scores.drop(index=atypical)["mem"].median() < 0.1
    assert scores.loc[atypical, "mem_prob"] > 0.5
