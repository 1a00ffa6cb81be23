"""Mislabel detection: every signal's AUROC checked by hand on tiny tables, each signal's direction, the metrics
against brute force, the costs, the Parquet table, the published-number gate and the per-epoch figure."""

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PathCollection
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
    gather,
    precision_at_rate,
    signal_scores,
    summarise,
    suspects,
    verdicts,
    write_suspects,
)
from analyses.detection_cost import with_costs
from analyses.detection_epochs import detection_by_epoch, epochs_table, late_decay
from analyses.detection_table import comparison_frame, write_comparison
from analyses.load import Results
from analyses.published import ANCHORS, anchors_for, beside, mismatch
from analyses.signals import REGISTRY, Tables, column, register, unregister
from sweep.schemas import REPORT_TABLES
from tests.analyses.builders import (
    N_TRAIN,
    SSFT,
    STANDARD,
    TIED,
    detection_epochs,
    fold_config,
    frame,
    oos_frame,
    run_config,
    run_id,
    ssft_config,
    with_config,
    write_folds,
    write_run,
    write_ssft,
)

BUILT_IN = ("units_to_flip", "forgotten_drop", "final_loss", "first_learned", "aum", "aum_eval", "forgetting",
            "forgetting_eval", "csl", "learning_time", "in_confidence", "loss_curvature", "ssft", "cleanlab",
            "cleanlab_issue")
CFG = run_config("cifar10", "resnet9", "standard", 0.1, 0)
RID = run_id(CFG)
NOISY = [True, True, False, False, False]  # examples 0..4: two mislabeled, three clean: 6 (noisy, clean) pairs


def brute_auroc(scores, positives):
    """Fraction of (positive, negative) pairs ordered correctly, ties counting half."""
    pos = [s for s, y in zip(scores, positives, strict=True) if y]
    neg = [s for s, y in zip(scores, positives, strict=True) if not y]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def tables_for(natural: dict[str, list], noisy=NOISY) -> Tables:
    """One run's tables (the paper's CIFAR-10 / ResNet-9 / 10% configuration, seed 0) holding each given natural
    column, by its registry name: flips n_units (a None = never flipped), dropout_examples correct_drop,
    examples columns, ssft forget_epoch (None = never forgotten), cleanlab's p(label) of a 2-class softmax."""
    n = len(noisy)
    ids = list(range(n))
    labels = [i % 2 for i in range(n)]  # both classes labelled, so cleanlab has a threshold for each
    base = {"example_id": ids, "is_noisy": noisy}
    examples = {**base, "label": labels, "original_label": [(lab + 1) % 2 if y else lab for lab, y in
                                                             zip(labels, noisy, strict=True)]}
    for name in ("final_loss", "aum", "aum_eval", "forgetting_events", "forgetting_events_eval", "csl",
                 "learning_time", "in_confidence", "loss_curvature", "first_learned_epoch"):
        if name in natural:
            examples[name] = natural[name]
    ex = frame(pd.DataFrame(examples).to_dict("records"))
    if "first_learned_epoch" in natural:
        ex["first_learned_epoch"] = pd.array(natural["first_learned_epoch"], dtype="Int64")
    out = Tables(examples=ex)
    if "n_units" in natural:
        units = natural["n_units"]
        out.flips = frame([{"example_id": i, "is_noisy": noisy[i], "n_units": 99 if u is None else u,
                            "flipped": u is not None} for i, u in enumerate(units)])
    if "correct_drop" in natural:
        out.dropout_examples = frame([{"example_id": i, "is_noisy": noisy[i], "correct_tied": True,
                                       "correct_drop": c} for i, c in enumerate(natural["correct_drop"])],
                                     variant="tied")
        out.dropout_examples["run_id"] = RID  # same run as the others, so one run holds every signal
    if "forget_epoch" in natural:
        rows = [{"of_run_id": RID, "example_id": i, "label": labels[i], "is_noisy": noisy[i],
                 "forget_epoch": e, "learned_at_phase1_end": True, "correct_epochs": 0}
                for i, e in enumerate(natural["forget_epoch"])]
        halves = [with_config(pd.DataFrame(rows[h::2]), ssft_config(CFG, h + 1)) for h in (0, 1)]
        out.ssft = pd.concat(halves, ignore_index=True).astype({"forget_epoch": "Int64"})
    if "p_label" in natural:
        p = np.asarray(natural["p_label"], float)  # the softmax's probability of the example's label
        probs = np.stack([np.where(np.array(labels) == 0, p, 1 - p), np.where(np.array(labels) == 1, p, 1 - p)], 1)
        out.oos_predictions = oos_frame(CFG, 2, ids, labels, noisy, probs)
    return out


