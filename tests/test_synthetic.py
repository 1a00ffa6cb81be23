"""The `synthetic` datasets: CIFAR-10 shaped, made on the fly from a fixed seed, learnable, accepted as any dataset."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sweep import data
from sweep.config import RunConfig
from sweep.data import DATASETS, SHAPES, SYNTHETIC_SIZES, load_dataset, make_synthetic
from sweep.grids import load_grid
from sweep.train import train_in_memory

ROOT = Path(__file__).resolve().parents[1]


def digest(ds: data.Dataset) -> str:
    h = hashlib.sha256()
    for t in (ds.train.x, ds.train.y, ds.test.x, ds.test.y):
        h.update(t.contiguous().numpy().tobytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def small() -> data.Dataset:
    return load_dataset("synthetic-small", data_dir="/nonexistent")  # needs no files


def test_registered_with_cifar10_shape_and_sizes(small: data.Dataset) -> None:
    assert {"synthetic", "synthetic-small"} <= set(DATASETS)
    assert SHAPES["synthetic"] == SHAPES["synthetic-small"] == ((3, 32, 32), 10)
    assert SYNTHETIC_SIZES == {"synthetic": (50_000, 10_000), "synthetic-small": (5_000, 1_000)}
    assert small.name == "synthetic-small" and small.shape == (3, 32, 32) and small.num_classes == 10
    assert small.train.x.shape == (5_000, 3, 32, 32) and small.test.x.shape == (1_000, 3, 32, 32)
    assert small.train.x.dtype == torch.float32 and small.train.y.dtype == torch.int64
    assert small.train.x.is_contiguous() and torch.isfinite(small.train.x).all()


def test_classes_are_balanced(small: data.Dataset) -> None:
    assert torch.bincount(small.train.y, minlength=10).tolist() == [500] * 10
    assert torch.bincount(small.test.y, minlength=10).tolist() == [100] * 10
    assert torch.bincount(make_synthetic(2_500, 700).train.y, minlength=10).tolist() == [250] * 10


def test_normalised_per_channel_with_train_statistics(small: data.Dataset) -> None:
    std, mean = torch.std_mean(small.train.x, dim=(0, 2, 3), correction=0)
    torch.testing.assert_close(mean, torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(std, torch.ones(3), atol=1e-4, rtol=0)
    test_std, test_mean = torch.std_mean(small.test.x, dim=(0, 2, 3), correction=0)  # same distribution
    assert test_mean.abs().max() < 0.05 and (test_std - 1).abs().max() < 0.05


def test_deterministic_across_calls_and_processes(small: data.Dataset) -> None:
    again = make_synthetic(5_000, 1_000, name="synthetic-small")  # not the per-process cache
    assert again.train.x is not small.train.x and digest(again) == digest(small)
    code = ("import torch; torch.set_num_threads(2); from sweep.data import make_synthetic; "
            "from tests.test_synthetic import digest; print(digest(make_synthetic(5_000, 1_000)))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-1] == digest(small)
    assert digest(make_synthetic(5_000, 1_000, seed=1)) != digest(small)  # the seed matters


def test_smaller_sizes_are_prefixes_with_the_same_classes() -> None:
    """Image i depends on (seed, split, i // 1000) only: a smaller split holds the first images of a larger one
    (before normalisation, which uses each split's own statistics: the same up to a per-channel affine map)."""
    a, b = make_synthetic(2_000, 1_000), make_synthetic(3_000, 2_000)
    assert torch.equal(a.train.y, b.train.y[:2_000]) and torch.equal(a.test.y, b.test.y[:1_000])
    x, z = a.train.x.transpose(0, 1).reshape(3, -1), b.train.x[:2_000].transpose(0, 1).reshape(3, -1)
    for c in range(3):
        corr = torch.corrcoef(torch.stack([x[c], z[c]]))[0, 1]
        assert corr > 0.9999


def test_loader_cache_returns_the_same_data(small: data.Dataset) -> None:
    again = load_dataset("synthetic-small")
    assert again.train.x is small.train.x  # made once per process
    assert again.train is not small.train  # fresh Split objects: moving one does not move the other


def test_a_small_model_learns_the_clean_labels_and_must_memorize_the_noisy_ones() -> None:
    """Two epochs of the MLP: test accuracy far above chance (10%); the mislabeled examples are predicted as
    their true class, not their training label, until they are memorized."""
    torch.manual_seed(0)
    run = train_in_memory(RunConfig(dataset="synthetic-small", arch="mlp", width=0.5, noise=0.1, epochs=2,
                                    batch_size=128))
    from sweep.probes.evaluate import split_accuracies

    model = run.model_at(run.final_epoch)
    clean, noisy, test = split_accuracies(model, run)
    assert test > 0.6 and clean > 0.6
    assert noisy < 0.3  # not fitted yet: a mislabeled image looks like its true class
    with torch.no_grad():
        pred = model(run.data.train.x[run.is_noisy]).argmax(1)
    assert (pred == run.original[run.is_noisy]).float().mean() > 0.5


def test_accepted_wherever_a_dataset_name_is(tmp_path: Path) -> None:
    assert RunConfig(dataset="synthetic", arch="resnet9").validate().dataset == "synthetic"
    grid_file = tmp_path / "g.toml"
    grid_file.write_text("[[runs]]\ndataset = ['synthetic', 'synthetic-small']\narch = 'resnet9'\nepochs = 2\n")
    assert [c.dataset for c in load_grid(str(grid_file)).runs] == ["synthetic", "synthetic-small"]
    from sweep import cli

    assert cli.main(["--grid", str(grid_file), "--results", str(tmp_path / "r"), "--dry-run"]) == 0
    from sweep.train import main as train_main

    results = tmp_path / "one"
    assert train_main(["--dataset", "synthetic-small", "--arch", "mlp", "--width", "0.25", "--epochs", "1",
                       "--device", "cpu", "--results", str(results)]) == 0
    assert any((results / "runs").glob("*.parquet"))
