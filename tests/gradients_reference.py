"""A plain reference for gradient accounting, shared by the trainer's tests and the ViT's: the same trajectory
one batch at a time, clean and noisy gradients from separate autograd.grad calls, summed in float64 on the host."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from sweep.config import RunConfig
from sweep.data import Dataset
from sweep.models.groups import group_of
from sweep.schedule import lr_at
from sweep.train import Trainer, prepare


def brute_force_gradient_rows(cfg: RunConfig, data: Dataset, epochs: int) -> pd.DataFrame:
    """Follow the same trajectory one batch at a time, taking clean and noisy gradients with separate autograd.grad
    calls and summing them in float64 on the host: no shared accumulators, no shortcuts."""
    prep = prepare(cfg, torch.device("cpu"), data=data)
    trainer = Trainer(cfg, prep, torch.device("cpu"))
    model, params = trainer.model, trainer.params
    names = {id(p): n for n, p in model.named_parameters()}
    groups = [g for g, _ in model.groups]
    rows = []
    n = len(prep.labels)
    for epoch in range(epochs):
        g_clean = [np.zeros(p.shape) for p in params]
        g_noisy = [np.zeros(p.shape) for p in params]
        gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)
        order = torch.randperm(n, generator=gen)
        model.train()
        for b in range(math.ceil(n / cfg.batch_size)):
            idx = order[b * cfg.batch_size:(b + 1) * cfg.batch_size]
            step = epoch * trainer.steps_per_epoch + b
            for group in trainer.opt.param_groups:
                group["lr"] = lr_at(step, cfg.epochs * trainer.steps_per_epoch, cfg.lr)
            losses = F.cross_entropy(model(prep.data.train.x[idx], ids=idx), prep.labels[idx], reduction="none")
            noisy = prep.is_noisy[idx]
            gc = torch.autograd.grad(losses[~noisy].sum() / len(idx), params, retain_graph=True)
            gn = torch.autograd.grad(losses[noisy].sum() / len(idx), params)
            for acc_c, acc_n, a, c in zip(g_clean, g_noisy, gc, gn, strict=True):
                acc_c += a.double().numpy()
                acc_n += c.double().numpy()
            for p, a, c in zip(params, gc, gn, strict=True):
                p.grad = a + c
            trainer.opt.step()
        for gi, name in enumerate(groups):
            sel = [i for i, p in enumerate(params) if group_of(model, names[id(p)]) == name]
            clean = sum(np.linalg.norm(g_clean[i]) / math.sqrt(g_clean[i].size) for i in sel)
            noisy = sum(np.linalg.norm(g_noisy[i]) / math.sqrt(g_noisy[i].size) for i in sel)
            cos = np.mean([(g_clean[i] * g_noisy[i]).sum() / (np.linalg.norm(g_clean[i]) * np.linalg.norm(g_noisy[i]))
                           for i in sel])
            flat_c = np.concatenate([g_clean[i].ravel() for i in sel])
            flat_n = np.concatenate([g_noisy[i].ravel() for i in sel])
            flat = flat_c @ flat_n / (np.linalg.norm(flat_c) * np.linalg.norm(flat_n))
            rows.append({"epoch": epoch + 1, "layer": gi, "layer_name": name, "clean_norm": clean,
                         "noisy_norm": noisy, "cosine": cos, "cosine_flat": flat})
    return pd.DataFrame(rows)
