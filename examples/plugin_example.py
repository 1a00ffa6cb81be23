"""A plug-in: your own dataset and architecture, registered where every Ray worker will import them.

    python run_sweep.py --plugin examples/plugin_example.py --grid examples/plugin_example.toml --results /tmp/plug

Importing this module registers the dataset `prototypes` and the architecture `tinycnn`; the sweep imports it in
the driver (before the grid is read) and in every training and analysis task (sweep.plugins).

What a dataset needs: a loader `(data_dir, download) -> Dataset` registered with its input shape and class count
(models are built for a run without loading its data). Training example i must be the same example in every
process and every call, so the data here is a pure function of a fixed seed.

What an architecture needs (sweep.models.groups): `forward(x, ids=None)`, `groups` (ordered layer groups: name and
the module-name prefixes they own; every parameter in exactly one), `head` (the classifier's module name). The
probes' units are every nn.Conv2d and nn.Linear but the head, so flipping and the localizers work unchanged.
For the tied, dropout and sparse variants (the `dropout` analysis) the builder places the modules its `dropout`
factory makes, `dropout(layer, channels)`, each called as `module(h, ids)`, and registers with `dropout=True`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from sweep.data import Dataset, Split, register
from sweep.models.registry import DropoutFactory, scaled
from sweep.models.registry import register as register_model

SHAPE = (1, 8, 8)
CLASSES = 6
N_TRAIN, N_TEST = 480, 240
SEED = 7
MODES = 2  # prototypes per class: a class is not one direction, so a model has something to learn
SPREAD = 0.9  # per-pixel noise around an image's prototype: every image is unique, classes overlap a little


def make_prototypes(n_train: int = N_TRAIN, n_test: int = N_TEST, seed: int = SEED) -> Dataset:
    """Images that are a random prototype of their class plus pixel noise, normalised with the train split's
    statistics. A mislabeled image still looks like its true class, so fitting its label means memorizing it."""
    rng = np.random.default_rng(seed)
    prototypes = rng.normal(size=(CLASSES, MODES, *SHAPE))

    def split(n: int) -> Split:
        labels = np.arange(n) % CLASSES
        rng.shuffle(labels)
        modes = rng.integers(0, MODES, size=n)
        x = prototypes[labels, modes] + SPREAD * rng.normal(size=(n, *SHAPE))
        return Split(torch.from_numpy(x.astype(np.float32)), torch.from_numpy(labels.astype(np.int64)))

    train, test = split(n_train), split(n_test)
    mean, std = train.x.mean(), train.x.std()
    for part in (train, test):
        part.x.sub_(mean).div_(std)
    return Dataset("prototypes", train, test, CLASSES, SHAPE)


@register("prototypes", shape=SHAPE, num_classes=CLASSES)
def _prototypes(data_dir: Path, download: bool) -> Dataset:
    """Made in code: no files, so `data_dir` and `download` are not used."""
    return make_prototypes()


class ConvBlock(nn.Module):
    """Conv -> BatchNorm -> ReLU, then the block's dropout module (if any), inside the block's layer group."""

    def __init__(self, c_in: int, c_out: int, drop: nn.Module | None) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.bn = nn.BatchNorm2d(c_out)
        self.drop = drop

    def forward(self, x: torch.Tensor, ids: torch.Tensor | None = None) -> torch.Tensor:
        h = torch.relu(self.bn(self.conv(x)))
        return h if self.drop is None else self.drop(h, ids)


class TinyCNN(nn.Module):
    """Two conv blocks and a dense block, then the head `fc`. Groups: conv1, conv2, dense, head."""

    def __init__(self, in_shape: tuple[int, int, int], num_classes: int, width: float,
                 dropout: DropoutFactory | None) -> None:
        super().__init__()
        c1, c2, hidden = scaled(16, width), scaled(32, width), scaled(64, width)
        self.conv1 = ConvBlock(in_shape[0], c1, None if dropout is None else dropout(0, c1))
        self.conv2 = ConvBlock(c1, c2, None if dropout is None else dropout(1, c2))
        self.pool = nn.AdaptiveAvgPool2d(4)
        self.dense = nn.Linear(c2 * 16, hidden)
        self.dense_bn = nn.BatchNorm1d(hidden)
        self.dense_drop = None if dropout is None else dropout(2, hidden)
        self.fc = nn.Linear(hidden, num_classes)
        self.head = "fc"
        self.groups: list[tuple[str, list[str]]] = [("conv1", ["conv1"]), ("conv2", ["conv2"]),
                                                    ("dense", ["dense", "dense_bn", "dense_drop"]),
                                                    ("head", ["fc"])]

    def forward(self, x: torch.Tensor, ids: torch.Tensor | None = None) -> torch.Tensor:
        h = self.pool(self.conv2(self.conv1(x, ids), ids)).flatten(1)
        h = torch.relu(self.dense_bn(self.dense(h)))
        if self.dense_drop is not None:
            h = self.dense_drop(h, ids)
        return self.fc(h)


@register_model("tinycnn", dropout=True)
def tinycnn(in_shape: tuple[int, int, int], num_classes: int, width: float, dropout: DropoutFactory | None,
            dropout_places: str = "paper") -> nn.Module:
    """One set of dropout places (after each block), so `dropout_places` changes nothing here."""
    return TinyCNN(in_shape, num_classes, width, dropout)
