"""Neuron flipping: the batched engine against the plain weight-zeroing loop, the probe's rows and its checks.

Models are trained briefly on `digits` (10% label noise). The MLP comparisons run in float64, so the two ways
of computing the same attribution (per-row y * dJ/dy on outputs vs w * dJ/dw on parameters) cannot pick
different units through float32 rounding in a near tie; the ResNet-9 one runs in float32 (as the probe does),
because float64 convolutions on the CPU are ~20x slower.
"""

from __future__ import annotations

import copy
import statistics

import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch

from sweep.config import AnalysisConfig, RunConfig
from sweep.errors import UserError
from sweep.models.groups import group_names, unit_layers
from sweep.probes import PROBES
from sweep.probes.flip import (
    FLIP_COLUMNS,
    UNITS_TYPE,
    UnitSpace,
    chunk_order,
    edited_accuracies,
    empty_flips,
    flip_batched,
    flip_shards,
    flip_signature,
    input_noise,
    population_ids,
    predict_plain,
    run_flip,
    select_targets,
)
from sweep.probes.flip_reference import flip_plain
from sweep.schemas import TABLES
from sweep.store import Store, with_run_columns
from sweep.train import train_in_memory


@pytest.fixture(scope="module")
def mlp_run(digits):
    return train_in_memory(RunConfig(dataset="digits", arch="mlp", width=0.25, noise=0.1, epochs=20,
                                     batch_size=256), data=digits)


@pytest.fixture(scope="module")
def resnet_run(digits):
    return train_in_memory(RunConfig(dataset="digits", arch="resnet9", width=0.25, noise=0.1, epochs=15,
                                     batch_size=256), data=digits)


@pytest.fixture(scope="module")
def mlp_flip_tables(mlp_run):
    """The probe on 60 clean + 60 noisy examples of the MLP run, in one chunk: both of its tables."""
    analysis = AnalysisConfig(flip_clean=60, flip_noisy=60, flip_chunk=120, flip_eval_size=200)
    return run_flip(mlp_run, _shard(analysis, 0), analysis)


@pytest.fixture(scope="module")
def mlp_flips(mlp_flip_tables):
    return mlp_flip_tables["flips"]


def _shard(analysis: AnalysisConfig, index: int) -> str:
    return f"{index}-{flip_signature(analysis)}"


def _problem(run, n_clean: int, n_noisy: int, dtype: torch.dtype = torch.float64, population: int = 512):
    """(model, x, y, pop_x, pop_y, target ids, pop ids) for selected targets, in `dtype`."""
    model = run.model_at(run.final_epoch)
    sel = select_targets(model, run, n_clean, n_noisy, seed=0)
    assert sel.is_noisy.sum() == n_noisy and (~sel.is_noisy).sum() == n_clean
    pop = population_ids(len(run.labels), population, seed=0)
    x = run.data.train.x.to(dtype)
    return model.to(dtype), x[sel.ids], run.labels[sel.ids], x[pop], run.labels[pop], sel.ids, pop


def _assert_same(fast, plain) -> None:
    assert [o.units for o in fast] == [o.units for o in plain]
    assert [o.flipped for o in fast] == [o.flipped for o in plain]


@pytest.mark.parametrize(("which", "dtype"), [("mlp_run", torch.float64), ("resnet_run", torch.float32)])
def test_batched_engine_removes_the_same_units_as_the_plain_loop(which, dtype, request):
    model, x, y, pop_x, pop_y, _, _ = _problem(request.getfixturevalue(which), 8, 8, dtype)
    fast = flip_batched(model, x, y, pop_x, pop_y, cap=1000)
    _assert_same(fast, flip_plain(model, x, y, pop_x, pop_y, cap=1000))
    assert all(o.flipped for o in fast) and all(len(o.units) >= 1 for o in fast)


def test_pass_size_does_not_change_the_choices(mlp_run):
    """Smaller passes regroup the rows (and split masks across passes) but must not change a single choice."""
    model, x, y, pop_x, pop_y, _, _ = _problem(mlp_run, 6, 6)
    whole = flip_batched(model, x, y, pop_x, pop_y, 1000)
    _assert_same(whole, flip_batched(model, x, y, pop_x, pop_y, 1000, rows=97))


