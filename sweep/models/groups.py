"""Layer groups and units: the vocabulary the probes use to address parts of a model.

A model declares `groups`, an ordered list of (group name, [module or parameter name prefixes]), and `head`,
the name of its classifier nn.Linear. Everything here derives from those two attributes, so the probes
(rewinding, retraining, gradient accounting, neuron flipping) work on any registered architecture unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from sweep.errors import UserError


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


UNIT_RULES = ("outputs", "paper")
# How a unit is removed, per kind (see `unit_layers`): "output" zeroes one output channel/feature of the module;
# "scale" zeroes one channel of a conv's filters or of a BatchNorm's scale (the module's output minus its
# shift, per channel); "shift" zeroes one value of a conv/linear bias or BatchNorm shift; "value" zeroes one
# element of a linear layer's weight matrix (unit = out_index * in_features + in_index, row-major).
UNIT_KINDS = ("output", "scale", "shift", "value")


@dataclass
class UnitLayer:
    """One tensor of removable units for neuron flipping: `n_units` units of one `kind` in one module.

    `name` is what the flips tables record as a unit's `module`: the module path under the "outputs" rule
    (e.g. `conv1.conv`), the parameter path under the "paper" rule (e.g. `conv1.bn.weight`, `fc.weight`).
    """

    group: str
    name: str
    module: nn.Module
    n_units: int
    kind: str = "output"


def unit_layers(model: nn.Module, rule: str = "outputs") -> list[UnitLayer]:
    """The model's removable units under a flip rule, in forward order.

    "outputs" (DESIGN.md §4): every nn.Conv2d and nn.Linear except the classifier head; a unit is an output
    channel/feature (zeroing its filter and bias). Forward order is registration order: every architecture
    here registers its modules in the order its forward pass uses them (tests check this with hooks).

    "paper" (the paper's code, `experiments/neuron_flipping/attribution_utils.py`): every parameter tensor, in
    `named_parameters` order (the order its search breaks ties in); a 4-D conv weight by output channel (its
    filter alone, not the bias), every other tensor one value at a time: BatchNorm scale and shift values,
    biases, and each weight of every linear layer, the classifier's included. Parameters of any other kind of
    module (LayerNorm, embeddings, free tensors) have no batched form here and are refused.
    """
    if rule not in UNIT_RULES:
        raise ValueError(f"unknown unit rule {rule!r}; rules: {', '.join(UNIT_RULES)}")
    if rule == "paper":
        return _paper_layers(model)
    layers = []
    for name, module in model.named_modules():
        if name == model.head or not isinstance(module, nn.Conv2d | nn.Linear):
            continue
        n_units = module.out_channels if isinstance(module, nn.Conv2d) else module.out_features
        layers.append(UnitLayer(group_of(model, name), name, module, n_units))
    return layers


def _paper_layers(model: nn.Module) -> list[UnitLayer]:
    layers = []
    for name, param in model.named_parameters():
        owner, _, attr = name.rpartition(".")
        module = model.get_submodule(owner)
        if isinstance(module, nn.Conv2d) and attr == "weight":
            kind, n_units = "scale", module.out_channels
        elif isinstance(module, nn.modules.batchnorm._BatchNorm) and attr == "weight":
            kind, n_units = "scale", param.numel()
        elif isinstance(module, nn.Conv2d | nn.Linear | nn.modules.batchnorm._BatchNorm) and attr == "bias":
            kind, n_units = "shift", param.numel()
        elif isinstance(module, nn.Linear) and attr == "weight":
            kind, n_units = "value", param.numel()
        else:
            raise UserError(f"flip_units='paper' removes values of Conv2d, Linear and BatchNorm parameters only; "
                            f"{type(model).__name__} has {name!r} ({type(module).__name__}): use "
                            "flip_units='outputs' for this architecture")
        layers.append(UnitLayer(group_of(model, name), name, module, n_units, kind))
    return layers
