"""Mislabel detection: AUROC and precision at the noise rate, checked against brute force."""

import itertools

import numpy as np
import pandas as pd
import pytest
from matplotlib.container import BarContainer

from analyses.detection import (
    ALL_SET,
    FLIP_SET,
    SIGNALS,
    auroc,
    average_precision,
    coverage_gaps,
    detection,
    detection_per_run,
    evaluate,
    precision_at_rate,
    signal_scores,
    summarise,
    suspects,
    verdicts,
    write_suspects,
)
from analyses.load import Results
from tests.analyses.builders import N_TRAIN, STANDARD, TIED, frame, run_config, run_id, write_folds, write_run


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
    per_run = detection_per_run(examples, flips, drops)
    per_run = per_run[per_run["set"] == ALL_SET].set_index("signal")
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


def sweep_tables(root):
    """A standard configuration (two seeds, each with three fold runs) and an example-tied one, as the report
    reads them: fold runs' rows left out of every table but runs and oos_predictions."""
    for seed in (0, 1):
        cfg = run_config("digits", "mlp", "standard", 0.1, seed)
        write_run(root, cfg, STANDARD)
        write_folds(root, cfg, 3)
    write_run(root, run_config("digits", "mlp", "tied", 0.1, 0), TIED)
    results = Results(root)
    return {n: results.table(n) for n in ("examples", "flips", "dropout_examples", "oos_predictions", "runs")}


def test_every_signal_on_both_sets_on_the_same_examples(tmp_path):
    tables = sweep_tables(tmp_path)
    per_run = detection_per_run(**tables)
    assert set(per_run["signal"]) == set(SIGNALS)
    assert set(per_run["set"]) == {FLIP_SET, ALL_SET}
    assert not per_run["run_id"].str.contains("-cv").any()  # fold runs are never scored themselves
    for metric in ("auroc", "average_precision", "precision_at_rate", "chance"):
        assert per_run[metric].between(0, 1).all(), metric
    # one example count (and so one chance level) per run and set, whatever the signal
    assert (per_run.groupby(["run_id", "set"])["n"].nunique() == 1).all()
    assert (per_run.groupby(["run_id", "set"])["rate"].nunique() == 1).all()
    standard = per_run[per_run["variant"] == "standard"]
    flip = standard[standard["set"] == FLIP_SET]
    whole = standard[standard["set"] == ALL_SET]
    cheap = {"final_loss", "first_learned", "aum", "forgetting", "cleanlab", "cleanlab_issue"}
    assert set(flip["signal"]) == cheap | {"units_to_flip"} and set(whole["signal"]) == cheap
    assert (flip["n"] == 20).all() and (whole["n"] == N_TRAIN).all()
    tied = per_run[per_run["variant"] == "tied"]
    assert set(tied["set"]) == {ALL_SET} and "forgotten_drop" in set(tied["signal"])
    flags = per_run[per_run["signal"].isin(["cleanlab_issue", "forgotten_drop"])]
    assert flags[["flag_precision", "flag_recall"]].stack().between(0, 1).all() and (flags["flagged"] > 0).all()
    assert per_run.loc[~per_run["signal"].isin(["cleanlab_issue", "forgotten_drop"]), "flagged"].isna().all()
    out = summarise(per_run)
    assert set(out.table["signal"]) == set(SIGNALS)
    assert (out.table.loc[out.table["variant"] == "standard", "n_seeds"] == 2).all()
    drawn = [ax for ax in out.figure.axes if ax.get_visible()]
    assert len(drawn) == 3  # standard: flip subset and all; tied: all
    for ax in drawn:  # three bar series (AUROC, AP, precision), one bar per signal named on the x axis
        bars = [c for c in ax.containers if isinstance(c, BarContainer)]
        assert len(bars) == 3 and all(len(b) == len(ax.get_xticklabels()) for b in bars)
        assert ax.get_legend() is None
    assert len(out.figure.legends) == 1


