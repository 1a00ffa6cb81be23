"""Run and analysis settings, validated in one place so everything downstream can trust them."""

from __future__ import annotations

import hashlib
import json
import math
import operator
from collections.abc import Callable
from dataclasses import dataclass, fields

from sweep import bounds
from sweep.errors import UserError

VARIANTS = ("standard", "tied", "dropout", "sparse")
# Every field that defines a run: every row of every table carries them all, plus `config_id`.
CONFIG_COLUMNS = ("dataset", "arch", "variant", "noise", "seed", "width", "epochs", "lr", "batch_size", "noise_seed",
                  "p_gen", "p_mem", "cv_folds", "cv_fold", "ssft_half", "dropout_places", "sparse_mask",
                  "curvature_every", "curvature_directions", "curvature_h", "subsets", "subset_fraction", "pack",
                  "pack_index")
SEED_FIELDS = ("seed", "noise_seed")  # what may differ between the seeds of one experiment
# Fields added after results existed: left out of the ids while at their default, so every earlier run keeps its id.
LATE_FIELDS = {"cv_folds": 0, "cv_fold": 0, "ssft_half": 0, "dropout_places": "paper", "sparse_mask": "paper",
               "curvature_every": 0, "curvature_directions": 10, "curvature_h": 1e-3, "subsets": 0,
               "subset_fraction": 0.7, "pack": 0, "pack_index": 0}
DROPOUT_PLACES = ("paper", "blocks")
SPARSE_MASKS = ("paper", "channels")