def test_engine_leaves_the_model_as_it_found_it(resnet_run):
    """Flipping switches modes, gradient flags and the conv weights' layout only while it runs."""
    model, x, y, pop_x, pop_y, _, _ = _problem(resnet_run, 2, 2, dtype=torch.float32, population=64)
    model.train()
    tensors = {name: (p, p.data_ptr(), p.stride(), p.requires_grad) for name, p in model.named_parameters()}
    values = copy.deepcopy(model.state_dict())
    flip_batched(model, x, y, pop_x, pop_y, cap=3)
    assert model.training and all(m.training for m in model.modules())
    for name, p in model.named_parameters():
        param, pointer, stride, flag = tensors[name]
        assert p is param and (p.data_ptr(), p.stride(), p.requires_grad) == (pointer, stride, flag)
    assert all(torch.equal(values[k], v) for k, v in model.state_dict().items())


def test_noise_averaging_matches_the_plain_loop(mlp_run):
    model, x, y, pop_x, pop_y, ids, pop = _problem(mlp_run, 4, 4, population=128)
    noise, pop_noise = input_noise(x, ids, 2, 0.01, seed=0), input_noise(pop_x, pop, 2, 0.01, seed=0)
    norms = noise.flatten(2).norm(dim=2) / x.flatten(1).norm(dim=1)[:, None]
    assert torch.allclose(norms, torch.full_like(norms, 0.01))
    again = input_noise(x[1:3], ids[1:3], 2, 0.01, seed=0)  # per example id: the same in any batch
    assert torch.equal(again, noise[1:3])
    fast = flip_batched(model, x, y, pop_x, pop_y, 1000, noise=noise, pop_noise=pop_noise)
    _assert_same(fast, flip_plain(model, x, y, pop_x, pop_y, 1000, noise=noise, pop_noise=pop_noise))


def test_noisy_examples_flip_after_fewer_units_than_clean_ones(mlp_flips):
    clean = mlp_flips.loc[~mlp_flips.is_noisy, "n_units"]
    noisy = mlp_flips.loc[mlp_flips.is_noisy, "n_units"]
    assert len(clean) == 60 and len(noisy) == 60
    assert statistics.median(noisy) < statistics.median(clean)


def test_flip_rows_are_complete_and_consistent(mlp_run, mlp_flips):
    frame = mlp_flips
    assert list(frame.columns) == list(FLIP_COLUMNS)
    assert frame.example_id.is_unique
    assert (frame.flipped | (frame.n_units == 1000)).all()
    model = mlp_run.model_at(mlp_run.final_epoch)
    space = UnitSpace.of(model)
    modules = {layer.name: (layer.group, layer.n_units) for layer in space.layers}
    groups = group_names(model)  # `layer` is the same group index as in the rewinding/retraining tables
    for units, n in zip(frame.units, frame.n_units, strict=True):
        assert len(units) == n >= 1
        keys = [(u["module"], u["unit"]) for u in units]
        assert len(set(keys)) == len(keys)  # no unit removed twice
        for u in units:
            group, size = modules[u["module"]]
            assert u["layer_name"] == group and u["layer"] == groups.index(group) and 0 <= u["unit"] < size
    acc = frame[[c for c in FLIP_COLUMNS if c.endswith("acc") or c.endswith("_base")]]
    assert ((acc >= 0) & (acc <= 1)).all().all()
    assert frame.clean_acc_base.nunique() == 1 and frame.clean_acc_base.iloc[0] > 0.9
    noisy = mlp_run.is_noisy.cpu()
    model = mlp_run.model_at(mlp_run.final_epoch)
    eligible = (predict_plain(model, mlp_run.data.train.x) == mlp_run.labels).cpu()
    assert (frame.n_eligible_clean == int((eligible & ~noisy).sum())).all()
    assert (frame.n_eligible_noisy == int((eligible & noisy).sum())).all()
    assert (noisy[torch.tensor(frame.example_id.values)].numpy() == frame.is_noisy.values).all()