def test_a_signal_that_scores_part_of_a_set_is_left_out_of_it_and_named():
    rows = [{"example_id": i, "is_noisy": i < 2, "final_loss": float(5 - i), "first_learned_epoch": 1,
             "aum": float(i), "forgetting_events": 0} for i in range(6)]
    examples = frame(rows)
    examples.loc[3, "aum"] = np.nan  # AUM misses one example: not comparable on the same examples
    scores = signal_scores(examples=examples)
    per_run = evaluate(scores)
    assert "aum" not in set(per_run["signal"]) and (per_run["n"] == 6).all()
    (gap,) = coverage_gaps(scores).to_dict("records")
    assert (gap["signal"], gap["set"], gap["scored"], gap["of"]) == ("aum", ALL_SET, 5, 6)


def test_average_precision_is_sklearns_and_survives_infinite_scores():
    from sklearn.metrics import average_precision_score

    rng = np.random.default_rng(0)
    y = rng.uniform(size=50) < 0.3
    s = rng.normal(size=50) + y
    assert average_precision(s, y) == pytest.approx(average_precision_score(y, s))
    s[y.argmax()] = np.inf  # a never-learned noisy example: first, not an error
    s[(~y).argmax()] = -np.inf
    assert 0 < average_precision(s, y) <= 1
    assert average_precision([3, 2, 1, 0], [True, True, False, False]) == 1.0
    assert np.isnan(average_precision([1, 2], [True, True]))


def test_the_verdict_names_the_winner_and_whether_intervals_overlap():
    table = pd.DataFrame({
        "config_id": ["c"] * 3, "dataset": ["digits"] * 3, "arch": ["mlp"] * 3, "variant": ["standard"] * 3,
        "noise": [0.1] * 3, "set": [ALL_SET] * 3, "signal": ["aum", "cleanlab", "units_to_flip"],
        "n_mean": [100.0] * 3, "auroc_mean": [0.95, 0.80, 0.70], "auroc_lo": [0.93, 0.75, 0.6],
        "auroc_hi": [0.97, 0.85, 0.8], "n_seeds": [3] * 3,
    })
    (line,) = verdicts(table)
    assert "all training examples" in line and "AUM wins with AUROC 0.950 [0.930, 0.970]" in line
    assert "ahead of cleanlab (0.800 [0.750, 0.850])" in line and "do not overlap" in line
    assert "best localization signal, units to flip (0.700), is no better than the best other detector, AUM" in line
    table.loc[1, "auroc_hi"] = 0.94
    assert "overlap, so the lead is within seed-to-seed variation" in verdicts(table)[0]
    one = table.assign(n_seeds=1, auroc_lo=np.nan, auroc_hi=np.nan)
    assert "one seed" in verdicts(one)[0]


def test_suspects_rank_every_example_by_each_signal_with_the_true_flag(tmp_path):
    tables = sweep_tables(tmp_path)
    scores = signal_scores(**tables)
    frames = suspects(scores, tables["examples"])
    assert not any("-cv" in r for r in frames)
    rid = run_id(run_config("digits", "mlp", "standard", 0.1, 0))
    table = frames[rid]
    assert sorted(table["example_id"]) == list(range(N_TRAIN))
    examples = tables["examples"].query("run_id == @rid").set_index("example_id")
    by_id = table.set_index("example_id")
    assert (by_id["is_noisy"] == examples["is_noisy"].reindex(by_id.index)).all()
    assert (by_id["original_label"] == examples["original_label"].reindex(by_id.index)).all()
    for signal in SIGNALS:
        if signal == "forgotten_drop":
            assert f"{signal}_rank" not in table.columns  # a standard run has no example-tied drop
            continue
        scored = table[table[f"{signal}_score"].notna()].sort_values("example_id")
        order = np.argsort(-scored[f"{signal}_score"].to_numpy(), kind="stable")  # most suspicious first
        assert scored["example_id"].to_numpy()[order].tolist() == (
            scored.sort_values(f"{signal}_rank")["example_id"].tolist()), signal
        assert sorted(scored[f"{signal}_rank"]) == list(range(1, len(scored) + 1))
    assert table[["units_to_flip_score"]].notna().sum().item() == 20  # the flip subset only
    assert (table["sorted_by"] == "aum").all() and table["aum_rank"].tolist() == list(range(1, N_TRAIN + 1))
    paths = write_suspects(frames, tmp_path / "suspects")
    back = pd.read_csv(paths[rid])
    assert back["example_id"].tolist() == table["example_id"].tolist()
    assert back["aum_rank"].tolist() == table["aum_rank"].tolist()
