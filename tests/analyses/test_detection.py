"""Mislabel detection: AUROC and precision at the noise rate, checked against brute force."""

import itertools

import numpy as np
import pandas as pd
import pytest

from analyses.detection import auroc, detection, detection_per_run, precision_at_rate, signal_scores
from tests.analyses.builders import frame


def brute_auroc(scores, positives):
    """Fraction of (positive, negative) pairs ordered correctly, ties counting half."""
    pos = [s for s, y in zip(scores, positives, strict=True) if y]
    neg = [s for s, y in zip(scores, positives, strict=True) if not y]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def test_auroc_perfect_reversed_and_constant():
    y = [True, True, False, False, False]
    assert auroc([5, 4, 3, 2, 1], y) == 1.0
    assert auroc([1, 2, 3, 4, 5], y) == 0.0
    assert auroc([1, 1, 1, 1, 1], y) == 0.5
    assert np.isnan(auroc([1, 2], [True, True]))


def test_auroc_matches_pairwise_count_with_ties():
    rng = np.random.default_rng(3)
    for _ in range(20):
        scores = rng.integers(0, 5, 40).astype(float)  # many ties
        y = rng.uniform(size=40) < 0.3
        if y.all() or not y.any():
            continue
        assert auroc(scores, y) == pytest.approx(brute_auroc(scores, y))
    scores[0] = np.inf
    assert auroc(scores, y) == pytest.approx(brute_auroc(scores, y))


def test_precision_at_rate():
    y = np.array([1, 1, 0, 0, 0, 0, 0, 0, 0, 0], bool)
    assert precision_at_rate(np.arange(10)[::-1], y) == 1.0  # the two highest are the noisy ones
    assert precision_at_rate(np.arange(10), y) == 0.0
    assert precision_at_rate(np.arange(10)[::-1], y, rate=0.4) == 0.5
    # ties at the cut-off count fractionally: k=1, two tied at the top, one of them noisy -> 1/2
    assert precision_at_rate([1, 1, 0, 0], [True, False, False, False]) == 0.5
    # binary score: 3 flagged (2 noisy), k=2 -> expected precision 2/3 under a random tie-break
    assert precision_at_rate([1, 1, 1, 0, 0, 0], [True, True, False, False, False, False]) == pytest.approx(
        2 / 3
    )
    assert np.isnan(precision_at_rate([1.0, 2.0], [False, False]))


def test_signal_directions():
    examples = frame(
        [
            {"example_id": 0, "is_noisy": True, "final_loss": 3.0, "first_learned_epoch": pd.NA},
            {"example_id": 1, "is_noisy": False, "final_loss": 0.1, "first_learned_epoch": 9},
            {"example_id": 2, "is_noisy": False, "final_loss": 0.2, "first_learned_epoch": 2},
        ]
    ).astype({"first_learned_epoch": "Int64"})  # null = never learned, as the engine writes it
    flips = frame(
        [
            {"example_id": 0, "is_noisy": True, "n_units": 2, "flipped": True},
            {"example_id": 1, "is_noisy": False, "n_units": 1000, "flipped": False},
            {"example_id": 2, "is_noisy": False, "n_units": 8, "flipped": True},
        ]
    )
    drops = frame(
        [
            {"example_id": 0, "is_noisy": True, "correct_tied": True, "correct_drop": False},
            {"example_id": 1, "is_noisy": False, "correct_tied": True, "correct_drop": True},
        ],
        variant="tied",
    )
    scores = signal_scores(examples, flips, drops)
    by = {s: part.set_index("example_id")["score"] for s, part in scores.groupby("signal")}
    assert by["first_learned"][0] == np.inf  # never learned = most suspicious
    assert by["units_to_flip"][2] > by["units_to_flip"][1]  # a flip beats never flipping
    assert by["forgotten_drop"].tolist() == [1.0, 0.0]
    per_run = detection_per_run(examples, flips, drops).set_index("signal")
    assert (per_run["auroc"] == 1.0).all()
    assert (per_run["precision_at_rate"] == 1.0).all()
    assert per_run.loc["final_loss", "k"] == 1
    assert per_run.loc["final_loss", "rate"] == pytest.approx(1 / 3)


def test_never_learned_is_most_suspicious_after_a_parquet_round_trip(tmp_path):
    """first_learned_epoch is a nullable Int64 (NA = never learned): NA must rank first, not be dropped."""
    examples = frame(
        [
            {"example_id": i, "is_noisy": noisy, "final_loss": 1.0, "first_learned_epoch": epoch}
            for i, (noisy, epoch) in enumerate([(True, pd.NA), (True, 8), (False, 9), (False, 1), (False, 2)])
        ]
    ).astype({"first_learned_epoch": "Int64"})
    examples.to_parquet(tmp_path / "examples.parquet")
    back = pd.read_parquet(tmp_path / "examples.parquet")
    assert str(back["first_learned_epoch"].dtype) == "Int64" and back["first_learned_epoch"].isna().sum() == 1
    scores = signal_scores(examples=back)
    learned = scores[scores["signal"] == "first_learned"].set_index("example_id")["score"]
    assert learned[0] == np.inf and len(learned) == 5
    row = detection_per_run(examples=back).set_index("signal").loc["first_learned"]
    assert row["n"] == 5 and row["auroc"] == pytest.approx(5 / 6)  # noisy 8 loses only to clean 9


def test_detection_aggregates_across_seeds():
    rows = []
    for seed, reversed_ in ((0, False), (1, True)):
        for ex in range(4):
            noisy = ex == 0
            loss = (3.0 if noisy else 0.1 * ex) * (-1 if reversed_ else 1)
            rows.append(
                {
                    "seed": seed,
                    "example_id": ex,
                    "is_noisy": noisy,
                    "final_loss": loss,
                    "first_learned_epoch": 1,
                }
            )
    out = detection(examples=frame(rows))
    loss = out.table.set_index("signal").loc["final_loss"]
    assert loss["auroc_mean"] == pytest.approx(0.5)  # one perfect run, one reversed
    assert loss["n_seeds"] == 2
    assert out.table.set_index("signal").loc["first_learned", "auroc_mean"] == 0.5
    (ax,) = out.figure.axes
    assert ax.get_ylabel() == "AUROC or precision (0-1)" and ax.get_ylim()[1] < 1.1
    assert ax.get_legend() is None and len(out.figure.legends) == 1  # one legend, under the panels


def test_area_under_the_margin_and_forgetting_events_are_scored_in_the_right_direction():
    """Low AUM and many forgetting events are suspicious: a table where the noisy example has the lowest AUM and
    the most forgetting events scores AUROC 1 on both."""
    rows = [{"example_id": i, "is_noisy": i == 0, "final_loss": 0.1, "first_learned_epoch": 1,
             "aum": -2.0 if i == 0 else 1.0 + i, "forgetting_events": 3 if i == 0 else i % 2} for i in range(4)]
    per_run = detection_per_run(examples=frame(rows)).set_index("signal")
    assert per_run.loc["aum", "auroc"] == 1.0 and per_run.loc["forgetting", "auroc"] == 1.0
    assert per_run.loc["aum", "n"] == 4