# (registry name, natural values of its table column for examples 0..4, AUROC worked out by hand over the 6 pairs)
HAND = [
    # low = suspicious; 1 beats 4, inf, 3 (3 wins); 6 beats only inf (1): 4/6
    ("units_to_flip", {"n_units": [1, 6, 4, None, 3]}, 4 / 6),
    # forgotten = not correct_drop = [1, 0, 1, 0, 0]: 1 vs (1, 0, 0) = 0.5 + 2; 0 vs them = 0 + 0.5 + 0.5: 3.5/6
    ("forgotten_drop", {"correct_drop": [False, True, False, True, True]}, 3.5 / 6),
    ("final_loss", {"final_loss": [3.0, 0.5, 1.0, 0.2, 0.1]}, 5 / 6),  # 3 + 2
    # never learned (NA) = inf = most suspicious: 3; epoch 2 beats 1, 1: 2
    ("first_learned", {"first_learned_epoch": [None, 2, 3, 1, 1]}, 5 / 6),
    ("aum", {"aum": [-1.0, 0.5, 0.2, 2.0, 3.0]}, 5 / 6),  # low: -1 beats all 3; 0.5 beats 2, 3
    ("aum_eval", {"aum_eval": [2.5, 0.0, 0.5, 2.0, 3.0]}, 4 / 6),  # 2.5 is below 3 only (1); 0.0: 3
    ("forgetting", {"forgetting_events": [3, 1, 1, 0, 2]}, 4.5 / 6),  # 3; 1 ties 1, beats 0: 1.5
    ("forgetting_eval", {"forgetting_events_eval": [0, 2, 1, 0, 0]}, 4 / 6),  # 0 ties two 0s: 1; 2: 3
    ("csl", {"csl": [10.0, 8.0, 9.0, 1.0, 2.0]}, 5 / 6),
    ("learning_time", {"learning_time": [1.0, 0.3, 0.3, 0.1, 0.0]}, 5.5 / 6),  # 3; 0.3 ties 0.3: 2.5
    ("in_confidence", {"in_confidence": [0.6, 0.1, 0.2, 0.05, 0.3]}, 4 / 6),  # 3; 0.1 beats 0.05: 1
    ("loss_curvature", {"loss_curvature": [5.0, 4.0, 3.0, 2.0, 1.0]}, 1.0),
    # low = suspicious, never forgotten (NA) = inf: 1 beats 2, inf, 5 (3); inf ties inf only (0.5): 3.5/6
    ("ssft", {"forget_epoch": [1, None, 2, None, 5]}, 3.5 / 6),
    # label quality = p(label) (self-confidence), low = suspicious: 0.1 beats all (3); 0.6 beats 0.9, 0.8 (2)
    ("cleanlab", {"p_label": [0.1, 0.6, 0.5, 0.9, 0.8]}, 5 / 6),
]


def test_the_registry_declares_every_signal_once_with_its_natural_column_and_direction():
    assert tuple(REGISTRY)[: len(BUILT_IN)] == BUILT_IN
    for signal in REGISTRY.values():
        assert signal.suspicious in ("high", "low") and "." in signal.source and signal.meaning
    assert {s for s in BUILT_IN if REGISTRY[s].suspicious == "low"} == {"units_to_flip", "aum", "aum_eval", "ssft",
                                                                          "cleanlab"}
    assert REGISTRY["cleanlab"].trainings == "cv_folds" and REGISTRY["ssft"].trainings == 2
    assert all(REGISTRY[s].trainings == 0 for s in BUILT_IN if s not in ("cleanlab", "cleanlab_issue", "ssft"))
    with pytest.raises(ValueError, match="registered already"):
        register("aum", short="x", meaning="x", source="examples.aum", suspicious="low")
    with pytest.raises(ValueError, match="suspicious must be"):
        register("sideways", short="x", meaning="x", source="examples.aum", suspicious="up")


@pytest.mark.parametrize(("signal", "natural", "expected"), HAND, ids=[h[0] for h in HAND])
def test_each_signal_has_the_hand_computed_auroc(signal, natural, expected):
    got = gather(**{k: v for k, v in vars(tables_for(natural)).items() if k not in ("memo", "skipped")})
    per_run = evaluate(got.scores)
    row = per_run[(per_run["signal"] == signal) & (per_run["set"] == ALL_SET)]
    if signal == "units_to_flip":  # it scores only the flip subset, here the same five examples
        row = per_run[(per_run["signal"] == signal) & (per_run["set"] == FLIP_SET)]
    (value,) = row["auroc"].tolist()
    assert value == pytest.approx(expected)
    assert row["suspicious"].item() == REGISTRY[signal].suspicious and row["n"].item() == 5


