"""`zero_out`: each unit ablated alone (the "Zero-Out" localizer of Chang et al., NAACL 2024).

Score of unit u for target t: (loss_t with u zeroed - loss_t) - (mean_P loss with u zeroed - mean_P loss), the
target's loss increase beyond the population's: a unit everything needs scores low, one only the target needs
scores high. No recomputation and no gradients: U + 1 edited models (none removed, then each unit alone), each
evaluated on the population and on every target.

Batched over units and targets: a pass holds rows (edit m, example e) for many edits at once, row r's units
multiplied by table[m] (the flip engine's per-row mask hooks), so U + 1 edits cost (U + 1) x (P + T) rows in
as few passes as fit, rather than U + 1 model copies. The population term does not depend on the target (in
tied mode each population row carries its own example id), so all targets share it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sweep.config import AnalysisConfig
from sweep.localizers import Problem, Ranking, register_localizer
from sweep.localizers.common import gated, gated_logits, pass_rows, rankings


def single_ablation_losses(problem: Problem) -> torch.Tensor:
    """(U + 1, P + T) float64 cross-entropies: row 0 the unedited model, row 1 + u with unit u zeroed; columns
    the population then the targets, each with its training label."""
    x = torch.cat([problem.pop_x, problem.x])
    y = torch.cat([problem.pop_y, problem.y])
    ids = torch.cat([problem.pop_ids, problem.ids])
    with gated(problem) as hooks, torch.no_grad():
        units = hooks.space.total
        dtype = next(problem.model.parameters()).dtype
        table = torch.ones(units + 1, units, dtype=dtype, device=x.device)
        table[1:].fill_diagonal_(0)
        rows = pass_rows(problem, hooks, backward=False)
        total = (units + 1) * len(x)
        losses = torch.empty(total, dtype=torch.float64, device=x.device)
        for s in range(0, total, rows):
            flat = torch.arange(s, min(s + rows, total), device=x.device)
            edit, row = flat // len(x), flat % len(x)
            logits = gated_logits(problem, hooks, x[row], ids[row], table, edit)
            losses[s:s + len(flat)] = F.cross_entropy(logits, y[row], reduction="none").double()
    return losses.view(units + 1, len(x))


@register_localizer("zero_out")
def zero_out(problem: Problem, analysis: AnalysisConfig) -> list[Ranking]:
    losses = single_ablation_losses(problem)
    n_pop = len(problem.pop_x)
    pop_increase = losses[1:, :n_pop].mean(1) - losses[0, :n_pop].mean()  # (U,)
    target_increase = losses[1:, n_pop:] - losses[0, n_pop:]  # (U, T)
    return rankings(problem, (target_increase - pop_increase[:, None]).T)
