"""Injected ground truth: plant new memorization in known units of a finished run (the vision analogue of the
"INJ" benchmark of Chang et al., NAACL 2024).

A few clean training examples the run predicts correctly get a new wrong label, and only a random set of units
(UnitSpace rule "outputs": a conv's output channel or a hidden linear layer's output feature) is fine-tuned until
the model predicts those new labels. Everything else (every other filter, weight row and bias, the classifier
head, BatchNorm scales/shifts and running statistics) stays bit-identical to the run's final weights, so what
the model now "knows" about the new labels can only live in the chosen units: a localizer that ranks them first
has found the memorization.

How the units are fine-tuned, and why:
- Gradient masks on whole parameter tensors, plus copying the frozen entries back after each step: Adam with an
  all-zero gradient history already leaves an entry unchanged, but the copy makes bit-identity a property of the
  code rather than of the optimiser's arithmetic.
- Adam (not SGD): the chosen units start as whatever the run learned, with very different gradient scales across
  layers; Adam's per-entry scaling fits 10 new labels in 32 units of a digits MLP in 10-75 steps at lr 0.01.
  Fewer units (10) fit only 30-90% of the targets whatever the steps: a unit's effect on the logits goes
  through frozen downstream weights, and a target whose chosen units are silent (ReLU off) gets no gradient.
- Loss = mean cross-entropy on the targets (new labels) + mean cross-entropy on the population (training
  labels), the two terms weighted equally whatever their sizes, so a handful of targets is not drowned out by
  the population and the population still anchors what the rest of the training set is predicted as.
- The model stays in eval mode throughout (BatchNorm uses, and never updates, its running statistics; dropout
  is off), so the fit check and the localizers later see exactly the network that was trained here.
- Early stop: the forward that computes a step's loss also gives the targets' predictions; once all predict
  their new label the loop stops before stepping, so `steps` counts the optimiser steps actually taken.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sweep.config import AnalysisConfig
from sweep.errors import UserError
from sweep.probes.flip import UnitSpace, predict_plain


@dataclass
class Injection:
    """The outcome of one injection.

    - `state`: fine-tuned weights (a new state_dict): the run's final weights except the chosen units' parameters.
    - `target_ids`, `new_labels`: the training examples given a new wrong label, and that label.
    - `units`: the fine-tuned global unit indices (UnitSpace rule "outputs"), sorted: the truth set.
    - `fitted`: per target, whether the fine-tuned model predicts its new label (an injection that did not take
      is reported, not scored).
    - `steps`: optimiser steps taken (fewer than `inject_steps` when every target fitted earlier).
    """

    state: dict[str, torch.Tensor]
    target_ids: torch.Tensor
    new_labels: torch.Tensor
    units: np.ndarray
    fitted: np.ndarray
    steps: int


def _generator(seed: int, purpose: str) -> torch.Generator:
    """A CPU generator of its own per (seed, purpose): no global RNG, and each draw independent of the others."""
    digest = hashlib.sha256(f"inject-{purpose}:{seed}".encode()).digest()[:8]
    return torch.Generator().manual_seed(int.from_bytes(digest, "little") >> 1)


def _unit_masks(model: nn.Module, space: UnitSpace, units: np.ndarray) -> dict[str, torch.Tensor]:
    """{parameter name: bool mask of its entries that belong to the chosen units} (only parameters touched).

    A unit's parameters are its output slice: a conv's filter `weight[c]` (all in-channels and taps) and
    `bias[c]`, a linear layer's weight row `weight[j, :]` and `bias[j]`."""
    names = {id(module): name for name, module in model.named_modules()}
    masks: dict[str, torch.Tensor] = {}
    for unit in units.tolist():
        i = int(np.searchsorted(space.offsets, unit, side="right")) - 1
        layer, index = space.layers[i], unit - space.offsets[i]
        prefix = names[id(layer.module)]
        for attr in ("weight", "bias"):
            param = getattr(layer.module, attr, None)
            if param is None:
                continue
            key = f"{prefix}.{attr}"
            mask = masks.setdefault(key, torch.zeros(param.shape, dtype=torch.bool, device=param.device))
            mask[index] = True
    return masks


