"""Layer rewinding: the pure state assembly, the in-place probe against it, and the probe's registration.

Most checks run on runs whose "checkpoints" are independently initialised models (with BatchNorm statistics
scrambled so buffers differ between epochs too): no training is involved, so a failure points at the probe.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from sweep.config import AnalysisConfig, RunConfig
from sweep.data import SHAPES, Split
from sweep.models.for_run import build_model_for
from sweep.models.groups import group_of, group_state_keys
from sweep.noise import add_label_noise
from sweep.probes import PROBES, RunData
from sweep.probes.evaluate import split_accuracies
from sweep.probes.rewind import (
    group_names,
    load_group,
    rewind_epochs,
    rewind_group,
    rewound_state,
)


def fake_run(data, arch: str, width: float = 1.0, epochs: tuple[int, ...] = (0, 1, 2)) -> RunData:
    """A run whose checkpoint at each epoch is a fresh initialisation with random BatchNorm statistics,
    on the first 600 training and 200 test digits (enough for accuracies to tell models apart)."""
    data = replace(data, train=Split(data.train.x[:600], data.train.y[:600]),
                   test=Split(data.test.x[:200], data.test.y[:200]))
    cfg = RunConfig(dataset="digits", arch=arch, width=width, noise=0.1, epochs=max(epochs), batch_size=128)
    labels, is_noisy = add_label_noise(data.train.y, cfg.noise, cfg.noise_seed, data.num_classes, cfg.dataset)
    states = {}
    for epoch in epochs:
        torch.manual_seed(1000 + epoch)
        state = {k: v.clone() for k, v in build_model_for(cfg).state_dict().items()}
        for key, value in state.items():
            if key.endswith("running_mean"):
                value.normal_()
            elif key.endswith("running_var"):
                value.uniform_(0.5, 2.0)
        states[epoch] = state
    return RunData.from_states(cfg, data, labels, data.train.y, is_noisy, states)


def test_rewound_state_takes_exactly_the_group_keys():
    final = {"a.weight": torch.zeros(2), "a.running_mean": torch.zeros(2), "b.weight": torch.zeros(3)}
    early = {"a.weight": torch.ones(2), "a.running_mean": torch.ones(2), "b.weight": torch.ones(3)}
    state = rewound_state(final, early, ["a.weight", "a.running_mean"])
    assert list(state) == list(final)
    assert state["a.weight"] is early["a.weight"] and state["a.running_mean"] is early["a.running_mean"]
    assert state["b.weight"] is final["b.weight"]
    with pytest.raises(KeyError):
        rewound_state(final, early, ["c.weight"])


def test_rewind_epochs_are_the_requested_ones_that_exist_final_included():
    assert rewind_epochs((0, 2, 4, 6, 50), range(5)) == [0, 2, 4]
    assert rewind_epochs((4, 0), [0, 1, 2, 3, 4]) == [0, 4]
    assert rewind_epochs((7,), [0, 1]) == []


def test_load_group_changes_only_that_groups_params_and_buffers(digits):
    run = fake_run(digits, "resnet9", width=0.25)
    final, early = run.state(2), run.state(0)
    for group in group_names(run.cfg):
        model = run.model_at(2)
        keys = group_state_keys(model, group)
        assert any("running_" in k for k in keys) or group == model.groups[-1][0]
        load_group(model, early, keys)
        expected = rewound_state(final, early, keys)
        after = model.state_dict()
        assert after.keys() == expected.keys()
        for key, value in after.items():
            assert torch.equal(value, expected[key]), (group, key)
        assert not all(torch.equal(final[k], early[k]) for k in keys), group


@pytest.mark.parametrize("arch,width", [("mlp", 1.0), ("resnet9", 0.25)])
def test_rewinding_every_group_to_epoch_0_gives_the_initial_model(digits, arch, width):
    run = fake_run(digits, arch, width)
    model, initial = run.model_at(run.final_epoch), run.model_at(0)
    covered = []
    for group in group_names(run.cfg):
        keys = group_state_keys(model, group)
        covered += keys
        load_group(model, run.state(0), keys)
    assert sorted(covered) == sorted(model.state_dict())
    x = run.data.train.x[:256]
    with torch.no_grad():
        assert torch.equal(model(x), initial(x))
        assert not torch.equal(run.model_at(run.final_epoch)(x), initial(x))


@pytest.mark.parametrize("arch,width", [("mlp", 1.0), ("resnet9", 0.25)])
def test_rewinding_to_the_last_epoch_reproduces_the_final_accuracies(digits, arch, width):
    run = fake_run(digits, arch, width)
    final = split_accuracies(run.model_at(run.final_epoch), run)
    for layer, group in enumerate(group_names(run.cfg)):
        rows = rewind_group(run, group, AnalysisConfig(rewind_epochs=(2, 3, 4)).rewind_epochs)
        assert rows["rewind_epoch"].tolist() == [2]
        assert (rows["layer"] == layer).all() and (rows["layer_name"] == group).all()
        last = rows.iloc[-1]
        assert (last["clean_acc"], last["noisy_acc"], last["test_acc"]) == tuple(final)
        assert (last["clean_acc_base"], last["noisy_acc_base"], last["test_acc_base"]) == tuple(final)


@pytest.mark.parametrize("buffers", [False, True])
def test_rewound_rows_match_a_model_built_from_the_rewound_state(digits, buffers):
    """The in-place probe agrees with a fresh model loaded with `rewound_state` (the reference)."""
    run = fake_run(digits, "resnet9", width=0.25)
    group = group_names(run.cfg)[3]
    rows = rewind_group(run, group, (0, 1), buffers=buffers)
    assert (rows["rewind_buffers"] == buffers).all()
    for _, row in rows.iterrows():
        model = run.build_model()
        keys = group_state_keys(model, group, buffers=buffers)
        early = run.state(int(row["rewind_epoch"]))
        model.load_state_dict(rewound_state(run.state(run.final_epoch), early, keys))
        expected = (row["clean_acc"], row["noisy_acc"], row["test_acc"])
        assert tuple(split_accuracies(model.eval(), run)) == expected
        base = (row["clean_acc_base"], row["noisy_acc_base"], row["test_acc_base"])
        assert base == tuple(split_accuracies(run.model_at(run.final_epoch), run))  # the unedited model


@pytest.mark.parametrize("buffers", [False, True])
def test_rewinding_moves_parameters_and_keeps_the_final_batchnorm_statistics_unless_asked(digits, buffers):
    """Default (the paper's): the group's parameters come from the checkpoint and every buffer stays the final
    model's. With `rewind_buffers`, the group's running statistics come from the checkpoint too."""
    run = fake_run(digits, "resnet9", width=0.25)
    final, early = run.state(run.final_epoch), run.state(0)
    for group in group_names(run.cfg):
        model = run.model_at(run.final_epoch)
        load_group(model, early, group_state_keys(model, group, buffers=buffers))
        params = {name for name, _ in model.named_parameters()}
        after = model.state_dict()
        for key, value in after.items():
            in_group = group_of(model, key) == group
            from_checkpoint = in_group and (key in params or buffers)
            assert torch.equal(value, early[key] if from_checkpoint else final[key]), (group, key)
        if group != model.groups[-1][0]:  # every conv block has BatchNorm statistics that moved in training
            stats = [k for k in after if group_of(model, k) == group and "running_" in k]
            assert stats and any(not torch.equal(final[k], early[k]) for k in stats)
    assert AnalysisConfig().rewind_buffers is False
    assert AnalysisConfig.from_dict({"rewind_buffers": True}).rewind_buffers is True


def test_trained_run_rewound_to_its_last_epoch_keeps_its_accuracies():
    from sweep.train import train_in_memory

    cfg = RunConfig(dataset="digits", arch="mlp", width=0.25, noise=0.1, epochs=4, batch_size=128)
    run = train_in_memory(cfg)
    final = split_accuracies(run.model_at(4), run)
    assert final.clean > 0.5
    rows = PROBES["rewind"].run(run, group_names(cfg)[0], AnalysisConfig(rewind_epochs=(0, 4)))["rewinding"]
    assert rows["rewind_epoch"].tolist() == [0, 4]
    assert tuple(rows.iloc[1][["clean_acc", "noisy_acc", "test_acc"]]) == tuple(final)
    assert rows.iloc[0]["clean_acc"] < final.clean


def test_probe_is_registered_with_one_shard_per_group():
    import sweep.probes.rewind  # noqa: F401  (registers the probe even before sweep.probes imports it)

    probe = PROBES["rewind"]
    assert probe.tables == ("rewinding",)
    for dataset, arch in (("digits", "mlp"), ("digits", "resnet9"), ("cifar10", "resnet9")):
        cfg = RunConfig(dataset=dataset, arch=arch, width=0.25)
        shape, classes = SHAPES[dataset]
        from sweep.models import build_model

        expected = [g for g, _ in build_model(arch, shape, classes, width=0.25).groups]
        assert probe.shards(cfg, AnalysisConfig()) == expected
    assert probe.applies(RunConfig()) and not probe.applies(RunConfig(variant="tied"))
