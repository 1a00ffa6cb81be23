"""The tied ground truth, recomputed here from the dropout hash itself (not through truth.py or the modules'
mask methods): which units example i owned, which are live for it, and which lie outside every mask."""

from __future__ import annotations

import math

import pytest
import torch

from sweep.config import RunConfig
from sweep.dropout import _GOLDEN, _MASK32, _mix, _salt, mask_seed
from sweep.localizers.truth import TiedTruth
from sweep.models.for_run import build_model_for
from sweep.models.groups import unit_layers


def own_channels(seed: int, layer: int, example: int, channels: int, p_gen: float, p_mem: float) -> set[int]:
    """Example `example`'s memorization channels at dropout place `layer`, with Python ints only: the hash of
    (seed, layer, example, channel) below p_mem * 2**32, channels from floor(p_gen * C) on."""
    key = _salt(seed, layer, 0x7E1D)
    threshold = min(round(p_mem * 2**32), 2**32)
    per_example = _mix((example & _MASK32) ^ ((example >> 32) * _GOLDEN & _MASK32) ^ key)
    n_gen = math.floor(p_gen * channels + 1e-9)
    return {c for c in range(n_gen, channels)
            if _mix(per_example ^ _mix((c * _GOLDEN + key) & _MASK32)) < threshold}


# (arch, places, {unit module: dropout place}) as the model docstrings define the places
CASES = [
    ("mlp", "paper", {"fc1.linear": 0, "fc2.linear": 1, "fc3.linear": 2}),
    ("resnet9", "paper", {"conv1.conv": 0, "conv2.conv": 1, "res1b.conv": 2, "conv3.conv": 3, "res2b.conv": 4,
                          "conv4.conv": 5}),
    ("resnet9", "blocks", {f"{b}.conv": i for i, b in enumerate(
        ("conv1", "conv2", "res1a", "res1b", "conv3", "res2a", "res2b", "conv4"))}),
]


@pytest.mark.parametrize(("arch", "places", "place_of"), CASES)
def test_tied_truth_matches_the_hash(arch: str, places: str, place_of: dict[str, int]) -> None:
    cfg = RunConfig(dataset="digits", arch=arch, width=0.25, variant="tied", seed=3, p_gen=0.3, p_mem=0.25,
                    dropout_places=places)
    model = build_model_for(cfg)
    tied = TiedTruth.of(model)
    ids = torch.tensor([0, 5, 17, 1000, 1796])
    truth, live = tied.truth(ids).numpy(), tied.live(ids).numpy()
    seed, offset = mask_seed(cfg), 0
    for layer in unit_layers(model, "outputs"):
        span = slice(offset, offset + layer.n_units)
        place = place_of.get(layer.name)
        if place is None:  # no dropout mask: live for everyone, in no truth set, counted as outside
            assert not truth[:, span].any()
            assert live[:, span].all()
            assert tied.outside[span].all()
        else:
            n_gen = math.floor(cfg.p_gen * layer.n_units + 1e-9)
            assert not tied.outside[span].any()
            for row, example in enumerate(ids.tolist()):
                own = own_channels(seed, place, example, layer.n_units, cfg.p_gen, cfg.p_mem)
                assert own, "a test example without memorization channels would check nothing"
                assert set(truth[row, span].nonzero()[0].tolist()) == own
                assert set(live[row, span].nonzero()[0].tolist()) == set(range(n_gen)) | own
        offset += layer.n_units
    assert offset == tied.total
    # different examples own different channels (the truth is per example, not per layer)
    assert (truth[0] != truth[1]).any()


def test_a_standard_model_has_no_tied_truth() -> None:
    model = build_model_for(RunConfig(dataset="digits", arch="mlp", width=0.25))
    tied = TiedTruth.of(model)
    assert tied.masked == () and bool(tied.outside.all())
