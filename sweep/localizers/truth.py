"""Tied ground truth: which units an example-tied run let a training example memorize in.

In an example-tied run (sweep/dropout.py) training example i only ever trained through the generalization
channels and its own memorization channels: every other memorization channel was zeroed in each of i's
forward passes. So whatever i's (possibly wrong) label needs beyond what generalizes can only live in i's own
memorization channels, and those are a pure function of (mask seed, layer, i, channel). That is the truth set
a localizer is scored against (sweep/probes/localize.py).

Mapping dropout channels onto the unit vocabulary (`sweep.models.groups.unit_layers`, rule "outputs"): each
example-tied dropout module sits at the end of one block, named `<block>.drop`, and multiplies the block's
output channels; the unit it masks is the block's one conv/linear module, output channel c <-> mask channel c:
- MLP: `fcK.drop` (layer K-1) masks the features of `fcK.linear` (after its BatchNorm and ReLU, which act per
  feature, so feature c of the unit is channel c of the mask);
- ResNet-9: `<block>.drop` masks the output channels of `<block>.conv` (after BatchNorm and ReLU; before the
  max-pool for conv3 under the paper's places, which commutes with a per-channel 0/1 mask). At res1b and res2b
  the mask is applied after the residual sum, so mask channel c zeroes res1b.conv's channel c together with the
  skip's channel c: the unit res1b.conv:c is what a localizer can remove there, and it is dead for i exactly
  when the mask zeroes c for i.
Units in blocks without a dropout module (ResNet-9's res1a and res2a under the paper's places) were trained by
every example: they belong to no truth set and are counted apart (`outside`).

The live set of target i (the units that can act on i in mode "tied"): generalization channels, i's own
memorization channels, and every unit of an unmasked block. In mode "all" every unit is live.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from sweep.dropout import ExampleTiedDropout, tied_modules
from sweep.models.groups import unit_layers


@dataclass(frozen=True)
class MaskedLayer:
    """One unit tensor masked by an example-tied dropout module: global units offset..offset+n_units-1."""

    unit_module: str
    drop_module: str
    offset: int
    n_units: int
    dropout: ExampleTiedDropout


@dataclass(frozen=True)
class TiedTruth:
    """The tied ground truth of a model: which unit tensors are masked, and the model's unit count."""

    masked: tuple[MaskedLayer, ...]
    outside: torch.Tensor  # (units,) bool: units of layers without a dropout mask
    total: int

    @classmethod
    def of(cls, model: nn.Module) -> TiedTruth:
        """Match each `<block>.drop` to the one unit module inside `<block>` (see the module docstring)."""
        layers = unit_layers(model, "outputs")
        offsets, at = [], 0
        for layer in layers:
            offsets.append(at)
            at += layer.n_units
        masked = []
        outside = torch.ones(at, dtype=torch.bool)
        for name, module in tied_modules(model):
            block = name.rpartition(".")[0]
            inside = [i for i, layer in enumerate(layers) if layer.name.rpartition(".")[0] == block]
            if len(inside) != 1:
                raise ValueError(f"example-tied dropout {name!r} has {len(inside)} unit modules in its block "
                                 f"{block!r}; the tied truth needs exactly one")
            layer = layers[inside[0]]
            if layer.n_units != module.channels:
                raise ValueError(f"{name!r} masks {module.channels} channels but {layer.name!r} has "
                                 f"{layer.n_units} units")
            masked.append(MaskedLayer(layer.name, name, offsets[inside[0]], layer.n_units, module))
            outside[offsets[inside[0]]:offsets[inside[0]] + layer.n_units] = False
        return cls(tuple(masked), outside, at)

    def truth(self, ids: torch.Tensor) -> torch.Tensor:
        """(len(ids), units) bool: each example's own memorization channels in every masked layer."""
        out = torch.zeros(len(ids), self.total, dtype=torch.bool)
        for layer in self.masked:
            lo = layer.offset + layer.dropout.n_gen
            out[:, lo:layer.offset + layer.n_units] = layer.dropout.mem_mask(ids).cpu()
        return out

    def live(self, ids: torch.Tensor) -> torch.Tensor:
        """(len(ids), units) bool: the units that act on each example in mode "tied" (its training mask in
        masked layers, generalization channels included; every unit of an unmasked layer)."""
        out = torch.ones(len(ids), self.total, dtype=torch.bool)
        for layer in self.masked:
            out[:, layer.offset:layer.offset + layer.n_units] = layer.dropout.mask(ids).cpu()
        return out
