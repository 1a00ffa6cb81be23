"""Label noise: exact count, never the true class, uniform over the others, set by (dataset, rate, seed)."""

import numpy as np
import pytest
import torch
from scipy.stats import chi2

from sweep.errors import UserError
from sweep.noise import add_label_noise

C = 10


def _labels(n: int, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).integers(0, C, size=n))


@pytest.mark.parametrize(("n", "rate"), [(1437, 0.1), (1000, 0.25), (7, 0.5), (10, 0.0), (50000, 0.999)])
def test_exact_count_and_mask_marks_exactly_the_changed_labels(n: int, rate: float) -> None:
    labels = _labels(n)
    noisy, mask = add_label_noise(labels, rate, seed=3, num_classes=C, dataset="digits")
    assert noisy.dtype == torch.int64 and mask.dtype == torch.bool and noisy.shape == mask.shape == (n,)
    assert int(mask.sum()) == round(rate * n)
    assert torch.equal(noisy != labels, mask)  # never the original class, and nothing else touched
    assert int(noisy.min()) >= 0 and int(noisy.max()) < C


def test_input_labels_are_not_modified() -> None:
    labels = _labels(100)
    before = labels.clone()
    add_label_noise(labels, 0.5, seed=0, num_classes=C, dataset="digits")
    assert torch.equal(labels, before)


def test_every_other_class_is_reachable_and_uniform() -> None:
    """Chi-square over the 10 x 9 (true, new) cells; the fixed draw makes the test deterministic."""
    labels = _labels(200_000, seed=1)
    noisy, mask = add_label_noise(labels, 0.5, seed=0, num_classes=C, dataset="synthetic")
    true, new = labels[mask].numpy(), noisy[mask].numpy()
    counts = np.zeros((C, C))
    np.add.at(counts, (true, new), 1)
    assert np.all(np.diag(counts) == 0)
    off_diagonal = ~np.eye(C, dtype=bool)
    assert np.all(counts[off_diagonal] > 0)
    # In particular true-1 mod C occurs: the paper's offset bug could never produce it.
    assert np.all(counts[np.arange(C), (np.arange(C) - 1) % C] > 0)
    expected = counts.sum(axis=1, keepdims=True) / (C - 1) * off_diagonal
    statistic = ((counts - expected)[off_diagonal] ** 2 / expected[off_diagonal]).sum()
    assert statistic < chi2.ppf(0.999, df=C * (C - 2))
    # The chosen examples are spread over the classes like the labels themselves.
    chosen = np.bincount(true, minlength=C)
    overall = np.bincount(labels.numpy(), minlength=C) / len(labels)
    assert np.allclose(chosen / chosen.sum(), overall, atol=0.01)


def test_deterministic_and_independent_of_model_seed() -> None:
    labels = _labels(2000)
    torch.manual_seed(0)
    np.random.seed(0)
    first = add_label_noise(labels, 0.2, seed=5, num_classes=C, dataset="cifar10")
    torch.manual_seed(12345)
    np.random.seed(12345)
    torch.rand(100)
    second = add_label_noise(labels, 0.2, seed=5, num_classes=C, dataset="cifar10")
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])


@pytest.mark.parametrize("change", [{"seed": 6}, {"dataset": "svhn"}, {"rate": 0.21}])
def test_different_seed_dataset_or_rate_gives_a_different_draw(change: dict) -> None:
    labels = _labels(2000)
    base = {"rate": 0.2, "seed": 5, "dataset": "cifar10"}
    _, mask = add_label_noise(labels, num_classes=C, **base)
    _, other = add_label_noise(labels, num_classes=C, **{**base, **change})
    assert not torch.equal(mask, other)


def test_equal_rates_written_differently_agree() -> None:
    labels = _labels(500)
    a = add_label_noise(labels, 0.1, seed=0, num_classes=C, dataset="digits")
    b = add_label_noise(labels, 1 / 10, seed=0, num_classes=C, dataset="digits")
    zero_int = add_label_noise(labels, 0, seed=0, num_classes=C, dataset="digits")
    assert torch.equal(a[0], b[0]) and int(zero_int[1].sum()) == 0


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5, float("nan"), float("inf"), "0.1", True, None])
def test_invalid_rate_is_a_user_error(rate: object) -> None:
    with pytest.raises(UserError, match=r"\[0, 1\)"):
        add_label_noise(_labels(10), rate, seed=0, num_classes=C, dataset="digits")  # type: ignore[arg-type]


def test_labels_out_of_range_are_refused() -> None:
    with pytest.raises(ValueError, match="0..9"):
        add_label_noise(torch.tensor([0, 10]), 0.5, seed=0, num_classes=C, dataset="digits")
