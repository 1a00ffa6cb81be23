"""Per-example training-dynamics signals, taken from the passes training already makes (no extra pass).

From the training forward pass of every minibatch (`TrainingDynamics.present`, called by Trainer.step with the
logits it already has; per-example running tensors on the device, updated by index, no host sync per batch):

- Area under the margin, `aum` (Pleiss et al., 2020): an example's margin at one presentation is the logit of its
  training label minus the largest other logit, from the training forward pass (train mode: dropout, BatchNorm
  batch statistics), as the method and its `aum` library record it; AUM is the mean margin over every epoch's
  presentation. Mislabeled examples keep a low, often negative, margin for long.
- Forgetting events, `forgetting_events` (Toneva et al., 2019): over an example's consecutive presentations, how
  many times it went from predicted as labelled (argmax of the training logits) to not. The authors' code
  (mtoneva/example_forgetting, order_examples_by_forgetting.py) gives an example that was never predicted as
  labelled at any presentation the number of presentations (`npresentations`, the training epochs) as its count,
  the maximum, so it ranks as the most forgettable; we do the same with its number of presentations.
- Cumulative sample loss, `csl` (Ravikumar et al., ICML 2025, Eq. 5): the example's training loss summed over
  training, here the cross-entropy of each of its presentations (the "free during training" reading; the
  authors' code averages eval-mode losses of each epoch's checkpoint, the same ranking up to train/eval mode).
- Per-epoch detection (`epoch_rows`): each epoch's presentation losses, margins and correctness scored for
  finding the mislabeled examples (AUROC with ties counted half, and average precision as sklearn defines it).

From the evaluation after each epoch (`EvalDynamics`, the earlier rules, kept as their own columns):
`aum_eval` (mean eval-mode margin over the epochs) and `forgetting_events_eval` (transitions between
consecutive epochs' eval predictions; a never-learned example has none).
"""

from __future__ import annotations

import math
import time

import torch

# Each per-epoch signal with the sign that makes a suspicious example score high.
EPOCH_SIGNALS = ("loss", "margin", "correct")


