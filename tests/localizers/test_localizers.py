"""The localizers (sweep/localizers): a planted unit is found by every method, each batched method equals a plain
one-target-at-a-time reference written here (by weight zeroing, parameter gradients and forward hooks rather
than the per-row mask hooks), greedy is the flip engine, rankings stay within the live units and the model is
left as it was found.

Comparisons run in float64 on the digits MLP (random and briefly trained weights, plain and example-tied) and in
float32 on a random width-0.125 ResNet-9 on the 8x8 digits.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sweep.config import AnalysisConfig, RunConfig
from sweep.errors import UserError
from sweep.localizers import LOCALIZERS, Problem, check_localizers, localize
from sweep.localizers import masks as masks_module
from sweep.localizers.common import generator
from sweep.models.for_run import build_model_for
from sweep.models.groups import unit_layers
from sweep.probes.flip import UnitSpace, flip_batched, population_ids, select_targets
from sweep.train import train_in_memory

FAST = AnalysisConfig(ig_steps=4, slimming_steps=6, hard_concrete_steps=6)


# A hand-built network with one planted unit ---------------------------------------------------------------

class Planted(nn.Module):
    """fc1 (8 hidden units) -> ReLU -> fc. Units 0,1,2,4,5,6 read input coordinates 0..5 and vote for classes
    (two units per class); unit 3 is a template of the target's input in coordinates 6..11, thresholded so it
    fires for the target only, and votes for the target's (memorized) label 2; unit 7 is a weak random
    feature. The target has zeros in coordinates 0..5, so unit 3 alone carries its label."""

    head = "fc"
    groups = [("fc1", ["fc1"]), ("head", ["fc"])]
    planted = 3

    def __init__(self, target: torch.Tensor) -> None:
        super().__init__()
        self.fc1 = nn.Linear(12, 8)
        self.fc = nn.Linear(8, 3)
        gen = torch.Generator().manual_seed(1)
        with torch.no_grad():
            self.fc1.weight.zero_()
            self.fc1.bias.zero_()
            self.fc.weight.zero_()
            self.fc.bias.zero_()
            for j, unit in enumerate((0, 1, 2, 4, 5, 6)):
                self.fc1.weight[unit, j] = 1.0
                self.fc.weight[j // 2, unit] = 2.0
            direction = target[6:] / target[6:].norm()
            self.fc1.weight[3, 6:] = direction
            self.fc1.bias[3] = -(target[6:].norm() - 2.0)  # the target's pre-activation is 2
            self.fc.weight[2, 3] = 1.2  # label-2 logit 2.4 for the target: p = 0.85, not saturated
            self.fc1.weight[7] = 0.3 * torch.randn(12, generator=gen)
            self.fc.weight[:, 7] = 0.1 * torch.randn(3, generator=gen)

    def forward(self, x: torch.Tensor, ids: torch.Tensor | None = None) -> torch.Tensor:
        return self.fc(torch.relu(self.fc1(x)))


def planted_problem() -> Problem:
    gen = torch.Generator().manual_seed(0)
    target = torch.zeros(12)
    target[6:] = torch.randn(6, generator=gen)
    target[6:] *= 5.0 / target[6:].norm()
    model = Planted(target).eval()
    pop_x = torch.randn(256, 12, generator=gen)
    pop_x[:, 6:] *= 0.5
    with torch.no_grad():
        pop_y = model(pop_x).argmax(1)
        assert model(target[None]).argmax(1).item() == 2
        assert (model.fc1(pop_x)[:, 3] < 0).all()  # the planted unit is silent on the population
    return Problem(model=model, x=target[None], y=torch.tensor([2]), ids=torch.tensor([1000]), pop_x=pop_x,
                   pop_y=pop_y, pop_ids=torch.arange(256), k_max=8, seed=0)


@pytest.mark.parametrize("name", sorted(LOCALIZERS))
def test_every_localizer_ranks_the_planted_unit_first(name):
    problem = planted_problem()
    (ranking,) = localize(name, problem, AnalysisConfig())
    assert ranking.units[0] == Planted.planted, (name, ranking)
    assert sorted(ranking.units.tolist()) == list(range(8))
    assert ranking.scores[0] > ranking.scores[1:].max() or name == "greedy", ranking


def test_all_seven_localizers_are_registered_and_checked():
    assert set(LOCALIZERS) == {"greedy", "zero_out", "activation", "grad_x_act", "integrated_gradients",
                               "slimming", "hard_concrete"}
    assert check_localizers(AnalysisConfig().localizers) == AnalysisConfig().localizers
    with pytest.raises(UserError, match="unknown localizer.*'bogus'.*accepted: activation, grad_x_act, greedy, hard"):
        check_localizers(["greedy", "bogus"])
    with pytest.raises(UserError, match="list of localizer names"):
        check_localizers("greedy")


# Small models -------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained_mlp(digits):
    return train_in_memory(RunConfig(dataset="digits", arch="mlp", width=0.25, noise=0.1, epochs=10,
                                     batch_size=256), data=digits)


def _random_model(arch: str, width: float, variant: str, dtype: torch.dtype) -> nn.Module:
    torch.manual_seed(0)
    model = build_model_for(RunConfig(dataset="digits", arch=arch, width=width, variant=variant)).to(dtype)
    with torch.no_grad():  # non-trivial BatchNorm statistics, so every layer's scale matters
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    return model.eval()


def _random_problem(digits, model: nn.Module, tied: bool, n_targets: int = 4, n_pop: int = 48,
                    live_fraction: float | None = None, k_max: int = 12) -> Problem:
    dtype = next(model.parameters()).dtype
    gen = torch.Generator().manual_seed(3)
    pick = torch.randperm(len(digits.train.y), generator=gen)
    ids, pop = pick[:n_targets], pick[n_targets:n_targets + n_pop]
    x = digits.train.x.to(dtype)
    units = UnitSpace.of(model).total
    live = None if live_fraction is None else torch.rand(n_targets, units, generator=gen) < live_fraction
    return Problem(model=model, x=x[ids], y=digits.train.y[ids], ids=ids, pop_x=x[pop], pop_y=digits.train.y[pop],
                   pop_ids=pop, k_max=k_max, tied=tied, live=live, seed=5)


# Plain references: one target at a time, on the weights or with plain forward hooks ------------------------

def _forward(problem: Problem, model: nn.Module, x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    return model(x, ids=ids) if problem.tied else model(x)


def _unit_list(model: nn.Module) -> list[tuple[nn.Module, int]]:
    return [(layer.module, u) for layer in unit_layers(model) for u in range(layer.n_units)]


def _zero_unit(module: nn.Module, u: int) -> None:
    """Zero unit u's filter (weight row) and bias, the edit a removed unit stands for."""
    with torch.no_grad():
        module.weight[u] = 0
        if module.bias is not None:
            module.bias[u] = 0


