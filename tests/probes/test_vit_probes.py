"""The paper's ViT (sweep/models/vit.py) through every probe: gradient accounting, rewinding, retraining and
neuron flipping, at a tiny width on 512 training digits (8x8: 16 patch tokens and the class token).

Its own dropout (0.1, random in training) makes this more than a shape check: the gradient accounting must split
the same stochastic forward pass, and retraining trains with dropout on while every probe evaluates with it off.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from sweep.config import AnalysisConfig, RunConfig
from sweep.data import Split
from sweep.models.groups import group_names, group_state_keys, unit_layers
from sweep.probes.flip import UnitSpace, flip_batched, flip_signature, population_ids, run_flip
from sweep.probes.flip_reference import flip_plain
from sweep.probes.retrain import retrain_group
from sweep.probes.rewind import load_group
from sweep.train import Trainer, prepare, train_in_memory
from tests.gradients_reference import brute_force_gradient_rows

WIDTH = 0.0625  # dim 32, head dim 4, MLP 32


@pytest.fixture(scope="module")
def small(digits):
    return replace(digits, train=Split(digits.train.x[:512], digits.train.y[:512]),
                   test=Split(digits.test.x[:128], digits.test.y[:128]))


@pytest.fixture(scope="module")
def vit_run(small):
    cfg = RunConfig(dataset="digits", arch="vit", width=WIDTH, noise=0.1, epochs=2, batch_size=128, lr=0.05)
    return train_in_memory(cfg, data=small)


def test_gradient_accounting_on_the_vit_matches_brute_force(small):
    """One epoch of the trainer's split (one forward, clean part then noisy part backpropagated) against separate
    autograd.grad calls summed in float64. Both trainers start from the same seed, so the global generator gives
    both the same dropout masks, batch after batch."""
    cfg = RunConfig(dataset="digits", arch="vit", width=WIDTH, noise=0.2, epochs=2, batch_size=128, seed=3).validate()
    prep = prepare(cfg, torch.device("cpu"), data=small)
    ours = Trainer(cfg, prep, torch.device("cpu")).train_epoch()[1]

    brute = brute_force_gradient_rows(cfg, small, epochs=1)
    assert [row["layer_name"] for row in ours] == list(brute["layer_name"])
    for row, (_, ref) in zip(ours, brute.iterrows(), strict=True):
        np.testing.assert_allclose([row["clean_norm"], row["noisy_norm"], row["cosine"], row["cosine_flat"]],
                                   [ref["clean_norm"], ref["noisy_norm"], ref["cosine"], ref["cosine_flat"]],
                                   rtol=2e-4, atol=1e-7, err_msg=row["layer_name"])
        assert row["clean_norm"] > 0 and row["noisy_norm"] > 0


def test_rewinding_every_vit_group_to_epoch_0_gives_the_initial_model(vit_run):
    model, initial = vit_run.model_at(vit_run.final_epoch), vit_run.model_at(0)
    covered = []
    for group in group_names(model):
        keys = group_state_keys(model, group)
        covered += keys
        load_group(model, vit_run.state(0), keys)
    assert sorted(covered) == sorted(model.state_dict())
    x = vit_run.data.train.x[:64]
    with torch.no_grad():
        assert torch.equal(model(x), initial(x))  # eval mode: the ViT's dropout is off in every probe
        assert not torch.equal(vit_run.model_at(vit_run.final_epoch)(x), initial(x))


@pytest.mark.parametrize("group", ["patch_embed", "block3", "head"])
def test_retraining_a_vit_group_moves_it_and_nothing_else(vit_run, group):
    final, initial = vit_run.state(vit_run.final_epoch), vit_run.state(0)
    model, rows = retrain_group(vit_run, group, AnalysisConfig(retrain_epochs=1))
    keys = set(group_state_keys(model, group))
    after = model.state_dict()
    assert all(torch.equal(after[k], final[k]) for k in after if k not in keys)
    assert any(not torch.equal(after[k], initial[k]) for k in keys if k.endswith("weight"))
    assert rows["retrain_epoch"].tolist() == [0, 1]


def test_flipping_a_vit_chooses_the_plain_loops_units(vit_run):
    """Two targets (taken at the model's own prediction, so both start correct), a cap of 4 units: the batched
    engine and the plain weight-zeroing loop remove the same ViT units (float64, no near-tie rounding)."""
    model = vit_run.model_at(vit_run.final_epoch).double()
    x = vit_run.data.train.x[:2].double()
    with torch.no_grad():
        y = model(x).argmax(1)
    pop = population_ids(len(vit_run.labels), 64, seed=0)
    pop_x, pop_y = vit_run.data.train.x[pop].double(), vit_run.labels[pop]
    fast = flip_batched(model, x, y, pop_x, pop_y, cap=4)
    plain = flip_plain(model, x, y, pop_x, pop_y, cap=4)
    assert [o.units for o in fast] == [o.units for o in plain]
    assert [o.flipped for o in fast] == [o.flipped for o in plain]
    space = UnitSpace.of(model)
    assert space.total == sum(layer.n_units for layer in unit_layers(model))
    assert all(1 <= len(o.units) <= 4 for o in fast)
    modules = {space.describe(u)["module"] for o in fast for u in o.units}
    assert modules <= {layer.name for layer in unit_layers(model)}


def test_the_flip_probe_writes_rows_for_a_vit(vit_run):
    analysis = AnalysisConfig(flip_clean=2, flip_noisy=2, flip_cap=3, flip_chunk=4, flip_population=64,
                              flip_eval_size=32)
    flips = run_flip(vit_run, f"0-{flip_signature(analysis)}", analysis)["flips"]
    assert 1 <= len(flips) <= 4 and (flips["n_units"] <= 3).all() and (flips["n_units"] >= 1).all()
    assert set(flips["example_id"]) <= set(range(len(vit_run.labels)))
