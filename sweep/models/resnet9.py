"""The paper's ResNet-9 (the fast CIFAR ResNet-9 that Maini et al.'s code builds on), with a width multiplier.

Layout (channels at width 1): conv1 3x3 (64) -> conv2 5x5 stride 2 (128) -> residual pair res1a, res1b (128)
-> conv3 3x3 (256) + max-pool 2 -> residual pair res2a, res2b (256) -> conv4 3x3 (128) -> global max-pool ->
linear classifier without bias -> logits x 0.2. Every conv block is conv (no bias) -> BatchNorm -> ReLU.

Small inputs: the original conv4 has no padding, which would shrink the 2x2 map of an 8x8 input to nothing, so
conv4 keeps the original padding 0 whenever its input map is at least 3x3 (28x28 and 32x32 inputs: the paper's
model exactly) and uses padding 1 otherwise. Inputs smaller than 3x3 are refused.

Dropout places (the run field `dropout_places`; the same for example-tied dropout, standard dropout and the
sparse baseline). The module at place k is built as `dropout(k, channels)`, so k is the `layer` its masks are
keyed by (sweep.dropout), and it lives inside the block named `PLACES[places][k]` (attribute `drop`), on that
block's output channels, which are the output channels of the block's conv (`<block>.conv`):
- `paper` (default; the paper code's `ResNet9_dropout` in models.py): 6 places, layer 0..5 = after conv1,
  after conv2, after the res1 sum (block res1b), after conv3 *before* its max-pool, after the res2 sum (block
  res2b), after conv4. The place after conv3 is before the pool as in that code: a 0/1 per-channel mask (times
  a positive factor) commutes with max-pooling, so for example-tied dropout this only matters for where the
  module sits, but an element-wise mask (standard dropout, the paper's sparse network) does not commute.
- `blocks` (our earlier rule): 8 places, layer 0..7 = after each conv block in BLOCKS order, the second block
  of a residual pair after the residual sum and conv3 after its max-pool.
In both, every tensor handed on carries at most one layer's mask, and a mask after a residual sum is applied
to the sum (a mask applied before it would be undone on channels the skip path keeps alive).
"""

from __future__ import annotations

import torch
from torch import nn

from sweep.errors import UserError
from sweep.models.registry import DropoutFactory, register, scaled

BLOCKS = ("conv1", "conv2", "res1a", "res1b", "conv3", "res2a", "res2b", "conv4")
CHANNELS = dict(zip(BLOCKS, (64, 128, 128, 128, 256, 256, 256, 128), strict=True))
PLACES = {
    "paper": ("conv1", "conv2", "res1b", "conv3", "res2b", "conv4"),
    "blocks": BLOCKS,
}
"""Per `dropout_places`: the block holding the dropout module of each layer index, in forward order."""
LOGIT_SCALE = 0.2


class ConvBlock(nn.Module):
    """Conv -> BatchNorm -> ReLU [-> max-pool] [+ skip], with the block's dropout module (if any) at the end,
    or right before the max-pool when `drop_before_pool` (the paper code's place after conv3).

    The optional pool and skip live inside the block so that each dropout place is one well-defined point in
    one block (and any state the dropout module keeps belongs to this block's layer group).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        drop: nn.Module | None,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int = 1,
        pool: bool = False,
        drop_before_pool: bool = False,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.pool = nn.MaxPool2d(2) if pool else None
        self.drop = drop
        self.drop_before_pool = drop_before_pool and pool

    def forward(
        self, x: torch.Tensor, ids: torch.Tensor | None = None, skip: torch.Tensor | None = None
    ) -> torch.Tensor:
        h = torch.relu(self.bn(self.conv(x)))
        if self.drop is not None and self.drop_before_pool:
            h = self.drop(h, ids)
        if self.pool is not None:
            h = self.pool(h)
        if skip is not None:
            h = h + skip
        if self.drop is not None and not self.drop_before_pool:
            h = self.drop(h, ids)
        return h


class ResNet9(nn.Module):
    """ResNet-9; groups conv1, conv2, res1a, res1b, conv3, res2a, res2b, conv4, head (the classifier `fc`)."""

    def __init__(
        self,
        in_shape: tuple[int, int, int],
        num_classes: int,
        width: float,
        dropout: DropoutFactory | None,
        dropout_places: str = "paper",
    ) -> None:
        super().__init__()
        in_channels, height, wide = in_shape
        # Map side entering conv4: conv2 (5x5, stride 2, pad 2) gives ceil(s/2), the pool halves it (floor).
        side = min((height + 1) // 2, (wide + 1) // 2) // 2
        if side < 1:
            raise UserError(f"resnet9 needs inputs of at least 3x3 pixels, got {height}x{wide}")
        # (kernel, stride, padding, pool) per block; a residual pair keeps its input's channel count.
        layout = {
            "conv1": (3, 1, 1, False),
            "conv2": (5, 2, 2, False),
            "res1a": (3, 1, 1, False),
            "res1b": (3, 1, 1, False),
            "conv3": (3, 1, 1, True),
            "res2a": (3, 1, 1, False),
            "res2b": (3, 1, 1, False),
            "conv4": (3, 1, 0 if side >= 3 else 1, False),
        }
        places = PLACES[dropout_places]
        before_pool = dropout_places == "paper"  # only conv3 has a pool, so only its place moves
        self.dropout_places = dropout_places
        channels = in_channels
        for name in BLOCKS:
            kernel, stride, padding, pool = layout[name]
            out = scaled(CHANNELS[name], width)
            drop = None if dropout is None or name not in places else dropout(places.index(name), out)
            self.add_module(name, ConvBlock(channels, out, drop, kernel, stride, padding, pool, before_pool))
            channels = out
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.fc = nn.Linear(channels, num_classes, bias=False)
        self.head = "fc"
        self.groups: list[tuple[str, list[str]]] = [(n, [n]) for n in BLOCKS] + [("head", ["fc"])]

    def forward(self, x: torch.Tensor, ids: torch.Tensor | None = None) -> torch.Tensor:
        h = self.conv2(self.conv1(x, ids), ids)
        h = self.res1b(self.res1a(h, ids), ids, skip=h)
        h = self.conv3(h, ids)
        h = self.res2b(self.res2a(h, ids), ids, skip=h)
        h = self.conv4(h, ids)
        return self.fc(self.pool(h).flatten(1)) * LOGIT_SCALE


@register("resnet9", dropout=True)
def resnet9(
    in_shape: tuple[int, int, int],
    num_classes: int,
    width: float,
    dropout: DropoutFactory | None,
    dropout_places: str = "paper",
) -> nn.Module:
    """The paper's ResNet-9; dropout at the paper code's 6 places or after each of the 8 conv blocks."""
    return ResNet9(in_shape, num_classes, width, dropout, dropout_places)
