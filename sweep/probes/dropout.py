"""Dropout evaluation (paper Tables 1 and 3, Figure 7): does dropping the memorization channels forget?

For an example-tied run the final model is evaluated in four modes (DESIGN.md §4):
- `tied`: every training example with its own training mask. This is where memorization shows (the paper's
  "before" clean and noisy columns). Test examples have no mask of their own, so this row's test accuracy
  is the `all` evaluation, exactly as in the per-epoch table: the row is the paper's whole "before" row.
- `all`: memorization channels times p_mem, for every example.
- `drop`: memorization channels zeroed, generalization channels times the paper's (p_gen + p_mem) / p_gen.
- `drop-expected`: the same with (p_gen + (1 - p_gen) p_mem) / p_gen, the mean active fraction in training
  over the generalization fraction (the paper's factor over-scales wide conv layers, see DESIGN.md §4).
Baselines (standard dropout, sparse network) have one mode, `test`: their usual eval mode.

Per training example of an example-tied run: correct in `tied` and in `drop` (paper factor), against the
training label; the clean examples lost by dropping are the paper's Figure 7.
"""

from __future__ import annotations

import pandas as pd
import torch

from sweep.config import AnalysisConfig, RunConfig
from sweep.dropout import drop_factor, set_dropout_mode
from sweep.probes import Probe, RunData, register_probe
from sweep.probes.evaluate import predict, prepare_model, train_predictions

DROPOUT_COLUMNS = ("mode", "clean_acc", "noisy_acc", "test_acc", "scale", "scale_rule")
EXAMPLE_COLUMNS = ("example_id", "is_noisy", "correct_tied", "correct_drop")

# (row name, module mode, scale rule) of the modes an example-tied run is evaluated in, after `tied`.
TIED_MODES = (("all", "all", None), ("drop", "drop", "paper"), ("drop-expected", "drop", "expected"))


def _accuracy(correct: torch.Tensor) -> torch.Tensor:
    """Fraction of True on the device; NaN for an empty selection (a run without label noise)."""
    return correct.float().mean() if correct.numel() else torch.full((), float("nan"), device=correct.device)


def _row_stats(train_correct: torch.Tensor, test_acc: torch.Tensor, is_noisy: torch.Tensor) -> torch.Tensor:
    """(clean, noisy, test) accuracy as one device tensor, so a mode costs no host sync."""
    return torch.stack([_accuracy(train_correct[~is_noisy]), _accuracy(train_correct[is_noisy]), test_acc])


def _empty_examples() -> pd.DataFrame:
    return pd.DataFrame({"example_id": pd.Series(dtype="int64"), "is_noisy": pd.Series(dtype="bool"),
                         "correct_tied": pd.Series(dtype="bool"), "correct_drop": pd.Series(dtype="bool")})


def evaluate_dropout(run: RunData) -> dict[str, pd.DataFrame]:
    """Both tables for the run's final model; all evaluation batched on the run's device."""
    cfg = run.cfg
    model = prepare_model(run.model_at(run.final_epoch))
    test = run.data.test
    labels, is_noisy = run.labels, run.is_noisy
    if cfg.variant != "tied":
        test_acc = _accuracy(predict(model, test.x) == test.y)
        stats = _row_stats(train_predictions(model, run) == labels, test_acc, is_noisy)
        clean, noisy, test_acc = stats.cpu().tolist()
        frame = pd.DataFrame([{"mode": "test", "clean_acc": clean, "noisy_acc": noisy, "test_acc": test_acc,
                               "scale": 1.0, "scale_rule": "none"}], columns=list(DROPOUT_COLUMNS))
        return {"dropout": frame, "dropout_examples": _empty_examples()}

    try:
        set_dropout_mode(model, "tied")
        correct_tied = train_predictions(model, run) == labels
        stats, correct = {}, {}
        for name, mode, rule in TIED_MODES:
            set_dropout_mode(model, mode, rule)
            correct[name] = train_predictions(model, run) == labels
            stats[name] = _row_stats(correct[name], _accuracy(predict(model, test.x) == test.y), is_noisy)
        stats["tied"] = _row_stats(correct_tied, stats["all"][2], is_noisy)
    finally:
        set_dropout_mode(model, None, "paper")
    values = {name: s.cpu().tolist() for name, s in stats.items()}
    rows = []
    for name, rule in (("tied", None), *((n, r) for n, _, r in TIED_MODES)):
        clean, noisy, test_acc = values[name]
        rows.append({"mode": name, "clean_acc": clean, "noisy_acc": noisy, "test_acc": test_acc,
                     "scale": 1.0 if rule is None else drop_factor(cfg.p_gen, cfg.p_mem, rule),
                     "scale_rule": rule or "none"})
    examples = pd.DataFrame({
        "example_id": torch.arange(len(labels)).numpy(), "is_noisy": is_noisy.cpu().numpy(),
        "correct_tied": correct_tied.cpu().numpy(), "correct_drop": correct["drop"].cpu().numpy()})
    return {"dropout": pd.DataFrame(rows, columns=list(DROPOUT_COLUMNS)), "dropout_examples": examples}


def _run(run: RunData, shard: str, analysis: AnalysisConfig) -> dict[str, pd.DataFrame]:
    return evaluate_dropout(run)


def _shards(cfg: RunConfig, analysis: AnalysisConfig) -> list[str]:
    return ["all"]


PROBE = register_probe(Probe(name="dropout", tables=("dropout", "dropout_examples"), shards=_shards, run=_run,
                             applies=lambda cfg: cfg.variant != "standard"))
