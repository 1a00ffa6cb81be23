"""Datasets as whole tensors: every split is one normalised float32 tensor that moves to the device once.

Training batches are index slices of a device-side permutation (DESIGN §2), so nothing here yields items
one at a time and no DataLoader workers are involved. A training example's stable id is its index in
``Dataset.train``.

Files on disk are read in their genuine published formats by the small readers below (IDX for MNIST and
Fashion-MNIST, python pickled batches for CIFAR-10, MATLAB .mat for SVHN), laid out where torchvision puts
them. torchvision's dataset classes are used to *download* (they verify the md5 of what they fetch); files
already on disk are trusted and not md5-checked, because torchvision's own loaders insist on the official
checksums and so refuse any other file in the same format (a subset, a re-export, a test fixture). A file that
cannot be parsed is reported as a UserError, never as a parser traceback.

`synthetic` and `synthetic-small` need no files at all: CIFAR-10 shaped images made on the fly from a fixed seed
(see `make_synthetic`), for end-to-end runs and benchmarks on a machine without the real data.
"""

from __future__ import annotations

import codecs
import gzip
import math
import pickle
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from sweep.errors import UserError

# Where Debian's `dataset-fashion-mnist` package installs the four IDX .gz files.
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
# The fixed digits split: 20% test, stratified by class, sklearn's train_test_split with this seed.
DIGITS_SPLIT_SEED = 0

IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
CIFAR10_DIR = "cifar-10-batches-py"
CIFAR10_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST = "test_batch"
SVHN_FILES = ("train_32x32.mat", "test_32x32.mat")
# Input shape and class count per dataset: what building a model needs, known without reading any file.
SHAPES: dict[str, tuple[tuple[int, int, int], int]] = {
    "digits": ((1, 8, 8), 10), "mnist": ((1, 28, 28), 10), "fashion-mnist": ((1, 28, 28), 10),
    "cifar10": ((3, 32, 32), 10), "svhn": ((3, 32, 32), 10),
    "synthetic": ((3, 32, 32), 10), "synthetic-small": ((3, 32, 32), 10),
}


@dataclass
class Split:
    """One split: x is float32 (N, C, H, W) normalised per channel, y is int64 (N,)."""

    x: Tensor
    y: Tensor

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def to(self, device: torch.device | str) -> Split:
        return Split(self.x.to(device), self.y.to(device))


@dataclass
class Dataset:
    """A dataset held whole in memory; train example i has the stable id i."""

    name: str
    train: Split
    test: Split
    num_classes: int
    shape: tuple[int, int, int]

    def to(self, device: torch.device | str) -> Dataset:
        """Move both splits in one go, so the training loop never copies data to the device again."""
        return replace(self, train=self.train.to(device), test=self.test.to(device))


Loader = Callable[[Path, bool], Dataset]
Arrays = tuple[np.ndarray, np.ndarray]  # images (N, C, H, W) uint8 or float, labels (N,)
DATASETS: dict[str, Loader] = {}


def register(name: str, shape: tuple[int, int, int] | None = None,
             num_classes: int | None = None) -> Callable[[Loader], Loader]:
    """Register a loader ``(data_dir, download) -> Dataset`` under a dataset name. A dataset of a plug-in
    (sweep.plugins) gives its input `shape` (C, H, W) and `num_classes` too: models are built for a run without
    loading its data (SHAPES), so a new name without them is refused here, before anything is registered."""
    if (shape is None) != (num_classes is None) or (shape is None and name not in SHAPES):
        raise ValueError(f"dataset {name!r}: register it with shape=(C, H, W) and num_classes=K (what building its "
                         "models needs, known without loading it)")

    def add(loader: Loader) -> Loader:
        DATASETS[name] = loader
        if shape is not None and num_classes is not None:
            SHAPES[name] = (tuple(int(v) for v in shape), int(num_classes))  # type: ignore[assignment]
        return loader

    return add


def load_dataset(name: str, data_dir: str | Path = "data", download: bool = False) -> Dataset:
    """Load a dataset onto the CPU; unknown names, missing or unreadable files raise a one-line UserError."""
    if name not in DATASETS:
        raise _unknown(name)
    return DATASETS[name](Path(data_dir), download)


