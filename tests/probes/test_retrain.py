"""Layer retraining: nothing outside the group moves, the group does, and clean accuracy recovers."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from sweep.config import AnalysisConfig, RunConfig
from sweep.data import Split
from sweep.models.groups import group_state_keys
from sweep.probes import PROBES
from sweep.probes.retrain import isolate_group, retrain_group
from sweep.probes.rewind import group_names
from sweep.schemas import TABLES
from sweep.train import train_in_memory


def test_isolate_group_freezes_params_and_outside_batchnorm_only():
    model = nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5), nn.Linear(5, 5), nn.BatchNorm1d(5),
                          nn.Linear(5, 2))
    keys = [k for k in model.state_dict() if k.startswith(("2.", "3."))]
    params = isolate_group(model, keys)
    assert [id(p) for p in params] == [id(p) for p in (*model[2].parameters(), *model[3].parameters())]
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"2.weight", "2.bias", "3.weight", "3.bias"}
    assert model.training and model[3].training and not model[1].training
    with pytest.raises(ValueError):
        isolate_group(model, ["1.running_mean"])


@pytest.fixture(scope="module")
def resnet_run(digits):
    """One epoch on 512 training digits: enough for every group to differ from its initialisation."""
    small = replace(digits, train=Split(digits.train.x[:512], digits.train.y[:512]),
                    test=Split(digits.test.x[:128], digits.test.y[:128]))
    cfg = RunConfig(dataset="digits", arch="resnet9", width=0.25, noise=0.1, epochs=1, batch_size=128)
    return train_in_memory(cfg, data=small)


@pytest.mark.slow
def test_retraining_changes_the_group_and_nothing_else(resnet_run):
    run = resnet_run
    final, initial = run.state(run.final_epoch), run.state(0)
    analysis = AnalysisConfig(retrain_epochs=1)
    for group in group_names(run.cfg):
        model, rows = retrain_group(run, group, analysis)
        keys = set(group_state_keys(model, group))
        after = model.state_dict()
        for key, value in after.items():
            if key not in keys:
                assert torch.equal(value, final[key]), (group, key)
        changed = [k for k in keys if not torch.equal(after[k], initial[k])]
        assert any(k.endswith("weight") for k in changed), group
        if any("running_mean" in k for k in keys):
            assert any("running_mean" in k for k in changed), group
        assert rows["retrain_epoch"].tolist() == [0, 1]


@pytest.fixture(scope="module")
def mlp_run(digits):
    cfg = RunConfig(dataset="digits", arch="mlp", width=0.25, noise=0.1, epochs=25, batch_size=128)
    return train_in_memory(cfg, data=digits)


@pytest.mark.slow
def test_retraining_curves_recover_clean_accuracy_for_every_group(mlp_run):
    from sweep.probes.evaluate import split_accuracies

    run = mlp_run
    trained = split_accuracies(run.model_at(run.final_epoch), run)
    assert trained.clean > 0.95 and trained.noisy > 0.9
    analysis = AnalysisConfig()
    probe = PROBES["retrain"]
    assert probe.tables == ("retraining",) and probe.applies(run.cfg)
    columns = [c.name for c in TABLES["retraining"].columns]
    for layer, group in enumerate(probe.shards(run.cfg, analysis)):
        rows = probe.run(run, group, analysis)["retraining"]
        assert list(rows.columns) == columns
        assert (rows["layer"] == layer).all() and (rows["layer_name"] == group).all()
        # the baseline is the final model's, on every row, whatever the reset did
        assert (rows[["clean_acc_base", "noisy_acc_base", "test_acc_base"]] == tuple(trained)).all(axis=None)
        epochs = rows["retrain_epoch"].tolist()
        assert epochs == list(range(len(epochs))) and 2 <= len(epochs) <= analysis.retrain_epochs + 1
        assert rows.iloc[0]["noisy_acc"] < trained.noisy - 0.1  # the reset removed memorized examples
        assert rows.iloc[-1]["clean_acc"] >= min(0.9, trained.clean - 0.05), (group, rows)
        if len(epochs) < analysis.retrain_epochs + 1:  # stopped early: only after `patience` perfect epochs
            assert (rows["clean_acc"].iloc[-analysis.retrain_patience:] == 1.0).all()


def test_retraining_is_deterministic_per_group(mlp_run):
    analysis = AnalysisConfig(retrain_epochs=2)
    group = group_names(mlp_run.cfg)[0]
    first, second = (retrain_group(mlp_run, group, analysis)[1] for _ in range(2))
    assert first.equals(second)


@pytest.fixture(scope="module")
def small_mlp_run(digits):
    """One epoch on 512 training digits: a finished run with its epoch-0 weights, in a second."""
    small = replace(digits, train=Split(digits.train.x[:512], digits.train.y[:512]),
                    test=Split(digits.test.x[:128], digits.test.y[:128]))
    cfg = RunConfig(dataset="digits", arch="mlp", width=0.25, noise=0.1, epochs=1, batch_size=128)
    return train_in_memory(cfg, data=small)


def _retraining_lrs(run, analysis: AnalysisConfig, monkeypatch) -> list[float]:
    """The learning rate of every optimizer step a retraining takes, read from the optimizer itself."""
    lrs: list[float] = []
    step = torch.optim.SGD.step

    def recording(self, *args, **kwargs):
        lrs.append(self.param_groups[0]["lr"])
        return step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.SGD, "step", recording)
    retrain_group(run, group_names(run.cfg)[0], analysis)
    monkeypatch.undo()
    return lrs


@pytest.mark.parametrize("peak_at", [0.5, 0.2])
def test_retraining_triangle_peaks_where_its_setting_says(small_mlp_run, monkeypatch, peak_at):
    """Default 0.5: the paper's retraining triangle (epoch 10 of 20, experiments/retraining.py); 0.2: the earlier
    rule, kept as `retrain_peak = 0.2`. 0 -> retrain_lr at that fraction of the budget -> 0, linear pieces."""
    analysis = AnalysisConfig(retrain_epochs=10, retrain_patience=100, retrain_lr=0.03, retrain_peak=peak_at)
    if peak_at == 0.5:
        assert AnalysisConfig().retrain_peak == 0.5 and AnalysisConfig().retrain_epochs == 20
    lrs = np.array(_retraining_lrs(small_mlp_run, analysis, monkeypatch))
    rows = retrain_group(small_mlp_run, group_names(small_mlp_run.cfg)[0], analysis)[1]
    assert (rows["retrain_peak"] == peak_at).all()  # the choice is recorded in every row
    clean = int((~small_mlp_run.is_noisy).sum())
    total = analysis.retrain_epochs * math.ceil(clean / small_mlp_run.cfg.batch_size)
    assert len(lrs) == total
    top = int(lrs.argmax())
    assert top in (round(total * peak_at) - 1, round(total * peak_at))
    assert lrs.max() == pytest.approx(0.03, rel=0.05) and lrs[0] < 0.03 * 0.1 and lrs[-1] < 0.03 * 0.1
    rise, fall = np.diff(lrs[:top]), np.diff(lrs[top + 1:])
    assert (rise > 0).all() and (fall < 0).all()
    assert np.allclose(rise, rise[0]) and np.allclose(fall, fall[0])
    expected = 0.03 * np.interp(np.arange(total) + 0.5, [0, total * peak_at, total], [0, 1, 0])
    np.testing.assert_allclose(lrs, expected, rtol=1e-9)


def test_retrain_peak_is_a_signed_setting_and_checked():
    assert "retrain_peak" in PROBES["retrain"].settings
    from sweep.errors import UserError

    for bad in (0.0, 1.0, -0.1):
        with pytest.raises(UserError, match="retrain_peak must be a fraction"):
            AnalysisConfig(retrain_peak=bad).validate()
