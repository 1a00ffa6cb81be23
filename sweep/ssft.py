"""Second-split forgetting time (SSFT; Maini, Garg, Lipton and Kolter, NeurIPS 2022) as auxiliary trainings.

The protocol, as the SSFT paper's code runs it (github.com/pratyushmaini/ssft, train.py and utils.py):
1. split the training set into two random halves;
2. train on one half for the usual schedule (phase 1);
3. fine-tune the same model on the other half (phase 2) with a fresh SGD optimizer (momentum state reset) and
   the same schedule, learning rate and number of epochs as phase 1;
4. after every phase-2 epoch, record for each phase-1 example whether it is predicted as its training label;
   its forgetting time is the first epoch after which it is never predicted so again (`forget_epochs`).
   Mislabeled examples, fitted only by memorizing, are forgotten within a few epochs; clean ones are still
   predicted from what generalizes, so low = suspicious;
5. swap the halves, so every example is scored once.

Here one SSFT run (`RunConfig.ssft_half` = 1 or 2) is steps 2-4 for one half: a grid block with `ssft = true`
adds both beside each of its standard runs (same config, seeds and noisy labels: the noise is drawn on the
whole training set first, as for the ordinary run; the SSFT code draws it per half). The halves come from a
permutation seeded by the noise seed (`halves`), so both runs agree on them wherever they train. Such a run is
an auxiliary training: its runs / examples / epochs / gradients rows go to the `aux_*` tables (its epochs are
numbered 1..2*epochs, the last `epochs` being phase 2; its examples rows are the phase-1 half, their signals over
phase 1), its scores to the `ssft` table; it has a done-record and resumes mid-phase like any run, and no probes.

Two choices differ from the SSFT code, both documented in the `ssft` table: correctness is measured in eval mode
(the SSFT code evaluates with the model in train mode, so BatchNorm uses batch statistics), matching every other
per-example signal here; and one run per half and seed gives the score (the code averages it over model seeds;
the report pools seeds as for every signal). The code's phase 2 stops early after 5 epochs at 100% training
accuracy; here it runs every epoch, so every run has the same number of rows (an example's forgetting time is
unchanged unless it is first forgotten after such a stop).

No torch model code here: the Trainer comes from the caller (sweep.train), so this module imports nothing of it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from sweep.config import RunConfig

if TYPE_CHECKING:
    from sweep.train import Prepared, Trainer


def halves(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The two halves (ascending example ids) of n training examples: a permutation seeded by `seed` (the noise
    seed), its first ceil(n/2) entries half 1, the rest half 2. Its own generator key, unlike sweep.folds'."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 7_919 + 104_729))
    first = (n + 1) // 2
    return order[:first].sort().values, order[first:].sort().values


def split_for(n: int, half: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids trained on first, ids fine-tuned on) of an SSFT run of half `half` (1 or 2)."""
    one, two = halves(n, seed)
    return (one, two) if half == 1 else (two, one)


def train_epochs(cfg: RunConfig) -> int:
    """Epochs a run trains in all: both phases of an SSFT run, `epochs` otherwise."""
    return 2 * cfg.epochs if cfg.ssft_half else cfg.epochs


def forget_epochs(correct: np.ndarray) -> pd.arrays.IntegerArray:
    """Second-split forgetting time of each example from `correct` (phase-2 epochs x examples, True = predicted
    as its training label at that epoch's end): the first epoch e (1-based) at whose end the example is wrong
    and stays wrong through the last epoch, i.e. 1 + its last correct epoch (1 when never correct in phase 2,
    whatever it was at the end of phase 1, as the SSFT code's rule: it counts phase 1's end as correct); NA when
    correct at the last epoch (never forgotten; the SSFT code writes epochs + 1)."""
    correct = np.asarray(correct, dtype=bool)
    epochs, n = correct.shape
    if epochs == 0:
        return pd.array([pd.NA] * n, dtype="Int64")
    last = np.where(correct.any(0), epochs - 1 - np.argmax(correct[::-1], axis=0), -1)  # 0-based, -1 = never
    return pd.array(np.where(last == epochs - 1, None, last + 2), dtype="Int64")


@torch.no_grad()
def correct_on(trainer: Trainer, prep: Prepared, batch: int = 2048) -> torch.Tensor:
    """Eval-mode correctness (on the CPU) of `trainer`'s model on the training rows of `prep`, in their order."""
    trainer.model.eval()
    x, y = prep.data.train.x, prep.labels
    out = []
    for s in range(0, len(y), batch):
        with trainer._autocast():
            logits = trainer.forward(trainer._inputs(x[s:s + batch])).float()
        out.append((logits.argmax(1) == y[s:s + batch]).cpu())
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.bool)