@dataclass(frozen=True)
class RunConfig:
    """One training run. `seed` drives initialisation and batch order; `noise_seed` only the label noise,
    so the same noisy dataset can be trained from several initialisations."""

    dataset: str = "digits"
    arch: str = "mlp"
    variant: str = "standard"
    noise: float = 0.1
    seed: int = 0
    noise_seed: int = 0
    width: float = 1.0
    epochs: int = 50
    batch_size: int = 512
    lr: float = 0.1
    p_gen: float = 0.4
    p_mem: float = 0.2
    # An out-of-sample run for confident learning: trained without fold `cv_fold` of `cv_folds` (sweep/folds.py),
    # it predicts that fold. 0 / 0: an ordinary run.
    cv_folds: int = 0
    cv_fold: int = 0
    # A second-split forgetting (SSFT) run: 1 or 2 = trained first on that half of the training set, then
    # fine-tuned on the other half (an auxiliary training, like the out-of-sample runs). 0: an ordinary run.
    ssft_half: int = 0
    # Where ResNet-9 applies (example-tied or standard) dropout: "paper" = the paper code's 6 places (after conv1,
    # conv2, the res1 sum, conv3, the res2 sum, conv4); "blocks" = after each of the 8 conv blocks (our earlier rule).
    dropout_places: str = "paper"
    # The sparse-network baseline: "paper" = a fixed element-wise mask dropping 40%, rescaled by 1/(1-p), at train
    # and test; "channels" = a fixed 40% of channels dropped, no rescaling (our earlier rule).
    sparse_mask: str = "paper"
    # Loss curvature (Garg, Ravikumar and Roy 2023) during training: 0 = off; k = at the end of every k-th epoch
    # (and the last), with `curvature_directions` Rademacher directions and finite-difference step `curvature_h`.
    curvature_every: int = 0
    curvature_directions: int = 10
    curvature_h: float = 1e-3
    # A pack of subset models for held-out memorization scores (Feldman and Zhang 2020; sweep/packs.py): 0 = an
    # ordinary run. subsets = M >= 2: this training is pack `pack_index` of the M subset models of the ordinary run
    # with the same other fields; it trains models j = pack_index * pack .. min(M, (pack_index + 1) * pack) - 1 at
    # once, model j on the examples whose membership hash (noise seed, j, example id) is below `subset_fraction`.
    subsets: int = 0
    subset_fraction: float = 0.7
    pack: int = 0
    pack_index: int = 0

    def validate(self) -> RunConfig:
        """Check every field against what is accepted; raise UserError naming the field and the accepted values."""
        from sweep.data import DATASETS
        from sweep.models import MODELS
        from sweep.models.registry import DROPOUT_ARCHS

        _check_kinds(self, _RUN_KINDS)
        if self.dataset not in DATASETS:
            raise UserError(f"unknown dataset {self.dataset!r}; accepted: {', '.join(sorted(DATASETS))}, or "
                            "your own from --plugin (README: Your own data and models)")
        if self.arch not in MODELS:
            raise UserError(f"unknown architecture {self.arch!r}; accepted: {', '.join(sorted(MODELS))}, or your "
                            "own from --plugin (README: Your own data and models)")
        if self.variant not in VARIANTS:
            raise UserError(f"unknown variant {self.variant!r}; accepted: {', '.join(VARIANTS)}")
        if self.variant != "standard" and self.arch not in DROPOUT_ARCHS:
            raise UserError(f"variant {self.variant!r} needs arch {' or '.join(sorted(DROPOUT_ARCHS))}, "
                            f"not {self.arch!r}")
        if not 0.0 <= self.noise < 1.0:
            raise UserError(f"noise rate must be in [0, 1), got {self.noise!r}")
        for name in ("seed", "noise_seed"):
            value = getattr(self, name)
            if value < 0:
                raise UserError(f"{name} must be a non-negative integer, got {value!r}")
        _positive_int("epochs", self.epochs)
        _positive_int("batch_size", self.batch_size)
        if not 0 < self.width <= 16:
            raise UserError(f"width must be in (0, 16], got {self.width!r}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise UserError(f"lr must be a positive number, got {self.lr!r}")
        if not (0 < self.p_gen < 1 and 0 < self.p_mem <= 1):
            raise UserError(f"p_gen must be in (0, 1) and p_mem in (0, 1], got {self.p_gen!r}, {self.p_mem!r}")
        if self.cv_folds == 0 and self.cv_fold != 0:
            raise UserError(f"cv_fold {self.cv_fold!r} needs cv_folds >= 2 (cv_folds = 0: an ordinary run)")
        if self.cv_folds != 0 and not (self.cv_folds >= 2 and 0 <= self.cv_fold < self.cv_folds):
            raise UserError(f"cv_folds must be 0 (off) or >= 2 with 0 <= cv_fold < cv_folds, got cv_folds="
                            f"{self.cv_folds!r}, cv_fold={self.cv_fold!r}")
        if self.cv_folds and self.variant != "standard":
            raise UserError(f"cv_folds needs variant 'standard' (out-of-sample models of a plain run), not "
                            f"{self.variant!r}")
        if self.ssft_half not in (0, 1, 2):
            raise UserError(f"ssft_half must be 0 (an ordinary run), 1 or 2, got {self.ssft_half!r}")
        if self.ssft_half and self.cv_folds:
            raise UserError("a run is either an out-of-sample run (cv_folds) or an SSFT run (ssft_half), not both")
        if self.ssft_half and self.variant != "standard":
            raise UserError(f"ssft needs variant 'standard' (second-split runs of a plain run), not {self.variant!r}")
        if self.dropout_places not in DROPOUT_PLACES:
            raise UserError(f"dropout_places must be one of {', '.join(DROPOUT_PLACES)}, got {self.dropout_places!r}")
        if self.sparse_mask not in SPARSE_MASKS:
            raise UserError(f"sparse_mask must be one of {', '.join(SPARSE_MASKS)}, got {self.sparse_mask!r}")
        if self.curvature_every < 0:
            raise UserError(f"curvature_every must be 0 (off) or an integer >= 1, got {self.curvature_every!r}")
        _positive_int("curvature_directions", self.curvature_directions)
        if not (math.isfinite(self.curvature_h) and self.curvature_h > 0):
            raise UserError(f"curvature_h must be a finite number > 0, got {self.curvature_h!r}")
        self._validate_subsets()
        bounds.check_folds(self)  # at most the training examples: each fold holds out at least one
        bounds.check_run_numbers(self)  # any float finite, any integer within int64, seeds within the RNGs' range
        return self

    def _validate_subsets(self) -> None:
        if self.subsets == 0:
            if self.pack or self.pack_index or self.subset_fraction != LATE_FIELDS["subset_fraction"]:
                raise UserError("pack, pack_index and subset_fraction need subsets >= 2 (subsets = 0: an ordinary "
                                "run)")
            return
        if self.subsets < 2:
            raise UserError(f"subsets must be 0 (off) or an integer >= 2 (subset models per run), got {self.subsets!r}")
        if self.variant != "standard" or self.cv_folds or self.ssft_half:
            raise UserError("subset models (subsets >= 2) belong to a plain standard run: variant 'standard', no "
                            "cv_folds, no ssft_half")
        if not (math.isfinite(self.subset_fraction) and 0 < self.subset_fraction < 1):
            raise UserError("subset_fraction must be a fraction strictly between 0 and 1, got "
                            f"{self.subset_fraction!r}")
        if not 1 <= self.pack <= self.subsets:
            raise UserError(f"pack must be an integer in 1..subsets ({self.subsets}), got {self.pack!r}")
        n_packs = math.ceil(self.subsets / self.pack)
        if not 0 <= self.pack_index < n_packs:
            raise UserError(f"pack_index must be in 0..{n_packs - 1} ({self.subsets} models in packs of {self.pack}), "
                            f"got {self.pack_index!r}")

    @property
    def auxiliary(self) -> bool:
        """True for a training that exists only to feed a signal (out-of-sample fold, SSFT half, pack of subset
        models): its rows go to the `aux_*` tables, never into the tables the paper's figures and a plain read use."""
        return bool(self.cv_folds or self.ssft_half or self.subsets)

    def base(self) -> RunConfig:
        """The ordinary run an auxiliary training belongs to (its fold, half and pack fields at their defaults):
        the run whose signals or scores it feeds. An ordinary run is its own base."""
        from dataclasses import replace

        return replace(self, cv_folds=0, cv_fold=0, ssft_half=0, subsets=0, pack=0, pack_index=0,
                       subset_fraction=LATE_FIELDS["subset_fraction"])

    @property
    def models(self) -> range:
        """The subset-model indices j this pack trains (empty for any other run)."""
        if not self.subsets:
            return range(0)
        return range(self.pack_index * self.pack, min(self.subsets, (self.pack_index + 1) * self.pack))

    def _identity(self) -> dict[str, object]:
        """The fields an id hashes: all of them, less the late ones still at their default."""
        values = _RUN_FIELDS_OF(self)  # one C call; asdict() would deep-copy: slow on big grids
        return {k: v for k, v in zip(_RUN_FIELD_NAMES, values, strict=True)
                if not (k in LATE_FIELDS and v == LATE_FIELDS[k])}

    @property
    def run_id(self) -> str:
        """Stable id from every field that changes the result: the same run always gets the same id. Computed
        once per config (planning a 100,000-run grid asks for it a few times per run; `_cached_id`)."""
        hit = _ID_CACHES["run"].get(id(self))  # _cached_id's first look, inline: asked millions of times
        return hit[1] if hit is not None and hit[0] is self else _cached_id(self, "run")

    def _run_id(self) -> str:
        blob = _JSON.encode(self._identity())
        short = hashlib.sha256(blob.encode()).hexdigest()[:10]
        fold = f"-cv{self.cv_fold}of{self.cv_folds}" if self.cv_folds else ""
        fold += f"-ssft{self.ssft_half}" if self.ssft_half else ""
        fold += f"-pack{self.pack_index}x{self.pack}of{self.subsets}" if self.subsets else ""
        return f"{self.dataset}-{self.arch}-{self.variant}-n{self.noise:g}-s{self.seed}{fold}-{short}"

    @property
    def config_id(self) -> str:
        """The run's identity without its seeds (initialisation and noise draw): runs with one config_id are
        seeds of one experiment, and analyses pool exactly those, never runs that differ in any other field."""
        return _cached_id(self, "config")

    def _config_id(self) -> str:
        blob = _JSON.encode({k: v for k, v in self._identity().items() if k not in SEED_FIELDS})
        short = hashlib.sha256(blob.encode()).hexdigest()[:10]
        return f"{self.dataset}-{self.arch}-{self.variant}-n{self.noise:g}-{short}"

    def columns(self) -> dict[str, object]:
        """The config columns every Parquet row carries (every defining field and `config_id`), so tables
        filter and group without joins."""
        return {**{name: getattr(self, name) for name in CONFIG_COLUMNS}, "config_id": self.config_id}

    @classmethod
    def from_dict(cls, values: dict[str, object]) -> RunConfig:
        """Build from a plain mapping (a grid row or TOML table), refusing unknown keys by name."""
        return _from_dict(cls, values)


_RUN_FIELD_NAMES = tuple(f.name for f in fields(RunConfig))
_RUN_FIELDS_OF = operator.attrgetter(*_RUN_FIELD_NAMES)  # config -> its field values, in field order
_JSON = json.JSONEncoder(sort_keys=True)  # what json.dumps(obj, sort_keys=True) makes anew on every call


_ID_CACHE_SIZE = 1 << 18
# id(config) -> (the config, its id): a cache beside the frozen instances, so their __dict__ stays their fields.
# Keyed by identity, not equality: hashing a 24-field frozen dataclass on every look (an lru_cache) was most of
# the cost of planning a 100,000-run grid, which asks for each run's id dozens of times. The entry holds the
# config itself, so its id() cannot be reused by another object while the entry exists; equal configs built
# apart are hashed once each, with the same result.
_ID_CACHES: dict[str, dict[int, tuple[RunConfig, str]]] = {"run": {}, "config": {}}


def _cached_id(cfg: RunConfig, kind: str) -> str:
    """A config's run_id or config_id, computed once per config instance (bounded: cleared when full)."""
    cache = _ID_CACHES[kind]
    hit = cache.get(id(cfg))
    if hit is not None and hit[0] is cfg:
        return hit[1]
    value = cfg._run_id() if kind == "run" else cfg._config_id()
    if len(cache) >= _ID_CACHE_SIZE:
        cache.clear()
    cache[id(cfg)] = (cfg, value)
    return value


def _default_rewind_epochs() -> tuple[int, ...]:
    return tuple(range(0, 15, 2))


@dataclass(frozen=True)
class AnalysisConfig:
    """Settings of the probes that run on finished trainings (DESIGN.md §4)."""

    rewind_epochs: tuple[int, ...] = _default_rewind_epochs()
    # rewinding moves a group's parameters only (the paper's convention); true: its buffers (BatchNorm running
    # statistics) too, which at epoch 0 leaves the layer un-normalised
    rewind_buffers: bool = False
    retrain_epochs: int = 20
    retrain_lr: float = 0.01
    retrain_patience: int = 3
    # where layer retraining's triangular lr schedule peaks, as a fraction of `retrain_epochs`: 0.5 = the paper's
    # code (epoch 10 of its 20, sweep/probes/retrain.py); 0.2 = our earlier rule (the trainer's 1/5)
    retrain_peak: float = 0.5
    # targets (clean, noisy) and population sample of neuron flipping; "all" (None) = every eligible example
    flip_clean: int | None = 1000
    flip_noisy: int | None = 1000
    flip_cap: int = 1000
    flip_population: int | None = 512
    flip_noise_copies: int = 0
    flip_noise_scale: float = 0.01
    flip_eval_size: int | None = 1000
    # targets per flip task: larger chunks share more population passes (digits, 1140 targets: 54 s in chunks
    # of 250, 48 s in one); 500 keeps four tasks per run for retries and spreading over a cluster
    flip_chunk: int = 500
    # which epoch checkpoints a training keeps: "probes" = those the grid's analyses read (epoch 0, the rewind
    # epochs, the last; a quarter of "all" for the paper's 50 epochs), "all" = every epoch (for your own analyses)
    keep_checkpoints: str = "probes"
    # what neuron flipping may remove: "outputs" = output channels / hidden features only (DESIGN.md §4); "paper" =
    # also each BatchNorm scale and shift value and each classifier weight, one value at a time (the paper's code)
    flip_units: str = "outputs"
    # The localization benchmark (sweep/localizers, sweep/probes/localize.py): which localizers, how many clean
    # and noisy targets per run, the longest ranking (and the top of the forget/keep ladder), targets per task.
    localizers: tuple[str, ...] = ("greedy", "zero_out", "activation", "grad_x_act", "integrated_gradients",
                                   "slimming", "hard_concrete")
    localize_clean: int = 100
    localize_noisy: int = 100
    localize_cap: int = 200
    localize_chunk: int = 100
    ig_steps: int = 16  # integrated gradients: gate values 0 -> 1 in this many steps (Riemann midpoints)
    slimming_steps: int = 100  # slimming: optimiser steps of the continuous unit mask
    slimming_lr: float = 0.05
    slimming_l1: float = 1e-2  # weight of the L1 penalty pulling the mask to 1 (keep) - see sweep/localizers
    hard_concrete_steps: int = 100  # L0 gates (Louizos et al. 2018)
    hard_concrete_lr: float = 0.05
    hard_concrete_l0: float = 3e-2  # expected closed gates; 1e-2 / 3e-2: measured in sweep/localizers/masks.py
    # injected ground truth (sweep/localizers/inject.py): per standard run, this many clean targets get a new
    # wrong label, learned by fine-tuning only `inject_units` random units for `inject_steps` steps (Adam).
    # 32 units at lr 0.01 fit all 10 targets on digits MLPs (widths 0.25 and 1, 20 epochs: 5 of 5 seeds within
    # 10-35 steps); 10 units fit only 30-90% of them, lr 0.05 stalls more often (sweep/localizers/inject.py)
    inject_targets: int = 10
    inject_units: int = 32
    inject_steps: int = 200
    inject_lr: float = 0.01
    inject_population: int = 256
    # memorization scores (sweep/probes/memorization.py): targets per set (noisy, atypical clean, typical clean)
    # for flipping and the localizers; the top (train, test) pairs of the influence estimate kept (0 = none)
    mem_targets: int = 100
    mem_influence_top: int = 0

    def validate(self) -> AnalysisConfig:
        """Refuse settings of the wrong type or that would make a probe meaningless (counts or caps below 1,
        negative epochs, a non-finite noise scale)."""
        _check_kinds(self, _ANALYSIS_KINDS)
        if any(e < 0 for e in self.rewind_epochs):
            raise UserError(f"rewind_epochs must be non-negative integers, got {self.rewind_epochs!r}")
        for name in ("retrain_epochs", "retrain_patience", "flip_cap", "flip_chunk"):
            _positive_int(name, getattr(self, name))
        for name in bounds.ALL_COUNTS:  # None: "all"
            if getattr(self, name) is not None:
                _positive_int(name, getattr(self, name))
        if self.flip_noise_copies < 0:
            raise UserError(f"flip_noise_copies must be a non-negative integer, got {self.flip_noise_copies!r}")
        if not (math.isfinite(self.flip_noise_scale) and self.flip_noise_scale >= 0):
            raise UserError(f"flip_noise_scale must be a finite number >= 0, got {self.flip_noise_scale!r}")
        if self.flip_eval_size is not None:
            _positive_int("flip_eval_size", self.flip_eval_size)
        if not (self.retrain_lr > 0 and math.isfinite(self.retrain_lr)):
            raise UserError(f"retrain_lr must be positive, got {self.retrain_lr!r}")
        if not 0 < self.retrain_peak < 1:
            raise UserError(f"retrain_peak must be a fraction strictly between 0 and 1, got {self.retrain_peak!r}")
        if self.keep_checkpoints not in ("probes", "all"):
            raise UserError(f"keep_checkpoints must be \"probes\" or \"all\", got {self.keep_checkpoints!r}")
        if self.flip_units not in ("outputs", "paper"):
            raise UserError(f"flip_units must be \"outputs\" or \"paper\", got {self.flip_units!r}")
        for name in ("localize_cap", "localize_chunk", "ig_steps", "slimming_steps", "hard_concrete_steps",
                     "inject_units", "inject_steps", "inject_population"):
            _positive_int(name, getattr(self, name))
        for name in ("localize_clean", "localize_noisy", "inject_targets", "mem_targets", "mem_influence_top"):
            if getattr(self, name) < 0:
                raise UserError(f"{name} must be a non-negative integer, got {getattr(self, name)!r}")
        for name in ("slimming_lr", "hard_concrete_lr", "inject_lr"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) > 0):
                raise UserError(f"{name} must be a finite number > 0, got {getattr(self, name)!r}")
        for name in ("slimming_l1", "hard_concrete_l0"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) >= 0):
                raise UserError(f"{name} must be a finite number >= 0, got {getattr(self, name)!r}")
        bounds.check_run_numbers(self)  # any float finite, any integer within int64 (fields checked above first)
        return self

    @classmethod
    def from_dict(cls, values: dict[str, object]) -> AnalysisConfig:
        """Build from a mapping; `flip_eval_size = "all"` means the whole split, `flip_clean`, `flip_noisy`,
        `flip_population = "all"` every eligible example (sweep.bounds.ALL_COUNTS)."""
        values = dict(values)
        for name in ("flip_eval_size", *bounds.ALL_COUNTS):
            if values.get(name) == "all":
                values[name] = None
        for name in ("rewind_epochs", "localizers"):  # anything but a list is left for validate() to refuse
            if isinstance(values.get(name), list):
                values[name] = tuple(values[name])
        return _from_dict(cls, values)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# What a field accepts, by kind: a description for the message and the test. bool is a subclass of int in Python,
