"""A small fully connected network for flattened images (the quick memorization testbed on `digits`).

Choice: three hidden layers of 512*width features, each Linear -> BatchNorm1d -> ReLU (-> dropout).
Why BatchNorm: on `digits` with 10% label noise, SGD (momentum 0.9, wd 5e-4, triangle lr peaking at 0.1) and
30 epochs at batch 128, a plain ReLU MLP of the same size reaches only ~50% training accuracy on the noisy
examples (it learns the clean ones and stops), while with BatchNorm it reaches 100% on the noisy ones with
~93-96% test accuracy, also at batch 256-512 - the regime the paper studies (memorization has happened).
Three layers rather than two give the layer-wise probes more than one hidden layer to tell apart.
Zeroing a unit (its weight row and bias) zeroes that feature before normalisation, as for the conv nets.
Note: BatchNorm1d in training mode refuses a batch of one example.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from sweep.models.registry import DropoutFactory, register, scaled

HIDDEN = (512, 512, 512)


class DenseBlock(nn.Module):
    """Linear -> BatchNorm -> ReLU, then the block's dropout module (if any) on its output features."""

    def __init__(self, in_features: int, out_features: int, drop: nn.Module | None) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)
        self.bn = nn.BatchNorm1d(out_features)
        # Inside the block, so any state a dropout module keeps belongs to this block's layer group.
        self.drop = drop

    def forward(self, x: torch.Tensor, ids: torch.Tensor | None = None) -> torch.Tensor:
        h = torch.relu(self.bn(self.linear(x)))
        return h if self.drop is None else self.drop(h, ids)


class MLP(nn.Module):
    """Flatten -> hidden blocks fc1..fc3 -> linear classifier `fc`. Groups: fc1, fc2, fc3, head."""

    def __init__(
        self, in_shape: tuple[int, int, int], num_classes: int, width: float, dropout: DropoutFactory | None
    ) -> None:
        super().__init__()
        features = math.prod(in_shape)
        names = []
        for index, base in enumerate(HIDDEN):
            out = scaled(base, width)
            name = f"fc{index + 1}"
            drop = None if dropout is None else dropout(index, out)
            self.add_module(name, DenseBlock(features, out, drop))
            names.append(name)
            features = out
        self.fc = nn.Linear(features, num_classes)
        self.blocks = names
        self.head = "fc"
        self.groups: list[tuple[str, list[str]]] = [(n, [n]) for n in names] + [("head", ["fc"])]

    def forward(self, x: torch.Tensor, ids: torch.Tensor | None = None) -> torch.Tensor:
        h = x.flatten(1)
        for name in self.blocks:
            h = getattr(self, name)(h, ids)
        return self.fc(h)


@register("mlp", dropout=True)
def mlp(
    in_shape: tuple[int, int, int],
    num_classes: int,
    width: float,
    dropout: DropoutFactory | None,
    dropout_places: str = "paper",
) -> nn.Module:
    """Three hidden layers of 512*width; dropout (layer 0..2) after each hidden layer under either placement
    (the MLP has one natural set of places, so `dropout_places` changes nothing here)."""
    return MLP(in_shape, num_classes, width, dropout)