def test_cleanlabs_flag_has_the_auroc_of_its_true_and_false_positive_rates():
    """For a 0/1 flag AUROC = (1 + TPR - FPR) / 2; the flags are cleanlab's own find_label_issues output."""
    from cleanlab.filter import find_label_issues

    rng = np.random.default_rng(0)
    noisy = rng.uniform(size=60) < 0.2
    p = np.where(noisy, rng.uniform(0.0, 0.3, 60), rng.uniform(0.6, 1.0, 60))
    p[0], noisy[0] = 0.95, True  # one mislabeled example the model believes: not flagged
    tables = tables_for({"p_label": list(p)}, noisy=list(noisy))
    got = gather(examples=tables.examples, oos_predictions=tables.oos_predictions)
    flag = got.scores[got.scores["signal"] == "cleanlab_issue"].sort_values("example_id")["value"].to_numpy()
    labels = np.arange(60) % 2
    probs = np.stack([np.where(labels == 0, p, 1 - p), np.where(labels == 1, p, 1 - p)], axis=1)
    expected = find_label_issues(labels, probs, n_jobs=1)
    assert flag.tolist() == expected.astype(float).tolist() and 0 < flag.sum() < 60
    tpr, fpr = flag[noisy].mean(), flag[~noisy].mean()
    row = evaluate(got.scores).set_index("signal").loc["cleanlab_issue"]
    assert row["auroc"] == pytest.approx((1 + tpr - fpr) / 2)
    assert row["flag_recall"] == pytest.approx(tpr) and row["flagged"] == flag.sum()


ORIENTATION = {
    "units_to_flip": ("n_units", [1, 2, 50, 60, 70]),
    "forgotten_drop": ("correct_drop", [False, False, True, True, True]),
    "first_learned": ("first_learned_epoch", [9, 8, 1, 2, 3]),
    "forgetting": ("forgetting_events", [5, 4, 0, 1, 0]),
    "forgetting_eval": ("forgetting_events_eval", [5, 4, 0, 1, 0]),
    "ssft": ("forget_epoch", [1, 2, 7, 8, None]),
    "cleanlab": ("p_label", [0.05, 0.1, 0.9, 0.8, 0.95]),
    "cleanlab_issue": ("p_label", [0.0, 0.01, 0.99, 0.98, 1.0]),
}


@pytest.mark.parametrize("signal", BUILT_IN)
def test_a_perfectly_separating_natural_column_gives_auroc_one(signal):
    """Noisy examples at the suspicious end of the natural value (the direction the registry declares), clean
    ones at the other: AUROC 1 exactly, whatever the signal's sign convention."""
    if signal in ORIENTATION:
        name, values = ORIENTATION[signal]
    else:
        name = REGISTRY[signal].source.split(".", 1)[1]
        values = [9.0, 8.0, 1.0, 2.0, 3.0] if REGISTRY[signal].suspicious == "high" else [-9.0, -8.0, 1.0, 2.0, 3.0]
    tables = tables_for({name: values})
    if signal == "cleanlab_issue":  # a flag needs more examples for cleanlab's thresholds to flag exactly the noisy
        tables = tables_for({name: [0.0] * 4 + [1.0] * 16}, noisy=[True] * 4 + [False] * 16)
    per_run = evaluate(gather(**{k: v for k, v in vars(tables).items() if k not in ("memo", "skipped")}).scores)
    assert per_run.loc[per_run["signal"] == signal, "auroc"].tolist() == [1.0]


def test_a_signal_the_folder_cannot_give_is_named_with_the_reason():
    ex = frame([{"example_id": i, "is_noisy": i == 0, "label": 0, "original_label": 0, "final_loss": float(i),
                 "first_learned_epoch": 1, "aum": float(i), "forgetting_events": 0, "loss_curvature": np.nan}
                for i in range(4)])
    got = gather(examples=ex)
    absent = got.absent.set_index("signal")["reason"]
    assert "column 'csl' is not in table 'examples'" in absent["csl"]
    assert "null on every row" in absent["loss_curvature"]  # curvature_every = 0
    assert "'ssft' is missing" in absent["ssft"] and "'flips' is missing" in absent["units_to_flip"]
    assert set(evaluate(got.scores)["signal"]) == {"final_loss", "first_learned", "aum", "forgetting"}


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
    assert precision_at_rate([1, 1, 1, 0, 0, 0], [True, True, False, False, False, False]) == pytest.approx(2 / 3)
    assert np.isnan(precision_at_rate([1.0, 2.0], [False, False]))


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