class _Gates:
    """Multiply each unit module's output channel by gates[offset + channel] (plain forward hooks)."""

    def __init__(self, model: nn.Module, gates: torch.Tensor) -> None:
        self.handles, offset = [], 0
        for layer in unit_layers(model):
            def hook(module, inputs, out, lo=offset, n=layer.n_units):  # noqa: ANN001, ANN202
                g = gates[lo:lo + n]
                return out * (g.view(1, -1, *[1] * (out.dim() - 2)) if out.dim() > 2 else g)
            self.handles.append(layer.module.register_forward_hook(hook))
            offset += layer.n_units

    def __enter__(self) -> _Gates:
        return self

    def __exit__(self, *exc: object) -> None:
        for h in self.handles:
            h.remove()


def plain_zero_out(problem: Problem, t: int) -> np.ndarray:
    def losses(model: nn.Module) -> tuple[float, float]:
        with torch.no_grad():
            pop = F.cross_entropy(_forward(problem, model, problem.pop_x, problem.pop_ids), problem.pop_y).item()
            tgt = F.cross_entropy(_forward(problem, model, problem.x[t:t + 1], problem.ids[t:t + 1]),
                                  problem.y[t:t + 1]).item()
        return pop, tgt

    base_pop, base_tgt = losses(problem.model)
    edited = copy.deepcopy(problem.model)
    out = []
    for module, u in _unit_list(edited):
        saved = (module.weight[u].clone(), None if module.bias is None else module.bias[u].clone())
        _zero_unit(module, u)
        pop, tgt = losses(edited)
        out.append((tgt - base_tgt) - (pop - base_pop))
        with torch.no_grad():  # put the unit back for the next one
            module.weight[u] = saved[0]
            if saved[1] is not None:
                module.bias[u] = saved[1]
    return np.array(out)


