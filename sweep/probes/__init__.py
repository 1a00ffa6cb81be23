"""Probe registry and the run view every probe receives.

A probe is a pure function of a finished run (model checkpoints + device-resident data) that returns rows.
The engine decides where and when it runs, adds the run's id and config columns, and writes Parquet; adding
an analysis is one `register_probe` call in the probe's own module plus its import at the bottom of this file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import pandas as pd
import torch
from torch import nn

from sweep.config import AnalysisConfig, RunConfig
from sweep.data import Dataset
from sweep.models.for_run import build_model_for
from sweep.store import Store


@dataclass
class RunData:
    """Everything a probe needs about one finished run, with tensors already on the probe's device."""

    cfg: RunConfig
    data: Dataset
    labels: torch.Tensor
    original: torch.Tensor
    is_noisy: torch.Tensor
    epochs: list[int]
    device: torch.device
    load_state: Callable[[int], dict[str, torch.Tensor]]
    record_id: str | None = None  # the run's done-record, which a probe shard's own record names
    # the results store (sweep.store.Store) the run was read from: for a probe that reads what other trainings
    # wrote, e.g. the memorization probe its subset models' predictions; None for a run held in memory
    store: Store | None = None
    _cache: dict[int, dict[str, torch.Tensor]] = field(default_factory=dict, repr=False)

    @property
    def final_epoch(self) -> int:
        return max(self.epochs)

    def state(self, epoch: int) -> dict[str, torch.Tensor]:
        """A checkpoint's state_dict on the device, read once and kept: probes revisit the same epochs."""
        if epoch not in self._cache:
            self._cache[epoch] = {k: v.to(self.device) for k, v in self.load_state(epoch).items()}
        return self._cache[epoch]

    def build_model(self) -> nn.Module:
        return build_model_for(self.cfg).to(self.device)

    def model_at(self, epoch: int) -> nn.Module:
        model = self.build_model()
        model.load_state_dict(self.state(epoch))
        return model.eval()

    @classmethod
    def from_states(cls, cfg: RunConfig, data: Dataset, labels: torch.Tensor, original: torch.Tensor,
                    is_noisy: torch.Tensor, states: dict[int, dict[str, torch.Tensor]],
                    device: torch.device | str = "cpu") -> RunData:
        """A run held in memory (tests, notebooks): checkpoints are the given state_dicts."""
        device = torch.device(device)
        return cls(cfg=cfg, data=data.to(device), labels=labels.to(device), original=original.to(device),
                   is_noisy=is_noisy.to(device), epochs=sorted(states), device=device,
                   load_state=lambda epoch: states[epoch])


@dataclass(frozen=True)
class Probe:
    """One analysis: which tables it writes, how it splits into Ray tasks (shards), and the work per shard."""

    name: str
    tables: tuple[str, ...]
    shards: Callable[[RunConfig, AnalysisConfig], list[str]]
    run: Callable[[RunData, str, AnalysisConfig], dict[str, pd.DataFrame]]
    applies: Callable[[RunConfig], bool] = lambda cfg: True
    num_cpus: float = 1.0
    # the AnalysisConfig fields its rows depend on: signed into each shard's done-record, so results made under
    # other values are refused instead of kept beside new ones (sweep.plan.check_results_match)
    settings: tuple[str, ...] = ()
    # the epochs whose weights it loads (the final one unless it says more): what a training must keep
    reads: Callable[[RunConfig, AnalysisConfig], Iterable[int]] = lambda cfg, analysis: (cfg.epochs,)
    # which auxiliary trainings of a run it reads (a predicate on them; None: none): such a probe applies to a run
    # only when the grid holds at least one auxiliary training r of it (r.base() == the run) with needs(r), and
    # its tasks wait until every such training is done (sweep.plan.needed_runs; the engine holds them until then)
    needs: Callable[[RunConfig], bool] | None = None


PROBES: dict[str, Probe] = {}


def register_probe(probe: Probe) -> Probe:
    """Add a probe to the registry the engine fans out from; names must be unique."""
    if probe.name in PROBES:
        raise ValueError(f"probe {probe.name!r} registered twice")
    PROBES[probe.name] = probe
    return probe


# Every analysis module registers itself on import; this line is the one place that lists them.
from sweep.probes import dropout, flip, localize, memorization, retrain, rewind  # noqa: E402, F401
