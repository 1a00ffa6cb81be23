"""`activation`: how unusually strongly each unit responds to the target, against the population.

A unit's activation for an input is the mean over positions of its module's output channel (a conv's output
map, a linear layer's output feature; before BatchNorm and ReLU, the tensor the flip engine's unit masks act
on). Signed, not |.|: the output is pre-nonlinearity, so a strongly negative value is a unit the following ReLU
silences, not one that carries the input; taking |.| would rank those as highly as units that fire. Score =
z-score (a_target - mean_P a) / std_P a over the population sample, highest first: the "activations" baseline of
Chang et al. (NAACL 2024), which asks which units are specifically active for the memorized input. One forward
of the population and the targets, no gradients; every target at once.
"""

from __future__ import annotations

import torch

from sweep.config import AnalysisConfig
from sweep.localizers import Problem, Ranking, register_localizer
from sweep.localizers.common import gated, pass_rows, rankings
from sweep.probes.flip import _prepare_inputs


def unit_activations(problem: Problem, x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """(rows, U) float64: each unit's output averaged over positions, in global unit order."""
    with gated(problem) as hooks, torch.no_grad():
        space = hooks.space
        caught: list[torch.Tensor | None] = [None] * len(space.layers)

        def catch(i: int):  # noqa: ANN202 - a torch forward hook
            def hook(module: torch.nn.Module, inputs: object, out: torch.Tensor) -> None:
                caught[i] = out.double().mean(dim=tuple(range(2, out.dim()))) if out.dim() > 2 else out.double()
            return hook

        handles = [layer.module.register_forward_hook(catch(i)) for i, layer in enumerate(space.layers)]
        try:
            rows = pass_rows(problem, hooks, backward=False)
            parts = []
            for s in range(0, len(x), rows):
                problem.forward(_prepare_inputs(x[s:s + rows]), ids[s:s + rows])
                parts.append(torch.cat(caught, dim=1))
        finally:
            for handle in handles:
                handle.remove()
    return torch.cat(parts) if parts else torch.zeros(0, space.total, dtype=torch.float64, device=x.device)


@register_localizer("activation")
def activation(problem: Problem, analysis: AnalysisConfig) -> list[Ranking]:
    pop = unit_activations(problem, problem.pop_x, problem.pop_ids)
    target = unit_activations(problem, problem.x, problem.ids)
    mean, std = pop.mean(0), pop.std(0, unbiased=False)
    floor = torch.finfo(torch.float64).eps * (1 + mean.abs())  # a constant unit: any difference stands out
    return rankings(problem, (target - mean) / std.clamp_min(floor))
