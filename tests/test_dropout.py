"""Example-tied dropout masks and modes, and the two baselines (DESIGN.md §4)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sweep.config import RunConfig
from sweep.dropout import (
    ExampleTiedDropout,
    SparseChannels,
    SparseElements,
    StandardDropout,
    drop_factor,
    make_dropout,
    mask_seed,
    set_dropout_mode,
    tied_modules,
)
from sweep.models.for_run import build_model_for


def tied(channels: int = 40, **kw) -> ExampleTiedDropout:
    return ExampleTiedDropout(channels, **{"p_gen": 0.4, "p_mem": 0.2, "seed": 3, "layer": 1, **kw})


def test_mask_is_a_function_of_the_example_alone() -> None:
    drop = tied()
    alone = drop.mask(torch.tensor([7]))
    first = drop.mask(torch.tensor([7, 1, 2, 3]))
    other = drop.mask(torch.tensor([900, 55, 7]))
    assert torch.equal(first[0], alone[0]) and torch.equal(other[2], alone[0])
    # A rebuilt module (a later epoch, a reloaded checkpoint, another process) gives the same masks.
    assert torch.equal(tied().mask(torch.arange(500)), drop.mask(torch.arange(500)))
    # Different examples, layers and seeds get different masks.
    assert not torch.equal(drop.mask(torch.arange(500)), tied(layer=2).mask(torch.arange(500)))
    assert not torch.equal(drop.mask(torch.arange(500)), tied(seed=4).mask(torch.arange(500)))
    masks = drop.mem_mask(torch.arange(500))
    assert len({tuple(row.tolist()) for row in masks}) > 450


def test_forward_is_independent_of_batch_order_and_epoch() -> None:
    drop = tied(8).train()
    x = torch.randn(6, 8, 3, 3)
    ids = torch.tensor([10, 11, 12, 13, 14, 15])
    out = drop(x, ids)
    perm = torch.tensor([4, 0, 5, 2, 1, 3])
    assert torch.equal(drop(x[perm], ids[perm]), out[perm])
    assert torch.equal(drop(x[2:3], ids[2:3]), out[2:3])
    assert torch.equal(drop(x, ids), out)  # "the next epoch"


def test_memorization_channels_are_on_with_probability_p_mem() -> None:
    drop = tied(100, p_gen=0.4, p_mem=0.2)
    mem = drop.mem_mask(torch.arange(20_000)).float()
    assert mem.shape == (20_000, 60)
    assert abs(mem.mean().item() - 0.2) < 0.003
    assert (mem.mean(0) - 0.2).abs().max() < 0.015  # every channel, not just on average
    centred = mem - mem.mean(0)
    corr = (centred.T @ centred) / (centred.norm(dim=0)[:, None] * centred.norm(dim=0)[None, :])
    off_diagonal = corr[~torch.eye(60, dtype=torch.bool)]
    assert off_diagonal.abs().max() < 0.04  # channels decided independently


def test_generalization_channels_are_always_on() -> None:
    drop = tied(50, p_gen=0.4)
    assert drop.n_gen == 20
    mask = drop.mask(torch.arange(5_000))
    assert mask[:, :20].all()
    assert tied(100, p_gen=0.29).n_gen == 29  # floor(p_gen * C) despite float error


def test_masks_for_a_hundred_thousand_examples_in_one_call() -> None:
    drop = tied(128)
    mask = drop.mask(torch.arange(100_000))  # one vectorised call, no table behind it
    assert mask.shape == (100_000, 128) and mask.dtype == torch.bool
    assert abs(mask[:, drop.n_gen:].float().mean().item() - 0.2) < 0.005
    assert torch.equal(mask[99_990:], drop.mask(torch.arange(99_990, 100_000)))
    # ids beyond 32 bits are fine too
    assert drop.mask(torch.tensor([2**40 + 5, 5])).shape == (2, 128)


@pytest.mark.parametrize("shape", [(5, 40), (5, 40, 4, 4)])
def test_train_mode_equals_tied_eval_and_applies_the_mask(shape: tuple[int, ...]) -> None:
    drop = tied()
    x = torch.randn(shape)
    ids = torch.tensor([3, 30, 300, 3000, 30000])
    train_out = drop.train()(x, ids)
    tied_out = drop.eval()(x, ids)  # automatic: eval with ids -> tied
    assert drop.current_mode(ids) == "tied"
    assert torch.equal(train_out, tied_out)
    mask = drop.mask(ids).float().reshape(5, 40, *([1] * (len(shape) - 2)))
    assert torch.equal(train_out, x * mask)  # no rescaling
    set_dropout_mode(drop, "tied")
    assert torch.equal(drop.train()(x, ids), tied_out)


@pytest.mark.parametrize("rule", ["paper", "expected"])
@pytest.mark.parametrize("shape", [(4, 40), (4, 40, 3, 3)])
def test_drop_zeroes_exactly_the_memorization_channels(rule: str, shape: tuple[int, ...]) -> None:
    drop = tied().eval()
    assert set_dropout_mode(drop, "drop", rule) == 1
    x = torch.rand(shape) + 0.5
    out = drop(x, torch.arange(4))  # ids are ignored when dropping
    assert (out[:, drop.n_gen:] == 0).all()
    factor = drop.drop_scale
    assert factor == pytest.approx(drop_factor(0.4, 0.2, rule))
    assert factor == pytest.approx(1.5 if rule == "paper" else 1.3)
    torch.testing.assert_close(out[:, :drop.n_gen], x[:, :drop.n_gen] * factor)
    assert torch.equal(drop(x), out)


def test_all_mode_scales_memorization_channels_by_p_mem() -> None:
    drop = tied().eval()
    x = torch.rand(3, 40, 2, 2)
    out = drop(x)  # automatic: eval without ids -> all
    assert drop.current_mode(None) == "all"
    torch.testing.assert_close(out[:, :16], x[:, :16])
    torch.testing.assert_close(out[:, 16:], x[:, 16:] * 0.2)


def test_modes_need_ids_where_masks_are_used_and_keep_dtype() -> None:
    drop = tied().train()
    with pytest.raises(ValueError, match="ids"):
        drop(torch.randn(2, 40))
    set_dropout_mode(drop, "all")
    x = torch.randn(2, 40, dtype=torch.bfloat16)
    assert drop(x).dtype == torch.bfloat16  # an explicit mode wins over the training flag
    set_dropout_mode(drop, None)
    assert drop(x, torch.tensor([1, 2])).dtype == torch.bfloat16
    with pytest.raises(ValueError, match="mode"):
        set_dropout_mode(drop, "sometimes")
    with pytest.raises(ValueError, match="scale_rule"):
        set_dropout_mode(drop, "drop", "doubled")


def test_set_dropout_mode_walks_a_model() -> None:
    factory = make_dropout(RunConfig(variant="tied"))
    model = nn.ModuleList([factory(0, 8), nn.Linear(8, 8), factory(1, 8)])
    assert set_dropout_mode(model, "drop", "expected") == 2
    assert all(m.mode == "drop" and m.scale_rule == "expected" for m in (model[0], model[2]))
    assert not torch.equal(model[0].mask(torch.arange(50)), model[2].mask(torch.arange(50)))


def test_standard_dropout_is_random_in_training_and_off_in_eval() -> None:
    drop = StandardDropout()
    x = torch.ones(200, 16, 4, 4)
    a, b = drop.train()(x, torch.arange(200)), drop(x)
    assert not torch.equal(a, b)
    assert abs((a == 0).float().mean().item() - 0.4) < 0.02
    assert torch.equal(drop.eval()(x, torch.arange(200)), x)


def test_sparse_channels_are_fixed_at_train_and_test() -> None:
    """`sparse_mask = "channels"` (the earlier rule): a fixed 40% of channels, no rescaling."""
    assert isinstance(make_dropout(RunConfig(variant="sparse", sparse_mask="channels"))(0, 50), SparseChannels)
    drop = SparseChannels(50, p=0.4, seed=1, layer=2)
    x = torch.rand(7, 50, 2, 2) + 0.5
    train_out, eval_out = drop.train()(x, torch.arange(7)), drop.eval()(x)
    assert torch.equal(train_out, eval_out)
    zero = (train_out == 0).all(dim=(0, 2, 3))
    assert int(zero.sum()) == 20
    torch.testing.assert_close(train_out[:, ~zero], x[:, ~zero])
    assert torch.equal(SparseChannels(50, 0.4, seed=1, layer=2).keep, drop.keep)
    assert not torch.equal(SparseChannels(50, 0.4, seed=1, layer=3).keep, drop.keep)


def test_make_dropout_builds_each_variant() -> None:
    module = make_dropout(RunConfig(variant="tied", p_gen=0.5, p_mem=0.3))(2, 10)
    assert isinstance(module, ExampleTiedDropout)
    assert (module.n_gen, module.p_mem, module.layer) == (5, 0.3, 2)
    assert isinstance(make_dropout(RunConfig(variant="dropout"))(0, 10), StandardDropout)
    assert isinstance(make_dropout(RunConfig(variant="sparse"))(0, 10), SparseElements)  # the paper's, by default
    seeds = {make_dropout(RunConfig(variant="tied", seed=s))(0, 10).seed for s in range(3)}
    assert len(seeds) == 3
    with pytest.raises(ValueError):
        make_dropout(RunConfig(variant="standard"))
    # Derived masks stay out of checkpoints: state_dicts hold weights only.
    assert module.state_dict() == {} and SparseChannels(10).state_dict() == {} and SparseElements().state_dict() == {}


def test_sparse_network_is_the_papers_fixed_elementwise_mask_rescaled() -> None:
    """The default sparse baseline (`sparse_mask = "paper"`): element-wise, one mask for every example, call and
    mode, 40% dropped, survivors times 1/(1-p) so the mean activation is kept in expectation."""
    drop = make_dropout(RunConfig(variant="sparse", seed=2))(3, 16)
    assert isinstance(drop, SparseElements) and (drop.p, drop.layer) == (0.4, 3)
    x = torch.rand(5, 16, 6, 6) + 0.5
    out = drop.train()(x, torch.arange(5))
    assert torch.equal(out, drop(x[[3, 1, 0, 4, 2]], torch.arange(5))[[2, 1, 4, 0, 3]])  # no tie to the row
    assert torch.equal(out, drop.eval()(x)) and torch.equal(out, drop(x, torch.tensor([9, 8, 7, 6, 5])))
    kept = out != 0
    assert torch.equal(kept, kept[:1].expand_as(kept)), "the same mask for every example"
    per_channel = kept[0].flatten(1).float().mean(1)
    assert ((per_channel > 0) & (per_channel < 1)).any(), "element-wise: a channel is partly kept"
    torch.testing.assert_close(out[kept], x[kept] / 0.6)
    # Over many elements: 40% dropped, each element independently, the mean activation preserved.
    big = SparseElements(0.4, seed=0, layer=0).keep((64, 32, 32)).float()
    assert abs(1 - big.mean().item() - 0.4) < 0.01 and (big.mean((1, 2)) - 0.6).abs().max() < 0.06
    ones = torch.ones(2, 64, 32, 32)
    assert abs(SparseElements(0.4)(ones).mean().item() - 1.0) < 0.02
    # Reproducible from (seed, layer); another layer or seed gets another mask.
    seed = mask_seed(RunConfig(variant="sparse", seed=2))
    assert torch.equal(SparseElements(0.4, seed=seed, layer=3).keep((16, 6, 6)), kept[0])
    assert not torch.equal(SparseElements(0.4, seed=seed, layer=4).keep((16, 6, 6)), kept[0])
    assert not torch.equal(SparseElements(0.4, seed=seed + 1, layer=3).keep((16, 6, 6)), kept[0])
    # Per feature on flat activations (the MLP), rescaled too.
    flat = SparseElements(0.4, seed=0, layer=1)(torch.ones(3, 1000))
    assert flat.unique().tolist() == [0.0, pytest.approx(1 / 0.6)] and torch.equal(flat, flat[:1].expand_as(flat))


@pytest.mark.parametrize("arch,places,expected", [
    ("resnet9", "paper", ["conv1", "conv2", "res1b", "conv3", "res2b", "conv4"]),
    ("resnet9", "blocks", ["conv1", "conv2", "res1a", "res1b", "conv3", "res2a", "res2b", "conv4"]),
    ("mlp", "paper", ["fc1", "fc2", "fc3"]),
])
def test_tied_masks_are_recomputable_from_seed_layer_and_example(arch: str, places: str, expected: list) -> None:
    """The documented layer indexing: module k sits in the k-th place, masks `<block>`'s output channels, and its
    mask is ExampleTiedDropout(C, p_gen, p_mem, seed=mask_seed(cfg), layer=k) for any example id."""
    cfg = RunConfig(arch=arch, variant="tied", width=0.25, seed=5, dropout_places=places)
    model = build_model_for(cfg)
    found = tied_modules(model)
    assert [name for name, _ in found] == [f"{block}.drop" for block in expected]
    ids = torch.tensor([0, 17, 1234, 5])
    for layer, (name, module) in enumerate(found):
        block = model.get_submodule(name.removesuffix(".drop"))
        owner = block.conv if arch == "resnet9" else block.linear
        units = owner.out_channels if arch == "resnet9" else owner.out_features
        fresh = ExampleTiedDropout(units, cfg.p_gen, cfg.p_mem, seed=mask_seed(cfg), layer=layer)
        assert module.layer == layer and torch.equal(module.mask(ids), fresh.mask(ids)), name
