"""The plain neuron-flipping loop: one example at a time, on its own copy of the model, zeroing weights.

Obviously correct and slow; it exists so the tests and `bench/flip.py` can check that the batched engine in
`sweep.probes.flip` removes exactly the same units in the same order. Nothing here shares the engine's
mechanics (no hooks, no masks on outputs): a unit is removed by zeroing its filter/row and bias in place, and
its attribution is sum(w * dJ/dw) over those parameters, read from ordinary parameter gradients.

Under the "paper" rule it follows the paper's search directly on `named_parameters`, without the unit
vocabulary of `sweep.models.groups`: a 4-D weight scores and loses one output channel (its filter) at a time,
every other tensor one element at a time, and the global index is the position in that concatenation.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from sweep.models.groups import unit_layers
from sweep.probes.flip import FlipOutcome, check_cap, noisy_logits


def _unit_params(module: nn.Module) -> list[torch.Tensor]:
    return [module.weight] + ([module.bias] if module.bias is not None else [])


def _paper_scores(params: list[torch.Tensor]) -> torch.Tensor:
    """w * dJ/dw per candidate: summed over each filter of a 4-D weight, element-wise for any other tensor."""
    return torch.cat([(p * p.grad).sum((1, 2, 3)) if p.dim() == 4 else (p * p.grad).flatten() for p in params])


def _paper_zero(params: list[torch.Tensor], unit: int) -> None:
    for p in params:
        size = p.shape[0] if p.dim() == 4 else p.numel()
        if unit < size:
            if p.dim() == 4:
                p[unit] = 0
            else:
                p.view(-1)[unit] = 0
            return
        unit -= size
    raise IndexError("unit beyond the model's parameters")


def flip_one(model: nn.Module, x: torch.Tensor, y: torch.Tensor, pop_x: torch.Tensor, pop_y: torch.Tensor,
             cap: int, noise: torch.Tensor | None = None, pop_noise: torch.Tensor | None = None,
             rule: str = "outputs") -> FlipOutcome:
    """Greedy removal for one target x (shape (1, ...)) with label y (shape (1,)) on a private model copy."""
    if rule == "paper":
        return _flip_one_paper(model, x, y, pop_x, pop_y, cap, noise, pop_noise)
    edited = copy.deepcopy(model).eval()
    for p in edited.parameters():
        p.requires_grad_(True)
    modules = [layer.module for layer in unit_layers(edited)]
    total = sum(layer.n_units for layer in unit_layers(edited))
    cap = min(check_cap(cap), total)
    removed: list[int] = []
    with torch.no_grad():
        flipped = bool(edited(x).argmax(1).item() != y.item())
    while not flipped and len(removed) < cap:
        edited.zero_grad(set_to_none=True)
        objective = (F.cross_entropy(noisy_logits(edited, pop_x, pop_noise), pop_y)
                     - F.cross_entropy(noisy_logits(edited, x, noise), y))
        objective.backward()
        scores = [sum((p * p.grad).flatten(1).sum(1) if p.dim() > 1 else p * p.grad for p in _unit_params(m))
                  for m in modules]
        score = torch.cat(scores).detach()
        score[removed] = -math.inf
        unit = int(score.argmax())  # first maximum: the lowest global index on ties
        removed.append(unit)
        layer_index, offset = 0, unit
        while offset >= modules[layer_index].weight.shape[0]:
            offset -= modules[layer_index].weight.shape[0]
            layer_index += 1
        with torch.no_grad():
            for p in _unit_params(modules[layer_index]):
                p[offset] = 0
            flipped = bool(edited(x).argmax(1).item() != y.item())
    return FlipOutcome(removed, flipped)


def _flip_one_paper(model: nn.Module, x: torch.Tensor, y: torch.Tensor, pop_x: torch.Tensor,
                    pop_y: torch.Tensor, cap: int, noise: torch.Tensor | None,
                    pop_noise: torch.Tensor | None) -> FlipOutcome:
    edited = copy.deepcopy(model).eval()
    params = [p for _, p in edited.named_parameters()]
    for p in params:
        p.requires_grad_(True)
    total = sum(p.shape[0] if p.dim() == 4 else p.numel() for p in params)
    cap = min(check_cap(cap), total)
    removed: list[int] = []
    with torch.no_grad():
        flipped = bool(edited(x).argmax(1).item() != y.item())
    while not flipped and len(removed) < cap:
        edited.zero_grad(set_to_none=True)
        objective = (F.cross_entropy(noisy_logits(edited, pop_x, pop_noise), pop_y)
                     - F.cross_entropy(noisy_logits(edited, x, noise), y))
        objective.backward()
        score = _paper_scores(params).detach()
        score[removed] = -math.inf
        unit = int(score.argmax())  # first maximum: the lowest global index on ties
        removed.append(unit)
        with torch.no_grad():
            _paper_zero(params, unit)
            flipped = bool(edited(x).argmax(1).item() != y.item())
    return FlipOutcome(removed, flipped)


def flip_plain(model: nn.Module, x: torch.Tensor, y: torch.Tensor, pop_x: torch.Tensor, pop_y: torch.Tensor,
               cap: int, noise: torch.Tensor | None = None, pop_noise: torch.Tensor | None = None,
               rule: str = "outputs") -> list[FlipOutcome]:
    """`flip_one` for every target in turn: the same signature and result as `flip.flip_batched`."""
    return [flip_one(model, x[i:i + 1], y[i:i + 1], pop_x, pop_y, cap,
                     None if noise is None else noise[i:i + 1], pop_noise, rule)
            for i in range(len(x))]
