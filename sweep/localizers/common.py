"""What the localizers share: gated forward passes on the flip engine's unit masks, pass sizes, seeds, rankings.

Every localizer addresses units the way the flip engine does (`sweep.probes.flip.UnitSpace`, rule "outputs"):
a unit is one output channel/feature of a hidden conv or linear layer, and "removing" or "gating" it multiplies
that module's output by a per-row factor through `_UnitHooks`. A row's factor row is `table[index[row]]`, so
one pass can carry a different gate vector per row (per unit ablated, per target, per integration step), and
when `table` requires grad the backward gives every row's gradient with respect to its own gates: the
batching the methods below rely on. Everything runs in eval mode with the parameters frozen (`_masked`), and
`_masked` restores the model's modes, requires_grad flags and weight layouts on exit.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F

from sweep.localizers import Problem, Ranking
from sweep.probes.flip import _masked, _prepare_inputs, _seed_of, _UnitHooks, auto_rows

RULE = "outputs"  # the localizers' unit vocabulary (DESIGN.md §4), the flip probe's default rule


@contextmanager
def gated(problem: Problem) -> Iterator[_UnitHooks]:
    """The problem's model in eval mode, parameters frozen, unit hooks installed; restored on exit."""
    with _masked(problem.model, RULE) as hooks:
        yield hooks


def gated_logits(problem: Problem, hooks: _UnitHooks, x: torch.Tensor, ids: torch.Tensor, table: torch.Tensor,
                 index: torch.Tensor) -> torch.Tensor:
    """Logits of rows x (example ids `ids`) with row r's unit outputs multiplied by table[index[r]].

    Gradients flow to `table` when it requires grad (the hooks gather it per row); the forward follows the
    problem's mode (`Problem.forward`: ids passed in tied mode)."""
    hooks.start(table, index, capture=False)
    try:
        logits = problem.forward(_prepare_inputs(x), ids)
    finally:
        hooks.finish()
    return logits


def pass_rows(problem: Problem, hooks: _UnitHooks, backward: bool) -> int:
    """Rows per pass that fit the device (the flip engine's sizing)."""
    return auto_rows(problem.model, problem.pop_x, backward=backward, units=hooks.space.total)


def generator(seed: int, purpose: str) -> torch.Generator:
    """A CPU generator of its own stream per (seed, purpose): no global RNG state is read or changed."""
    return torch.Generator().manual_seed(_seed_of(seed, purpose))


def label_prob(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-row probability of label y: bounded, so a "forget" objective stops pulling once it is forgotten."""
    return F.softmax(logits, dim=1).gather(1, y[:, None])[:, 0]


def live_table(problem: Problem, units: int) -> torch.Tensor:
    """(targets, units) bool on the CPU: the units each target's ranking may hold."""
    if problem.live is None:
        return torch.ones(len(problem.x), units, dtype=torch.bool)
    live = problem.live.detach().cpu().to(torch.bool)
    if live.shape != (len(problem.x), units):
        raise ValueError(f"problem.live has shape {tuple(live.shape)}, expected {(len(problem.x), units)}")
    return live


def rankings(problem: Problem, scores: torch.Tensor) -> list[Ranking]:
    """One Ranking per target from a (targets, units) score table: live units by score, highest first, ties to
    the lowest global index (as the flip engine breaks them), min(k_max, live units) of them."""
    values = scores.detach().double().cpu().numpy()
    live = live_table(problem, values.shape[1]).numpy()
    out = []
    for row, keep in zip(values, live, strict=True):
        row = np.where(np.isnan(row), -np.inf, row)
        order = np.argsort(-row, kind="stable")
        order = order[keep[order]][:problem.k_max]
        out.append(Ranking(units=order.astype(np.int64), scores=row[order]))
    return out
