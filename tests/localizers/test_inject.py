"""Injected ground truth: the new labels are fitted, nothing outside the chosen units moved, and it is
deterministic. Models are trained briefly on `digits` (10% label noise)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from sweep.config import AnalysisConfig, RunConfig
from sweep.errors import UserError
from sweep.localizers.inject import inject
from sweep.probes.flip import UnitSpace, predict_plain
from sweep.train import train_in_memory


@pytest.fixture(scope="module")
def mlp_run(digits):
    return train_in_memory(RunConfig(dataset="digits", arch="mlp", width=0.25, noise=0.1, epochs=10,
                                     batch_size=256), data=digits)


@pytest.fixture(scope="module")
def resnet_run(digits):
    return train_in_memory(RunConfig(dataset="digits", arch="resnet9", width=0.125, noise=0.1, epochs=6,
                                     batch_size=256), data=digits)


def _unit_entries(model: torch.nn.Module, units: np.ndarray) -> dict[str, torch.Tensor]:
    """Per parameter name, a bool mask of the chosen units' entries, computed from UnitSpace directly."""
    space = UnitSpace.of(model)
    names = {id(m): n for n, m in model.named_modules()}
    masks = {n: torch.zeros_like(p, dtype=torch.bool) for n, p in model.named_parameters()}
    for unit in units:
        d = space.describe(int(unit))
        module = model.get_submodule(d["module"])
        assert names[id(module)] == d["module"]
        masks[f"{d['module']}.weight"][d["unit"]] = True
        if module.bias is not None:
            masks[f"{d['module']}.bias"][d["unit"]] = True
    return masks


def _check(run, analysis: AnalysisConfig) -> None:
    model = run.model_at(run.final_epoch)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    inj = inject(model, run.data.train.x, run.labels, run.is_noisy, 3, analysis)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items()), "input model changed"
    assert len(inj.target_ids) == analysis.inject_targets and len(inj.units) == analysis.inject_units
    assert not run.is_noisy[inj.target_ids].any()
    assert (inj.new_labels != run.labels[inj.target_ids]).all()
    assert (predict_plain(model, run.data.train.x[inj.target_ids]) == run.labels[inj.target_ids]).all()
    assert inj.fitted.all() and 0 < inj.steps <= analysis.inject_steps
    tuned = run.model_at(run.final_epoch)
    tuned.load_state_dict(inj.state)
    assert (predict_plain(tuned, run.data.train.x[inj.target_ids]) == inj.new_labels).all()

    masks = _unit_entries(model, inj.units)
    params = dict(model.named_parameters())
    for name, value in inj.state.items():
        if name in masks and masks[name].any():
            mask = masks[name]
            assert torch.equal(value[~mask], params[name].detach()[~mask]), name
        else:
            assert torch.equal(value, before[name]), f"{name} changed outside the chosen units"
    changed = [u for u in inj.units if any(
        not torch.equal(inj.state[n][m], params[n].detach()[m]) for n, m in _unit_entries(model, [u]).items()
        if m.any())]
    assert len(changed) >= 1

    again = inject(model, run.data.train.x, run.labels, run.is_noisy, 3, analysis)
    assert torch.equal(again.target_ids, inj.target_ids) and torch.equal(again.new_labels, inj.new_labels)
    assert np.array_equal(again.units, inj.units) and again.steps == inj.steps
    assert all(torch.equal(again.state[k], v) for k, v in inj.state.items())
    other = inject(model, run.data.train.x, run.labels, run.is_noisy, 4, analysis)
    assert not np.array_equal(other.units, inj.units)


def test_injection_on_a_digits_mlp_fits_and_touches_only_the_chosen_units(mlp_run):
    _check(mlp_run, AnalysisConfig())  # the defaults: 10 targets, 32 units


def test_injection_on_a_tiny_resnet9_fits_and_touches_only_the_chosen_units(resnet_run):
    _check(resnet_run, AnalysisConfig(inject_targets=4, inject_units=32, inject_population=64))


def test_more_targets_than_eligible_clean_examples_is_refused(mlp_run):
    model = mlp_run.model_at(mlp_run.final_epoch)
    with pytest.raises(UserError, match="inject_targets=100000") as err:
        inject(model, mlp_run.data.train.x, mlp_run.labels, mlp_run.is_noisy, 0,
               dataclasses.replace(AnalysisConfig(), inject_targets=100000))
    assert "\n" not in str(err.value)
    with pytest.raises(UserError, match="inject_units=100000"):
        inject(model, mlp_run.data.train.x, mlp_run.labels, mlp_run.is_noisy, 0,
               dataclasses.replace(AnalysisConfig(), inject_units=100000))
