"""Batched evaluation on device-resident tensors, shared by the probes.

Probes evaluate many variants of one model (a rewound group, a retrained group, an edited unit set) on the
same splits. A DataLoader per variant spends its time collating small CPU batches; here a split is already one
tensor on the device and is cut into large index slices, evaluated under `torch.no_grad` (bf16 autocast and
channels_last on CUDA, as the trainer does, plain fp32 on the CPU). Training-split batches pass their example
ids to the model so example-tied layers see who they are evaluating; the test split passes none.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import NamedTuple

import torch
from torch import nn

from sweep.probes import RunData

CUDA_BATCH = 4096  # big slices keep the GPU busy; memory is no concern at these input sizes
CPU_BATCH = 512    # on the CPU larger slices fall out of cache: 256-512 measured fastest (ResNet-9, MLP)


class Accuracies(NamedTuple):
    """Accuracy on clean training examples, on noisy ones (against their noisy label), on the test set."""

    clean: float
    noisy: float
    test: float


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put every submodule in eval mode and afterwards restore each one's own flag.

    A plain `model.train()` afterwards would be wrong for a model whose modules are in mixed modes on purpose
    (retraining keeps frozen BatchNorm layers in eval mode while the group trains).
    """
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, flag in flags:
            module.training = flag


def prepare_inputs(x: torch.Tensor) -> torch.Tensor:
    """channels_last on CUDA for image batches (faster convolutions under autocast); unchanged elsewhere."""
    return x.contiguous(memory_format=torch.channels_last) if x.is_cuda and x.dim() == 4 else x


def prepare_model(model: nn.Module) -> nn.Module:
    """channels_last weights on CUDA, matching `prepare_inputs`; in place, values unchanged, CPU untouched.

    Call it before taking references to a model's tensors: it may replace their storage.
    """
    on_cuda = any(p.is_cuda for p in model.parameters())
    return model.to(memory_format=torch.channels_last) if on_cuda else model


def autocast(device: torch.device) -> torch.autocast:
    """bf16 autocast on CUDA only: CPU evaluation stays fp32 so its results are exact and reproducible."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def default_batch(device: torch.device) -> int:
    return CUDA_BATCH if device.type == "cuda" else CPU_BATCH


def predict(model: nn.Module, x: torch.Tensor, ids: torch.Tensor | None = None,
            batch_size: int | None = None) -> torch.Tensor:
    """Argmax class of each row of `x`, in eval mode, on x's device; `ids`: the rows' training example ids."""
    batch_size = batch_size or default_batch(x.device)
    out = torch.empty(len(x), dtype=torch.long, device=x.device)
    with torch.no_grad(), eval_mode(model), autocast(x.device):
        for start in range(0, len(x), batch_size):
            end = start + batch_size
            logits = model(prepare_inputs(x[start:end]), ids=None if ids is None else ids[start:end])
            out[start:end] = logits.argmax(1)
    return out


def _mean(flags: torch.Tensor) -> torch.Tensor:
    """Fraction of True; NaN for an empty selection (a run without noise has no noisy accuracy)."""
    return flags.float().mean() if flags.numel() else torch.full((), float("nan"), device=flags.device)


def train_predictions(model: nn.Module, run: RunData, batch_size: int | None = None) -> torch.Tensor:
    """Predictions on the whole training split, with each example's id passed along."""
    x = run.data.train.x
    return predict(model, x, torch.arange(len(x), device=x.device), batch_size)


def split_accuracies(model: nn.Module, run: RunData, batch_size: int | None = None) -> Accuracies:
    """(clean, noisy vs noisy label, test) accuracy of `model` on the run's splits, with one host sync."""
    correct = train_predictions(model, run, batch_size) == run.labels
    test = run.data.test
    test_correct = predict(model, test.x, None, batch_size) == test.y
    stats = torch.stack([_mean(correct[~run.is_noisy]), _mean(correct[run.is_noisy]), _mean(test_correct)])
    return Accuracies(*stats.cpu().tolist())
