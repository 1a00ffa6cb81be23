"""Cross-validation folds for confident learning: which training examples an out-of-sample run holds out.

The assignment depends only on the dataset size, the number of folds and the run's noise seed, so the K fold
runs of one experiment agree on it wherever they train, and together predict every example exactly once.
Fold runs are auxiliary trainings: their runs / examples / epochs / gradients rows go to the `aux_*` tables.
"""

from __future__ import annotations

import torch


def fold_of(n: int, folds: int, seed: int) -> torch.Tensor:
    """Fold index (0..folds-1) of each of n examples: a seeded permutation dealt round-robin, so fold sizes
    differ by at most one and every class spreads over the folds at random."""
    gen = torch.Generator().manual_seed(seed * 7_919 + folds)
    order = torch.randperm(n, generator=gen)
    assignment = torch.empty(n, dtype=torch.long)
    assignment[order] = torch.arange(n) % folds
    return assignment


def fold_split(n: int, folds: int, fold: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids trained on, ids held out) of fold `fold`, each ascending."""
    assignment = fold_of(n, folds, seed)
    return torch.nonzero(assignment != fold).flatten(), torch.nonzero(assignment == fold).flatten()
