"""Architecture registry: each architecture is one builder function registered under its name.

The registry lives in its own module (not in the package `__init__`) so that the architecture modules can
import `register` without a circular import, and so that adding an architecture is one decorated function in
one file plus one import line in `sweep/models/__init__.py`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from torch import nn

from sweep.errors import UserError

DropoutFactory = Callable[[int, int], nn.Module]
"""(layer, channels) -> module called as `module(h, ids)` at one dropout place; `layer` is the place's index
in forward order (0, 1, ...), which is also the `layer` an example-tied mask is keyed by (sweep.dropout)."""

DROPOUT_PLACES = ("paper", "blocks")
"""Where an architecture with several candidate places puts its dropout modules (only ResNet-9 has a choice;
see sweep.models.resnet9): the paper code's places, or after every conv block."""

Builder = Callable[[tuple[int, int, int], int, float, DropoutFactory | None, str], nn.Module]
"""(in_shape, num_classes, width, dropout, dropout_places) -> model with `groups` and `head` attributes."""

MODELS: dict[str, Builder] = {}
DROPOUT_ARCHS: set[str] = set()
"""Architectures whose builder places the dropout factory's modules: the ones that train the tied, dropout and
sparse variants (a builder that takes none calls `refuse_dropout`)."""


def register(name: str, dropout: bool = False) -> Callable[[Builder], Builder]:
    """Register a builder under `name`; a duplicate name is a programming error, so it fails loudly. `dropout`:
    the builder places the modules its `dropout` factory makes, so runs of every variant may use it."""

    def decorate(builder: Builder) -> Builder:
        if name in MODELS:
            raise ValueError(f"architecture {name!r} registered twice")
        MODELS[name] = builder
        if dropout:
            DROPOUT_ARCHS.add(name)
        return builder

    return decorate


def build_model(
    arch: str,
    in_shape: tuple[int, int, int],
    num_classes: int,
    width: float = 1.0,
    dropout: DropoutFactory | None = None,
    dropout_places: str = "paper",
) -> nn.Module:
    """Build a fresh, randomly initialised model (call `torch.manual_seed` first for reproducibility).

    Inputs are checked here, once, so every builder can assume sane values and every entry point gets the same
    one-line UserError for a bad architecture name, shape, class count, width or dropout placement.
    """
    if arch not in MODELS:
        raise UserError(f"unknown architecture {arch!r}; accepted: {', '.join(sorted(MODELS))}")
    shape = tuple(int(v) for v in in_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise UserError(f"input shape must be (channels, height, width), all positive; got {tuple(in_shape)}")
    if num_classes < 2:
        raise UserError(f"num_classes must be at least 2, got {num_classes}")
    if not (math.isfinite(width) and width > 0):
        raise UserError(f"width must be a positive finite multiplier, got {width}")
    if dropout_places not in DROPOUT_PLACES:
        raise UserError(f"dropout_places must be one of {', '.join(DROPOUT_PLACES)}, got {dropout_places!r}")
    return MODELS[arch](shape, int(num_classes), float(width), dropout, dropout_places)  # type: ignore[arg-type]


def scaled(channels: int, width: float) -> int:
    """Channel count under a width multiplier: rounded, and never below one so narrow models still run."""
    return max(1, round(channels * width))


def refuse_dropout(arch: str, dropout: DropoutFactory | None) -> None:
    """Architectures without dropout placement refuse a factory rather than silently training without it."""
    if dropout is not None:
        raise UserError(f"architecture {arch!r} takes no dropout variant; archs with dropout: "
                        f"{', '.join(sorted(DROPOUT_ARCHS))}")