def _unknown(name: str) -> UserError:
    return UserError(f"unknown dataset {name!r}; accepted: {', '.join(DATASETS)}")


@dataclass(frozen=True)
class Files:
    """Where a dataset's files are looked for: the first of `dirs` that holds every one of `files` (IDX files
    also gzipped where `gz_ok`); `hint` ends the not-found line (another way to get them)."""

    dirs: tuple[Path, ...]
    files: tuple[str, ...]
    gz_ok: bool = False
    hint: str = ""


# The built-in datasets read from files, by name: their loaders and `check_dataset_files` look in the same places
# (digits and synthetic data are made in code; a plug-in's dataset is found by its own loader).
FILES: dict[str, Callable[[Path], Files]] = {
    "mnist": lambda data_dir: Files((data_dir / "MNIST" / "raw",), IDX_FILES, gz_ok=True),
    "fashion-mnist": lambda data_dir: Files((data_dir / "FashionMNIST" / "raw", DEBIAN_FASHION_MNIST), IDX_FILES,
                                            gz_ok=True, hint=" or `apt-get install dataset-fashion-mnist`"),
    "cifar10": lambda data_dir: Files((data_dir / CIFAR10_DIR,), (*CIFAR10_TRAIN, CIFAR10_TEST)),
    "svhn": lambda data_dir: Files((data_dir,), SVHN_FILES),
}


def check_dataset_files(name: str, data_dir: str | Path = "data", download: bool = False) -> str | None:
    """What loading `name` would say about its files, without reading them (a dry run): None when they are all
    there (or the dataset needs none), a line when they are missing and `download` fetches them at the start of
    the sweep; missing without `download` (or an unknown name) is the loader's own UserError, word for word."""
    if name not in DATASETS:
        raise _unknown(name)
    if name not in FILES:
        return None
    where = FILES[name](Path(data_dir))
    if _find(where.dirs, where.files, where.gz_ok) is not None:
        return None
    if download:
        return f"dataset {name!r}: not in {where.dirs[0].resolve()} yet; --download fetches it when the sweep starts"
    raise _not_found(name, where.dirs, where.files, where.gz_ok, where.hint)


def _dataset(name: str, train: Arrays, test: Arrays, scale: float, num_classes: int = 10) -> Dataset:
    """Scale pixels to [0, 1] and normalise each channel with train-split statistics (test never leaks in)."""
    x_train = torch.from_numpy(np.array(train[0], dtype=np.float32, order="C")).div_(scale)
    x_test = torch.from_numpy(np.array(test[0], dtype=np.float32, order="C")).div_(scale)
    y_train, y_test = (torch.from_numpy(y.astype(np.int64)) for y in (train[1], test[1]))
    return _normalised(name, Split(x_train, y_train), Split(x_test, y_test), num_classes)


def _normalised(name: str, train: Split, test: Split, num_classes: int) -> Dataset:
    """Normalise each channel of float32 splits in place with train-split statistics (test never leaks in)."""
    std, mean = torch.std_mean(train.x, dim=(0, 2, 3), correction=0, keepdim=True)
    std = torch.where(std > 0, std, torch.ones_like(std))  # a constant channel stays constant rather than NaN
    for x in (train.x, test.x):
        x.sub_(mean).div_(std)
    shape = (int(train.x.shape[1]), int(train.x.shape[2]), int(train.x.shape[3]))
    return Dataset(name, train, test, num_classes, shape)


def _checked(name: str, source: Path, x: np.ndarray, y: np.ndarray, shape: tuple[int, ...]) -> Arrays:
    """Refuse arrays that do not look like the dataset, so a wrong file fails here and not mid-training."""
    if x.ndim != 4 or x.shape[1:] != shape or y.shape != (x.shape[0],) or x.shape[0] == 0:
        raise UserError(f"dataset {name!r}: {source} holds images {x.shape} and labels {y.shape}, "
                        f"expected (N, {', '.join(map(str, shape))}) and (N,)")
    if y.min() < 0 or y.max() > 9:
        raise UserError(f"dataset {name!r}: {source} has labels outside 0..9")
    return x, y


def _read_error(name: str, path: Path, err: Exception) -> UserError:
    reason = str(err).splitlines()[0] if str(err) else type(err).__name__
    return UserError(f"dataset {name!r}: cannot read {path} ({reason}); "
                     "replace it, e.g. delete it and rerun with --download")


