"""Confident learning (Northcutt et al., 2021) as a mislabel detector, computed by the `cleanlab` library.

A grid block with `cv_folds = K` trains, beside each of its standard runs, K out-of-sample runs of the same
config and seeds (same noisy labels), each without one fold of the training set; each writes the predicted
class probabilities of the fold it never saw to the `oos_predictions` table (`of_run_id` names the ordinary
run; their own training rows are in the aux_* tables, never in `runs` or `examples`). Together they predict
every training example exactly once: the out-of-sample `pred_probs` that
confident learning asks for. Per ordinary run this module checks that the folds do cover its training set
exactly once, then hands labels and pred_probs to cleanlab, unchanged:

- `cleanlab.rank.get_label_quality_scores(labels, pred_probs)` (self-confidence, cleanlab's default): a score
  in [0, 1], low = the label is probably wrong; the signal `cleanlab` scores -quality (higher = suspicious);
- `cleanlab.filter.find_label_issues(labels, pred_probs)` (prune by noise rate, cleanlab's default): a
  boolean flag per example; the signal `cleanlab_issue` scores it as 1/0.

Nothing of the algorithm is written here. A run whose folds do not cover its examples exactly once (a fold
not trained yet, an example predicted twice or never, labels that disagree with the run's own) is skipped
and named with the reason, never scored from part of its folds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analyses.load import ordinary
from analyses.stats import group_columns

SKIPPED_COLUMNS = ["of_run_id", "cv_folds", "folds_found", "reason"]


def _ids(values: np.ndarray, limit: int = 5) -> str:
    shown = ", ".join(str(int(v)) for v in values[:limit])
    return shown + (f" and {len(values) - limit} more" if len(values) > limit else "")


def fold_problem(part: pd.DataFrame, expected: np.ndarray | None, labels: pd.Series | None = None) -> str | None:
    """Why the fold rows `part` (every oos_predictions row of one ordinary run) cannot be used, or None when
    they cover the run's training examples exactly once: one K (>= 2) for all of them, every fold 0..K-1 present
    and from one fold run each, no example predicted twice, every `expected` example id predicted and no other,
    one probability per class in every row, and the same training labels as the run's `examples` rows."""
    folds = sorted({int(k) for k in part["cv_folds"]}) if "cv_folds" in part.columns else []
    if len(folds) != 1 or folds[0] < 2:
        return f"fold runs disagree on cv_folds or give none >= 2 (found {folds})"
    k = folds[0]
    present = {int(f) for f in part["cv_fold"]}
    missing = sorted(set(range(k)) - present)
    if missing:
        return f"fold{'s' if len(missing) > 1 else ''} {', '.join(map(str, missing))} of {k} missing (not trained yet?)"
    if sorted(present) != list(range(k)):
        return f"fold numbers {sorted(present)} are not 0..{k - 1}"
    per_fold = part.groupby("cv_fold")["run_id"].nunique()
    if (per_fold > 1).any():
        return f"fold {int(per_fold[per_fold > 1].index[0])} has predictions from {int(per_fold.max())} runs"
    ids = part["example_id"].to_numpy(np.int64)
    uniq, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        return f"example(s) {_ids(uniq[counts > 1])} predicted more than once"
    if expected is not None:
        never = np.setdiff1d(expected, uniq)
        if len(never):
            return f"{len(never)} of the run's {len(expected)} training examples never predicted (e.g. {_ids(never)})"
        extra = np.setdiff1d(uniq, expected)
        if len(extra):
            return f"example(s) {_ids(extra)} predicted but not in the run's training set"
    sizes = {len(p) for p in part["probs"]}
    if len(sizes) != 1:
        return f"rows give different numbers of class probabilities ({sorted(sizes)})"
    (n_classes,) = sizes
    label = part["label"].to_numpy(np.int64)
    if n_classes < 2 or label.min() < 0 or label.max() >= n_classes:
        return f"labels outside 0..{n_classes - 1}, the classes the probabilities cover"
    if labels is not None:
        theirs = pd.to_numeric(labels.reindex(part["example_id"].to_numpy()), errors="coerce").to_numpy(float)
        if (np.isnan(theirs) | (theirs != label)).any():
            return "training labels differ from the run's examples table (not the same noise draw)"
    return None