def check_injection(model: nn.Module, eligible: int, analysis: AnalysisConfig) -> None:
    """Refuse an injection that cannot be made, in one line, before any work."""
    if analysis.inject_targets > eligible:
        raise UserError(f"inject_targets={analysis.inject_targets} but the run has only {eligible} clean training "
                        "examples it predicts correctly; accepted: 0 to that many")
    total = UnitSpace.of(model, "outputs").total
    if analysis.inject_units > total:
        raise UserError(f"inject_units={analysis.inject_units} but {type(model).__name__} has {total} units "
                        f"(conv output channels and hidden linear features); accepted: 1 to {total}")


def inject(model: nn.Module, x: torch.Tensor, labels: torch.Tensor, is_noisy: torch.Tensor, seed: int,
           analysis: AnalysisConfig) -> Injection:
    """Give `inject_targets` clean, correctly predicted training examples a new wrong label and fine-tune only
    `inject_units` random units on them plus `inject_population` other training examples (their labels).

    `x`, `labels`, `is_noisy`: the whole training set (ids are row indices). `model` is left unchanged.
    Deterministic from `seed`.
    """
    device = next(model.parameters()).device
    tuned = copy.deepcopy(model).eval()
    x, labels = x.to(device), labels.to(device)
    noisy = is_noisy.cpu().bool()
    with torch.no_grad():
        predicted = predict_plain(tuned, x).cpu()
    pool = torch.nonzero((predicted == labels.cpu()) & ~noisy).flatten()
    check_injection(tuned, len(pool), analysis)

    targets = pool[torch.randperm(len(pool), generator=_generator(seed, "targets"))[:analysis.inject_targets]]
    n_classes = int(tuned(x[:1]).shape[1])
    shift = torch.randint(1, n_classes, (len(targets),), generator=_generator(seed, "labels"))
    new_labels = (labels.cpu()[targets] + shift) % n_classes
    space = UnitSpace.of(tuned, "outputs")
    units = np.sort(torch.randperm(space.total, generator=_generator(seed, "units"))[:analysis.inject_units].numpy())
    others = torch.ones(len(x), dtype=torch.bool)
    others[targets] = False
    rest = torch.nonzero(others).flatten()
    population = rest[torch.randperm(len(rest), generator=_generator(seed, "population"))[:analysis.inject_population]]

    steps = 0
    if len(targets):
        steps = _fine_tune(tuned, space, units, x[targets.to(device)], new_labels.to(device),
                           x[population.to(device)], labels[population.to(device)], analysis)
    with torch.no_grad():
        fitted = (predict_plain(tuned, x[targets.to(device)]).cpu() == new_labels).numpy()
    state = {name: value.detach().clone() for name, value in tuned.state_dict().items()}
    return Injection(state, targets, new_labels, units, fitted.astype(bool), steps)


def _fine_tune(model: nn.Module, space: UnitSpace, units: np.ndarray, tx: torch.Tensor, ty: torch.Tensor,
               px: torch.Tensor, py: torch.Tensor, analysis: AnalysisConfig) -> int:
    """Adam on the chosen units' entries only, in eval mode, until every target predicts its new label or the
    step budget is spent; returns the steps taken. Modifies `model` in place."""
    masks = _unit_masks(model, space, units)
    params = dict(model.named_parameters())
    for name, param in params.items():
        param.requires_grad_(name in masks)
    frozen = {name: params[name].detach().clone() for name in masks}
    optimizer = torch.optim.Adam([params[name] for name in masks], lr=analysis.inject_lr)
    steps = 0
    try:
        while True:
            logits = model(torch.cat([tx, px]))
            target_logits = logits[:len(tx)]
            if bool((target_logits.argmax(1) == ty).all()) or steps >= analysis.inject_steps:
                break
            loss = F.cross_entropy(target_logits, ty)
            if len(px):
                loss = loss + F.cross_entropy(logits[len(tx):], py)
            optimizer.zero_grad(set_to_none=False)
            loss.backward()
            with torch.no_grad():
                for name, mask in masks.items():
                    params[name].grad.mul_(mask)
                optimizer.step()
                for name, mask in masks.items():
                    params[name].copy_(torch.where(mask, params[name], frozen[name]))
            steps += 1
    finally:
        for param in params.values():
            param.requires_grad_(True)
            param.grad = None
    return steps