def _find(dirs: Sequence[Path], files: Sequence[str], gz_ok: bool) -> dict[str, Path] | None:
    """The files from the first directory that holds all of them (IDX files may also be gzipped)."""
    for folder in dirs:
        found = {}
        for stem in files:
            options = [folder / stem, folder / f"{stem}.gz"] if gz_ok else [folder / stem]
            hit = next((p for p in options if p.is_file()), None)
            if hit is None:
                break
            found[stem] = hit
        else:
            return found
    return None


def _locate(name: str, dirs: Sequence[Path], files: Sequence[str], download: bool,
            fetch: Callable[[], object], gz_ok: bool = False, hint: str = "") -> dict[str, Path]:
    """Find the files, downloading through torchvision only when asked and only when they are missing."""
    found = _find(dirs, files, gz_ok)
    if found is None and download:
        try:
            fetch()
        except Exception as err:  # network, disk or checksum failure in torchvision: report it in one line
            first = str(err).splitlines()[0] if str(err) else ""
            raise UserError(f"dataset {name!r}: download into {dirs[0].resolve()} failed "
                            f"({type(err).__name__}: {first})") from err
        found = _find(dirs, files, gz_ok)
    if found is None:
        raise _not_found(name, dirs, files, gz_ok, hint)
    return found


def _not_found(name: str, dirs: Sequence[Path], files: Sequence[str], gz_ok: bool, hint: str) -> UserError:
    """The one line for a dataset whose files are missing: a sweep's and its dry run's (check_dataset_files)."""
    where = " and ".join(str(d.resolve()) for d in dirs)
    wanted = ", ".join(f"{stem}[.gz]" if gz_ok else stem for stem in files)
    return UserError(f"dataset {name!r} not found: looked for {wanted} in {where}; get it with --download{hint}")


def read_idx(path: Path) -> np.ndarray:
    """Parse an IDX file (raw or .gz): magic 0,0,type,ndim, then ndim big-endian int32 sizes, then data."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        raw = handle.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError("not an unsigned-byte IDX file")
    ndim = raw[3]
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">i4", count=ndim, offset=4))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"header says {dims} but the file holds {data.size} values")
    return data.reshape(dims)


def load_idx_dir(name: str, dirs: Sequence[Path], download: bool = False,
                 fetch: Callable[[], object] = lambda: None, hint: str = "") -> Dataset:
    """An MNIST-style dataset from the first of ``dirs`` that holds the four IDX files."""
    files = _locate(name, dirs, IDX_FILES, download, fetch, gz_ok=True, hint=hint)
    arrays = {}
    for stem, path in files.items():
        try:
            arrays[stem] = read_idx(path)
        except Exception as err:
            raise _read_error(name, path, err) from err
    splits = []
    for prefix in ("train", "t10k"):
        images, labels = arrays[f"{prefix}-images-idx3-ubyte"], arrays[f"{prefix}-labels-idx1-ubyte"]
        source = files[f"{prefix}-images-idx3-ubyte"].parent
        splits.append(_checked(name, source, images[:, None], labels, (1, 28, 28)))
    return _dataset(name, splits[0], splits[1], scale=255.0)


def _torchvision(cls_name: str) -> type:
    """torchvision is imported only to download, keeping `import sweep.data` light for the default."""
    import torchvision.datasets

    return getattr(torchvision.datasets, cls_name)


@register("digits")
def _digits(data_dir: Path, download: bool) -> Dataset:
    """scikit-learn's bundled 8x8 digits (values 0..16): needs no files, hence the embedded default."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x = bunch.data.reshape(-1, 1, 8, 8)
    x_tr, x_te, y_tr, y_te = train_test_split(x, bunch.target, test_size=0.2, random_state=DIGITS_SPLIT_SEED,
                                              stratify=bunch.target)
    return _dataset("digits", (x_tr, y_tr), (x_te, y_te), scale=16.0)


@register("mnist")
def _mnist(data_dir: Path, download: bool) -> Dataset:
    fetch = lambda: _torchvision("MNIST")(data_dir, train=True, download=True)  # noqa: E731
    return load_idx_dir("mnist", FILES["mnist"](data_dir).dirs, download, fetch)


