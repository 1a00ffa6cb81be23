"""One subset model trained the plain way: an nn.Module, torch.optim.SGD, a for loop over its batches.

Obviously correct and slow; it exists so the tests and `bench/packs.py` can check that sweep.packs' vmapped
pack gives the same models as training them one after another. It shares only the rules with the pack (the
membership hash, the seeds of initialisation and batch order: sweep.packs' module docstring), none of its
mechanics: the real BatchNorm modules, the real optimiser, each model on its own unpadded batches.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from sweep.config import RunConfig
from sweep.packs import build_subset_model, membership, order_seed
from sweep.schedule import MOMENTUM, WEIGHT_DECAY, lr_at
from sweep.train import Prepared


def train_one(cfg: RunConfig, prep: Prepared, model_index: int, device: torch.device) -> nn.Module:
    """Subset model `model_index` of `cfg` trained alone on `prep` (the ordinary run's data and noisy labels)."""
    n = len(prep.labels)
    subset = membership(n, cfg.noise_seed, model_index, cfg.subset_fraction).nonzero().squeeze(1).to(device)
    model = build_subset_model(cfg, model_index).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.0, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
    b = cfg.batch_size
    steps = math.ceil(len(subset) / b)
    if steps > 1 and len(subset) % b == 1:  # a last batch of one example is left out (BatchNorm needs two)
        steps -= 1
    model.train()
    for epoch in range(cfg.epochs):
        gen = torch.Generator(device=device)
        gen.manual_seed(order_seed(cfg.seed, model_index, epoch))
        order = subset[torch.randperm(len(subset), generator=gen, device=device)]
        for s in range(steps):
            idx = order[s * b:(s + 1) * b]
            for group in opt.param_groups:
                group["lr"] = lr_at(epoch * steps + s, cfg.epochs * steps, cfg.lr)
            opt.zero_grad()
            loss = F.cross_entropy(model(prep.data.train.x[idx]), prep.labels[idx])
            loss.backward()
            opt.step()
    return model.eval()
