"""Layer rewinding (paper Figure 3): the final model with one layer group's weights from an earlier epoch.

If rewinding a group to an early checkpoint costs the noisy examples but keeps the clean and test accuracy,
that group holds what was memorized late. What moves with a group is its parameters; its buffers (BatchNorm
running mean, variance and batch counter) stay the final model's, as in the paper's own code (DESIGN.md §4).
Rewinding the buffers too is a setting (`rewind_buffers`), recorded in every row: at epoch 0 those are the
initial 0/1 statistics, so a rewound layer would run un-normalised and the curve would measure that instead.

One Ray task handles one group (a shard) of one run and all its rewind epochs: it loads the final model once,
then per rewind epoch copies just that group's tensors into the same model and evaluates it on the
device-resident splits in large batches (`sweep.probes.evaluate`), never rebuilding a model or a data loader.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import lru_cache

import pandas as pd
import torch
from torch import nn

from sweep.config import AnalysisConfig, RunConfig
from sweep.probes import Probe, RunData, register_probe
from sweep.probes.evaluate import Accuracies, prepare_model, split_accuracies
from sweep.schemas import rows_frame


@lru_cache(maxsize=64)
def _group_names(dataset: str, arch: str, width: float) -> tuple[str, ...]:
    from sweep.data import SHAPES
    from sweep.models import build_model

    shape, classes = SHAPES[dataset]
    return tuple(name for name, _ in build_model(arch, shape, classes, width=width).groups)


def group_names(cfg: RunConfig) -> list[str]:
    """The layer groups of the model `cfg` trains, in forward order, from a CPU model built without data."""
    return list(_group_names(cfg.dataset, cfg.arch, cfg.width))


def group_shards(cfg: RunConfig, analysis: AnalysisConfig) -> list[str]:
    """One shard per layer group: the unit of work of a per-group probe."""
    return group_names(cfg)


def group_index(model: nn.Module, group: str) -> int:
    """Position of `group` in the model's ordered groups (the tables' `layer` column)."""
    names = [name for name, _ in model.groups]
    if group not in names:
        raise ValueError(f"unknown layer group {group!r}; this model has {', '.join(names)}")
    return names.index(group)


def rewind_epochs(requested: Iterable[int], available: Iterable[int]) -> list[int]:
    """The requested rewind epochs that have a checkpoint, ascending (the final epoch too, if asked for)."""
    return sorted(set(requested) & set(available))


def rewound_state(final: Mapping[str, torch.Tensor], rewind: Mapping[str, torch.Tensor],
                  keys: Iterable[str]) -> dict[str, torch.Tensor]:
    """The state_dict of the final model with `keys` (one group's parameters, perhaps buffers) from `rewind`.

    The reference definition the in-place probe must agree with, and what the benchmark's baseline loads.
    """
    keys = set(keys)
    missing = keys - set(final)
    if missing:
        raise KeyError(f"group keys not in the state_dict: {sorted(missing)}")
    return {k: (rewind[k] if k in keys else v) for k, v in final.items()}


def load_group(model: nn.Module, state: Mapping[str, torch.Tensor], keys: list[str]) -> None:
    """Copy one group's tensors from `state` into `model` in place; every other tensor is left untouched."""
    result = model.load_state_dict({k: state[k] for k in keys}, strict=False)
    if result.unexpected_keys:
        raise KeyError(f"keys not in the model: {result.unexpected_keys}")


def base_columns(base: Accuracies) -> dict[str, float]:
    """The final model's accuracies, repeated on each row of a layer probe, so "how much did this edit cost"
    needs no join."""
    return {"clean_acc_base": base.clean, "noisy_acc_base": base.noisy, "test_acc_base": base.test}


def rewind_group(run: RunData, group: str, epochs: Iterable[int], buffers: bool = False) -> pd.DataFrame:
    """Rows for one group: accuracies of the final model with that group's parameters (and, with `buffers`,
    its buffers) rewound to each of `epochs`."""
    from sweep.models.groups import group_state_keys

    model = prepare_model(run.model_at(run.final_epoch))
    layer = group_index(model, group)
    keys = group_state_keys(model, group, buffers=buffers)
    base = split_accuracies(model, run)  # the final model: what each rewind is measured against
    rows = []
    for epoch in rewind_epochs(epochs, run.epochs):
        load_group(model, run.state(epoch), keys)
        acc = split_accuracies(model, run)
        rows.append({"layer": layer, "layer_name": group, "rewind_epoch": epoch, "rewind_buffers": buffers,
                     "clean_acc": acc.clean, "noisy_acc": acc.noisy, "test_acc": acc.test,
                     **base_columns(base)})
    return rows_frame("rewinding", rows)


def _run(run: RunData, shard: str, analysis: AnalysisConfig) -> dict[str, pd.DataFrame]:
    return {"rewinding": rewind_group(run, shard, analysis.rewind_epochs, analysis.rewind_buffers)}


PROBE = register_probe(Probe(name="rewind", tables=("rewinding",), shards=group_shards, run=_run,
                             applies=lambda cfg: cfg.variant == "standard",
                             settings=("rewind_epochs", "rewind_buffers"),
                             reads=lambda cfg, a: (cfg.epochs, *(e for e in a.rewind_epochs if e <= cfg.epochs))))