def test_never_learned_is_most_suspicious_after_a_parquet_round_trip(tmp_path):
    """first_learned_epoch is a nullable Int64 (NA = never learned): NA must rank first, not be dropped."""
    examples = frame(
        [{"example_id": i, "is_noisy": noisy, "final_loss": 1.0, "first_learned_epoch": epoch}
         for i, (noisy, epoch) in enumerate([(True, pd.NA), (True, 8), (False, 9), (False, 1), (False, 2)])]
    ).astype({"first_learned_epoch": "Int64"})
    examples.to_parquet(tmp_path / "examples.parquet")
    back = pd.read_parquet(tmp_path / "examples.parquet")
    assert str(back["first_learned_epoch"].dtype) == "Int64" and back["first_learned_epoch"].isna().sum() == 1
    scores = signal_scores(examples=back)
    learned = scores[scores["signal"] == "first_learned"].set_index("example_id")["value"]
    assert learned[0] == np.inf and len(learned) == 5  # the natural value: an infinite epoch
    row = detection_per_run(examples=back).set_index("signal").loc["first_learned"]
    assert row["n"] == 5 and row["auroc"] == pytest.approx(5 / 6)  # noisy 8 loses only to clean 9


def test_detection_aggregates_across_seeds():
    rows = []
    for seed, reversed_ in ((0, False), (1, True)):
        for ex in range(4):
            noisy = ex == 0
            loss = (3.0 if noisy else 0.1 * ex) * (-1 if reversed_ else 1)
            rows.append({"seed": seed, "example_id": ex, "is_noisy": noisy, "final_loss": loss,
                         "first_learned_epoch": 1})
    out = detection(examples=frame(rows))
    loss = out.table.set_index("signal").loc["final_loss"]
    assert loss["auroc_mean"] == pytest.approx(0.5)  # one perfect run, one reversed
    assert loss["n_seeds"] == 2 and loss["n_examples_mean"] == 4
    assert out.table.set_index("signal").loc["first_learned", "auroc_mean"] == 0.5
    (ax,) = out.figure.axes
    assert ax.get_ylabel() == "AUROC or precision (0-1)" and ax.get_ylim()[1] < 1.1
    assert ax.get_legend() is None and len(out.figure.legends) == 1  # one legend, under the panels


def sweep_tables(root):
    """A standard configuration (two seeds, each with three fold runs and two SSFT runs) and an example-tied
    one, as the report reads them: auxiliary runs' rows in the aux_* tables."""
    for seed in (0, 1):
        cfg = run_config("digits", "mlp", "standard", 0.1, seed)
        write_run(root, cfg, STANDARD)
        write_folds(root, cfg, 3)
        write_ssft(root, cfg, SSFT)
    write_run(root, run_config("digits", "mlp", "tied", 0.1, 0), TIED)
    results = Results(root)
    names = ("examples", "flips", "dropout_examples", "oos_predictions", "runs", "ssft", "aux_runs")
    return {n: results.table(n) for n in names}


def test_every_signal_on_both_sets_on_the_same_examples(tmp_path):
    tables = sweep_tables(tmp_path)
    per_run = detection_per_run(**tables)
    assert set(per_run["signal"]) == set(BUILT_IN)
    assert set(per_run["set"]) == {FLIP_SET, ALL_SET}
    assert not per_run["run_id"].str.contains("-cv|-ssft").any()  # auxiliary runs are never scored themselves
    for metric in ("auroc", "average_precision", "precision_at_rate", "chance"):
        assert per_run[metric].between(0, 1).all(), metric
    # one example count (and so one chance level) per run and set, whatever the signal
    assert (per_run.groupby(["run_id", "set"])["n"].nunique() == 1).all()
    assert (per_run.groupby(["run_id", "set"])["rate"].nunique() == 1).all()
    standard = per_run[per_run["variant"] == "standard"]
    flip = standard[standard["set"] == FLIP_SET]
    whole = standard[standard["set"] == ALL_SET]
    cheap = set(BUILT_IN) - {"units_to_flip", "forgotten_drop"}
    assert set(flip["signal"]) == cheap | {"units_to_flip"} and set(whole["signal"]) == cheap
    assert (flip["n"] == 20).all() and (whole["n"] == N_TRAIN).all()
    tied = per_run[per_run["variant"] == "tied"]
    assert set(tied["set"]) == {ALL_SET} and "forgotten_drop" in set(tied["signal"])
    assert "ssft" not in set(tied["signal"])  # no SSFT runs for the tied run
    flags = per_run[per_run["signal"].isin(["cleanlab_issue", "forgotten_drop"])]
    assert flags[["flag_precision", "flag_recall"]].stack().between(0, 1).all() and (flags["flagged"] > 0).all()
    assert per_run.loc[~per_run["signal"].isin(["cleanlab_issue", "forgotten_drop"]), "flagged"].isna().all()
    out = summarise(per_run)
    assert set(out.table["signal"]) == set(BUILT_IN)
    assert (out.table.loc[out.table["variant"] == "standard", "n_seeds"] == 2).all()
    drawn = [ax for ax in out.figure.axes if ax.get_visible()]
    assert len(drawn) == 3  # standard: flip subset and all; tied: all
    for ax in drawn:  # three bar series (AUROC, AP, precision), one bar per signal named on the x axis
        bars = [c for c in ax.containers if isinstance(c, BarContainer)]
        assert len(bars) == 3 and all(len(b) == len(ax.get_xticklabels()) for b in bars)
        assert ax.get_legend() is None
    assert len(out.figure.legends) == 1


