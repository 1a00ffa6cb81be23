"""Training-dynamics signals: area under the margin and forgetting events, by hand and on a real run."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score

from sweep.config import RunConfig
from sweep.dynamics import Dynamics, forgotten, margins
from sweep.store import Store
from sweep.train import execute_run, load_run


def test_margin_and_forgetting_on_a_hand_checked_sequence():
    """Two examples, labels 0 and 2, three epochs of logits; every number worked out by hand."""
    labels = torch.tensor([0, 2])
    epochs = [torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0]]),    # margins 2-1=1, 1-3=-2; correct: yes, no
              torch.tensor([[0.5, 1.5, -1.0], [0.0, 1.0, 4.0]]),   # margins 0.5-1.5=-1, 4-1=3; no, yes
              torch.tensor([[3.0, 0.0, 1.0], [2.0, 0.0, 1.5]])]    # margins 3-1=2, 1.5-2=-0.5; yes, no
    assert margins(epochs[0], labels).tolist() == [1.0, -2.0]
    dyn = Dynamics(2, torch.device("cpu"))
    for logits in epochs:
        dyn.update(margins(logits, labels), logits.argmax(1) == labels)
    assert dyn.aum().tolist() == pytest.approx([(1 - 1 + 2) / 3, (-2 + 3 - 0.5) / 3])
    # example 0: yes -> no (one event) -> yes; example 1: no -> yes -> no (one event)
    assert dyn.forgetting.tolist() == [1, 1]
    assert forgotten(torch.tensor([True, True, False]), torch.tensor([False, True, False])).tolist() == [
        True, False, False]


def test_resume_keeps_the_running_sums():
    dyn = Dynamics(3, torch.device("cpu"))
    dyn.update(torch.tensor([1.0, -1.0, 0.5]), torch.tensor([True, False, True]))
    again = Dynamics(3, torch.device("cpu"))
    again.load_state_dict(dyn.state_dict(), torch.device("cpu"))
    for d in (dyn, again):
        d.update(torch.tensor([-1.0, 2.0, 0.5]), torch.tensor([False, True, True]))
    assert torch.equal(dyn.aum(), again.aum()) and torch.equal(dyn.forgetting, again.forgetting)


@pytest.mark.slow
def test_examples_table_matches_a_recomputation_from_every_epoch_checkpoint(tmp_path):
    """The trainer's running AUM and forgetting counts equal those recomputed, the plain way, from the saved
    weights of every epoch; and on digits with 10% noise AUM separates mislabeled examples well."""
    cfg = RunConfig(dataset="digits", arch="mlp", noise=0.1, epochs=12, batch_size=128, width=0.5).validate()
    store = Store(str(tmp_path))
    execute_run(cfg, store, torch.device("cpu"))
    examples = pd.read_parquet(tmp_path / "examples").sort_values("example_id")
    run = load_run(store, cfg, torch.device("cpu"))
    x, labels = run.data.train.x, run.labels
    margin_rows, correct_rows = [], []
    for epoch in range(1, cfg.epochs + 1):
        with torch.no_grad():
            logits = run.model_at(epoch).eval()(x).float()
        assigned = logits[torch.arange(len(labels)), labels]
        other = logits.clone()
        other[torch.arange(len(labels)), labels] = -np.inf
        margin_rows.append((assigned - other.max(1).values).numpy())
        correct_rows.append((logits.argmax(1) == labels).numpy())
    correct = np.array(correct_rows)
    events = (correct[:-1] & ~correct[1:]).sum(0)
    np.testing.assert_allclose(examples["aum"], np.mean(margin_rows, axis=0), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(examples["forgetting_events"], events)
    auroc = roc_auc_score(examples["is_noisy"], -examples["aum"])
    print(f"AUM AUROC on digits, 10% noise, MLP width 0.5, 12 epochs: {auroc:.3f}")
    assert auroc > 0.8
