"""Datasets load from files in their genuine on-disk formats, cross-checked against torchvision's readers."""

import gzip
import hashlib
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.datasets as tvd
from pytest import MonkeyPatch
from scipy.io import savemat

from sweep import data
from sweep.data import DATASETS, load_dataset
from sweep.errors import UserError

RNG = np.random.default_rng(0)


def write_idx(path: Path, array: np.ndarray, gz: bool) -> None:
    """IDX: bytes 0, 0, 0x08 (unsigned byte), ndim; then each size as big-endian int32; then the data."""
    payload = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    payload += np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        with gzip.open(f"{path}.gz", "wb") as handle:
            handle.write(payload)
    else:
        path.write_bytes(payload)


def write_mnist_like(folder: Path, n_train: int, n_test: int, gz: bool) -> dict[str, np.ndarray]:
    arrays = {
        "train-images-idx3-ubyte": RNG.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": np.arange(n_train, dtype=np.uint8) % 10,
        "t10k-images-idx3-ubyte": RNG.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": (np.arange(n_test, dtype=np.uint8) * 3) % 10,
    }
    for name, array in arrays.items():
        write_idx(folder / name, array, gz)
    return arrays


def expected_normalised(train: np.ndarray, test: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixels / 255, then per-channel mean and std of the train split (NCHW uint8 in)."""
    tr, te = torch.from_numpy(train / 255.0), torch.from_numpy(test / 255.0)
    mean, std = tr.mean(dim=(0, 2, 3), keepdim=True), tr.std(dim=(0, 2, 3), correction=0, keepdim=True)
    return ((tr - mean) / std).float(), ((te - mean) / std).float()


Arrays = tuple[np.ndarray, np.ndarray]


def assert_dataset(ds: data.Dataset, train: Arrays, test: Arrays, shape: tuple[int, int, int]) -> None:
    x_train, x_test = expected_normalised(train[0], test[0])
    assert ds.shape == shape and ds.num_classes == 10
    assert ds.train.x.dtype == torch.float32 and ds.train.y.dtype == torch.int64
    assert ds.train.x.shape == (len(train[1]), *shape) and ds.test.x.shape == (len(test[1]), *shape)
    assert torch.equal(ds.train.y, torch.from_numpy(train[1].astype(np.int64)))
    assert torch.equal(ds.test.y, torch.from_numpy(test[1].astype(np.int64)))
    torch.testing.assert_close(ds.train.x, x_train, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ds.test.x, x_test, atol=1e-5, rtol=1e-5)
    mean = ds.train.x.mean(dim=(0, 2, 3))
    assert torch.allclose(mean, torch.zeros_like(mean), atol=1e-5)


@pytest.fixture
def no_debian(tmp_path: Path, monkeypatch: MonkeyPatch) -> Path:
    """Point the Debian location at an empty directory: tests must not need the package installed."""
    empty = tmp_path / "no-debian"
    monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST", empty)
    return empty


def test_digits_shapes_normalisation_and_fixed_split() -> None:
    ds = load_dataset("digits")
    assert ds.name == "digits" and ds.shape == (1, 8, 8) and ds.num_classes == 10
    assert ds.train.x.shape == (1437, 1, 8, 8) and ds.test.x.shape == (360, 1, 8, 8)
    assert ds.train.x.dtype == torch.float32 and ds.train.y.dtype == torch.int64
    assert abs(float(ds.train.x.mean())) < 1e-5 and abs(float(ds.train.x.std(correction=0)) - 1) < 1e-4
    assert abs(float(ds.test.x.mean())) < 0.1
    assert set(ds.train.y.tolist()) == set(ds.test.y.tolist()) == set(range(10))  # stratified
    again = load_dataset("digits", data_dir="/nonexistent")  # needs no files
    assert torch.equal(ds.train.x, again.train.x) and torch.equal(ds.test.y, again.test.y)


def test_to_moves_both_splits() -> None:
    moved = load_dataset("digits").to("meta")
    assert {t.device.type for t in (moved.train.x, moved.train.y, moved.test.x, moved.test.y)} == {"meta"}
    assert moved.shape == (1, 8, 8) and len(moved.train) == 1437


def test_mnist_from_raw_idx_files_matches_torchvision(tmp_path: Path) -> None:
    arrays = write_mnist_like(tmp_path / "MNIST" / "raw", 30, 12, gz=False)
    reference = tvd.MNIST(tmp_path, train=True)  # proves the written files are genuine torchvision input
    assert torch.equal(reference.data, torch.from_numpy(arrays["train-images-idx3-ubyte"]))
    ds = load_dataset("mnist", data_dir=tmp_path)
    assert torch.equal(ds.train.y, reference.targets)
    train = (arrays["train-images-idx3-ubyte"][:, None], arrays["train-labels-idx1-ubyte"])
    test = (arrays["t10k-images-idx3-ubyte"][:, None], arrays["t10k-labels-idx1-ubyte"])
    assert_dataset(ds, train, test, (1, 28, 28))


def test_fashion_mnist_from_gzipped_idx_in_data_dir(tmp_path: Path, no_debian: Path) -> None:
    arrays = write_mnist_like(tmp_path / "FashionMNIST" / "raw", 20, 10, gz=True)
    ds = load_dataset("fashion-mnist", data_dir=tmp_path)
    train = (arrays["train-images-idx3-ubyte"][:, None], arrays["train-labels-idx1-ubyte"])
    test = (arrays["t10k-images-idx3-ubyte"][:, None], arrays["t10k-labels-idx1-ubyte"])
    assert_dataset(ds, train, test, (1, 28, 28))


DEBIAN_CASES = ["written"] + (["installed"] if data.DEBIAN_FASHION_MNIST.is_dir() else [])


@pytest.mark.parametrize("case", DEBIAN_CASES)
def test_fashion_mnist_from_debian_layout(case: str, tmp_path: Path, monkeypatch: MonkeyPatch) -> None:
    """Debian's package puts the four .gz files flat in one directory; the written case mirrors that."""
    if case == "written":
        debian = tmp_path / "debian"
        write_mnist_like(debian, 40, 20, gz=True)
        monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST", debian)
        n_train, n_test = 40, 20
    else:
        n_train, n_test = 60000, 10000
    ds = load_dataset("fashion-mnist", data_dir=tmp_path / "empty")
    assert ds.train.x.shape == (n_train, 1, 28, 28) and ds.test.x.shape == (n_test, 1, 28, 28)
    assert set(ds.train.y.tolist()) == set(range(10))
    assert abs(float(ds.train.x.mean())) < 1e-4 and abs(float(ds.train.x.std()) - 1) < 1e-3


def test_data_dir_takes_precedence_over_debian(tmp_path: Path, monkeypatch: MonkeyPatch) -> None:
    write_mnist_like(tmp_path / "debian", 40, 20, gz=True)
    write_mnist_like(tmp_path / "FashionMNIST" / "raw", 30, 10, gz=False)
    monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST", tmp_path / "debian")
    assert len(load_dataset("fashion-mnist", data_dir=tmp_path).train) == 30


def write_cifar10(root: Path, per_batch: int, n_test: int) -> tuple[np.ndarray, ...]:
    """cifar-10-batches-py: pickled dicts with 'data' (N x 3072 uint8, R, G, B planes) and 'labels' (list)."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    images, labels = [], []
    for name, n in [*((f"data_batch_{i}", per_batch) for i in range(1, 6)), ("test_batch", n_test)]:
        x = RNG.integers(0, 256, (n, 3072), dtype=np.uint8)
        y = RNG.integers(0, 10, n).tolist()
        entry = {"batch_label": name, "labels": y, "data": x, "filenames": [f"{i}.png" for i in range(n)]}
        (folder / name).write_bytes(pickle.dumps(entry, protocol=2))
        images.append(x.reshape(n, 3, 32, 32))
        labels.append(np.array(y))
    meta = {"label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                            "truck"], "num_cases_per_batch": per_batch, "num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return np.concatenate(images[:5]), np.concatenate(labels[:5]), images[5], labels[5]


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_cifar10_from_python_batches_matches_torchvision(tmp_path: Path, monkeypatch: MonkeyPatch) -> None:
    x_train, y_train, x_test, y_test = write_cifar10(tmp_path, 6, 7)
    # torchvision accepts only official checksums; give it ours (this test only) to cross-check the format.
    folder = tmp_path / "cifar-10-batches-py"
    monkeypatch.setattr(tvd.CIFAR10, "train_list", [[f"data_batch_{i}", md5(folder / f"data_batch_{i}")]
                                                    for i in range(1, 6)])
    monkeypatch.setattr(tvd.CIFAR10, "test_list", [["test_batch", md5(folder / "test_batch")]])
    monkeypatch.setattr(tvd.CIFAR10, "meta", {**tvd.CIFAR10.meta, "md5": md5(folder / "batches.meta")})
    reference = tvd.CIFAR10(tmp_path, train=True)
    assert np.array_equal(reference.data.transpose(0, 3, 1, 2), x_train)
    assert reference.targets == y_train.tolist()
    ds = load_dataset("cifar10", data_dir=tmp_path)
    assert_dataset(ds, (x_train, y_train), (x_test, y_test), (3, 32, 32))


def write_svhn(root: Path, n: int, split: str) -> tuple[np.ndarray, np.ndarray]:
    """<split>_32x32.mat: X is 32 x 32 x 3 x N uint8, y is N x 1 with 1..10 where 10 means the digit 0."""
    images = RNG.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    digits = np.arange(n) % 10
    root.mkdir(parents=True, exist_ok=True)
    y = np.where(digits == 0, 10, digits).astype(np.uint8).reshape(n, 1)
    savemat(root / f"{split}_32x32.mat", {"X": images.transpose(2, 3, 1, 0), "y": y})
    return images, digits


def test_svhn_from_mat_files_matches_torchvision(tmp_path: Path, monkeypatch: MonkeyPatch) -> None:
    train, test = write_svhn(tmp_path, 23, "train"), write_svhn(tmp_path, 11, "test")
    url, name, _ = tvd.SVHN.split_list["train"]
    monkeypatch.setitem(tvd.SVHN.split_list, "train", [url, name, md5(tmp_path / name)])
    reference = tvd.SVHN(tmp_path, split="train")
    assert np.array_equal(reference.data, train[0]) and np.array_equal(reference.labels, train[1])
    ds = load_dataset("svhn", data_dir=tmp_path)
    assert_dataset(ds, train, test, (3, 32, 32))
    assert int(ds.train.y.min()) == 0 and int(ds.train.y.max()) == 9


MISSING = [("mnist", "MNIST/raw"), ("fashion-mnist", "FashionMNIST/raw"), ("cifar10", "cifar-10-batches-py"),
           ("svhn", "")]


@pytest.mark.parametrize(("name", "looked_in"), MISSING)
def test_missing_files_are_one_line_user_errors(name: str, looked_in: str, tmp_path: Path,
                                                no_debian: Path) -> None:
    with pytest.raises(UserError) as caught:
        load_dataset(name, data_dir=tmp_path)
    message = str(caught.value)
    assert "\n" not in message and repr(name) in message and "--download" in message
    assert str((tmp_path / looked_in).resolve()) in message
    if name == "fashion-mnist":
        assert str(no_debian.resolve()) in message and "apt-get install dataset-fashion-mnist" in message


def test_partial_files_count_as_missing(tmp_path: Path) -> None:
    write_cifar10(tmp_path, 2, 2)
    os.remove(tmp_path / "cifar-10-batches-py" / "data_batch_3")
    with pytest.raises(UserError, match="data_batch_3"):
        load_dataset("cifar10", data_dir=tmp_path)


def test_unknown_dataset_lists_accepted_names() -> None:
    with pytest.raises(UserError) as caught:
        load_dataset("imagenet")
    assert "imagenet" in str(caught.value) and all(name in str(caught.value) for name in DATASETS)
    assert set(DATASETS) == {"digits", "fashion-mnist", "mnist", "cifar10", "svhn", "synthetic", "synthetic-small"}


def test_corrupt_idx_file_is_a_user_error(tmp_path: Path) -> None:
    write_mnist_like(tmp_path / "MNIST" / "raw", 10, 5, gz=False)
    path = tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(UserError, match="cannot read .*train-images-idx3-ubyte"):
        load_dataset("mnist", data_dir=tmp_path)


def test_wrong_image_size_is_a_user_error(tmp_path: Path) -> None:
    raw = tmp_path / "MNIST" / "raw"
    write_mnist_like(raw, 10, 5, gz=False)
    write_idx(raw / "train-images-idx3-ubyte", np.zeros((10, 8, 8), np.uint8), gz=False)
    with pytest.raises(UserError, match=r"expected \(N, 1, 28, 28\)"):
        load_dataset("mnist", data_dir=tmp_path)


class _Payload:
    """Unpickling this would call os.getcwd: a stand-in for code a hostile pickle could run."""

    def __reduce__(self) -> tuple:
        return (os.getcwd, ())


def test_cifar_pickle_may_only_rebuild_arrays(tmp_path: Path) -> None:
    write_cifar10(tmp_path, 2, 2)
    hostile = {"labels": [0], "data": np.zeros((1, 3072), np.uint8), "x": _Payload()}
    (tmp_path / "cifar-10-batches-py" / "data_batch_1").write_bytes(pickle.dumps(hostile, protocol=2))
    with pytest.raises(UserError, match="refusing to load posix.getcwd|refusing to load os.getcwd"):
        load_dataset("cifar10", data_dir=tmp_path)


def test_download_runs_only_when_files_are_missing_and_asked(tmp_path: Path) -> None:
    """The torchvision download is injected as `fetch`; here it writes the files a real download would."""
    raw = tmp_path / "MNIST" / "raw"
    calls = []

    def fetch() -> None:
        calls.append(1)
        write_mnist_like(raw, 10, 5, gz=True)

    with pytest.raises(UserError, match="not found"):
        data.load_idx_dir("mnist", [raw], download=False, fetch=fetch)
    assert calls == []
    assert len(data.load_idx_dir("mnist", [raw], download=True, fetch=fetch).train) == 10
    data.load_idx_dir("mnist", [raw], download=True, fetch=fetch)
    assert calls == [1]  # present files are not fetched again


def test_failed_download_is_a_one_line_user_error(tmp_path: Path) -> None:
    def fetch() -> None:
        raise OSError("network unreachable\nsecond line")

    with pytest.raises(UserError) as caught:
        data.load_idx_dir("mnist", [tmp_path], download=True, fetch=fetch)
    assert "\n" not in str(caught.value) and "download into" in str(caught.value)
    assert "OSError: network unreachable" in str(caught.value)