def test_the_cost_of_each_signal_per_run(tmp_path):
    """Trainings: cleanlab 3 (its fold runs), SSFT 2, the rest 0. Seconds: the run's own dynamics and curvature
    figures, and the summed seconds of the auxiliary runs that belong to it (12.5 s each in the builders)."""
    tables = sweep_tables(tmp_path)
    per_run = detection_per_run(**tables)
    whole = per_run[(per_run["set"] == ALL_SET) & (per_run["variant"] == "standard")]
    one = whole[whole["run_id"].str.contains("-s0-")].set_index("signal")
    assert one.loc["cleanlab", "extra_trainings"] == 3 and one.loc["cleanlab_issue", "extra_trainings"] == 3
    assert one.loc["ssft", "extra_trainings"] == 2 and one.loc["aum", "extra_trainings"] == 0
    assert one.loc["cleanlab", "seconds"] == pytest.approx(3 * 12.5)
    assert one.loc["ssft", "seconds"] == pytest.approx(2 * 12.5)
    assert one.loc["aum", "seconds"] == one.loc["csl", "seconds"] == pytest.approx(0.4)  # runs.dynamics_seconds
    assert one.loc["loss_curvature", "seconds"] == pytest.approx(1.5)  # runs.curvature_seconds
    assert np.isnan(one.loc["final_loss", "seconds"]) and "not timed apart" in one.loc["final_loss", "seconds_source"]
    assert "(curvature_directions + 1)" in one.loc["loss_curvature", "extra_passes"]
    # results written before the aux_* tables: the fold runs' rows in `runs`; the same cost is found there
    legacy = dict(tables, runs=pd.concat([tables["runs"], tables["aux_runs"]]), aux_runs=None)
    again = detection_per_run(**legacy)
    again = again[(again["set"] == ALL_SET) & again["run_id"].str.contains("-s0-") & (again["variant"] == "standard")]
    assert again.set_index("signal").loc["cleanlab", "seconds"] == pytest.approx(3 * 12.5)
    # a fold run missing: the trainings found are counted, no total seconds
    some = dict(tables, aux_runs=tables["aux_runs"][~tables["aux_runs"]["run_id"].str.contains("-cv2of3")])
    part = with_costs(evaluate(signal_scores(**tables)), Tables(**some))
    row = part[(part["signal"] == "cleanlab") & (part["run_id"] == one["run_id"].iloc[0])].iloc[0]
    assert row["extra_trainings"] == 2 and np.isnan(row["seconds"]) and "2 of its 3" in row["seconds_source"]
    table = summarise(per_run).table
    assert {"seconds_mean", "extra_trainings", "extra_passes", "suspicious"} <= set(table.columns)


def test_the_comparison_reads_back_with_plain_pandas_in_natural_signs(tmp_path):
    tables = sweep_tables(tmp_path)
    per_run = detection_per_run(**tables)
    path, left = write_comparison(per_run, tables["runs"], tmp_path)
    assert path == tmp_path / "detection" / "comparison.parquet" and left == []
    back = pd.read_parquet(tmp_path / "detection")  # the folder, as the catalogue says
    from sweep.schemas import schema

    assert list(back.columns) == schema("detection").names
    assert not any(c.endswith("_score") for c in back.columns)
    assert len(back) == len(per_run) and str(back["flagged"].dtype) == "Int64"
    merged = back.merge(per_run, on=["run_id", "set", "signal"], suffixes=("", "_mem"))
    assert np.allclose(merged["auroc"], merged["auroc_mem"]) and (merged["seed"].isin([0, 1])).all()
    assert set(back.loc[back["signal"] == "aum", "source"]) == {"examples.aum"}
    assert set(back.loc[back["signal"] == "aum", "suspicious"]) == {"low"}
    *body, last = REPORT_TABLES["detection"].example.replace("results/", f"{tmp_path}/").splitlines()
    scope = {"pd": pd}
    exec("\n".join(body), scope)  # noqa: S102 - the catalogue's own example, as a notebook would run it
    answer = eval(last, scope)  # noqa: S307
    assert len(answer) > 0 and answer["auroc"].between(0, 1).all()
    # a run the runs table does not have yet is left out and named
    rows, left = comparison_frame(per_run, tables["runs"][tables["runs"]["seed"] == 0])
    assert set(rows["seed"]) == {0} and len(left) == 1 and "-s1-" in left[0]  # seed 1's standard run
    # a runs table written before the late run fields: they take their defaults
    late = ["ssft_half", "dropout_places", "sparse_mask", "curvature_every", "curvature_directions", "curvature_h"]
    rows, left = comparison_frame(per_run, tables["runs"].drop(columns=late))
    assert left == [] and (rows["ssft_half"] == 0).all() and set(rows["dropout_places"]) == {"paper"}


