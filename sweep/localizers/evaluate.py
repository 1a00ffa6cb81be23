"""Scoring localizer rankings: units to flip, the deletion ladder, precision and recall against a truth set.

Every edit here removes a set of units (rule "outputs", global indices of `sweep.probes.flip.UnitSpace`) by the
flip engine's exact output masks (`sweep.probes.flip._masked`): eval mode, one mask per row, so many edits run
in one batched pass and an unedited row computes what the model computes. Rows are forwarded in the problem's
mode (`Problem.forward`: with example ids in mode "tied"), so a tied model is edited as it acts on the target.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from sweep.localizers import Problem, Ranking
from sweep.probes.flip import _masked, _prepare_inputs, auto_rows


@dataclass
class EvalPart:
    """One part of the fixed evaluation sample: inputs, labels, and example ids (None for test examples, which
    have no mask of their own and are forwarded without ids in every mode)."""

    name: str
    x: torch.Tensor
    y: torch.Tensor
    ids: torch.Tensor | None


def ladder_ks(cap: int) -> list[int]:
    """1, 2, 3, 5, 8, 13, ... (each the sum of the two before) below `cap`, then `cap` itself."""
    ks, a, b = [], 1, 2
    while a < cap:
        ks.append(a)
        a, b = b, a + b
    return [*ks, cap]


def _forward_masked(problem: Problem, hooks: object, x: torch.Tensor, ids: torch.Tensor | None,
                    table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Logits of rows x under keep masks table[index] (one pass, no gradients), in the problem's mode."""
    hooks.start(table, index, capture=False)
    try:
        inputs = _prepare_inputs(x)
        logits = problem.model(inputs, ids=ids) if problem.tied and ids is not None else problem.model(inputs)
    finally:
        hooks.finish()
    return logits


def _positions(rankings: Sequence[Ranking], total: int, cap: int) -> torch.Tensor:
    """(targets, units) long: each unit's place in its target's ranking (first `cap` entries), else `total`.
    Removing target t's top k is then the keep mask `positions[t] >= k`."""
    pos = torch.full((len(rankings), total), total, dtype=torch.long)
    for t, ranking in enumerate(rankings):
        top = np.asarray(ranking.units[:cap], dtype=np.int64)
        pos[t, torch.from_numpy(top)] = torch.arange(len(top))
    return pos


def units_to_flip(problem: Problem, rankings: list[Ranking], cap: int) -> np.ndarray:
    """Per target the smallest k in 1..cap whose top-k removal makes the model predict another class than the
    target's label (in the problem's mode); -1 when no k up to cap (or the ranking's length) does.

    Every k is tried, not searched for: removing more of a fixed ranking need not keep a target flipped. Targets
    advance together in blocks of k values (8, then doubling), and a target leaves once one has flipped it.
    """
    model, device = problem.model, problem.x.device
    with _masked(model) as hooks:
        total = hooks.space.total
        dtype = next(model.parameters()).dtype
        pos = _positions(rankings, total, cap).to(device)
        lengths = [min(cap, len(r.units)) for r in rankings]
        rows = auto_rows(model, problem.x, backward=False, units=total)
        found = np.full(len(rankings), -1, dtype=np.int64)
        lo, block = 1, 8
        active = [t for t in range(len(rankings)) if lengths[t] >= 1]
        while active:
            hi = lo + block - 1
            tt = [t for t in active for _ in range(lo, min(hi, lengths[t]) + 1)]
            kk = [k for t in active for k in range(lo, min(hi, lengths[t]) + 1)]
            t_dev, k_dev = torch.tensor(tt, device=device), torch.tensor(kk, device=device)
            flips = []
            with torch.no_grad():
                for s in range(0, len(tt), rows):
                    t_s, k_s = t_dev[s:s + rows], k_dev[s:s + rows]
                    table = (pos[t_s] >= k_s[:, None]).to(dtype)
                    logits = _forward_masked(problem, hooks, problem.x[t_s], problem.ids[t_s], table,
                                             torch.arange(len(t_s), device=device))
                    flips.append(logits.argmax(1) != problem.y[t_s])
            flipped = torch.cat(flips).cpu().numpy() if flips else np.zeros(0, dtype=bool)
            for t, k, f in zip(tt, kk, flipped, strict=True):
                if f and found[t] == -1:
                    found[t] = k
            active = [t for t in active if found[t] == -1 and lengths[t] > hi]
            lo, block = hi + 1, block * 2
    return found


