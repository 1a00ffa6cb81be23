"""Layer retraining (paper Figure 4): reset one group to its initial weights, train only it on clean examples.

If a group can be relearned from clean data alone while everything else stays fixed and the model then
gets the noisy examples wrong, the memorization of those examples lived in that group. The test is only
meaningful if nothing outside the group moves. The paper's code meant this but set `requires_grad` on
state_dict copies (detached tensors), so in fact every layer trained. Here:

- the group's parameters and buffers (BatchNorm running statistics included) are reset to their epoch-0
  values and only its parameters are given to the optimizer; every other parameter has requires_grad=False,
  so weight decay and momentum touch nothing outside the group either;
- the model trains in train mode, except that every module outside the group that keeps running statistics
  (BatchNorm) stays in eval mode, so its statistics neither update nor switch to batch statistics.

Optimisation follows DESIGN.md §4: SGD with momentum 0.9 and weight decay 5e-4, a triangular per-batch
schedule (`sweep.schedule.lr_at`) rising from 0 to `AnalysisConfig.retrain_lr` at the half-way point of the
`retrain_epochs` budget and back to 0 at its end, the run's batch size, batches as index slices of a per-epoch
permutation of the clean examples on the device. The half-way peak (`AnalysisConfig.retrain_peak = 0.5`) is
the paper's: its retraining (experiments/retraining.py, `do_ft`) takes `get_scheduler_epochs("triangle",
max_epochs=20)`, whose triangle always peaks at epoch 10, i.e. at epoch 10 of the retraining's 20, at lr 0.01
(training's own triangle peaks at 1/5, epoch 10 of 50). We state the peak as a fraction so any `retrain_epochs`
gives a whole triangle; at the default 20 epochs it is the paper's schedule. `retrain_peak = 0.2` is our earlier
rule (the trainer's 1/5). The schedule spans the whole budget even when training stops early, as in the paper.
Training stops after `retrain_patience` consecutive epochs at 100% clean training accuracy (eval mode) or
after `retrain_epochs`. (The paper's loop counts epochs at 100% accuracy of its training forward passes, not
necessarily consecutive.) One Ray task retrains one group of one run.
"""

from __future__ import annotations

import math

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from sweep.config import AnalysisConfig
from sweep.probes import Probe, RunData, register_probe
from sweep.probes.evaluate import autocast, prepare_inputs, prepare_model, split_accuracies
from sweep.probes.rewind import base_columns, group_index, group_shards, load_group
from sweep.schedule import MOMENTUM, WEIGHT_DECAY, lr_at
from sweep.schemas import rows_frame

SEED_STRIDE = 1_000_003  # seed * stride + offset + group: a batch-order stream per (run seed, group)
SEED_OFFSET = 500_009    # keeps these streams apart from the trainer's seed * stride + epoch


def _has_running_stats(module: nn.Module) -> bool:
    return any(name.startswith("running_") for name, _ in module.named_buffers(recurse=False))


def _own_keys(prefix: str, module: nn.Module) -> list[str]:
    tensors = [*module.named_parameters(recurse=False), *module.named_buffers(recurse=False)]
    return [f"{prefix}.{n}" if prefix else n for n, _ in tensors]


def isolate_group(model: nn.Module, keys: list[str]) -> list[nn.Parameter]:
    """Freeze everything outside the group (see the module docstring) and return the group's parameters.

    Leaves the model in train mode with frozen running-statistics modules in eval mode.
    """
    inside = set(keys)
    params = []
    for name, param in model.named_parameters():
        param.requires_grad_(name in inside)
        if name in inside:
            params.append(param)
    if not params:
        raise ValueError("the layer group has no parameters to retrain")
    model.train()
    for prefix, module in model.named_modules():
        if _has_running_stats(module) and not inside.intersection(_own_keys(prefix, module)):
            module.eval()
    return params


def _row(layer: int, group: str, epoch: int, model: nn.Module, run: RunData,
         base: dict[str, float]) -> dict[str, object]:
    acc = split_accuracies(model, run)
    return {"layer": layer, "layer_name": group, "retrain_epoch": epoch, "clean_acc": acc.clean,
            "noisy_acc": acc.noisy, "test_acc": acc.test, **base}


def retrain_group(run: RunData, group: str, analysis: AnalysisConfig) -> tuple[nn.Module, pd.DataFrame]:
    """Retrain one group as the module docstring says; returns the retrained model and one row per epoch.

    Row retrain_epoch 0 is the model right after the reset, before any training.
    """
    from sweep.models.groups import group_state_keys

    if 0 not in run.epochs:
        raise ValueError(f"retraining needs the epoch-0 checkpoint; this run has epochs {run.epochs}")
    model = prepare_model(run.model_at(run.final_epoch))
    base = base_columns(split_accuracies(model, run))  # before the reset: what retraining is measured against
    base["retrain_peak"] = analysis.retrain_peak  # the schedule's choice, recorded in every row
    layer = group_index(model, group)
    keys = group_state_keys(model, group)
    load_group(model, run.state(0), keys)
    params = isolate_group(model, keys)
    optimizer = torch.optim.SGD(params, lr=0.0, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)

    clean = torch.nonzero(~run.is_noisy).squeeze(1)
    x, y, batch = run.data.train.x, run.labels, run.cfg.batch_size
    steps = math.ceil(len(clean) / batch)
    total = analysis.retrain_epochs * steps
    peak_step = total * analysis.retrain_peak
    gen = torch.Generator(device=run.device)
    gen.manual_seed(run.cfg.seed * SEED_STRIDE + SEED_OFFSET + layer)

    rows = [_row(layer, group, 0, model, run, base)]
    streak = 0
    for epoch in range(1, analysis.retrain_epochs + 1):
        order = clean[torch.randperm(len(clean), device=run.device, generator=gen)]
        for b in range(steps):
            idx = order[b * batch:(b + 1) * batch]
            for param_group in optimizer.param_groups:
                param_group["lr"] = lr_at((epoch - 1) * steps + b, total, analysis.retrain_lr, peak_step)
            optimizer.zero_grad(set_to_none=True)
            with autocast(run.device):
                logits = model(prepare_inputs(x[idx]), ids=idx)
            F.cross_entropy(logits.float(), y[idx]).backward()
            optimizer.step()
        rows.append(_row(layer, group, epoch, model, run, base))
        streak = streak + 1 if rows[-1]["clean_acc"] >= 1.0 else 0
        if streak >= analysis.retrain_patience:
            break
    return model, rows_frame("retraining", rows)


def _run(run: RunData, shard: str, analysis: AnalysisConfig) -> dict[str, pd.DataFrame]:
    return {"retraining": retrain_group(run, shard, analysis)[1]}


PROBE = register_probe(Probe(name="retrain", tables=("retraining",), shards=group_shards, run=_run,
                             applies=lambda cfg: cfg.variant == "standard",
                             settings=("retrain_epochs", "retrain_lr", "retrain_patience", "retrain_peak"),
                             reads=lambda cfg, analysis: (0, cfg.epochs)))