def test_suspects_show_natural_values_and_ranks_in_each_signals_direction(tmp_path):
    tables = sweep_tables(tmp_path)
    scores = signal_scores(**tables)
    frames = suspects(scores, tables["examples"])
    assert not any("-cv" in r or "-ssft" in r for r in frames)
    rid = run_id(run_config("digits", "mlp", "standard", 0.1, 0))
    table = frames[rid]
    assert sorted(table["example_id"]) == list(range(N_TRAIN))
    assert not any(c.endswith("_score") for c in table.columns)
    examples = tables["examples"].query("run_id == @rid").set_index("example_id")
    by_id = table.set_index("example_id")
    assert np.allclose(by_id["aum"], examples["aum"].reindex(by_id.index))  # the AUM itself, not minus it
    assert (by_id["is_noisy"] == examples["is_noisy"].reindex(by_id.index)).all()
    for signal in BUILT_IN:
        if signal == "forgotten_drop":
            assert f"{signal}_rank" not in table.columns  # a standard run has no example-tied drop
            continue
        scored = table[table[signal].notna()].sort_values("example_id")
        key = scored[signal].to_numpy() * (1 if REGISTRY[signal].suspicious == "high" else -1)
        order = np.argsort(-key, kind="stable")  # most suspicious first, in the declared direction
        assert scored["example_id"].to_numpy()[order].tolist() == (
            scored.sort_values(f"{signal}_rank")["example_id"].tolist()), signal
        assert sorted(scored[f"{signal}_rank"]) == list(range(1, len(scored) + 1))
    assert table["units_to_flip"].notna().sum() == 20  # the flip subset only
    assert (table["sorted_by"] == "aum").all() and table["aum_rank"].tolist() == list(range(1, N_TRAIN + 1))
    paths = write_suspects(frames, tmp_path / "suspects")
    back = pd.read_csv(paths[rid])
    assert back["example_id"].tolist() == table["example_id"].tolist()
    assert back["aum_rank"].tolist() == table["aum_rank"].tolist()


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


def test_ssft_of_only_one_half_is_a_coverage_gap_not_a_score(tmp_path):
    cfg = run_config("digits", "mlp", "standard", 0.1, 0)
    write_run(tmp_path, cfg, STANDARD)
    write_run(tmp_path, ssft_config(cfg, 1), SSFT)  # the second half's run has not finished
    results = Results(tmp_path)
    scores = signal_scores(examples=results.table("examples"), runs=results.table("runs"), ssft=results.table("ssft"))
    assert "ssft" not in set(evaluate(scores)["signal"])
    gaps = coverage_gaps(scores)
    assert "ssft" in set(gaps.loc[gaps["set"] == ALL_SET, "signal"])


def test_a_plug_in_signal_joins_the_comparison():
    @register("neg_loss_plugin", short="plug-in", meaning="final loss, low = suspicious (a test plug-in)",
              source="examples.final_loss", suspicious="low")
    def _plugin(tables):
        return column(tables, "examples", "final_loss")

    try:
        ex = frame([{"example_id": i, "is_noisy": i == 0, "final_loss": float(i), "first_learned_epoch": 1}
                    for i in range(4)])  # the noisy example has the LOWEST loss: the plug-in's suspicious end
        per_run = evaluate(signal_scores(examples=ex)).set_index("signal")
        assert per_run.loc["neg_loss_plugin", "auroc"] == 1.0 and per_run.loc["final_loss", "auroc"] == 0.0
    finally:
        unregister("neg_loss_plugin")
    assert "neg_loss_plugin" not in SIGNALS


def verdict_table(**changes):
    table = pd.DataFrame({
        "config_id": ["c"] * 4, "dataset": ["digits"] * 4, "arch": ["mlp"] * 4, "variant": ["standard"] * 4,
        "noise": [0.1] * 4, "set": [ALL_SET] * 4, "signal": ["cleanlab", "aum", "forgetting", "units_to_flip"],
        "n_examples_mean": [100.0] * 4, "auroc_mean": [0.97, 0.95, 0.75, 0.70],
        "auroc_lo": [0.96, 0.93, 0.7, 0.6], "auroc_hi": [0.98, 0.955, 0.8, 0.8], "n_seeds": [3] * 4,
        "extra_trainings": [5, 0, 0, 0],
    })
    return table.assign(**changes)


