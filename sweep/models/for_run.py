"""The model a run trains, built from its config: the one bridge from a RunConfig to the model registry.

It lives with the models (not with the trainer or the probes) so that training, every probe and the engine's
storage estimate import it from one place, and imports run one way: config/data/dropout -> models -> the rest.
"""

from __future__ import annotations

from torch import nn

from sweep.config import RunConfig
from sweep.data import SHAPES
from sweep.dropout import make_dropout
from sweep.models.registry import build_model


def build_model_for(cfg: RunConfig) -> nn.Module:
    """The model a run trains: its architecture, width, dropout variant and placement, shaped for its dataset."""
    factory = make_dropout(cfg) if cfg.variant != "standard" else None
    shape, classes = SHAPES[cfg.dataset]
    return build_model(cfg.arch, shape, classes, width=cfg.width, dropout=factory, dropout_places=cfg.dropout_places)
