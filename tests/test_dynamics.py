"""Per-example detection signals: AUM and forgetting (training passes and eval-after-epoch), CSL, learning time,
in-confidence, loss curvature, per-epoch detection scores; each against a hand-computed case or a plain loop."""

from __future__ import annotations

import copy
import io
import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import average_precision_score, roc_auc_score
from torch import nn

from sweep.config import RunConfig
from sweep.curvature import due, finite_difference_curvature, model_curvature, rademacher
from sweep.dynamics import EvalDynamics, TrainingDynamics, detection_scores, forgotten, margins
from sweep.schedule import lr_at
from sweep.store import Store
from sweep.train import Trainer, execute_run, load_run, prepare

CPU = torch.device("cpu")
TINY = RunConfig(dataset="digits", arch="mlp", noise=0.1, epochs=3, batch_size=256, width=0.25).validate()


def log_sum_exp(row: list[float]) -> float:
    return math.log(sum(math.exp(v) for v in row))


def test_training_pass_aum_forgetting_and_csl_on_a_hand_checked_trace():
    """Two examples, labels 0 and 2, three epochs of minibatch logits (each example in its own batch, in a
    different order per epoch). Example 1 is never predicted as labelled: Toneva et al.'s code gives it the
    maximum count, its number of presentations (3), not 0."""
    labels = torch.tensor([0, 2])
    trace = [  # per epoch: (example, logits of its presentation)
        [(0, [2.0, 1.0, 0.0]), (1, [0.0, 3.0, 1.0])],     # ex 0: margin 1, correct; ex 1: 1-3 = -2, wrong
        [(1, [4.0, 1.0, 0.0]), (0, [0.5, 1.5, -1.0])],    # ex 1: 0-4 = -4, wrong; ex 0: 0.5-1.5 = -1, wrong
        [(0, [3.0, 0.0, 1.0]), (1, [2.0, 0.0, 1.5])],     # ex 0: 3-1 = 2, correct; ex 1: 1.5-2 = -0.5, wrong
    ]
    dyn = TrainingDynamics(2, CPU)
    for epoch in trace:
        for i, row in epoch:
            idx, logits = torch.tensor([i]), torch.tensor([row])
            loss = F.cross_entropy(logits, labels[idx], reduction="none")
            dyn.present(idx, loss, margins(logits, labels[idx]), logits.argmax(1) == labels[idx])
    assert dyn.aum().tolist() == pytest.approx([(1 - 1 + 2) / 3, (-2 - 4 - 0.5) / 3])
    # ex 0: correct -> wrong (one event) -> correct; ex 1: never learned -> its 3 presentations
    assert dyn.forgetting_events().tolist() == [1, 3]
    assert dyn.presentations.tolist() == [3, 3]
    csl0 = sum(log_sum_exp(r) - r[0] for r in ([2.0, 1.0, 0.0], [0.5, 1.5, -1.0], [3.0, 0.0, 1.0]))
    csl1 = sum(log_sum_exp(r) - r[2] for r in ([0.0, 3.0, 1.0], [4.0, 1.0, 0.0], [2.0, 0.0, 1.5]))
    assert dyn.csl().tolist() == pytest.approx([csl0, csl1], rel=1e-6)
    # the last epoch's detection rows: example 1 (call it the noisy one) has the higher loss, lower margin, is wrong
    rows = {r["signal"]: r for r in dyn.epoch_rows(3, torch.tensor([False, True]))}
    assert {s: (r["auroc"], r["average_precision"]) for s, r in rows.items()} == {
        "loss": (1.0, 1.0), "margin": (1.0, 1.0), "correct": (1.0, 1.0)}


def test_forgetting_counts_every_transition_over_consecutive_presentations():
    """correct, wrong, correct, wrong: two events; learned once then always right: none."""
    dyn = TrainingDynamics(2, CPU)
    for right in ([True, True], [False, True], [True, True], [False, True]):
        dyn.present(torch.tensor([0, 1]), torch.zeros(2), torch.zeros(2), torch.tensor(right))
    assert dyn.forgetting_events().tolist() == [2, 0]


def test_eval_after_epoch_variants_keep_the_earlier_rule():
    """aum_eval / forgetting_events_eval: the same logits seen once per epoch; a never-learned example has 0."""
    labels = torch.tensor([0, 2])
    epochs = [torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0]]),
              torch.tensor([[0.5, 1.5, -1.0], [4.0, 1.0, 0.0]]),
              torch.tensor([[3.0, 0.0, 1.0], [2.0, 0.0, 1.5]])]
    dyn = EvalDynamics(2, CPU)
    for logits in epochs:
        dyn.update(margins(logits, labels), logits.argmax(1) == labels)
    assert dyn.aum().tolist() == pytest.approx([(1 - 1 + 2) / 3, (-2 - 4 - 0.5) / 3])
    assert dyn.forgetting.tolist() == [1, 0]
    assert forgotten(torch.tensor([True, True, False]), torch.tensor([False, True, False])).tolist() == [
        True, False, False]


