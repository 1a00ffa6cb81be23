"""Confident learning from the fold runs' out-of-sample predictions: cleanlab's own scores, a run whose folds do
not cover its examples exactly once skipped with the reason."""

import numpy as np
import pandas as pd
import pytest
from cleanlab.filter import find_label_issues
from cleanlab.rank import get_label_quality_scores

from analyses.confident import cleanlab_signal
from analyses.detection import auroc
from tests.analyses.builders import frame, oos_frame, run_config, run_id

N, CLASSES, FOLDS = 300, 10, 5


def draw(seed: int = 0):
    """A run's noisy labels and out-of-sample probabilities that put most mass on the true class, so a noisy
    example's training label gets little: cleanlab should rank the noisy examples first."""
    rng = np.random.default_rng(seed)
    original = np.arange(N) % CLASSES  # every class present
    is_noisy = np.zeros(N, bool)
    is_noisy[rng.choice(N, N // 10, replace=False)] = True
    label = np.where(is_noisy, (original + rng.integers(1, CLASSES, N)) % CLASSES, original)
    probs = rng.dirichlet(np.full(CLASSES, 0.5), N) * 0.3
    probs[np.arange(N), original] += 0.7
    fold = rng.permutation(np.arange(N) % FOLDS)  # folds at random, rows not in example order
    return original, label, is_noisy, probs, fold


def examples_of(cfg, label, original, is_noisy) -> pd.DataFrame:
    return frame([{"example_id": i, "label": int(label[i]), "original_label": int(original[i]),
                   "is_noisy": bool(is_noisy[i]), "final_loss": 0.1} for i in range(N)], **cfg)


def setup(seed: int = 0):
    cfg = run_config("cifar10", "resnet9", "standard", 0.1, seed)
    original, label, is_noisy, probs, fold = draw(seed)
    oos = oos_frame(cfg, FOLDS, np.arange(N), label, is_noisy, probs, fold)
    oos = oos.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    return cfg, oos, examples_of(cfg, label, original, is_noisy), (label, is_noisy, probs)


def test_cleanlab_scores_are_cleanlabs_own_and_rank_the_noisy_examples_first():
    cfg, oos, examples, (label, is_noisy, probs) = setup()
    scores, skipped = cleanlab_signal(oos, examples)
    assert skipped.empty
    quality = scores[scores["signal"] == "cleanlab"].sort_values("example_id")
    assert quality["example_id"].tolist() == list(range(N)) and (quality["run_id"] == run_id(cfg)).all()
    assert (quality["config_id"] == cfg["config_id"]).all()  # the ordinary run's configuration, not a fold's
    # exactly what cleanlab gives for the examples in id order, negated (higher = more suspicious)
    assert quality["score"].to_numpy() == pytest.approx(-get_label_quality_scores(label, probs))
    assert quality["is_noisy"].tolist() == is_noisy.tolist()
    assert auroc(quality["score"], quality["is_noisy"]) > 0.99
    flag = scores[scores["signal"] == "cleanlab_issue"].sort_values("example_id")
    assert flag["score"].astype(bool).tolist() == find_label_issues(label, probs).tolist()
    assert set(flag["score"]) <= {0.0, 1.0} and auroc(flag["score"], flag["is_noisy"]) > 0.9


def test_a_missing_fold_skips_the_run_and_says_so_while_a_complete_run_is_scored():
    _, complete, examples, _ = setup(0)
    cfg1, oos1, examples1, _ = setup(1)
    partial = oos1[oos1["cv_fold"] != 3]
    scores, skipped = cleanlab_signal(pd.concat([complete, partial]), pd.concat([examples, examples1]))
    assert set(scores["run_id"]) == {run_id(run_config("cifar10", "resnet9", "standard", 0.1, 0))}
    (row,) = skipped.to_dict("records")
    assert row["of_run_id"] == run_id(cfg1) and row["cv_folds"] == FOLDS and row["folds_found"] == FOLDS - 1
    assert row["reason"] == "fold 3 of 5 missing (not trained yet?)"


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        ("duplicate", "predicted more than once"),
        ("drop_example", "training examples never predicted"),
        ("foreign_example", "not in the run's training set"),
        ("relabel", "training labels differ"),
        ("two_runs_one_fold", "has predictions from 2 runs"),
        ("short_probs", "different numbers of class probabilities"),
    ],
)
def test_folds_that_do_not_cover_every_example_exactly_once_are_skipped_with_the_reason(damage, reason):
    _, oos, examples, _ = setup()
    if damage == "duplicate":
        oos = pd.concat([oos, oos.iloc[[0]]], ignore_index=True)
    elif damage == "drop_example":
        oos = oos.iloc[1:]
    elif damage == "foreign_example":
        oos = pd.concat([oos, oos.iloc[[0]].assign(example_id=N + 5)], ignore_index=True)
    elif damage == "relabel":
        oos = oos.copy()
        oos.loc[0, "label"] = (oos.loc[0, "label"] + 1) % CLASSES
    elif damage == "two_runs_one_fold":
        oos = oos.copy()
        at = oos.index[oos["cv_fold"] == 2][:3]
        oos.loc[at, "run_id"] = "another-run"
    elif damage == "short_probs":
        oos = oos.copy()
        oos.at[0, "probs"] = oos.at[0, "probs"][:-1]
    scores, skipped = cleanlab_signal(oos, examples)
    assert scores.empty
    assert len(skipped) == 1 and reason in skipped["reason"].iloc[0], skipped["reason"].iloc[0]


def test_the_run_is_found_through_the_runs_table_without_examples():
    cfg, oos, _, (label, _, probs) = setup()
    runs = frame([{"n_train": N}], **cfg)
    scores, skipped = cleanlab_signal(oos, runs=runs)
    assert skipped.empty and scores["example_id"].nunique() == N
    scores, skipped = cleanlab_signal(oos, runs=frame([{"n_train": N + 1}], **cfg))  # one example never predicted
    assert scores.empty and "never predicted" in skipped["reason"].iloc[0]
    scores, skipped = cleanlab_signal(oos)  # neither table knows the run: its configuration is unknown
    assert scores.empty and "neither the runs nor the examples table" in skipped["reason"].iloc[0]


def test_no_predictions_no_signal():
    for oos in (None, pd.DataFrame()):
        scores, skipped = cleanlab_signal(oos)
        assert scores.empty and skipped.empty
