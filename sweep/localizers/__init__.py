"""Localizer registry: methods that say, for a target training example, which units hold what it memorized.

A localizer takes a trained model, a batch of targets (x, training label, example id) and a population sample of
the training set, and returns for each target the model's units ranked best first with their scores. Units are
the flip engine's vocabulary (`sweep.models.groups.unit_layers`, rule "outputs"; global index = the
`sweep.probes.flip.UnitSpace` numbering), so every localizer's ranking can be compared with greedy flipping's
and with a planted ground truth (sweep/probes/localize.py).

Adding one is one decorated function in one of this package's modules (or in a plug-in)::

    @register_localizer("my_method", settings=("my_setting",))
    def my_method(problem: Problem, analysis: AnalysisConfig) -> list[Ranking]:
        ...

`settings` are the AnalysisConfig fields the ranking depends on: the localization probe signs them into its
done-records, so results made under other values are refused rather than mixed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from sweep.config import AnalysisConfig
from sweep.errors import UserError


@dataclass
class Problem:
    """What every localizer gets: the model and the targets, all tensors on the model's device.

    - `model`: in eval mode; a localizer must leave its parameters and modes as it found them.
    - `x`, `y`, `ids`: the targets' inputs, training labels and training-example ids.
    - `pop_x`, `pop_y`, `pop_ids`: the population sample (what the model must keep doing).
    - `k_max`: the ranking length wanted (at most the model's unit count).
    - `tied`: forward with each row's own example id (example-tied dropout's "tied" mode: a row sees the
      generalization channels and its own example's memorization channels only); False = plain forward
      (mode "all" for a tied model, the only mode of any other model).
    - `live`: (targets, units) bool, the units a localizer may pick for each target (None = all): in tied mode the
      other examples' memorization channels are dead for a target, and rankings contain live units only.
    - `seed`: for any random draw (the run's seed), so rankings are reproducible.
    """

    model: nn.Module
    x: torch.Tensor
    y: torch.Tensor
    ids: torch.Tensor
    pop_x: torch.Tensor
    pop_y: torch.Tensor
    pop_ids: torch.Tensor
    k_max: int
    tied: bool = False
    live: torch.Tensor | None = None
    seed: int = 0

    def forward(self, x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """Logits in this problem's mode: with example ids (tied) or without."""
        return self.model(x, ids=ids) if self.tied else self.model(x)


@dataclass
class Ranking:
    """One target's units, best first (global unit indices), and the localizer's score for each (higher = more
    responsible for the target's memorized label). `flip_k`: units the localizer itself removed before the target
    flipped, where the method has such a notion (greedy), else None."""

    units: np.ndarray
    scores: np.ndarray
    flip_k: int | None = None


@dataclass(frozen=True)
class Localizer:
    name: str
    fn: Callable[[Problem, AnalysisConfig], list[Ranking]]
    settings: tuple[str, ...] = ()


LOCALIZERS: dict[str, Localizer] = {}


def register_localizer(name: str, settings: tuple[str, ...] = ()) -> Callable:
    """Decorator: add a localizer function to the registry under `name` (names are unique)."""
    def add(fn: Callable[[Problem, AnalysisConfig], list[Ranking]]) -> Callable:
        if name in LOCALIZERS:
            raise ValueError(f"localizer {name!r} registered twice")
        LOCALIZERS[name] = Localizer(name, fn, tuple(settings))
        return fn
    return add


def localize(name: str, problem: Problem, analysis: AnalysisConfig) -> list[Ranking]:
    """Rankings of every target of `problem` by localizer `name` (one per target, in target order)."""
    return LOCALIZERS[name].fn(problem, analysis)


def check_localizers(names: object) -> tuple[str, ...]:
    """`names` as a tuple if every entry names a registered localizer; else one UserError naming the accepted."""
    accepted = ", ".join(sorted(LOCALIZERS))
    if not isinstance(names, list | tuple) or not all(isinstance(n, str) for n in names):
        raise UserError(f"analysis.localizers must be a list of localizer names, got {names!r}; accepted: {accepted}")
    unknown = [n for n in names if n not in LOCALIZERS]
    if unknown:
        raise UserError(f"unknown localizer(s) {', '.join(map(repr, unknown))} in analysis.localizers; "
                        f"accepted: {accepted}")
    return tuple(names)


# The built-in localizers register themselves on import (after the registry above exists).
from sweep.localizers import ablation, activation, attribution, greedy, masks  # noqa: E402, F401