def plain_activation(problem: Problem, t: int) -> np.ndarray:
    def acts(x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        caught = []
        handles = [layer.module.register_forward_hook(
            lambda m, i, o: caught.append(o.double().flatten(2).mean(2) if o.dim() > 2 else o.double()))
            for layer in unit_layers(problem.model)]
        with torch.no_grad():
            _forward(problem, problem.model, x, ids)
        for h in handles:
            h.remove()
        return torch.cat(caught, 1)

    pop = acts(problem.pop_x, problem.pop_ids)
    mean, std = pop.mean(0), pop.std(0, unbiased=False)
    return ((acts(problem.x[t:t + 1], problem.ids[t:t + 1])[0] - mean) / std).numpy()


def plain_grad_x_act(problem: Problem, t: int, model: nn.Module | None = None) -> np.ndarray:
    """sum over each unit's weights and bias of w * dJ/dw, J = mean_P loss - loss_t (the flip definition)."""
    model = copy.deepcopy(problem.model if model is None else model)
    j = (F.cross_entropy(_forward(problem, model, problem.pop_x, problem.pop_ids), problem.pop_y)
         - F.cross_entropy(_forward(problem, model, problem.x[t:t + 1], problem.ids[t:t + 1]), problem.y[t:t + 1]))
    model.zero_grad()
    j.backward()
    with torch.no_grad():
        return np.array([float((module.weight[u] * module.weight.grad[u]).sum()
                               + (0 if module.bias is None else module.bias[u] * module.bias.grad[u]))
                         for module, u in _unit_list(model)])


def plain_integrated_gradients(problem: Problem, t: int, steps: int) -> np.ndarray:
    units = UnitSpace.of(problem.model).total
    total = torch.zeros(units, dtype=torch.float64)
    for i in range(steps):
        gates = torch.full((units,), (i + 0.5) / steps, dtype=problem.x.dtype, requires_grad=True)
        with _Gates(problem.model, gates):
            logits = _forward(problem, problem.model, problem.x[t:t + 1], problem.ids[t:t + 1])
        log_p = F.log_softmax(logits, 1)[0, problem.y[t]]
        (grad,) = torch.autograd.grad(log_p, gates)
        total += grad.double()
    return (total / steps).numpy()


def plain_mask_scores(problem: Problem, t: int, method: str, steps: int, lr: float, weight: float) -> np.ndarray:
    """Slimming or hard concrete for target t alone, written out step by step."""
    units = UnitSpace.of(problem.model).total
    dtype = problem.x.dtype
    init = 1.0 if method == "slimming" else masks_module.LOG_ALPHA_INIT
    param = torch.full((units,), init, dtype=dtype, requires_grad=True)
    opt = torch.optim.Adam([param], lr=lr)
    stream = generator(problem.seed, f"hard-concrete-{int(problem.ids[t])}")
    gamma, zeta, beta = -0.1, 1.1, 2.0 / 3.0
    batch = min(32, len(problem.pop_x))
    for step in range(steps):
        purpose = "slimming" if method == "slimming" else "hard-concrete"
        sub = torch.randperm(len(problem.pop_x), generator=generator(problem.seed, f"{purpose}-population-{step}"))
        sub = sub[:batch]
        if method == "slimming":
            gates = param
            penalty = weight * (1 - param).sum()
        else:
            u = torch.rand(units, generator=stream, dtype=torch.float64).clamp(1e-6, 1 - 1e-6).to(dtype)
            s = torch.sigmoid((torch.log(u) - torch.log(1 - u) + param) / beta)
            gates = (s * (zeta - gamma) + gamma).clamp(0, 1)
            penalty = weight * torch.sigmoid(beta * math.log(-gamma / zeta) - param).sum()
        with _Gates(problem.model, gates):
            target = _forward(problem, problem.model, problem.x[t:t + 1], problem.ids[t:t + 1])
            pop = _forward(problem, problem.model, problem.pop_x[sub], problem.pop_ids[sub])
        loss = F.softmax(target, 1)[0, problem.y[t]] + F.cross_entropy(pop, problem.pop_y[sub]) + penalty
        opt.zero_grad()
        loss.backward()
        opt.step()
        if method == "slimming":
            with torch.no_grad():
                param.clamp_(0, 1)
    param = param.detach().double()
    return (1 - param if method == "slimming" else torch.sigmoid(beta * math.log(-gamma / zeta) - param)).numpy()


def plain_greedy(problem: Problem, t: int) -> list[int]:
    """Remove the present live unit of largest w * dJ/dw from a weight-zeroed copy, recompute, k_max times."""
    model = copy.deepcopy(problem.model)
    live = np.ones(UnitSpace.of(model).total, bool) if problem.live is None else problem.live[t].numpy()
    removed: list[int] = []
    for _ in range(min(problem.k_max, int(live.sum()))):
        score = plain_grad_x_act(problem, t, model)
        score[~live] = -np.inf
        score[removed] = -np.inf
        unit = int(np.argmax(score))
        removed.append(unit)
        module, u = _unit_list(model)[unit]
        _zero_unit(module, u)
    return removed


def plain_scores(name: str, problem: Problem, t: int, analysis: AnalysisConfig) -> np.ndarray:
    if name == "zero_out":
        return plain_zero_out(problem, t)
    if name == "activation":
        return plain_activation(problem, t)
    if name == "grad_x_act":
        return plain_grad_x_act(problem, t)
    if name == "integrated_gradients":
        return plain_integrated_gradients(problem, t, analysis.ig_steps)
    if name == "slimming":
        return plain_mask_scores(problem, t, "slimming", analysis.slimming_steps, analysis.slimming_lr,
                                 analysis.slimming_l1)
    return plain_mask_scores(problem, t, "hard_concrete", analysis.hard_concrete_steps, analysis.hard_concrete_lr,
                             analysis.hard_concrete_l0)


SCORED = ["zero_out", "activation", "grad_x_act", "integrated_gradients", "slimming", "hard_concrete"]
MODELS = {  # (arch, width, variant, dtype, tied, tolerance)
    "mlp": ("mlp", 0.25, "standard", torch.float64, False, 1e-8),
    "tied-mlp": ("mlp", 0.25, "tied", torch.float64, True, 1e-8),
    "tied-mlp-all": ("mlp", 0.25, "tied", torch.float64, False, 1e-8),
    "resnet9": ("resnet9", 0.125, "standard", torch.float32, False, 2e-4),
}


def _check_ranking(problem: Problem, t: int, ranking, plain: np.ndarray, tol: float) -> None:
    live = np.ones(len(plain), bool) if problem.live is None else problem.live[t].numpy()
    assert len(ranking.units) == min(problem.k_max, int(live.sum()))
    assert live[ranking.units].all()
    scale = tol * max(1.0, float(np.abs(plain[np.isfinite(plain)]).max()))
    np.testing.assert_allclose(ranking.scores, plain[ranking.units], rtol=0, atol=scale)
    # the ranked units are the best live ones: nothing left out scores clearly above the last one kept
    left_out = np.setdiff1d(np.flatnonzero(live), ranking.units)
    if len(left_out):
        assert plain[left_out].max() <= ranking.scores[-1] + scale


@pytest.mark.parametrize("which", sorted(MODELS))
@pytest.mark.parametrize("name", SCORED)
def test_batched_localizer_equals_the_plain_one_target_loop(name, which, digits):
    arch, width, variant, dtype, tied, tol = MODELS[which]
    model = _random_model(arch, width, variant, dtype)
    problem = _random_problem(digits, model, tied, n_targets=3 if arch == "resnet9" else 4, live_fraction=0.7)
    rankings = localize(name, problem, FAST)
    assert len(rankings) == len(problem.x)
    for t, ranking in enumerate(rankings):
        _check_ranking(problem, t, ranking, plain_scores(name, problem, t, FAST), tol)


@pytest.mark.parametrize("tied", [False, True])
def test_greedy_equals_a_plain_weight_zeroing_search(tied, digits):
    model = _random_model("mlp", 0.25, "tied" if tied else "standard", torch.float64)
    problem = _random_problem(digits, model, tied, n_targets=3, live_fraction=0.6, k_max=6)
    for t, ranking in enumerate(localize("greedy", problem, FAST)):
        assert ranking.units.tolist() == plain_greedy(problem, t)
        assert problem.live[t][ranking.units].all()


def test_greedy_removes_the_flip_probes_units_up_to_the_flip(trained_mlp):
    run = trained_mlp
    model = run.model_at(run.final_epoch).eval()
    sel = select_targets(model, run, 10, 10, seed=0)
    model = model.to(torch.float64)
    pop = population_ids(len(run.labels), 256, seed=0)
    x = run.data.train.x.to(torch.float64)
    problem = Problem(model=model, x=x[sel.ids], y=run.labels[sel.ids], ids=sel.ids, pop_x=x[pop],
                      pop_y=run.labels[pop], pop_ids=pop, k_max=30)
    probe = flip_batched(model, problem.x, problem.y, problem.pop_x, problem.pop_y, cap=problem.k_max)
    rankings = localize("greedy", problem, FAST)
    assert sum(o.flipped for o in probe) >= 15  # the comparison covers real flip points
    for outcome, ranking in zip(probe, rankings, strict=True):
        assert len(ranking.units) == problem.k_max
        assert len(set(ranking.units.tolist())) == problem.k_max
        if outcome.flipped:
            assert ranking.flip_k == len(outcome.units)
            assert ranking.units[:ranking.flip_k].tolist() == outcome.units
        else:
            assert ranking.flip_k is None and ranking.units.tolist() == outcome.units
        # grad_x_act is greedy's first step without recomputation: its best unit is greedy's first choice
    assert [r.units[0] for r in localize("grad_x_act", problem, FAST)] == [r.units[0] for r in rankings]


def _model_state(model: nn.Module) -> tuple:
    return ({k: v.clone() for k, v in model.state_dict().items()}, [m.training for m in model.modules()],
            [p.requires_grad for p in model.parameters()], [p.stride() for p in model.parameters()])


@pytest.mark.parametrize("name", sorted(LOCALIZERS))
def test_localizer_leaves_the_model_as_it_found_it(name, digits):
    model = _random_model("resnet9", 0.125, "tied", torch.float32)
    before = _model_state(model)
    localize(name, _random_problem(digits, model, tied=True, n_targets=2, live_fraction=0.5), FAST)
    after = _model_state(model)
    assert all(torch.equal(before[0][k], after[0][k]) for k in before[0])
    assert before[1:] == after[1:]
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("name", sorted(LOCALIZERS))
def test_rankings_are_deterministic_and_cover_few_live_units(name, digits):
    model = _random_model("mlp", 0.25, "standard", torch.float64)
    problem = _random_problem(digits, model, tied=False, n_targets=2, live_fraction=0.02, k_max=50)
    first = localize(name, problem, FAST)
    again = localize(name, problem, FAST)
    for t, (a, b) in enumerate(zip(first, again, strict=True)):
        live = problem.live[t].numpy()
        assert len(a.units) == int(live.sum()) < problem.k_max  # all live units, fewer than k_max
        assert set(a.units.tolist()) == set(np.flatnonzero(live).tolist())
        assert np.array_equal(a.units, b.units) and np.array_equal(a.scores, b.scores)