# so true/false is refused where a number is expected and a number where true/false is; a float field takes ints.
_KINDS: dict[str, tuple[str, Callable[[object], bool]]] = {
    "str": ("a string", lambda v: isinstance(v, str)),
    "int": ("an integer", _is_int),
    "float": ("a number", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)),
    "bool": ("true or false", lambda v: isinstance(v, bool)),
    "ints": ("a list of integers", lambda v: isinstance(v, (list, tuple)) and all(_is_int(e) for e in v)),
    "strs": ("a list of strings", lambda v: isinstance(v, (list, tuple)) and all(isinstance(e, str) for e in v)),
    "int_or_all": ('an integer or "all"', lambda v: v is None or _is_int(v)),
}
# The exact types each kind accepts without looking further (a subclass, a tuple's elements: `ok` decides); a
# 100,000-run grid checks 2.4 million fields.
_PLAIN_TYPES: dict[str, frozenset[type]] = {"str": frozenset({str}), "int": frozenset({int}),
                                            "float": frozenset({int, float}), "bool": frozenset({bool}),
                                            "ints": frozenset(), "strs": frozenset(), "int_or_all": frozenset({int})}
# One table per dataclass: field -> kind. Every field must be listed (a missing one is a KeyError in any test).
_RUN_KINDS = {
    "dataset": "str", "arch": "str", "variant": "str", "noise": "float", "seed": "int", "noise_seed": "int",
    "width": "float", "epochs": "int", "batch_size": "int", "lr": "float", "p_gen": "float", "p_mem": "float",
    "cv_folds": "int", "cv_fold": "int", "ssft_half": "int", "dropout_places": "str", "sparse_mask": "str",
    "curvature_every": "int", "curvature_directions": "int", "curvature_h": "float", "subsets": "int",
    "subset_fraction": "float", "pack": "int", "pack_index": "int",
}
_ANALYSIS_KINDS = {
    "rewind_epochs": "ints", "rewind_buffers": "bool", "retrain_epochs": "int", "retrain_lr": "float",
    "retrain_patience": "int", "flip_clean": "int_or_all", "flip_noisy": "int_or_all", "flip_cap": "int",
    "flip_population": "int_or_all",
    "flip_noise_copies": "int", "flip_noise_scale": "float", "flip_eval_size": "int_or_all", "flip_chunk": "int",
    "keep_checkpoints": "str", "flip_units": "str", "retrain_peak": "float",
    "localizers": "strs", "localize_clean": "int", "localize_noisy": "int", "localize_cap": "int",
    "localize_chunk": "int", "ig_steps": "int", "slimming_steps": "int", "slimming_lr": "float",
    "slimming_l1": "float", "hard_concrete_steps": "int", "hard_concrete_lr": "float", "hard_concrete_l0": "float",
    "inject_targets": "int", "inject_units": "int", "inject_steps": "int", "inject_lr": "float",
    "inject_population": "int", "mem_targets": "int", "mem_influence_top": "int",
}


