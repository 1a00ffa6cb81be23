"""Exact, uniform label noise whose draw is a function of (dataset, rate, noise seed) alone.

The noise must be the same set of examples for every architecture and model seed that shares those three
values, so runs differing only in the model can be compared example by example. Hence its own generator,
seeded from a stable hash (not Python's salted ``hash()``), untouched by ``torch.manual_seed`` or
``np.random.seed``.
"""

from __future__ import annotations

import hashlib
import math
import numbers

import numpy as np
import torch
from torch import Tensor

from sweep.errors import UserError


def noise_rng(dataset: str, rate: float, seed: int) -> np.random.Generator:
    """A generator private to one (dataset, rate, seed): 0.1 and 0.10 agree, other values never collide."""
    key = f"label-noise\0{dataset}\0{float(rate)!r}\0{int(seed)}".encode()
    return np.random.default_rng(int.from_bytes(hashlib.sha256(key).digest(), "big"))


def add_label_noise(labels: Tensor, rate: float, seed: int, num_classes: int,
                    dataset: str) -> tuple[Tensor, Tensor]:
    """Relabel exactly round(rate * n) distinct examples, each to a class drawn uniformly from the C-1 others.

    Adding an offset drawn from 1..C-1 (mod C) reaches every other class with probability 1/(C-1); the paper's
    code drew the offset from 1..C-2 and so could never produce true-1 mod C. Returns the noisy labels (int64)
    and the mask of relabelled examples, both on the device of ``labels``; ``labels`` itself is not modified.
    """
    is_number = isinstance(rate, numbers.Real) and not isinstance(rate, bool)
    if not (is_number and math.isfinite(rate) and 0.0 <= rate < 1.0):
        raise UserError(f"label noise rate {rate!r} is invalid; accepted: a number in [0, 1)")
    if labels.dim() != 1 or labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise ValueError(f"labels must be a 1-D integer tensor, got {tuple(labels.shape)} {labels.dtype}")
    original = labels.detach().to("cpu", torch.int64)
    n = original.numel()
    count = round(rate * n)
    if n and (int(original.min()) < 0 or int(original.max()) >= num_classes):
        raise ValueError(f"labels must lie in 0..{num_classes - 1}")
    if count and num_classes < 2:
        raise ValueError("label noise needs at least two classes")
    rng = noise_rng(dataset, rate, seed)
    chosen = torch.from_numpy(rng.permutation(n)[:count])
    offsets = torch.from_numpy(rng.integers(1, num_classes, size=count))
    noisy = original.clone()
    noisy[chosen] = (original[chosen] + offsets) % num_classes
    mask = torch.zeros(n, dtype=torch.bool)
    mask[chosen] = True
    return noisy.to(labels.device), mask.to(labels.device)