@register("fashion-mnist")
def _fashion_mnist(data_dir: Path, download: bool) -> Dataset:
    """torchvision's layout under data_dir first, then Debian's system-wide copy (apt package)."""
    fetch = lambda: _torchvision("FashionMNIST")(data_dir, train=True, download=True)  # noqa: E731
    where = FILES["fashion-mnist"](data_dir)
    return load_idx_dir("fashion-mnist", where.dirs, download, fetch, hint=where.hint)


class _ArrayUnpickler(pickle.Unpickler):
    """CIFAR-10's batches are pickles; a pickle can run code, so only numpy array rebuilding is allowed."""

    _allowed = {
        ("numpy.core.multiarray", "_reconstruct"): np.zeros(1).__reduce__()[0],
        ("numpy._core.multiarray", "_reconstruct"): np.zeros(1).__reduce__()[0],
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): codecs.encode,
    }

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in self._allowed:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return self._allowed[(module, name)]


def _cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One batch: dict with 'data' (N x 3072 uint8, the R, G, B planes of each row) and 'labels'."""
    with open(path, "rb") as handle:
        entry = _ArrayUnpickler(handle, encoding="latin1").load()
    data = np.asarray(entry["data"], dtype=np.uint8)
    return data.reshape(-1, 3, 32, 32), np.asarray(entry["labels"], dtype=np.int64)


@register("cifar10")
def _cifar10(data_dir: Path, download: bool) -> Dataset:
    """The five training batches concatenated in order, so example ids match torchvision's indices."""
    fetch = lambda: _torchvision("CIFAR10")(data_dir, train=True, download=True)  # noqa: E731
    where = FILES["cifar10"](data_dir)
    files = _locate("cifar10", where.dirs, where.files, download, fetch)
    batches = {}
    for stem, path in files.items():
        try:
            batches[stem] = _cifar_batch(path)
        except Exception as err:
            raise _read_error("cifar10", path, err) from err
    train = tuple(np.concatenate(parts) for parts in zip(*(batches[s] for s in CIFAR10_TRAIN), strict=True))
    folder = data_dir / CIFAR10_DIR
    return _dataset("cifar10", _checked("cifar10", folder, *train, (3, 32, 32)),
                    _checked("cifar10", folder, *batches[CIFAR10_TEST], (3, 32, 32)), scale=255.0)


def _svhn_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """X is H x W x C x N uint8 and y is N x 1 with 1..10, where 10 stands for the digit 0."""
    from scipy.io import loadmat

    mat = loadmat(path)
    labels = np.asarray(mat["y"]).astype(np.int64).reshape(-1)
    return np.asarray(mat["X"]).transpose(3, 2, 0, 1), np.where(labels == 10, 0, labels)


@register("svhn")
def _svhn(data_dir: Path, download: bool) -> Dataset:
    """train and test only: the 'extra' split would change n and with it every label-noise draw."""
    def fetch() -> None:
        for split in ("train", "test"):
            _torchvision("SVHN")(data_dir, split=split, download=True)

    where = FILES["svhn"](data_dir)
    files = _locate("svhn", where.dirs, where.files, download, fetch)
    splits = []
    for path in files.values():
        try:
            arrays = _svhn_mat(path)
        except Exception as err:
            raise _read_error("svhn", path, err) from err
        splits.append(_checked("svhn", path, *arrays, (3, 32, 32)))
    return _dataset("svhn", splits[0], splits[1], scale=255.0)


# Synthetic data: CIFAR-10 shaped, made on the fly -----------------------------------------------------------

# name -> (train size, test size); both are multiples of SYNTHETIC_CHUNK, so the small splits hold the first 5,000
# training and 1,000 test images of the large ones, with the same classes (each normalised with its own statistics).
SYNTHETIC_SIZES = {"synthetic": (50_000, 10_000), "synthetic-small": (5_000, 1_000)}
SYNTHETIC_SEED = 20230601
SYNTHETIC_CHUNK = 1_000     # images per generator: image i of a split depends on (seed, split, i // chunk) only
SYNTHETIC_MODES = 2         # prototypes per class: a class is a two-mode mixture, not one linear direction
SYNTHETIC_FREQUENCIES = 4   # 2-D cosine frequencies 0..3 per axis: the smooth part lives in 3 x 16 coefficients
SYNTHETIC_SPREAD = 1.9      # per-image Gaussian spread of those coefficients around its prototype's (which are N(0, 1))
SYNTHETIC_PIXEL_NOISE = 1.0  # white noise per pixel, relative to the smooth part's unit coefficient scale