def test_cap_stops_the_search_and_records_no_flip(mlp_run):
    analysis = AnalysisConfig(flip_clean=10, flip_noisy=10, flip_cap=1, flip_chunk=20, flip_eval_size=50)
    frame = run_flip(mlp_run, _shard(analysis, 0), analysis)["flips"]
    assert (frame.n_units == 1).all()
    assert (~frame.flipped).any()
    assert (frame.units.map(len) == 1).all()


def test_selection_picks_distinct_eligible_examples_by_seed(mlp_run):
    model = mlp_run.model_at(mlp_run.final_epoch)
    correct = (predict_plain(model, mlp_run.data.train.x) == mlp_run.labels).cpu()
    sel = select_targets(model, mlp_run, 30, 10_000, seed=0)
    assert len(sel.ids) == len(set(sel.ids.tolist()))
    assert correct[sel.ids].all()
    assert int((~sel.is_noisy).sum()) == 30
    assert int(sel.is_noisy.sum()) == sel.n_eligible_noisy  # fewer exist than asked for: all of them
    assert torch.equal(sel.is_noisy, mlp_run.is_noisy.cpu()[sel.ids])
    assert torch.equal(select_targets(model, mlp_run, 30, 5, seed=0).ids[:30], sel.ids[:30])
    assert not torch.equal(select_targets(model, mlp_run, 30, 5, seed=1).ids[:30], sel.ids[:30])


def test_chunks_follow_label_order(mlp_run):
    """Chunks are cut from the selection sorted by label (same-label targets share population passes)."""
    sel = select_targets(mlp_run.model_at(mlp_run.final_epoch), mlp_run, 200, 50, seed=0)
    ordered = chunk_order(sel, mlp_run.labels)
    labels = mlp_run.labels.cpu()[ordered.ids]
    assert (labels.diff() >= 0).all() and labels[0] < labels[-1]
    assert sorted(ordered.ids.tolist()) == sorted(sel.ids.tolist())
    assert torch.equal(ordered.is_noisy, mlp_run.is_noisy.cpu()[ordered.ids])
    assert (ordered.n_eligible_clean, ordered.n_eligible_noisy) == (sel.n_eligible_clean, sel.n_eligible_noisy)
    # stable: within a label, the selection's order (clean ones first) is kept
    first = (labels == labels[0]).sum()
    assert ordered.ids[:first].tolist() == [i for i in sel.ids.tolist() if mlp_run.labels[i] == labels[0]]


def test_edited_accuracy_equals_a_weight_zeroed_copy(mlp_run):
    model = mlp_run.model_at(mlp_run.final_epoch)
    x, y = mlp_run.data.train.x[:300], mlp_run.labels[:300]
    parts = [(x, y), (x[:0], y[:0]), (mlp_run.data.test.x, mlp_run.data.test.y)]
    removals = [[], [0, 5, 140, 300], [0, 5, 140, 300], [7]]
    acc = edited_accuracies(model, removals, parts)
    for removal, row in zip(removals, acc, strict=True):
        edited = copy.deepcopy(model)
        layers = unit_layers(edited)
        with torch.no_grad():
            for unit in removal:
                for layer in layers:
                    if unit < layer.n_units:
                        layer.module.weight[unit] = 0
                        layer.module.bias[unit] = 0
                        break
                    unit -= layer.n_units
        expected = [(predict_plain(edited, px) == py).double().mean().item() for px, py in parts]
        assert row[0] == pytest.approx(expected[0]) and row[2] == pytest.approx(expected[2])
        assert pd.isna(row[1])  # an empty part has no accuracy


