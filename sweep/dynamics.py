"""Per-example training-dynamics signals, updated from the evaluation every epoch already does (no extra pass).

- Area under the margin (Pleiss et al., 2020): an example's margin at one epoch is the logit of its training
  label minus the largest other logit; its AUM is the mean margin over the epochs. Mislabeled examples keep a
  low, often negative, margin for long, because the rest of the data pulls them toward their true class.
- Forgetting events (Toneva et al., 2019): how many times an example went from predicted as labelled at one
  epoch to not at the next. An example never learned has no forgetting event; `first_learned_epoch` tells
  those apart.
"""

from __future__ import annotations

import torch


def margins(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per row: logits[label] - max over the other classes (float32; positive = predicted as labelled)."""
    logits = logits.float()
    assigned = logits.gather(1, labels[:, None]).squeeze(1)
    others = logits.scatter(1, labels[:, None], float("-inf")).amax(1)
    return assigned - others


def forgotten(was_correct: torch.Tensor, correct: torch.Tensor) -> torch.Tensor:
    """Which examples were forgotten between two consecutive epochs (correct before, wrong now)."""
    return was_correct & ~correct


class Dynamics:
    """Running sums for one run's training examples, on the trainer's device; saved with the resume state."""

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