def test_the_verdict_names_the_winner_its_cost_the_best_free_signal_and_the_weakest():
    (line,) = verdicts(verdict_table())
    assert "all training examples" in line and "cleanlab wins with AUROC 0.970 [0.960, 0.980]" in line
    assert "ahead of AUM (0.950 [0.930, 0.955])" in line and "do not overlap" in line
    assert "cleanlab needs 5 extra trainings per run; the best signal that needs none, AUM, reaches 0.950" in line
    assert ("best localization signal, units to flip (0.700), is no better than the best other detector, "
            "cleanlab") in line
    assert "The weakest is units to flip (0.700)" in line
    table = verdict_table()
    table.loc[1, "auroc_hi"] = 0.965
    assert "overlap, so the lead is within seed-to-seed variation" in verdicts(table)[0]
    one = verdict_table(n_seeds=1, auroc_lo=np.nan, auroc_hi=np.nan)
    assert "one seed" in verdicts(one)[0]
    two = verdict_table(n_seeds=2, auroc_lo=np.nan, auroc_hi=np.nan)
    assert "2 seeds, too few for an interval" in verdicts(two)[0]
    free = verdict_table(signal=["aum", "cleanlab", "forgetting", "units_to_flip"])
    assert "extra trainings" not in verdicts(free)[0]  # the winner needs none: no cost clause


def summary_for(config: dict, signals: dict[str, float], n_seeds: int = 3) -> pd.DataFrame:
    return pd.DataFrame([{**config, "set": ALL_SET, "signal": s, "auroc_mean": v, "auroc_lo": v - 0.01,
                          "auroc_hi": v + 0.01, "n_seeds": n_seeds} for s, v in signals.items()])


PAPER = {"dataset": "cifar10", "arch": "resnet9", "variant": "standard", "noise": 0.1, "width": 1.0}


def test_published_aurocs_stand_beside_ours_only_where_the_setting_matches():
    assert [a.signal for a in anchors_for(PAPER)] == ["learning_time", "in_confidence", "cleanlab", "ssft",
                                                     "loss_curvature", "csl"]
    assert {a.auroc for a in anchors_for(PAPER)} == {0.495, 0.653, 0.855, 0.936, 0.982, 0.987}
    ((twenty),) = anchors_for({**PAPER, "noise": 0.2})
    assert (twenty.signal, twenty.auroc) == ("cleanlab", 0.997) and "cleanlab" in twenty.source
    for change, words in (({"dataset": "fashion-mnist"}, "dataset fashion-mnist"), ({"arch": "mlp"}, "arch mlp"),
                          ({"width": 0.25}, "width 0.25"), ({"noise": 0.05}, "noise 0.05"),
                          ({"variant": "tied"}, "variant tied"), ({"noise": 0.1 + 1e-6}, "noise 0.1")):
        assert anchors_for({**PAPER, **change}) == [], change
        assert any(words in m for m in mismatch({**PAPER, **change})), (change, mismatch({**PAPER, **change}))
    keys = list(PAPER)
    summary = pd.concat([summary_for(PAPER, {"csl": 0.95, "aum": 0.99}),
                         summary_for({**PAPER, "dataset": "digits", "arch": "mlp"}, {"csl": 0.9})])
    table, notes = beside(summary, keys, ALL_SET)
    assert len(table) == 6 and set(table["configuration"]) == {"cifar10 / resnet9 / standard / noise 0.1 / width 1"}
    csl = table.set_index("signal").loc["csl"]
    assert csl["published"] == 0.987 and csl["difference"] == pytest.approx(0.95 - 0.987)
    assert csl["ours"] == "0.950 [0.940, 0.960]"
    assert table.set_index("signal").loc["ssft", "ours"] == "not computed for this configuration"
    (note,) = notes
    assert note.startswith("digits / mlp") and "no published number" in note and "dataset digits" in note
    assert len({(a.signal, a.noise) for a in ANCHORS}) == len(ANCHORS)