def margins(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per row: logits[label] - max over the other classes (float32; positive = predicted as labelled)."""
    logits = logits.float()
    assigned = logits.gather(1, labels[:, None]).squeeze(1)
    others = logits.scatter(1, labels[:, None], float("-inf")).amax(1)
    return assigned - others


def forgotten(was_correct: torch.Tensor, correct: torch.Tensor) -> torch.Tensor:
    """Which examples were forgotten between two consecutive looks (correct before, wrong now)."""
    return was_correct & ~correct


class TrainingDynamics:
    """Running per-example tensors from the training forward passes, on the trainer's device.

    `present` takes one minibatch whose example indices are distinct (a slice of the epoch's permutation), so
    every indexed write touches each example once. Sums are float64, so a long run adds no rounding drift."""

    def __init__(self, n: int, device: torch.device) -> None:
        self.margin_sum = torch.zeros(n, dtype=torch.float64, device=device)
        self.loss_sum = torch.zeros(n, dtype=torch.float64, device=device)
        self.presentations = torch.zeros(n, dtype=torch.long, device=device)
        self.forgetting = torch.zeros(n, dtype=torch.long, device=device)
        self.last_correct = torch.zeros(n, dtype=torch.bool, device=device)
        self.ever_correct = torch.zeros(n, dtype=torch.bool, device=device)
        # this epoch's presentation of each example (every example is presented once per epoch)
        self.epoch_loss = torch.zeros(n, dtype=torch.float32, device=device)
        self.epoch_margin = torch.zeros(n, dtype=torch.float32, device=device)
        self.epoch_correct = torch.zeros(n, dtype=torch.bool, device=device)

    @torch.no_grad()
    def present(self, idx: torch.Tensor, loss: torch.Tensor, margin: torch.Tensor, correct: torch.Tensor) -> None:
        """Record one presentation of examples `idx`: their training loss, margin and whether the training
        logits' argmax is their label. Device ops only (index_add_/index_copy_): nothing waits for the device."""
        self.margin_sum.index_add_(0, idx, margin.double())
        self.loss_sum.index_add_(0, idx, loss.double())
        self.forgetting.index_add_(0, idx, forgotten(self.last_correct[idx], correct).long())
        self.presentations.index_add_(0, idx, torch.ones_like(idx))
        self.last_correct.index_copy_(0, idx, correct)
        self.ever_correct.index_copy_(0, idx, self.ever_correct[idx] | correct)
        self.epoch_loss.index_copy_(0, idx, loss.float())
        self.epoch_margin.index_copy_(0, idx, margin.float())
        self.epoch_correct.index_copy_(0, idx, correct)

    def aum(self) -> torch.Tensor:
        """Mean margin over the example's presentations (NaN for an example never presented)."""
        return self.margin_sum / self.presentations.double().where(self.presentations > 0, torch.nan)

    def forgetting_events(self) -> torch.Tensor:
        """Forgetting events; a never-learned example gets its number of presentations (Toneva et al.'s rule)."""
        return torch.where(self.ever_correct, self.forgetting, self.presentations)

    def csl(self) -> torch.Tensor:
        return self.loss_sum

    def epoch_rows(self, epoch: int, is_noisy: torch.Tensor) -> list[dict[str, object]]:
        """This epoch's detection rows: per signal, AUROC and average precision of finding the mislabeled
        examples, suspicious = high loss, low margin, wrong. One host transfer for the epoch."""
        scores = {"loss": self.epoch_loss, "margin": -self.epoch_margin, "correct": (~self.epoch_correct).float()}
        values = detection_scores(list(scores.values()), is_noisy)
        return [{"epoch": epoch, "signal": name, "auroc": auroc, "average_precision": ap}
                for name, (auroc, ap) in zip(scores, values, strict=True)]

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {name: getattr(self, name).cpu() for name in _TRAINING_STATE}

    def load_state_dict(self, state: dict, device: torch.device) -> None:
        for name in _TRAINING_STATE:
            setattr(self, name, state[name].to(device))


_TRAINING_STATE = ("margin_sum", "loss_sum", "presentations", "forgetting", "last_correct", "ever_correct",
                   "epoch_loss", "epoch_margin", "epoch_correct")


class EvalDynamics:
    """Running sums from the evaluation after each epoch (the earlier `aum_eval`, `forgetting_events_eval`)."""

    def __init__(self, n: int, device: torch.device) -> None:
        self.margin_sum = torch.zeros(n, dtype=torch.float64, device=device)
        self.forgetting = torch.zeros(n, dtype=torch.long, device=device)
        self.was_correct = torch.zeros(n, dtype=torch.bool, device=device)
        self.epochs = 0

    def update(self, margin: torch.Tensor, correct: torch.Tensor) -> None:
        """Add one epoch: every training example's margin and whether it was predicted as labelled (the argmax,
        as in the accuracies; a tie in the margin is decided the way argmax decides it)."""
        self.margin_sum += margin.double()
        self.forgetting += forgotten(self.was_correct, correct).long()
        self.was_correct = correct
        self.epochs += 1

    def aum(self) -> torch.Tensor:
        return self.margin_sum / max(self.epochs, 1)

    def state_dict(self) -> dict[str, object]:
        return {"margin_sum": self.margin_sum.cpu(), "forgetting": self.forgetting.cpu(),
                "was_correct": self.was_correct.cpu(), "epochs": self.epochs}

    def load_state_dict(self, state: dict, device: torch.device) -> None:
        self.margin_sum = state["margin_sum"].to(device)
        self.forgetting = state["forgetting"].to(device)
        self.was_correct = state["was_correct"].to(device)
        self.epochs = int(state["epochs"])


def _auroc_ap(score: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
    """[AUROC, average precision] of `score` (high = positive) as a float64 tensor, on the score's device.

    AUROC is the Mann-Whitney statistic with midranks (a tie between a positive and a negative counts half).
    Average precision is sklearn's: sum over distinct thresholds, from the highest, of the recall gained there
    times the precision there (tied scores enter together). NaN when there is no positive or no negative."""
    score, pos = score.double(), positive.bool()
    n_pos = pos.sum().double()
    n_neg = pos.numel() - n_pos
    _, inverse, counts = torch.unique(score, sorted=True, return_inverse=True, return_counts=True)
    counts = counts.double()
    midrank = counts.cumsum(0) - (counts - 1) / 2  # 1-based rank of each distinct value, ties averaged
    auroc = (midrank[inverse][pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    pos_at = torch.zeros_like(counts).index_add_(0, inverse, pos.double())  # positives at each distinct value
    tp = pos_at.flip(0).cumsum(0).flip(0)  # positives scoring >= the value
    at_or_above = counts.flip(0).cumsum(0).flip(0)
    ap = (pos_at / n_pos * tp / at_or_above).sum()
    both = (n_pos > 0) & (n_neg > 0)
    return torch.where(both, torch.stack([auroc, ap]), torch.full((2,), math.nan, dtype=torch.float64,
                                                                   device=score.device))


def detection_scores(scores: list[torch.Tensor], positive: torch.Tensor) -> list[tuple[float, float]]:
    """(AUROC, average precision) of each score for finding `positive`, with one host transfer for all."""
    if positive.numel() == 0:
        return [(math.nan, math.nan) for _ in scores]
    values = torch.stack([_auroc_ap(s, positive) for s in scores]).cpu().tolist()
    return [(a, p) for a, p in values]


class Stopwatch:
    """Time spent in short sections of the training loop without waiting for the device inside the loop.

    On CUDA a section is timed by two events on the stream (GPU time between them, read once per epoch after
    the epoch's own synchronisation); on a CPU, where every op runs in line, by the wall clock."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.seconds = 0.0
        self._open: list[tuple[torch.cuda.Event, torch.cuda.Event]] = []
        self._start: torch.cuda.Event | float | None = None

    def start(self) -> None:
        if self.cuda:
            self._start = torch.cuda.Event(enable_timing=True)
            self._start.record()
        else:
            self._start = time.perf_counter()

    def stop(self) -> None:
        if self.cuda:
            end = torch.cuda.Event(enable_timing=True)
            end.record()
            self._open.append((self._start, end))
        else:
            self.seconds += time.perf_counter() - self._start

    def total(self) -> float:
        """Seconds so far; on CUDA this waits for the sections' end events (call it once per epoch)."""
        if self._open:
            self._open[-1][1].synchronize()
            self.seconds += sum(a.elapsed_time(b) for a, b in self._open) / 1000
            self._open.clear()
        return self.seconds