def test_shards_cover_the_selection_and_extra_chunks_are_empty(mlp_run, tmp_path, mlp_flips):
    small = AnalysisConfig(flip_clean=5, flip_noisy=3, flip_chunk=4)
    assert flip_shards(mlp_run.cfg, small) == [_shard(small, 0), _shard(small, 1)]
    assert len(flip_shards(mlp_run.cfg, AnalysisConfig())) == 4
    analysis = AnalysisConfig(flip_clean=2, flip_noisy=1, flip_chunk=2, flip_eval_size=20)
    shards = flip_shards(mlp_run.cfg, analysis)
    assert shards == [_shard(analysis, 0), _shard(analysis, 1)]
    # Any setting that changes what a chunk holds or computes changes its name, so old files never pass for new.
    names = {flip_signature(AnalysisConfig(**{k: v})) for k, v in [
        ("flip_clean", 2), ("flip_noisy", 2), ("flip_chunk", 3), ("flip_cap", 5), ("flip_population", 9),
        ("flip_noise_copies", 1), ("flip_noise_scale", 0.5), ("flip_eval_size", None)]}
    assert len(names | {flip_signature(AnalysisConfig())}) == 9
    assert flip_signature(AnalysisConfig(rewind_epochs=(0,))) == flip_signature(AnalysisConfig())
    with pytest.raises(ValueError, match="other flip settings"):
        run_flip(mlp_run, _shard(small, 0), analysis)
    chunks = [run_flip(mlp_run, shard, analysis)["flips"] for shard in shards]
    assert [len(c) for c in chunks] == [2, 1]
    both = pd.concat(chunks)
    sel = select_targets(mlp_run.model_at(mlp_run.final_epoch), mlp_run, 2, 1, seed=0)
    assert sorted(both.example_id) == sorted(sel.ids.tolist()) and both.is_noisy.sum() == 1
    past = run_flip(mlp_run, _shard(analysis, 7), analysis)["flips"]
    assert len(past) == 0 and list(past.columns) == list(FLIP_COLUMNS)
    # Written the way the engine writes, an empty chunk keeps the units type and the folder reads as one table
    # with plain pandas, whichever file comes first by name.
    store = Store(str(tmp_path))
    for name, frame in (("a", past), ("b", mlp_flips), ("c", empty_flips())):
        store.write_table("flips", name, with_run_columns(frame, mlp_run.cfg))
    read = pd.read_parquet(tmp_path / "flips")
    assert pq.read_schema(tmp_path / "flips" / "a.parquet").field("units").type == UNITS_TYPE
    assert len(read) == len(mlp_flips) and list(read.units.map(len)) == list(mlp_flips.n_units)


def test_flip_units_is_the_long_form_of_units(mlp_flip_tables):
    flips, long = mlp_flip_tables["flips"], mlp_flip_tables["flip_units"]
    assert list(long.columns) == [c.name for c in TABLES["flip_units"].columns]
    assert len(long) == flips.n_units.sum()
    for row in flips.itertuples():
        mine = long[long.example_id == row.example_id].sort_values("step")
        assert mine.step.tolist() == list(range(row.n_units)) and (mine.is_noisy == row.is_noisy).all()
        expected = [(u["layer"], u["layer_name"], u["module"], u["unit"]) for u in row.units]
        assert list(mine[["layer", "layer_name", "module", "unit"]].itertuples(index=False, name=None)) == expected


def test_bad_parameters_are_refused(mlp_run):
    for bad in ({"flip_clean": 0}, {"flip_noisy": 0}, {"flip_cap": 0}, {"flip_cap": -3}):
        with pytest.raises(UserError):
            AnalysisConfig(**bad).validate()
        with pytest.raises(UserError):
            run_flip(mlp_run, _shard(AnalysisConfig(**bad), 0), AnalysisConfig(**bad))
    model, x, y, pop_x, pop_y, _, _ = _problem(mlp_run, 1, 1, dtype=torch.float32)
    with pytest.raises(UserError):
        flip_batched(model, x, y, pop_x, pop_y, cap=0)
    with pytest.raises(UserError):
        flip_plain(model, x, y, pop_x, pop_y, cap=0)


def test_probe_is_registered_for_standard_runs_only():
    probe = PROBES["flip"]
    assert probe.tables == ("flips", "flip_units")
    assert probe.applies(RunConfig(variant="standard"))
    assert not probe.applies(RunConfig(variant="tied"))
