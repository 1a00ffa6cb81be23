"""Layer groups and units: the vocabulary the probes use to address parts of a model.

A model declares `groups`, an ordered list of (group name, [module or parameter name prefixes]), and `head`,
the name of its classifier nn.Linear. Everything here derives from those two attributes, so the probes
(rewinding, retraining, gradient accounting, neuron flipping) work on any registered architecture unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn


def _under(key: str, prefix: str) -> bool:
    """Whether a dotted state/module name lies under a prefix (whole name components, not a string prefix)."""
    return key == prefix or key.startswith(prefix + ".")


def group_names(model: nn.Module) -> list[str]:
    """The model's group names, in forward order."""
    return [name for name, _ in model.groups]


def group_of(model: nn.Module, key: str) -> str:
    """The group owning a state_dict key or module name; a key outside every group is a model bug."""
    for name, prefixes in model.groups:
        if any(_under(key, prefix) for prefix in prefixes):
            return name
    raise KeyError(f"{key!r} belongs to no layer group of {type(model).__name__}")


def group_state_keys(model: nn.Module, group: str, buffers: bool = True) -> list[str]:
    """The state_dict keys of one group, in order: its parameters and, with `buffers`, its buffers (BatchNorm
    running statistics and batch counter) too.

    Resetting a group for retraining takes both; rewinding takes the parameters only by default, as the paper
    does (see `sweep.probes.rewind`).
    """
    if group not in group_names(model):
        raise KeyError(f"no layer group {group!r}; groups: {', '.join(group_names(model))}")
    params = {name for name, _ in model.named_parameters()}
    return [key for key in model.state_dict() if group_of(model, key) == group and (buffers or key in params)]


@dataclass
class UnitLayer:
    """One module whose output channels/features are units for neuron flipping."""

    group: str
    name: str
    module: nn.Module
    n_units: int


def unit_layers(model: nn.Module) -> list[UnitLayer]:
    """Every nn.Conv2d and nn.Linear except the classifier head, in forward order.

    Forward order is registration order: every architecture here registers its modules in the order its
    forward pass uses them (tests check this with hooks).
    """
    layers = []
    for name, module in model.named_modules():
        if name == model.head or not isinstance(module, nn.Conv2d | nn.Linear):
            continue
        n_units = module.out_channels if isinstance(module, nn.Conv2d) else module.out_features
        layers.append(UnitLayer(group_of(model, name), name, module, n_units))
    return layers
