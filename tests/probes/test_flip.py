"""Neuron flipping: the batched engine against the plain weight-zeroing loop, the probe's rows and its checks.

Models are trained briefly on `digits` (10% label noise). The MLP comparisons run in float64, so the two ways
of computing the same attribution (per-row y * dJ/dy on outputs vs w * dJ/dw on parameters) cannot pick
different units through float32 rounding in a near tie; the ResNet-9 one runs in float32 (as the probe does),
because float64 convolutions on the CPU are ~20x slower.
"""

from __future__ import annotations

import copy
import hashlib
import statistics

import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sweep.config import AnalysisConfig, RunConfig
from sweep.errors import UserError
from sweep.models.groups import group_names, unit_layers
from sweep.plan import probe_settings
from sweep.probes import PROBES
from sweep.probes import flip as flip_module
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


@pytest.mark.parametrize("rule", ["outputs", "paper"])
@pytest.mark.parametrize(("which", "dtype"), [("mlp_run", torch.float64), ("resnet_run", torch.float32)])
def test_batched_engine_removes_the_same_units_as_the_plain_loop(which, dtype, rule, request):
    model, x, y, pop_x, pop_y, _, _ = _problem(request.getfixturevalue(which), 8, 8, dtype)
    fast = flip_batched(model, x, y, pop_x, pop_y, cap=1000, rule=rule)
    _assert_same(fast, flip_plain(model, x, y, pop_x, pop_y, cap=1000, rule=rule))
    assert all(o.flipped for o in fast) and all(len(o.units) >= 1 for o in fast)
    if rule == "paper":  # the paper's rule reaches units the outputs rule has not: BatchNorm and head values
        space = UnitSpace.of(model, "paper")
        kinds = {space.describe(u)["module"].rpartition(".")[0].split(".")[-1] for o in fast for u in o.units}
        assert kinds & {"bn", "fc"}


@pytest.mark.parametrize("rule", ["outputs", "paper"])
def test_pass_size_does_not_change_the_choices(mlp_run, rule):
    """Smaller passes regroup the rows (and split masks across passes) but must not change a single choice."""
    model, x, y, pop_x, pop_y, _, _ = _problem(mlp_run, 6, 6)
    whole = flip_batched(model, x, y, pop_x, pop_y, 1000, rule=rule)
    _assert_same(whole, flip_batched(model, x, y, pop_x, pop_y, 1000, rows=97, rule=rule))


def test_targets_split_by_memory_make_the_same_choices(mlp_run, monkeypatch):
    """Wide unit sets (the paper rule's weight values) are flipped a few targets at a time: same choices."""
    model, x, y, pop_x, pop_y, _, _ = _problem(mlp_run, 5, 5, dtype=torch.float32, population=128)
    whole = flip_batched(model, x, y, pop_x, pop_y, 1000, rule="paper")
    total = UnitSpace.of(model, "paper").total
    monkeypatch.setattr(flip_module, "TABLE_BUDGET", 28 * total * 3)  # three targets per call
    assert flip_module._targets_at_once(total, x.device) == 3
    _assert_same(whole, flip_batched(model, x, y, pop_x, pop_y, 1000, rule="paper"))


def test_paper_units_are_every_parameter_in_the_paper_codes_order(resnet_run, mlp_run):
    """Under "paper" each parameter tensor is one unit tensor, in named_parameters order (the order the
    paper's search breaks ties in): conv weights by output channel, everything else one value at a time."""
    for run in (resnet_run, mlp_run):
        model = run.model_at(run.final_epoch)
        space = UnitSpace.of(model, "paper")
        params = list(model.named_parameters())
        assert [layer.name for layer in space.layers] == [name for name, _ in params]
        assert [layer.n_units for layer in space.layers] == [p.shape[0] if p.dim() == 4 else p.numel()
                                                             for _, p in params]
        last = space.describe(space.total - 1)
        head = dict(params)[last["module"]]
        assert last["layer_name"] == "head" and last["unit"] == head.numel() - 1
    resnet = resnet_run.model_at(resnet_run.final_epoch)
    space = UnitSpace.of(resnet, "paper")
    fc = space.offsets[[layer.name for layer in space.layers].index("fc.weight")]
    assert space.describe(fc + 3 * resnet.fc.in_features + 5) == {
        "layer": len(group_names(resnet)) - 1, "layer_name": "head", "module": "fc.weight",
        "unit": 3 * resnet.fc.in_features + 5}
    assert space.describe(space.offsets[1] + 2)["module"] == "conv1.bn.weight"


