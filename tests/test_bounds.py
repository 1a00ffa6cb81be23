"""sweep.bounds: the sizes it bounds by are the loaders' own, and each check refuses exactly what it should."""

from __future__ import annotations

from dataclasses import replace

import pytest

from sweep import bounds
from sweep.config import AnalysisConfig, RunConfig
from sweep.data import DATASETS, SYNTHETIC_SIZES, load_dataset
from sweep.errors import UserError


def test_every_dataset_has_its_training_size_and_the_cheap_ones_match_their_loaders():
    assert set(bounds.TRAIN_SIZES) == set(DATASETS)
    assert bounds.TRAIN_SIZES["digits"] == len(load_dataset("digits").train.y)
    for name, (n_train, _) in SYNTHETIC_SIZES.items():
        assert bounds.TRAIN_SIZES[name] == n_train


def test_clean_and_noisy_counts_follow_the_noise_draw():
    assert bounds.clean_noisy(RunConfig(dataset="digits", noise=0.1)) == (1437 - 144, 144)
    assert bounds.flip_counts(RunConfig(dataset="digits", noise=0.1),
                              AnalysisConfig(flip_clean=None, flip_noisy=7)) == (1293, 7)


@pytest.mark.parametrize("obj", [
    replace(AnalysisConfig(), rewind_epochs=(0, 2 ** 63)),  # inside a tuple
    replace(AnalysisConfig(), retrain_epochs=2 ** 63),
])
def test_numbers_out_of_int64_are_refused_by_name(obj):
    with pytest.raises(UserError, match="must be an integer within 64 bits"):
        bounds.check_run_numbers(obj)


def test_bulk_and_field_by_field_checks_agree():
    ok = RunConfig()
    bounds.check_run_numbers(ok)
    with pytest.raises(UserError, match="curvature_h must be a finite number, got nan"):
        bounds.check_run_numbers(replace(ok, curvature_h=float("nan")))
    with pytest.raises(UserError, match="seed must be an integer in 0..4294967295"):
        bounds.check_run_numbers(replace(ok, seed=2 ** 32))
    bounds.check_run_numbers(replace(ok, seed=2 ** 32 - 1))


@pytest.mark.parametrize("address", [None, "auto", "local", "127.0.0.1:6379", "head-node:10001",
                                     "ray://10.0.0.2:10001", "[::1]:6379"])
def test_addresses_ray_takes_pass(address):
    bounds.check_address(address)


@pytest.mark.parametrize("address", ["foo", "127.0.0.1:", "host:notaport", ":6379", "host:0", "host:65536",
                                     "ray://", "ray://host", "http://host:80", "a b:1"])
def test_malformed_addresses_are_one_line(address):
    with pytest.raises(UserError, match="is not an address Ray takes") as refused:
        bounds.check_address(address)
    assert "\n" not in str(refused.value)