def _cosine_basis(frequencies: int, side: int = 32) -> Tensor:
    """The frequencies^2 lowest 2-D DCT-II basis images of side x side, orthonormal, as rows (F^2, side^2)."""
    i = torch.arange(side, dtype=torch.float64)
    u = torch.arange(frequencies, dtype=torch.float64)
    waves = torch.cos(math.pi * (2 * i[None] + 1) * u[:, None] / (2 * side))
    waves /= waves.norm(dim=1, keepdim=True)
    return (waves[:, None, :, None] * waves[None, :, None, :]).reshape(frequencies ** 2, side * side)


def make_synthetic(n_train: int, n_test: int, seed: int = SYNTHETIC_SEED,
                   name: str = "synthetic") -> Dataset:
    """A CIFAR-10 shaped dataset (10 classes, 3x32x32, balanced) made from `seed` alone, normalised per channel.

    Each class has SYNTHETIC_MODES prototypes: smooth colour images, each a random combination (N(0, 1)
    coefficients) of the lowest 2-D cosine patterns per channel. An image is one prototype of its class with
    every coefficient moved by N(0, SYNTHETIC_SPREAD^2), so classes overlap and some images are ambiguous (the
    best possible test accuracy is about 93%), plus white pixel noise of its own. The smooth part is what a
    model can learn and carry to the test split; the pixel noise is what makes every image unique, so a
    mislabeled image, which looks like its true class, can be fitted only by memorizing it. Labels are exactly
    balanced in every chunk of 1,000 images. Deterministic across calls, processes and thread counts (each
    chunk has its own torch.Generator); 60,000 images take about a second or two on one CPU core.
    """
    k = SYNTHETIC_FREQUENCIES ** 2
    # x 32: a unit coefficient gives a pattern of unit RMS; / sqrt(k): the smooth part's pixels have variance
    # about 1 + SYNTHETIC_SPREAD^2 whatever the number of patterns
    basis = (_cosine_basis(SYNTHETIC_FREQUENCIES) * (32.0 / math.sqrt(k))).float()
    gen = torch.Generator().manual_seed(seed)
    prototypes = torch.randn(10, SYNTHETIC_MODES, 3, k, generator=gen)

    def split(n: int, which: int) -> Split:
        x = torch.empty(n, 3, 32, 32)
        y = torch.empty(n, dtype=torch.int64)
        for c, start in enumerate(range(0, n, SYNTHETIC_CHUNK)):
            gen.manual_seed(seed * 1_000_003 + which * 10_007 + c)
            rows = slice(start, min(start + SYNTHETIC_CHUNK, n))
            size = rows.stop - rows.start
            labels = (torch.arange(size) % 10)[torch.randperm(size, generator=gen)]
            modes = torch.randint(0, SYNTHETIC_MODES, (size,), generator=gen)
            coef = prototypes[labels, modes] + SYNTHETIC_SPREAD * torch.randn(size, 3, k, generator=gen)
            out = torch.randn(size, 3, 32, 32, generator=gen, out=x[rows]).mul_(SYNTHETIC_PIXEL_NOISE)
            out.view(size * 3, 32 * 32).addmm_(coef.view(size * 3, k), basis)
            y[rows] = labels
        return Split(x, y)

    return _normalised(name, split(n_train, 0), split(n_test, 1), 10)


@lru_cache(maxsize=1)
def _synthetic_cached(name: str) -> Dataset:
    return make_synthetic(*SYNTHETIC_SIZES[name], name=name)


def _register_synthetic(name: str) -> None:
    def load(data_dir: Path, download: bool) -> Dataset:
        """Made on the fly, no files; the last one made is kept per process (its tensors are shared: read-only)."""
        cached = _synthetic_cached(name)
        return replace(cached, train=Split(cached.train.x, cached.train.y), test=Split(cached.test.x, cached.test.y))

    register(name)(load)


for _name in SYNTHETIC_SIZES:
    _register_synthetic(_name)