def test_paper_edits_equal_zeroing_the_described_values(resnet_run):
    """edited_accuracies under "paper" against a copy with each described value zeroed by hand (a conv
    filter, a BatchNorm scale and shift, a classifier weight): the descriptions name the value exactly."""
    model = resnet_run.model_at(resnet_run.final_epoch)
    space = UnitSpace.of(model, "paper")
    names = [layer.name for layer in space.layers]
    picks = {"conv4.conv.weight": 3, "conv4.bn.weight": 0, "conv4.bn.bias": 5, "fc.weight": 17,
             "res2b.bn.bias": 1}
    removal = [space.offsets[names.index(name)] + unit for name, unit in picks.items()]
    x, y = resnet_run.data.train.x[:400], resnet_run.labels[:400]
    acc = edited_accuracies(model, [[], removal], [(x, y)], rule="paper")
    edited = copy.deepcopy(model)
    params = dict(edited.named_parameters())
    with torch.no_grad():
        for unit in removal:
            where = space.describe(unit)
            p = params[where["module"]]
            if p.dim() == 4:
                p[where["unit"]] = 0
            else:
                p.view(-1)[where["unit"]] = 0
    expected = (predict_plain(edited, x) == y).double().mean().item()
    assert acc[1, 0] == pytest.approx(expected)
    assert acc[0, 0] == pytest.approx((predict_plain(model, x) == y).double().mean().item())
    assert acc[1, 0] != acc[0, 0]  # the edit does something, so equality is not trivial


