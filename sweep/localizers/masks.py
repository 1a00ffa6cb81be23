"""Learned unit masks: `slimming` (continuous, L1) and `hard_concrete` (stochastic L0 gates).

Both learn, per target, a gate per unit (multiplying the unit's output) that makes the target lose its
training label while the population keeps its own, with a penalty on how much is removed, and rank units by
how far their gate was pushed toward "removed". This is the "Slimming" and "HardConcrete" pair of Chang et
al. (NAACL 2024), on the flip engine's units. The per-target objective, minimised with Adam:

    L_t(g) = p(y_t | x_t; g)  +  mean_{b in B_s} CE(x_b, y_b; g)  +  penalty(g)

- p(label), not -CE: bounded, so once the target has lost its label the forget term stops pulling and the
  penalty and the population term decide what stays removed (maximising CE would push without limit).
- B_s: a population sub-batch of POP_BATCH rows drawn afresh at each step s (one draw per step shared by all
  targets, from the problem's seed), so a step costs T x (1 + POP_BATCH) rows, not T x (1 + P).
- Batched over targets: each target owns a row of the gate table, each of its rows (its own and its
  population rows) is gated by that row, and the summed loss separates per target, so one backward gives
  every target its own gradient and Adam (elementwise) runs T independent optimisations at once.

Slimming: m = clamp(theta, 0, 1) by projection after each step, theta initialised to 1 (every unit kept);
penalty `slimming_l1` * sum_u (1 - m_u) pulls toward keeping; score = 1 - m (most removed first).

Hard concrete (Louizos, Welling & Kingma, ICLR 2018, "Learning Sparse Neural Networks through L0
Regularization", eqs. 9-12), per unit with parameter log_alpha, temperature beta = 2/3, stretch (gamma, zeta) =
(-0.1, 1.1): u ~ U(0, 1), s = sigmoid((log u - log(1 - u) + log_alpha) / beta), s_bar = s (zeta - gamma) + gamma,
gate z = min(1, max(0, s_bar)); P(z != 0) = sigmoid(log_alpha - beta log(-gamma / zeta)) (eq. 12). Here the
sparse thing is what is REMOVED, so the expected-L0 penalty counts closed gates: `hard_concrete_l0` *
sum_u P(z_u = 0), P(z_u = 0) = sigmoid(beta log(-gamma / zeta) - log_alpha). log_alpha starts at
LOG_ALPHA_INIT (P(closed) ~ 0.01, about 80% of gates exactly 1). Score = P(z_u = 0) after training. The noise u
is drawn per target from a generator keyed by (seed, example id), so a target's draws do not depend on which
other targets share its batch.

Penalty defaults (AnalysisConfig slimming_l1 = 1e-2, hard_concrete_l0 = 3e-2). Adam moves every entry with a
consistently signed gradient at about lr per step whatever the gradient's size, so the penalty is what stops
units the target only weakly uses from being removed as fast as the ones it needs: its per-unit gradient (l1;
l0 * P(closed)(1 - P(closed)) ~ l0 / 100 at the initial gates) is the threshold a unit's forget gradient must
beat. Measured on a digits MLP (width 0.25, 20 epochs, 10 clean + 10 noisy targets, population 256, 100 steps):
median units of the ranking removed before the target flips, slimming 5.5 at l1 = 1e-3 / 3 at 1e-2 / 3 at
3e-2; hard concrete 5.5 at l0 = 1e-3 / 4 at 3e-2 (greedy 3, zero_out 2 on the same targets); and at l1 = 1e-3
a planted network's unused random unit was removed as fully as the planted one.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from sweep.config import AnalysisConfig
from sweep.localizers import Problem, Ranking, register_localizer
from sweep.localizers.common import gated, gated_logits, generator, label_prob, pass_rows, rankings
from sweep.probes.flip import _UnitHooks

POP_BATCH = 32  # population rows per target per step
GAMMA, ZETA, BETA = -0.1, 1.1, 2.0 / 3.0  # Louizos et al. 2018's stretch interval and temperature
LOG_ALPHA_INIT = 3.0
U_EPS = 1e-6  # keeps log u and log(1 - u) finite

# (parameter rows of a chunk of targets, their global indices, step) -> that chunk's gates
GateFn = Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]


def optimise_gates(problem: Problem, hooks: _UnitHooks, param: torch.Tensor, steps: int, lr: float,
                   gates_of: GateFn, penalty: Callable[[torch.Tensor], torch.Tensor], purpose: str,
                   project: Callable[[torch.Tensor], None] | None = None) -> None:
    """Adam on `param` (targets, units) for `steps` steps of the objective in the module docstring."""
    device = problem.x.device
    n_targets, n_pop = len(problem.x), len(problem.pop_x)
    batch = min(POP_BATCH, n_pop)
    per_pass = max(1, pass_rows(problem, hooks, backward=True) // (1 + batch))
    opt = torch.optim.Adam([param], lr=lr)
    for step in range(steps):
        sub = torch.randperm(n_pop, generator=generator(problem.seed, f"{purpose}-population-{step}"))[:batch]
        sub = sub.to(device)
        opt.zero_grad(set_to_none=False)
        for s in range(0, n_targets, per_pass):
            chunk = torch.arange(s, min(s + per_pass, n_targets), device=device)
            gates = gates_of(param[chunk], chunk, step)
            local = torch.arange(len(chunk), device=device)
            pop_rows = sub.repeat(len(chunk))
            x = torch.cat([problem.x[chunk], problem.pop_x[pop_rows]])
            ids = torch.cat([problem.ids[chunk], problem.pop_ids[pop_rows]])
            index = torch.cat([local, local.repeat_interleave(batch)])
            logits = gated_logits(problem, hooks, x, ids, gates, index)
            forget = label_prob(logits[:len(chunk)], problem.y[chunk]).sum()
            keep = F.cross_entropy(logits[len(chunk):], problem.pop_y[pop_rows], reduction="sum") / batch
            (forget + keep + penalty(param[chunk]).sum()).backward()
        opt.step()
        if project is not None:
            with torch.no_grad():
                project(param)


def slimming_masks(problem: Problem, steps: int, lr: float, l1: float) -> torch.Tensor:
    """(T, U) learned keep masks m in [0, 1]."""
    with gated(problem) as hooks:
        dtype = next(problem.model.parameters()).dtype
        mask = torch.ones(len(problem.x), hooks.space.total, dtype=dtype, device=problem.x.device,
                          requires_grad=True)
        optimise_gates(problem, hooks, mask, steps, lr, gates_of=lambda rows, chunk, step: rows,
                       penalty=lambda rows: l1 * (1 - rows).sum(1), purpose="slimming",
                       project=lambda m: m.clamp_(0, 1))
    return mask.detach()


@register_localizer("slimming", settings=("slimming_steps", "slimming_lr", "slimming_l1"))
def slimming(problem: Problem, analysis: AnalysisConfig) -> list[Ranking]:
    mask = slimming_masks(problem, analysis.slimming_steps, analysis.slimming_lr, analysis.slimming_l1)
    return rankings(problem, 1 - mask)


def closed_probability(log_alpha: torch.Tensor) -> torch.Tensor:
    """P(z = 0) of a hard concrete gate: 1 - sigmoid(log_alpha - beta log(-gamma / zeta))."""
    return torch.sigmoid(BETA * math.log(-GAMMA / ZETA) - log_alpha)


def hard_concrete_log_alpha(problem: Problem, steps: int, lr: float, l0: float) -> torch.Tensor:
    """(T, U) learned log_alpha of every target's gates."""
    with gated(problem) as hooks:
        dtype = next(problem.model.parameters()).dtype
        device = problem.x.device
        units = hooks.space.total
        log_alpha = torch.full((len(problem.x), units), LOG_ALPHA_INIT, dtype=dtype, device=device,
                               requires_grad=True)
        streams = [generator(problem.seed, f"hard-concrete-{example}") for example in problem.ids.tolist()]
        noise: dict[int, torch.Tensor] = {}

        def gates_of(rows: torch.Tensor, chunk: torch.Tensor, step: int) -> torch.Tensor:
            if step not in noise:  # one draw per target per step, in target order
                noise.clear()
                noise[step] = torch.stack([torch.rand(units, generator=g, dtype=torch.float64) for g in streams])
                noise[step] = noise[step].clamp(U_EPS, 1 - U_EPS).to(device=device, dtype=dtype)
            u = noise[step][chunk]
            s = torch.sigmoid((torch.log(u) - torch.log1p(-u) + rows) / BETA)
            return (s * (ZETA - GAMMA) + GAMMA).clamp(0, 1)

        optimise_gates(problem, hooks, log_alpha, steps, lr, gates_of=gates_of,
                       penalty=lambda rows: l0 * closed_probability(rows).sum(1), purpose="hard-concrete")
    return log_alpha.detach()


@register_localizer("hard_concrete", settings=("hard_concrete_steps", "hard_concrete_lr", "hard_concrete_l0"))
def hard_concrete(problem: Problem, analysis: AnalysisConfig) -> list[Ranking]:
    log_alpha = hard_concrete_log_alpha(problem, analysis.hard_concrete_steps, analysis.hard_concrete_lr,
                                        analysis.hard_concrete_l0)
    return rankings(problem, closed_probability(log_alpha))