def precision_recall(top: np.ndarray, truth: np.ndarray | None) -> tuple[float, float]:
    """(precision, recall) of the units `top` against the bool vector `truth` (the truth set within the
    candidates); NaN, NaN without a truth set, recall NaN when the truth set is empty."""
    if truth is None or len(top) == 0:
        return float("nan"), float("nan")
    hits = int(truth[np.asarray(top, dtype=np.int64)].sum())
    n_truth = int(truth.sum())
    return hits / len(top), (hits / n_truth if n_truth else float("nan"))


def edited_part_accuracies(problem: Problem, removals: Sequence[frozenset[int]],
                           parts: Sequence[EvalPart]) -> np.ndarray:
    """Accuracy (len(removals), len(parts)) of the model with each set of units removed, in the problem's mode
    (train parts with their ids in mode "tied"); equal sets are evaluated once; an empty part gives NaN."""
    distinct: dict[frozenset[int], int] = {}
    which = [distinct.setdefault(frozenset(r), len(distinct)) for r in removals]
    model = problem.model
    acc = np.full((len(distinct), len(parts)), np.nan)
    with _masked(model) as hooks:
        total = hooks.space.total
        dtype = next(model.parameters()).dtype
        device = problem.x.device
        masks = torch.ones(len(distinct), total, dtype=dtype, device=device)
        for key, m in distinct.items():
            if key:
                masks[m, sorted(key)] = 0
        for j, part in enumerate(parts):
            n = len(part.y)
            if n == 0:
                continue
            rows = auto_rows(model, part.x, backward=False, units=total)
            correct = torch.zeros(len(distinct), dtype=torch.long, device=device)
            with torch.no_grad():
                for s in range(0, len(distinct) * n, rows):
                    flat = torch.arange(s, min(s + rows, len(distinct) * n), device=device)
                    m, r = flat // n, flat % n
                    ids = None if part.ids is None else part.ids[r]
                    pred = _forward_masked(problem, hooks, part.x[r], ids, masks, m).argmax(1)
                    correct.index_add_(0, m, (pred == part.y[r]).long())
            acc[:, j] = correct.cpu().numpy() / n
    return acc[which]


def ladder_rows(problem: Problem, rankings: list[Ranking], cap: int, parts: Sequence[EvalPart],
                truth: np.ndarray | None = None) -> list[dict[str, object]]:
    """The deletion ladder: for each target t and each k of `ladder_ks(cap)` up to its ranking's length, remove
    t's top-k units and record whether t flips, its loss at its label, the edited model's accuracy on each
    evaluation part (`<part>_acc`, `<part>_acc_base` for the unedited model) and precision/recall at k against
    `truth` ((targets, units) bool: the truth set within the candidates; None = no truth, NaN).

    Rows are dicts with keys target (index into the problem's targets), k, flipped, target_loss, precision,
    recall, and the accuracy columns.
    """
    model, device = problem.model, problem.x.device
    edits = [(t, k) for t, r in enumerate(rankings) for k in ladder_ks(cap) if k <= len(r.units)]
    if not edits:
        return []
    with _masked(model) as hooks:
        total = hooks.space.total
        dtype = next(model.parameters()).dtype
        pos = _positions(rankings, total, cap).to(device)
        t_dev = torch.tensor([t for t, _ in edits], device=device)
        k_dev = torch.tensor([k for _, k in edits], device=device)
        rows = auto_rows(model, problem.x, backward=False, units=total)
        preds, losses = [], []
        with torch.no_grad():
            for s in range(0, len(edits), rows):
                t_s, k_s = t_dev[s:s + rows], k_dev[s:s + rows]
                table = (pos[t_s] >= k_s[:, None]).to(dtype)
                logits = _forward_masked(problem, hooks, problem.x[t_s], problem.ids[t_s], table,
                                         torch.arange(len(t_s), device=device)).float()
                preds.append(logits.argmax(1) != problem.y[t_s])
                losses.append(F.cross_entropy(logits, problem.y[t_s], reduction="none"))
    flipped = torch.cat(preds).cpu().numpy()
    loss = torch.cat(losses).cpu().numpy()
    removals = [frozenset(int(u) for u in rankings[t].units[:k]) for t, k in edits]
    accs = edited_part_accuracies(problem, [frozenset(), *removals], parts)
    base, accs = accs[0], accs[1:]
    out = []
    for i, (t, k) in enumerate(edits):
        precision, recall = precision_recall(rankings[t].units[:k], None if truth is None else truth[t])
        row: dict[str, object] = {"target": t, "k": k, "flipped": bool(flipped[i]), "target_loss": float(loss[i]),
                                  "precision": precision, "recall": recall}
        for j, part in enumerate(parts):
            row[f"{part.name}_acc"] = float(accs[i, j])
            row[f"{part.name}_acc_base"] = float(base[j])
        out.append(row)
    return out