class _Biased(nn.Module):
    """Every kind of unit the paper rule has: a conv with a bias (filter = output minus bias, bias values),
    BatchNorm2d and BatchNorm1d scales and shifts, a hidden linear layer's and the head's weights and biases."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.hidden = nn.Linear(4 * 4 * 4, 6)
        self.bn1 = nn.BatchNorm1d(6)
        self.fc = nn.Linear(6, 3)
        self.head = "fc"
        self.groups = [("block", ["conv", "bn"]), ("dense", ["hidden", "bn1"]), ("head", ["fc"])]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn(self.conv(x))).flatten(1)
        return self.fc(torch.relu(self.bn1(self.hidden(h))))


def test_every_paper_unit_kind_matches_the_plain_loop():
    """A tiny model trained (BatchNorm statistics included) to fit random labels, so flips take several
    units; targets are training examples it predicts as labelled."""
    torch.manual_seed(0)
    model = _Biased().double()
    data = torch.randn(200, 2, 4, 4, dtype=torch.float64)
    labels = torch.randint(0, 3, (200,))
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(150):
        opt.zero_grad()
        F.cross_entropy(model(data), labels).backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        right = torch.nonzero(model(data).argmax(1) == labels).flatten()
    assert len(right) > 100
    x, y = data[right[:10]], labels[right[:10]]
    pop_x, pop_y = data[100:], labels[100:]
    kinds = [layer.kind for layer in UnitSpace.of(model, "paper").layers]
    assert kinds == ["scale", "shift", "scale", "shift", "value", "shift", "scale", "shift", "value", "shift"]
    for rule in ("outputs", "paper"):
        fast = flip_batched(model, x, y, pop_x, pop_y, cap=200, rule=rule)
        _assert_same(fast, flip_plain(model, x, y, pop_x, pop_y, cap=200, rule=rule))
        assert sum(len(o.units) for o in fast) > len(fast)  # more than one step somewhere: edits were applied
    # One unit of every tensor removed at once, against the same values zeroed by hand: the logits agree.
    space = UnitSpace.of(model, "paper")
    removal = [offset + layer.n_units // 2 for offset, layer in zip(space.offsets, space.layers, strict=True)]
    edited = copy.deepcopy(model)
    params = dict(edited.named_parameters())
    with torch.no_grad():
        for unit in removal:
            where = space.describe(unit)
            p = params[where["module"]]
            (p if p.dim() == 4 else p.view(-1))[where["unit"]] = 0
        expected = edited(data)
    with flip_module._masked(model, "paper") as hooks:
        keep = torch.ones(1, space.total, dtype=torch.float64)
        keep[0, removal] = 0
        hooks.start(keep, torch.zeros(len(data), dtype=torch.long), capture=False)
        with torch.no_grad():
            got = model(data)
        hooks.finish()
    assert torch.allclose(got, expected, atol=1e-10) and not torch.allclose(got, model(data), atol=1e-3)


def test_paper_rule_refuses_parameters_it_cannot_batch():
    class Odd(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Linear(4, 6)
            self.norm = nn.LayerNorm(6)
            self.fc = nn.Linear(6, 3)
            self.head = "fc"
            self.groups = [("body", ["body", "norm"]), ("head", ["fc"])]

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(self.norm(self.body(x)))

    with pytest.raises(UserError, match="flip_units='outputs'"):
        UnitSpace.of(Odd(), "paper")
    assert UnitSpace.of(Odd(), "outputs").total == 6


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
    for rule in ("outputs", "paper"):
        fast = flip_batched(model, x, y, pop_x, pop_y, 1000, noise=noise, pop_noise=pop_noise, rule=rule)
        _assert_same(fast, flip_plain(model, x, y, pop_x, pop_y, 1000, noise=noise, pop_noise=pop_noise,
                                      rule=rule))


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
        ("flip_noise_copies", 1), ("flip_noise_scale", 0.5), ("flip_eval_size", None), ("flip_units", "paper")]}
    assert len(names | {flip_signature(AnalysisConfig())}) == 10
    # flip_units came later: at its default the digest is the one chunks made before it carry
    before = {k: getattr(AnalysisConfig(), k) for k in ("flip_clean", "flip_noisy", "flip_chunk", "flip_cap",
              "flip_population", "flip_noise_copies", "flip_noise_scale", "flip_eval_size")}
    old = hashlib.sha256(f"label-sorted:{sorted(before.items())!r}".encode()).hexdigest()[:8]
    assert flip_signature(AnalysisConfig()) == old
    # and the rule is in the settings the done-records keep, so a changed rule on an old folder is a conflict
    assert probe_settings(PROBES["flip"], AnalysisConfig(flip_units="paper"))["flip_units"] == "paper"
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
    assert (flips.flip_units == "outputs").all() and (long.flip_units == "outputs").all()
    for row in flips.itertuples():
        mine = long[long.example_id == row.example_id].sort_values("step")
        assert mine.step.tolist() == list(range(row.n_units)) and (mine.is_noisy == row.is_noisy).all()
        expected = [(u["layer"], u["layer_name"], u["module"], u["unit"]) for u in row.units]
        assert list(mine[["layer", "layer_name", "module", "unit"]].itertuples(index=False, name=None)) == expected


def test_probe_records_the_paper_rule_per_row(resnet_run):
    analysis = AnalysisConfig(flip_clean=4, flip_noisy=4, flip_chunk=8, flip_eval_size=100, flip_units="paper")
    assert _shard(analysis, 0) != _shard(AnalysisConfig(flip_clean=4, flip_noisy=4, flip_chunk=8,
                                                          flip_eval_size=100), 0)
    tables = run_flip(resnet_run, _shard(analysis, 0), analysis)
    flips, long = tables["flips"], tables["flip_units"]
    assert (flips.flip_units == "paper").all() and (long.flip_units == "paper").all()
    params = dict(resnet_run.model_at(resnet_run.final_epoch).named_parameters())
    for module, unit in zip(long.module, long.unit, strict=True):
        p = params[module]  # a parameter path, and an index inside its unit numbering
        assert 0 <= unit < (p.shape[0] if p.dim() == 4 else p.numel())
    assert len(long) == flips.n_units.sum() >= 1


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
