"""Gradient attributions without recomputation: `grad_x_act` and `integrated_gradients`.

`grad_x_act`: the greedy search's first step alone. With J = mean_P loss - loss_target, a unit's attribution is
a_u = sum over positions of y_u * dJ/dy_u (y_u its module's output), the first-order decrease of J when u is
zeroed; greedy removes the argmax and recomputes, this ranks every unit by that one backward. Computed by the
flip engine's own attribution pass (`sweep.probes.flip._attribution`, one shared population pass for all
targets), so its top unit is greedy's first choice by construction.

`integrated_gradients` (Sundararajan et al. 2017) on unit gates: every unit's output is multiplied by a gate
g_u, F(g) = log p(label | x_target; g) (the target's log-probability of its training label, = -loss), and
IG_u = (1 - 0) * integral over a in [0, 1] of dF/dg_u at g = a * 1, by the midpoint rule in `ig_steps` steps
(a = (i + 0.5) / m). Baseline: all gates 0 (every hidden conv/linear output zero, so the network no longer sees
the input): the input-independent reference the gates can reach, and so sum_u IG_u = F(1) - F(0)
(completeness) measures how much the units together give the label. High IG_u = the unit raises the label's
log-probability most, i.e. removing it hurts the memorized label most. Batched over targets and steps: each
row (target, step) has its own gate row, and one backward per pass gives every row's gate gradient.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sweep.config import AnalysisConfig
from sweep.localizers import Problem, Ranking, register_localizer
from sweep.localizers.common import gated, gated_logits, pass_rows, rankings
from sweep.probes.flip import _attribution, _Items


def first_step_attribution(problem: Problem) -> torch.Tensor:
    """(T, U) float64: greedy's step-one attribution y * dJ/dy for every target (nothing removed yet)."""
    model = problem.model
    x = torch.cat([problem.pop_x, problem.x])
    y = torch.cat([problem.pop_y, problem.y])
    ids = torch.cat([problem.pop_ids, problem.ids]) if problem.tied else None
    n_pop, n_targets = len(problem.pop_x), len(problem.x)
    device = x.device
    with gated(problem) as hooks:
        dtype = next(model.parameters()).dtype
        masks = torch.ones(1, hooks.space.total, dtype=dtype, device=device)
        items = _Items(
            example=torch.arange(n_pop + n_targets, device=device),
            mask=torch.zeros(n_pop + n_targets, dtype=torch.long, device=device),
            weight=torch.cat([torch.full((n_pop,), 1.0 / n_pop, dtype=dtype, device=device),
                              torch.full((n_targets,), -1.0, dtype=dtype, device=device)]),
            slot=torch.cat([torch.zeros(n_pop, dtype=torch.long, device=device),
                            1 + torch.arange(n_targets, device=device)]),
            n_pop=n_pop, n_masks=1)
        acc = _attribution(model, hooks, x, y, None, masks, items, 1 + n_targets, pass_rows(problem, hooks, True),
                           ids)
    return acc[0] + acc[1:]


@register_localizer("grad_x_act")
def grad_x_act(problem: Problem, analysis: AnalysisConfig) -> list[Ranking]:
    return rankings(problem, first_step_attribution(problem))


def integrated_gradients_scores(problem: Problem, steps: int) -> torch.Tensor:
    """(T, U) float64 integrated gradients of log p(label) along gates 0 -> 1 (midpoint rule)."""
    n_targets = len(problem.x)
    with gated(problem) as hooks:
        units = hooks.space.total
        dtype = next(problem.model.parameters()).dtype
        device = problem.x.device
        alphas = (torch.arange(steps, dtype=dtype, device=device) + 0.5) / steps
        per_pass = max(1, pass_rows(problem, hooks, backward=True) // steps)  # targets per pass
        scores = torch.empty(n_targets, units, dtype=torch.float64, device=device)
        for s in range(0, n_targets, per_pass):
            t = torch.arange(s, min(s + per_pass, n_targets), device=device).repeat_interleave(steps)
            gates = alphas.repeat(len(t) // steps)[:, None].expand(-1, units).clone().requires_grad_()
            logits = gated_logits(problem, hooks, problem.x[t], problem.ids[t], gates,
                                  torch.arange(len(t), device=device))
            log_p = F.log_softmax(logits, dim=1).gather(1, problem.y[t][:, None]).sum()
            (grad,) = torch.autograd.grad(log_p, gates)
            scores[s:s + len(t) // steps] = grad.double().view(-1, steps, units).mean(1)  # (1 - 0) * mean
    return scores


@register_localizer("integrated_gradients", settings=("ig_steps",))
def integrated_gradients(problem: Problem, analysis: AnalysisConfig) -> list[Ranking]:
    return rankings(problem, integrated_gradients_scores(problem, analysis.ig_steps))