def test_detection_scores_match_sklearn_with_ties():
    gen = np.random.default_rng(0)
    for _ in range(20):
        n = int(gen.integers(5, 60))
        positive = gen.random(n) < 0.3
        positive[:2] = [True, False]
        score = np.round(gen.normal(size=n) + positive, 1)  # rounded: many ties, within and across classes
        (auroc, ap), = detection_scores([torch.tensor(score)], torch.tensor(positive))
        assert auroc == pytest.approx(roc_auc_score(positive, score), abs=1e-12)
        assert ap == pytest.approx(average_precision_score(positive, score), abs=1e-12)
    # ties count half: one positive and one negative with the same score
    assert detection_scores([torch.tensor([1.0, 1.0])], torch.tensor([True, False]))[0][0] == 0.5
    none = detection_scores([torch.tensor([1.0, 2.0])], torch.tensor([False, False]))[0]
    assert math.isnan(none[0]) and math.isnan(none[1])


def test_csl_aum_and_forgetting_equal_a_plain_replay_of_the_batches(digits):
    """A tiny real training driven batch by batch: before each step a copy of the model gives the batch's
    losses and logits (train mode, plain forward); a Python loop adds them per example. The trainer's running
    tensors hold exactly those sums."""
    prep = prepare(TINY, CPU, data=digits)
    trainer = Trainer(TINY, prep, CPU)
    n, steps = len(prep.labels), trainer.steps_per_epoch
    csl, margin_sum = np.zeros(n), np.zeros(n)
    last, ever, events = np.zeros(n, bool), np.zeros(n, bool), np.zeros(n, int)
    for epoch in range(TINY.epochs):
        order = torch.randperm(n, generator=torch.Generator().manual_seed(epoch + 7))
        for b in range(steps):
            idx = order[b * TINY.batch_size:(b + 1) * TINY.batch_size]
            twin = copy.deepcopy(trainer.model).train()
            with torch.no_grad():
                logits = twin(prep.data.train.x[idx], ids=idx)
            for j, i in enumerate(idx.tolist()):
                row, label = logits[j].tolist(), int(prep.labels[i])
                csl[i] += log_sum_exp(row) - row[label]
                margin_sum[i] += row[label] - max(v for c, v in enumerate(row) if c != label)
                right = max(range(len(row)), key=row.__getitem__) == label
                events[i] += last[i] and not right
                last[i], ever[i] = right, ever[i] or right
            trainer.step(idx, lr_at(epoch * steps + b, TINY.epochs * steps, TINY.lr), None)
    dyn = trainer.training_dynamics
    np.testing.assert_allclose(dyn.csl().numpy(), csl, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dyn.aum().numpy(), margin_sum / TINY.epochs, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(dyn.forgetting_events().numpy(), np.where(ever, events, TINY.epochs))


def test_curvature_of_a_quadratic_loss_is_the_hand_value():
    """l(x) = 1/2 sum_j a_j x_j^2: grad l(x + h v) - grad l(x) = h a*v, whose norm is h ||a|| for every
    Rademacher v, so the estimator gives h ||a|| exactly."""
    a = torch.tensor([1.0, -2.0, 0.5, 3.0])
    x = torch.tensor([[0.3, -1.0, 2.0, 0.1], [1.0, 1.0, -1.0, 0.0]])
    v = rademacher((5, *x.shape), torch.Generator().manual_seed(0), CPU)
    h = 1e-3
    value = finite_difference_curvature(lambda z, rows: a * z, x, v, h)
    assert value.tolist() == pytest.approx([h * a.norm().item()] * 2, rel=1e-4)


class Linear(nn.Module):
    """logits = W x + b, with the `ids` argument every model here takes."""

    def __init__(self, w: torch.Tensor, b: torch.Tensor) -> None:
        super().__init__()
        self.w, self.b = nn.Parameter(w), nn.Parameter(b)

    def forward(self, x: torch.Tensor, ids: torch.Tensor | None = None) -> torch.Tensor:
        return x @ self.w.T + self.b


def test_curvature_of_a_linear_softmax_matches_its_known_input_hessian():
    """Cross-entropy of a linear model: the input Hessian is W^T (diag(p) - p p^T) W, so the estimator must equal
    h * mean_i ||H v_i|| over the same directions (up to the finite difference's O(h) error)."""
    gen = torch.Generator().manual_seed(1)
    w, b = torch.randn(3, 5, generator=gen), torch.randn(3, generator=gen)
    x, y = torch.randn(4, 5, generator=gen), torch.tensor([0, 2, 1, 1])
    h, k = 1e-3, 6
    got = model_curvature(Linear(w, b), x, y, None, k, h, torch.Generator().manual_seed(5))
    v = rademacher((k, *x.shape), torch.Generator().manual_seed(5), CPU)
    expected = []
    for i in range(len(x)):
        p = torch.softmax(x[i] @ w.T + b, 0)
        hessian = w.T @ (torch.diag(p) - torch.outer(p, p)) @ w
        expected.append(h * torch.stack([(hessian @ v[j, i]).norm() for j in range(k)]).mean().item())
    assert got.tolist() == pytest.approx(expected, rel=5e-3)


def plain_curvature(model: nn.Module, x: torch.Tensor, y: torch.Tensor, k: int, h: float, seed: int,
                    chunk: int) -> list[float]:
    """The estimator one example and one direction at a time, directions drawn per chunk as documented."""
    model.eval()
    gen, out = torch.Generator().manual_seed(seed), []

    def grad(z: torch.Tensor, i: int) -> torch.Tensor:
        z = z.clone().requires_grad_(True)
        loss = F.cross_entropy(model(z[None], ids=torch.tensor([i])), y[i:i + 1])
        return torch.autograd.grad(loss, z)[0]

    for s in range(0, len(x), chunk):
        v = rademacher((k, *x[s:s + chunk].shape), gen, CPU).to(x.dtype)
        for i in range(s, min(s + chunk, len(x))):
            base = grad(x[i], i)
            out.append(sum((grad(x[i] + h * v[j, i - s], i) - base).norm().item() for j in range(k)) / k)
    return out


@pytest.mark.parametrize("rows_per_pass", [2048, 9])  # one chunk; chunks of 3 examples (3 directions + 1)
def test_batched_curvature_equals_a_plain_loop(digits, rows_per_pass):
    """The batched estimator on a real (trained for one epoch, BatchNorm in eval mode) model equals the plain
    loop over examples and directions, and leaves the model in the mode it found it in. In float64 they agree
    to 1e-7; in float32 to ~1% only: the difference of two gradients that agree to ~1e-3 keeps few digits, and
    a different batch sums in another order (why the trainer computes it in float32 without bf16 or TF32)."""
    cfg = replace(TINY, variant="tied")  # example-tied dropout: each copy evaluated with its example's mask
    prep = prepare(cfg, CPU, data=digits)
    trainer = Trainer(cfg, prep, CPU)
    trainer.train_epoch()
    x, y, ids = prep.data.train.x[:10], prep.labels[:10], torch.arange(10)
    for model, rtol in ((copy.deepcopy(trainer.model).double(), 1e-7), (trainer.model, 2e-2)):
        model.train()
        xs = x.to(next(model.parameters()).dtype)
        got = model_curvature(model, xs, y, ids, 3, 1e-3, torch.Generator().manual_seed(3), rows_per_pass)
        assert model.training
        want = plain_curvature(model, xs, y, 3, 1e-3, 3, max(1, rows_per_pass // 4))
        np.testing.assert_allclose(got.numpy(), want, rtol=rtol)
        assert (got > 0).all()


def test_curvature_epochs():
    assert [e for e in range(1, 11) if due(e, 10, 3)] == [3, 6, 9, 10]
    assert not any(due(e, 10, 0) for e in range(1, 11))


def trained(cfg: RunConfig, digits, epochs: int, state: dict | None = None) -> Trainer:
    trainer = Trainer(cfg, prepare(cfg, CPU, data=digits), CPU)
    if state is not None:
        trainer.load_state_dict(state)
    while trainer.epoch < epochs:
        trainer.train_epoch()
    return trainer


def test_a_resumed_training_gives_identical_signals(digits):
    """Two epochs, the state through torch.save, one more epoch: every examples column and every detection row
    equals three uninterrupted epochs (curvature at every epoch, so its running sum crosses the resume)."""
    cfg = replace(TINY, curvature_every=1, curvature_directions=2).validate()
    whole = trained(cfg, digits, 3)
    buf = io.BytesIO()
    torch.save(trained(cfg, digits, 2).state_dict(), buf)
    buf.seek(0)
    resumed = trained(cfg, digits, 3, torch.load(buf, weights_only=True))
    pd.testing.assert_frame_equal(resumed.examples_frame(), whole.examples_frame())
    pd.testing.assert_frame_equal(resumed.detection_frame(), whole.detection_frame())
    assert resumed.curvature.epochs == whole.curvature.epochs == 3


def test_learning_time_and_in_confidence(digits):
    """learning_time = (first_learned_epoch - 1) / epochs, 1 when never learned; in_confidence = 1 - the final
    model's largest softmax probability (eval mode), recomputed here from the final model."""
    trainer = trained(TINY, digits, TINY.epochs)
    ex = trainer.examples_frame()
    first = ex["first_learned_epoch"].astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    np.testing.assert_array_equal(ex["learning_time"], np.where(np.isnan(first), 1.0, (first - 1) / TINY.epochs))
    assert ex["learning_time"].between(0, 1).all()
    with torch.no_grad():
        probs = torch.softmax(trainer.model.eval()(trainer.prep.data.train.x, ids=torch.arange(len(ex))), 1)
    np.testing.assert_allclose(ex["in_confidence"], 1 - probs.amax(1).double().numpy(), rtol=1e-5, atol=1e-6)
    assert ex["loss_curvature"].isna().all()  # curvature_every = 0: off


def test_execute_run_writes_the_signals_the_detection_rows_and_their_cost(tmp_path, digits):
    cfg = replace(TINY, epochs=2, curvature_every=2, curvature_directions=2).validate()
    execute_run(cfg, Store(str(tmp_path)), CPU, data=digits)
    runs = pd.read_parquet(tmp_path / "runs")
    ex = pd.read_parquet(tmp_path / "examples")
    det = pd.read_parquet(tmp_path / "detection_epochs")
    assert runs["dynamics_seconds"].iloc[0] > 0 and runs["curvature_seconds"].iloc[0] > 0
    assert runs["dynamics_seconds"].iloc[0] + runs["curvature_seconds"].iloc[0] < runs["seconds"].iloc[0]
    assert ex[["aum", "aum_eval", "csl", "learning_time", "in_confidence", "loss_curvature"]].notna().all().all()
    assert (ex["forgetting_events"] >= 0).all() and (ex["loss_curvature"] > 0).all()
    assert sorted(zip(det["epoch"], det["signal"], strict=True)) == sorted(
        (e, s) for e in (1, 2) for s in ("loss", "margin", "correct"))
    assert det["auroc"].between(0, 1).all() and det["average_precision"].between(0, 1).all()
    # an auxiliary training skips the curvature and writes its detection rows to aux_detection_epochs
    fold = replace(cfg, cv_folds=2, cv_fold=0).validate()
    execute_run(fold, Store(str(tmp_path)), CPU, data=digits)
    aux = pd.read_parquet(tmp_path / "aux_examples")
    assert aux["loss_curvature"].isna().all() and len(pd.read_parquet(tmp_path / "aux_detection_epochs")) == 6
    assert pd.read_parquet(tmp_path / "aux_runs")["curvature_seconds"].iloc[0] == 0


@pytest.mark.slow
def test_examples_table_matches_a_recomputation_from_every_epoch_checkpoint(tmp_path):
    """The trainer's eval-after-epoch AUM and forgetting counts equal those recomputed, the plain way, from the
    saved weights of every epoch; on digits with 10% noise both AUMs separate mislabeled examples well."""
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
    np.testing.assert_allclose(examples["aum_eval"], np.mean(margin_rows, axis=0), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(examples["forgetting_events_eval"], events)
    for column in ("aum", "aum_eval"):
        auroc = roc_auc_score(examples["is_noisy"], -examples[column])
        print(f"{column} AUROC on digits, 10% noise, MLP width 0.5, 12 epochs: {auroc:.3f}")
        assert auroc > 0.8


@pytest.mark.slow
def test_training_pass_signals_work_compiled(digits):
    """torch.compile (inductor on this CPU) gives the same training-pass signals as eager, up to reassociation."""
    import shutil

    def run(compile: bool) -> Trainer:
        trainer = Trainer(TINY, prepare(TINY, CPU, data=digits), CPU, compile=compile)
        for _ in range(2):
            trainer.train_epoch()
        return trainer

    fast, eager = run(True), run(False)
    assert fast.forward.failure is None or shutil.which("g++") is None, fast.forward.failure
    a, b = fast.examples_frame(), eager.examples_frame()
    for column in ("aum", "csl"):
        np.testing.assert_allclose(a[column], b[column], rtol=1e-3, atol=1e-3)
    assert (a["forgetting_events"] - b["forgetting_events"]).abs().mean() < 0.05