def test_detection_by_epoch_draws_each_signals_mean_and_every_seed():
    parts = []
    for seed in (0, 1, 2):
        cfg = run_config("digits", "mlp", "standard", 0.1, seed)
        parts.append(with_config(detection_epochs(run_id(cfg)), cfg))
    df = pd.concat(parts, ignore_index=True)
    table = epochs_table(df)
    loss3 = table[(table["signal"] == "loss") & (table["epoch"] == 3)].iloc[0]
    by_hand = df[(df["signal"] == "loss") & (df["epoch"] == 3)]["auroc"].mean()
    assert loss3["auroc_mean"] == pytest.approx(by_hand) and loss3["n_seeds"] == 3
    assert np.isfinite(loss3["auroc_lo"]) and loss3["auroc_lo"] <= by_hand <= loss3["auroc_hi"]
    out = detection_by_epoch(df)
    (ax,) = [a for a in out.figure.axes if a.get_visible()]
    assert ax.get_xlabel() == "epoch" and ax.get_ylabel() == "AUROC (0-1)"
    lines = [ln for ln in ax.get_lines() if ln.get_label().endswith(": mean")]
    assert len(lines) == 3 and all(len(ln.get_xdata()) == 10 for ln in lines)
    points = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert len(points) == 3 and all(len(c.get_offsets()) == 3 * 10 for c in points)  # every seed, every epoch
    assert len(out.figure.legends) == 1 and ax.get_legend() is None
    decay = late_decay(table).set_index("signal")
    assert decay.loc["loss", "last_epoch"] == 10 and decay.loc["loss", "last_auroc"] < decay.loc["loss", "best_auroc"]
    assert detection_by_epoch(None).figure is None


def test_the_report_writes_the_comparison_table_and_the_epoch_figure(tmp_path):
    from analyses.report import write_report
    from tests.analyses.test_report import sections

    cfg = run_config("cifar10", "resnet9", "standard", 0.1, 0)
    write_run(tmp_path, cfg, STANDARD)
    write_folds(tmp_path, cfg, 2)
    write_ssft(tmp_path, cfg)
    write_run(tmp_path, run_config("digits", "mlp", "standard", 0.1, 0), STANDARD)
    body = sections(write_report(tmp_path).read_text())["detection"]
    assert 'class="error"' not in body
    back = pd.read_parquet(tmp_path / "detection")
    assert set(back["signal"]) == set(BUILT_IN) - {"forgotten_drop"} and len(back["run_id"].unique()) == 2
    assert (tmp_path / "report" / "figures" / "detection_epochs.png").stat().st_size > 1000
    assert "Detection by epoch" in body and "Published AUROCs beside ours" in body
    published = pd.read_csv(tmp_path / "report" / "tables" / "detection_published.csv")
    assert set(published["signal"]) == {"learning_time", "in_confidence", "cleanlab", "ssft", "loss_curvature", "csl"}
    assert "digits / mlp / standard / noise 0.1 / width 1" in body and "no published number" in body
    assert "needs 2 extra trainings" in body or "wins with AUROC" in body
    signals = pd.read_csv(tmp_path / "report" / "tables" / "detection_signals.csv")
    assert signals.set_index("signal").loc["aum", "suspicious"] == "low"


def test_the_detect_grid_follows_the_published_protocol():
    from sweep.grids import load_grid

    grid = load_grid("detect")
    ordinary = [c for c in grid.runs if not c.auxiliary]
    assert {c.noise for c in ordinary} == {0.01, 0.02, 0.05, 0.1, 0.2}
    assert {c.dataset for c in ordinary} == {"cifar10", "fashion-mnist"}
    assert {(c.arch, c.width, c.epochs, c.batch_size, c.variant) for c in ordinary} == {
        ("resnet9", 1.0, 50, 512, "standard")}
    assert all(c.curvature_every > 0 for c in ordinary)
    folds = [c for c in grid.runs if c.cv_folds]
    halves = [c for c in grid.runs if c.ssft_half]
    assert len(folds) == 5 * len(ordinary) and len(halves) == 2 * len(ordinary)
    assert math.isclose(len(grid.runs), 8 * len(ordinary))
    assert fold_config(run_config("cifar10", "resnet9", "standard", 0.1, 0), 5, 0)["cv_folds"] == 5


def test_the_engine_neither_plans_nor_removes_the_reports_table(tmp_path):
    """The detection table lives beside the engine's tables: no stale, misplaced or status entry for it, and a
    plan over the folder is the plan over an empty one."""
    from sweep.grids import load_grid
    from sweep.plan import make_plan, misplaced_files, stale_files
    from sweep.probes import PROBES
    from sweep.status import status_lines
    from sweep.store import Store

    tables = sweep_tables(tmp_path / "build")
    write_comparison(detection_per_run(**tables), tables["runs"], tmp_path / "results")
    store, empty = Store(str(tmp_path / "results")), Store(str(tmp_path / "empty"))
    grid = load_grid("smoke")
    assert stale_files(store, grid, PROBES) == [] and misplaced_files(store, grid.runs) == []
    assert make_plan(store, grid, PROBES).tally == make_plan(empty, grid, PROBES).tally
    assert not any("detection" in line for line in status_lines(store, grid, PROBES))
    assert (tmp_path / "results" / "detection" / "comparison.parquet").is_file()
