"""ResNet-50 from torchvision's Bottleneck blocks, adapted to small images and scaled by a width multiplier.

Why assembled here rather than `torchvision.models.resnet50()`: torchvision's constructor hard-codes the stem
width (64) and the stage widths (64, 128, 256, 512), and its `width_per_group` knob only widens the inner 3x3
convolutions, so a true width multiplier needs a rebuild. The rebuild reuses torchvision's `Bottleneck` and
`conv1x1`, keeps torchvision's module names (conv1, bn1, layer1.0.conv1, ..., layer1.0.downsample.0, fc) and
its initialisation, and at width 1 has exactly torchvision's parameter shapes except the adapted stem.

Small-image adaptation (the usual CIFAR choice): the stem is a 3x3 stride-1 conv on the input's channels and
the stem max-pool is dropped, so an 8x8 input still reaches layer4 as a 1x1 map (32x32 reaches it as 4x4).
Note: BatchNorm in training mode refuses a batch of one example when a map is 1x1 (8x8 inputs, layer4).

Layer groups: stem (conv1 + bn1), each of the 16 bottleneck blocks (layer1.0 .. layer4.2), head (fc).
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.resnet import Bottleneck, conv1x1

from sweep.models.registry import DropoutFactory, refuse_dropout, register, scaled

STAGES = ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2))
"""(planes at width 1, blocks, first stride) per stage, as in torchvision's resnet50."""
STEM = 64


def _stage(in_channels: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
    """One stage of bottlenecks; the first one projects the shortcut when shape or stride changes."""
    out = planes * Bottleneck.expansion
    downsample = None
    if stride != 1 or in_channels != out:
        downsample = nn.Sequential(conv1x1(in_channels, out, stride), nn.BatchNorm2d(out))
    layers = [Bottleneck(in_channels, planes, stride, downsample)]
    layers += [Bottleneck(out, planes) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class ResNet50(nn.Module):
    """ResNet-50 (3-4-6-3 bottlenecks) with a small-image stem; `head` is the classifier `fc`."""

    def __init__(self, in_shape: tuple[int, int, int], num_classes: int, width: float) -> None:
        super().__init__()
        stem = scaled(STEM, width)
        self.conv1 = nn.Conv2d(in_shape[0], stem, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        self.relu = nn.ReLU(inplace=True)
        channels = stem
        self.groups: list[tuple[str, list[str]]] = [("stem", ["conv1", "bn1"])]
        for index, (planes, blocks, stride) in enumerate(STAGES):
            name = f"layer{index + 1}"
            planes = scaled(planes, width)
            self.add_module(name, _stage(channels, planes, blocks, stride))
            channels = planes * Bottleneck.expansion
            self.groups += [(f"{name}.{b}", [f"{name}.{b}"]) for b in range(blocks)]
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)
        self.head = "fc"
        self.groups.append(("head", ["fc"]))
        self._init_like_torchvision()

    def _init_like_torchvision(self) -> None:
        """torchvision's ResNet initialisation (Kaiming fan-out convs, unit BatchNorm)."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor, ids: torch.Tensor | None = None) -> torch.Tensor:
        """`ids` is accepted for a uniform model interface; ResNet-50 has no example-tied dropout."""
        h = self.relu(self.bn1(self.conv1(x)))
        h = self.layer4(self.layer3(self.layer2(self.layer1(h))))
        return self.fc(self.avgpool(h).flatten(1))


@register("resnet50")
def resnet50(
    in_shape: tuple[int, int, int],
    num_classes: int,
    width: float,
    dropout: DropoutFactory | None,
    dropout_places: str = "paper",
) -> nn.Module:
    """ResNet-50 for small images; width scales the stem and every stage (torchvision's layout at width 1)."""
    refuse_dropout("resnet50", dropout)
    return ResNet50(in_shape, num_classes, width)