def _ordinary_runs(examples: pd.DataFrame | None, runs: pd.DataFrame | None) -> dict[str, dict]:
    """Per ordinary run: its configuration columns, expected example ids and training labels (from examples;
    from runs' n_train as ids 0..n_train-1 when it has no examples rows)."""
    out: dict[str, dict] = {}
    examples, runs = ordinary(examples), ordinary(runs)
    if runs is not None and len(runs):
        cols = group_columns(runs)
        for rid, row in runs.drop_duplicates("run_id").set_index("run_id").iterrows():
            n = row.get("n_train")
            ids = np.arange(int(n)) if pd.notna(n) else None
            out[str(rid)] = {"config": {c: row[c] for c in cols}, "ids": ids, "labels": None}
    if examples is not None and len(examples):
        cols = group_columns(examples)
        for rid, part in examples.groupby("run_id", sort=False):
            first = part.iloc[0]
            out[str(rid)] = {
                "config": {c: first[c] for c in cols},
                "ids": np.sort(part["example_id"].to_numpy(np.int64)),
                "labels": (part.drop_duplicates("example_id").set_index("example_id")["label"]
                           if "label" in part.columns else None),
            }
    return out


def cleanlab_signal(
    oos_predictions: pd.DataFrame | None,
    examples: pd.DataFrame | None = None,
    runs: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(scores, skipped). scores: the long signal table of analyses.detection (configuration columns of the
    ordinary run, run_id = that run, example_id, is_noisy, signal, score) with the signals `cleanlab` (-label
    quality) and `cleanlab_issue` (find_label_issues' flag as 1/0), plus `label_quality` and `label_issue`
    as cleanlab returned them. skipped: one row per ordinary run that has fold predictions but could not be
    scored, with the reason (its folds, or the run itself not found in `runs`/`examples`)."""
    empty = pd.DataFrame(columns=["run_id", "signal", "example_id", "is_noisy", "score"])
    if oos_predictions is None or oos_predictions.empty:
        return empty, pd.DataFrame(columns=SKIPPED_COLUMNS)
    from cleanlab.filter import find_label_issues  # imported here: only reports with fold runs pay for it
    from cleanlab.rank import get_label_quality_scores

    oos = oos_predictions
    known = _ordinary_runs(examples, runs)
    parts, skipped = [], []
    for of_run, part in oos.groupby("of_run_id", sort=True):
        folds = sorted({int(k) for k in part["cv_folds"]}) if "cv_folds" in part.columns else []

        def skip(reason: str, of_run=of_run, part=part, folds=folds) -> None:
            skipped.append({"of_run_id": of_run, "cv_folds": folds[0] if len(folds) == 1 else None,
                            "folds_found": part["cv_fold"].nunique() if "cv_fold" in part.columns else 0,
                            "reason": reason})

        run = known.get(str(of_run))
        if run is None:
            skip("the run these folds are for is in neither the runs nor the examples table (not finished yet?)")
            continue
        problem = fold_problem(part, run["ids"], run["labels"])
        if problem:
            skip(problem)
            continue
        part = part.sort_values("example_id")
        labels = part["label"].to_numpy(np.int64)
        pred_probs = np.stack([np.asarray(p, dtype=float) for p in part["probs"]])
        try:
            quality = get_label_quality_scores(labels, pred_probs)
            issue = find_label_issues(labels, pred_probs, n_jobs=1)
        except Exception as exc:  # noqa: BLE001 - cleanlab refusing one run's input skips that run, with its words
            skip(f"cleanlab refused the input: {type(exc).__name__}: {str(exc).strip().splitlines()[0]}")
            continue
        base = pd.DataFrame({"example_id": part["example_id"].to_numpy(np.int64),
                             "is_noisy": part["is_noisy"].astype(bool).to_numpy(),
                             "label_quality": quality, "label_issue": np.asarray(issue, dtype=bool)})
        for key, value in reversed(list(run["config"].items())):
            base.insert(0, key, value)
        base.insert(0, "run_id", of_run)
        for signal, score in (("cleanlab", -quality), ("cleanlab_issue", np.asarray(issue, dtype=float))):
            parts.append(base.assign(signal=signal, score=score))
    skipped_frame = pd.DataFrame(skipped, columns=SKIPPED_COLUMNS)
    if not parts:
        return empty, skipped_frame
    return pd.concat(parts, ignore_index=True), skipped_frame