def _check_kinds(obj: object, kinds: dict[str, str]) -> None:
    """Check every field of dataclass `obj` against its kind in `kinds`, before any comparison could raise a
    TypeError: a wrong type is one UserError naming the field, the value given and what is accepted."""
    for name, kind in kinds.items():  # every field is listed (a test checks): no fields() call per config
        value = getattr(obj, name)
        if type(value) in _PLAIN_TYPES[kind]:  # the common case, without a call: what `ok` accepts for sure
            continue
        accepted, ok = _KINDS[kind]
        if not ok(value):
            raise UserError(f"{name} must be {accepted}, got {value!r}")


def _positive_int(name: str, value: object) -> None:
    if not _is_int(value) or value < 1:  # type: ignore[operator]
        raise UserError(f"{name} must be an integer >= 1, got {value!r}")


_FIELD_SETS: dict[type, frozenset[str]] = {}  # the field names of each config class, for _from_dict


def _from_dict(cls: type, values: dict[str, object]):  # noqa: ANN202 - returns an instance of cls
    known = _FIELD_SETS.get(cls) or _FIELD_SETS.setdefault(cls, frozenset(f.name for f in fields(cls)))
    unknown = sorted(set(values) - known)
    if unknown:
        raise UserError(f"unknown {cls.__name__} field(s) {', '.join(unknown)}; accepted: {', '.join(sorted(known))}")
    return cls(**values).validate()
