"""Held-out memorization scores from subset models (Feldman and Zhang, NeurIPS 2020), as pure pandas/numpy.

Input: the `subset_predictions` rows of one ordinary run's subset models (sweep/packs.py): one row per model x
example of the train and test splits with `model`, `split` ("train" / "test"), `example_id`, `in_subset` (the
model trained on the example; always false on the test split), `correct` (predicted as the training label) and
`p_label` (softmax probability of that label).

- `mem_scores`: per training example, the subsampled estimator of Feldman and Zhang's memorization,
  mem(i) = P(correct on i | i in the subset) - P(correct on i | i left out), each probability estimated by the
  share of the models of that kind, with the standard error of a difference of two independent proportions.
  The same difference on `p_label` (mem_prob) is a smoother variant of the same estimate.
- `influence`: their influence estimate of training example i on test example t,
  P(correct on t | i in) - P(correct on t | i out), over every (i, t) pair at once as two matrix products of the
  (models x train) membership matrix with the (models x test) correctness matrix, in chunks of training examples
  so memory stays bounded; only the `top` highest pairs are kept.

Nothing here touches Ray or torch: the probe (sweep/probes/memorization.py) and tests call it on frames.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SCORE_COLUMNS = ("example_id", "label", "mem", "in_acc", "out_acc", "n_in", "n_out", "mem_se", "mem_prob")
INFLUENCE_COLUMNS = ("example_id", "test_id", "influence", "in_acc", "out_acc", "n_in", "n_out")
CHUNK_BYTES = 64 << 20  # float64 (train chunk x test) block per matrix product


def _split(pred: pd.DataFrame, split: str) -> pd.DataFrame:
    part = pred[pred["split"] == split]
    if part.duplicated(["model", "example_id"]).any():
        raise ValueError(f"subset predictions hold a (model, example_id) twice in split {split!r}: the rows of "
                         "more than one run, or one pack written twice")
    return part


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def _standard_error(p_in: np.ndarray, n_in: np.ndarray, p_out: np.ndarray, n_out: np.ndarray) -> np.ndarray:
    """sqrt(p_in (1 - p_in) / n_in + p_out (1 - p_out) / n_out); NaN where either side has no model."""
    ok = (n_in > 0) & (n_out > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        var = p_in * (1 - p_in) / np.where(ok, n_in, 1) + p_out * (1 - p_out) / np.where(ok, n_out, 1)
    return np.where(ok, np.sqrt(var), np.nan)


def mem_scores(pred: pd.DataFrame) -> pd.DataFrame:
    """One row per training example of `pred` (one ordinary run's subset models), sorted by example_id:
    label, mem = in_acc - out_acc, in_acc and out_acc (shares of the models that trained on / left out the
    example and predict it as labelled; NaN with no such model), n_in, n_out, mem_se and mem_prob (the same
    difference on p_label). mem and mem_se are NaN where n_in or n_out is 0."""
    train = _split(pred, "train")
    inside = train["in_subset"].astype(bool).to_numpy()
    correct = train["correct"].astype(bool).to_numpy().astype(float)
    p_label = train["p_label"].astype(float).to_numpy()
    frame = pd.DataFrame({
        "example_id": train["example_id"].to_numpy(np.int64), "label": train["label"].to_numpy(np.int64),
        "n_in": inside.astype(np.int64), "n_out": (~inside).astype(np.int64),
        "c_in": correct * inside, "c_out": correct * ~inside,
        "p_in": p_label * inside, "p_out": p_label * ~inside})
    labels = frame.groupby("example_id", sort=True)["label"].agg(["min", "max"])
    if (labels["min"] != labels["max"]).any():
        raise ValueError("subset predictions give one training example two labels: rows of different runs mixed")
    sums = frame.drop(columns="label").groupby("example_id", sort=True).sum()
    n_in, n_out = sums["n_in"].to_numpy(), sums["n_out"].to_numpy()
    in_acc, out_acc = _ratio(sums["c_in"].to_numpy(), n_in), _ratio(sums["c_out"].to_numpy(), n_out)
    mem_prob = _ratio(sums["p_in"].to_numpy(), n_in) - _ratio(sums["p_out"].to_numpy(), n_out)
    return pd.DataFrame({
        "example_id": sums.index.to_numpy(np.int64), "label": labels["min"].to_numpy(np.int64),
        "mem": in_acc - out_acc, "in_acc": in_acc, "out_acc": out_acc,
        "n_in": n_in.astype(np.int64), "n_out": n_out.astype(np.int64),
        "mem_se": _standard_error(in_acc, n_in, out_acc, n_out), "mem_prob": mem_prob,
    }, columns=list(SCORE_COLUMNS))


def _matrices(pred: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(membership models x train as float, correctness models x test, train ids, test ids), the models being
    those with rows in both splits, in model order; every model must predict every example of each split."""
    train, test = _split(pred, "train"), _split(pred, "test")
    models = np.intersect1d(train["model"].unique(), test["model"].unique())
    train, test = train[train["model"].isin(models)], test[test["model"].isin(models)]
    member = train.pivot(index="model", columns="example_id", values="in_subset")
    correct = test.pivot(index="model", columns="example_id", values="correct")
    if member.isna().any().any() or correct.isna().any().any():
        raise ValueError("influence needs every model's prediction on every training and test example")
    return (member.to_numpy(dtype=float), correct.to_numpy(dtype=float),
            member.columns.to_numpy(np.int64), correct.columns.to_numpy(np.int64))


def _keep_top(values: np.ndarray, top: int) -> np.ndarray:
    """Flat indices of the `top` largest finite values; ties at the cut go to the lowest flat index (train id,
    then test id), so the kept pairs never depend on how the work was chunked."""
    finite = np.flatnonzero(np.isfinite(values))
    if len(finite) <= top:
        return finite
    vals = values[finite]
    cut = np.partition(vals, len(vals) - top)[len(vals) - top]
    above = finite[vals > cut]
    level = finite[vals == cut][: top - len(above)]
    return np.sort(np.concatenate([above, level]))


def influence(pred: pd.DataFrame, top: int, chunk_bytes: int = CHUNK_BYTES) -> pd.DataFrame:
    """The `top` (train example, test example) pairs of highest Feldman-Zhang influence, highest first (ties:
    lower example_id, then lower test_id): influence = in_acc - out_acc, the test example's accuracy over the
    models that trained on the training example and over those that did not. Pairs whose training example was in
    every model or in none have no estimate and are never kept. `top` = 0 gives zero rows."""
    if top < 0:
        raise ValueError(f"top must be >= 0, got {top!r}")
    empty = pd.DataFrame({c: pd.Series(dtype="float64" if c.endswith("acc") or c == "influence" else "int64")
                          for c in INFLUENCE_COLUMNS})
    if top == 0 or not (pred["split"] == "test").any():
        return empty
    member, correct, train_ids, test_ids = _matrices(pred)
    n_test = correct.shape[1]
    if n_test == 0 or member.shape[1] == 0:
        return empty
    n_in_all = member.sum(0)
    n_out_all = member.shape[0] - n_in_all
    correct_all = correct.sum(0)
    step = max(1, chunk_bytes // (8 * n_test))
    best_rows: list[np.ndarray] = []
    best_vals: list[np.ndarray] = []
    for lo in range(0, member.shape[1], step):
        block = member[:, lo:lo + step]
        hits_in = block.T @ correct  # (chunk, test): correct predictions among the models holding each example
        acc_in = _ratio(hits_in, n_in_all[lo:lo + step, None])
        acc_out = _ratio(correct_all[None, :] - hits_in, n_out_all[lo:lo + step, None])
        value = (acc_in - acc_out).ravel()
        keep = _keep_top(value, top)
        best_rows.append(keep + lo * n_test)
        best_vals.append(value[keep])
    flat, vals = np.concatenate(best_rows), np.concatenate(best_vals)
    keep = _keep_top(vals, top)  # candidates are in flat order, so ties still go to the lowest pair
    flat, vals = flat[keep], vals[keep]
    order = np.lexsort((flat, -vals))
    flat, vals = flat[order], vals[order]
    i, t = flat // n_test, flat % n_test
    hits_in = np.einsum("mk,mk->k", member[:, i], correct[:, t])
    n_in, n_out = n_in_all[i], n_out_all[i]
    return pd.DataFrame({
        "example_id": train_ids[i], "test_id": test_ids[t], "influence": vals,
        "in_acc": hits_in / n_in, "out_acc": (correct_all[t] - hits_in) / n_out,
        "n_in": n_in.astype(np.int64), "n_out": n_out.astype(np.int64)}, columns=list(INFLUENCE_COLUMNS))
