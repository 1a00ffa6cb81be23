"""Every value bounded by what it will meet, checked before anything starts.

A field can be well-typed and in its own range and still fail far downstream: 2,000 folds of 1,437 examples, a
billion flip targets (a list of a hundred million chunk names), a rewind epoch the run never reaches, a seed
larger than a random generator takes. These checks know what each value meets: the dataset's training-set size
(known without loading it: TRAIN_SIZES), its clean and noisy counts (exactly round(noise * n) examples are
relabelled, sweep.noise), the run's epochs, the generators' seed range, the command line's resources.
No torch here: the command line runs these before loading anything.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING

from sweep.errors import UserError

if TYPE_CHECKING:
    from sweep.config import AnalysisConfig, RunConfig
    from sweep.grids import Grid

# Training-set sizes of every registered dataset (sweep.data; a test checks each against its loader's split).
TRAIN_SIZES = {"digits": 1437, "mnist": 60_000, "fashion-mnist": 60_000, "cifar10": 50_000, "svhn": 73_257,
               "synthetic": 50_000, "synthetic-small": 5_000}
# Seeds: torch.manual_seed and torch.Generator take [0, 2**64), numpy's legacy seeding [0, 2**32); the batch
# order's generator is seeded with seed * 1_000_003 + epoch (+ 7_919_000 for curvature), the folds' and halves'
# with seed * 7_919 + a constant, so [0, 2**32) keeps every derived seed far inside what each generator takes.
SEED_LIMIT = 2 ** 32
INT64 = 2 ** 63  # every integer field is a Parquet int64 config column
# Flip counts that take "all" (every eligible example); from_dict maps "all" to None, as for flip_eval_size.
ALL_COUNTS = ("flip_clean", "flip_noisy", "flip_population")


def train_size(dataset: str) -> int | None:
    return TRAIN_SIZES.get(dataset)


def clean_noisy(cfg: RunConfig) -> tuple[int, int] | None:
    """How many clean and how many relabelled training examples `cfg` trains on (None: dataset unknown here)."""
    n = train_size(cfg.dataset)
    if n is None:
        return None
    noisy = round(cfg.noise * n)
    return n - noisy, noisy


def flip_counts(cfg: RunConfig, analysis: AnalysisConfig) -> tuple[int, int]:
    """flip_clean and flip_noisy as numbers for `cfg`: "all" (None) is the run's clean or noisy count (the most
    that can be eligible), so the chunks of a run are known before it is trained."""
    counts = clean_noisy(cfg) or (0, 0)
    clean = counts[0] if analysis.flip_clean is None else analysis.flip_clean
    noisy = counts[1] if analysis.flip_noisy is None else analysis.flip_noisy
    return clean, noisy


def check_run_numbers(obj: object) -> None:
    """Every float field of a config finite and every integer field within int64 (a Parquet column), seeds
    within SEED_LIMIT; one UserError naming the first field that is not."""
    fields = vars(obj)  # the fields of a frozen config
    if _all_bounded(fields.values()):  # the common case, in bulk: a 100,000-run grid validates each run
        _check_seeds(obj)
        return
    for name, value in fields.items():
        values = value if isinstance(value, tuple) else (value,)
        for v in values:
            if isinstance(v, float) and not math.isfinite(v):
                raise UserError(f"{name} must be a finite number, got {value!r}")
            if isinstance(v, int) and not isinstance(v, bool) and not -INT64 <= v < INT64:
                raise UserError(f"{name} must be an integer within 64 bits (|{name}| < 2**63), got {value!r}")
    _check_seeds(obj)


def _all_bounded(values: object) -> bool:
    """Every float (also inside tuples) finite and every integer within int64, in one pass: the plain types by
    their exact type (a 100,000-run grid validates 2.4 million fields), anything else as `_bounded` says."""
    for v in values:  # type: ignore[attr-defined]
        kind = type(v)
        if kind is float:
            if not math.isfinite(v):
                return False
        elif kind is int:
            if not -INT64 <= v < INT64:
                return False
        elif kind is not str and kind is not bool and v is not None and not _bounded(v):
            return False
    return True


def _bounded(value: object) -> bool:
    """One field's value of any type: a float (or subclass) finite, an int (or subclass) within int64, a tuple's
    elements each so (one level deep, as configs hold them)."""
    for v in value if isinstance(value, tuple) else (value,):
        if isinstance(v, float) and not math.isfinite(v):
            return False
        if isinstance(v, int) and not -INT64 <= v < INT64:
            return False
    return True


def _check_seeds(obj: object) -> None:
    for name in ("seed", "noise_seed"):
        if hasattr(obj, name) and not 0 <= getattr(obj, name) < SEED_LIMIT:
            raise UserError(f"{name} must be an integer in 0..{SEED_LIMIT - 1} (what every random generator used "
                            f"takes), got {getattr(obj, name)!r}")


def check_folds(cfg: RunConfig) -> None:
    """cv_folds at most the training examples (each fold holds out at least one)."""
    n = train_size(cfg.dataset)
    if cfg.cv_folds and n is not None and cfg.cv_folds > n:
        raise UserError(f"cv_folds = {cfg.cv_folds} is more than the {n} training examples of {cfg.dataset}; "
                        f"accepted: 2..{n}")


def check_grid(grid: Grid, rewind_epochs: bool = True) -> None:
    """The grid's analysis settings against each ordinary run they meet: flip and localization counts at most
    the run's training examples (or "all" where accepted), flip_population at most its training set, and (with
    `rewind_epochs`) every rewind epoch within the run's epochs. Auxiliary trainings have no probes of their own.

    The command line leaves the rewind check out when `--set epochs=N` shortened the runs (and not the rewind
    epochs with them): that is the documented way to try a grid quickly, and the rewind probe then reads the
    epochs each run has (sweep/probes/rewind.py). The same holds for the default rewind epochs (0, 2, .., 14), which
    a grid with shorter runs never chose: only rewind epochs a grid sets itself are checked."""
    from sweep.config import AnalysisConfig
    from sweep.probes import PROBES

    a = grid.analysis
    rewind = PROBES.get("rewind")
    for cfg in {(c.dataset, c.noise, c.epochs, c.variant, c.arch): c for c in grid.runs if not c.auxiliary}.values():
        counts = clean_noisy(cfg)
        if counts is not None:
            n, (clean, noisy) = sum(counts), counts
            where = f"run {cfg.run_id} has {n} training examples of {cfg.dataset}: {clean} clean, {noisy} noisy " \
                    f"at noise {cfg.noise:g}"
            for name, limit in (("flip_clean", n), ("flip_noisy", n), ("flip_population", n),
                                ("localize_clean", n), ("localize_noisy", n)):
                value = getattr(a, name)
                if value is not None and value > limit:
                    also = ' or "all"' if name in ALL_COUNTS else ""
                    raise UserError(f"{name} = {value} asks for more examples than there are ({where}); give at "
                                    f"most {limit}{also} (fewer are used when fewer are eligible)")
        chosen = a.rewind_epochs != AnalysisConfig().rewind_epochs
        if rewind_epochs and chosen and rewind is not None and rewind.applies(cfg):
            beyond = sorted(e for e in a.rewind_epochs if e > cfg.epochs)
            if beyond:
                raise UserError(f"rewind_epochs {', '.join(map(str, beyond))} beyond the {cfg.epochs} epochs of run "
                                f"{cfg.run_id}; accepted: 0..{cfg.epochs}")


def check_resources(cpus: float, gpus: float, max_concurrent: int) -> None:
    """The command line's resource numbers: finite, CPUs > 0, GPUs >= 0, the cap >= 0."""
    if not (math.isfinite(cpus) and cpus > 0):
        raise UserError(f"--cpus-per-trial must be a finite number > 0, got {cpus!r}")
    if not (math.isfinite(gpus) and gpus >= 0):
        raise UserError(f"--gpus-per-trial must be a finite number >= 0, got {gpus!r}")
    if max_concurrent < 0:
        raise UserError(f"--max-concurrent must be >= 0 (0: no cap), got {max_concurrent!r}")


_HOST = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?)$")


def check_address(address: str | None) -> None:
    """--address as Ray takes it: auto, local, HOST:PORT or ray://HOST:PORT (PORT 1..65535); one UserError for
    anything else, before Ray would turn it into a traceback."""
    if address is None or address in ("auto", "local"):
        return
    target = address[len("ray://"):] if address.startswith("ray://") else address
    host, colon, port = target.rpartition(":")
    if not (colon and _HOST.match(host) and port.isdigit() and 1 <= int(port) <= 65535):
        raise UserError(f"--address {address!r} is not an address Ray takes; accepted: auto, local, HOST:PORT or "
                        "ray://HOST:PORT with PORT 1..65535 (e.g. 127.0.0.1:6379)")