class SecondSplit:
    """An SSFT run as sweep.train.execute_run drives a Trainer: `epoch`, `train_epoch`, `state_dict`,
    `load_state_dict`, `weights`, `examples_frame`, plus `ssft_frame`. `prep` is the phase-1 half with the
    phase-2 half as its `held_out`; `make` builds a Trainer on a Prepared (the caller's device and compile
    settings). Phase 2 is a new Trainer (fresh optimizer, schedule from its start) with phase 1's final weights."""

    def __init__(self, cfg: RunConfig, prep: Prepared, make: Callable[[Prepared], Trainer]) -> None:
        assert prep.held_out is not None, "an SSFT run's data carries its second half as held_out"
        self.cfg, self.prep, self.make = cfg, prep, make
        self.phase1 = make(prep)
        self.phase2: Trainer | None = None
        self.correct: list[torch.Tensor] = []  # per phase-2 epoch: correctness on the phase-1 half
        self.learned: torch.Tensor | None = None  # correctness on the phase-1 half at the end of phase 1

    @property
    def epoch(self) -> int:
        return self.phase1.epoch + (self.phase2.epoch if self.phase2 is not None else 0)

    @property
    def active(self) -> Trainer:
        return self.phase2 if self.phase2 is not None else self.phase1

    def _start_phase2(self) -> Trainer:
        trainer = self.make(self.prep.held_out)
        trainer.model.load_state_dict(self.phase1.model.state_dict())
        return trainer

    def train_epoch(self) -> tuple[dict[str, float], list[dict[str, object]]]:
        """One epoch of the current phase; phase-2 rows are numbered after phase 1's (epochs + 1 ...)."""
        epochs = self.cfg.epochs
        if self.phase1.epoch < epochs:
            row, grads = self.phase1.train_epoch()
            if self.phase1.epoch == epochs:
                self.learned = correct_on(self.phase1, self.prep)
            return row, grads
        if self.phase2 is None:
            self.phase2 = self._start_phase2()
        row, grads = self.phase2.train_epoch()
        self.correct.append(correct_on(self.phase2, self.prep))
        return {**row, "epoch": row["epoch"] + epochs}, [{**g, "epoch": g["epoch"] + epochs} for g in grads]

    def state_dict(self) -> dict[str, Any]:
        """Phase 1's trainer state (its per-example records feed the examples table), and under `ssft` phase 2's
        and the correctness recorded so far: a run killed in phase 2 continues from its last saved epoch."""
        return {**self.phase1.state_dict(), "ssft": {
            "phase2": None if self.phase2 is None else self.phase2.state_dict(),
            "correct": torch.stack(self.correct) if self.correct else torch.zeros(0, len(self.prep.labels),
                                                                                  dtype=torch.bool),
            "learned": self.learned}}

    def load_state_dict(self, state: dict) -> None:
        self.phase1.load_state_dict(state)
        saved = state["ssft"]
        self.correct = list(saved["correct"].bool())
        self.learned = saved["learned"]
        if saved["phase2"] is not None:
            self.phase2 = self._start_phase2()
            self.phase2.load_state_dict(saved["phase2"])

    def weights(self) -> dict[str, torch.Tensor]:
        return self.active.weights()

    def examples_frame(self) -> pd.DataFrame:
        """The phase-1 half's rows, with their training signals over phase 1."""
        return self.phase1.examples_frame()

    def ssft_frame(self) -> pd.DataFrame:
        """The `ssft` table's rows: each phase-1 example's forgetting time over the fine-tuning on the other half."""
        prep = self.prep
        correct = torch.stack(self.correct).numpy() if self.correct else np.zeros((0, len(prep.labels)), bool)
        learned = self.learned if self.learned is not None else torch.zeros(len(prep.labels), dtype=torch.bool)
        return pd.DataFrame({
            "of_run_id": of_run_id(self.cfg), "example_id": prep.example_ids.cpu().numpy(),
            "label": prep.labels.cpu().numpy(), "is_noisy": prep.is_noisy.cpu().numpy(),
            "forget_epoch": forget_epochs(correct), "learned_at_phase1_end": learned.numpy().astype(bool),
            "correct_epochs": correct.sum(0).astype(np.int64)})


def of_run_id(cfg: RunConfig) -> str:
    """The ordinary run an SSFT run scores the examples of."""
    return replace(cfg, ssft_half=0).run_id
