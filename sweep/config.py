"""Run and analysis settings, validated in one place so everything downstream can trust them."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, fields

from sweep.errors import UserError

VARIANTS = ("standard", "tied", "dropout", "sparse")
# Every field that defines a run: every row of every table carries them all, plus `config_id`.
CONFIG_COLUMNS = ("dataset", "arch", "variant", "noise", "seed", "width", "epochs", "lr", "batch_size", "noise_seed",
                  "p_gen", "p_mem")
SEED_FIELDS = ("seed", "noise_seed")  # what may differ between the seeds of one experiment


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

    def validate(self) -> RunConfig:
        """Check every field against what is accepted; raise UserError naming the field and the accepted values."""
        from sweep.data import DATASETS
        from sweep.models import MODELS

        if self.dataset not in DATASETS:
            raise UserError(f"unknown dataset {self.dataset!r}; accepted: {', '.join(sorted(DATASETS))}")
        if self.arch not in MODELS:
            raise UserError(f"unknown architecture {self.arch!r}; accepted: {', '.join(sorted(MODELS))}")
        if self.variant not in VARIANTS:
            raise UserError(f"unknown variant {self.variant!r}; accepted: {', '.join(VARIANTS)}")
        if self.variant != "standard" and self.arch not in ("mlp", "resnet9"):
            raise UserError(f"variant {self.variant!r} needs arch mlp or resnet9, not {self.arch!r}")
        if not (isinstance(self.noise, (int, float)) and 0.0 <= self.noise < 1.0):
            raise UserError(f"noise rate must be in [0, 1), got {self.noise!r}")
        for name in ("seed", "noise_seed"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise UserError(f"{name} must be a non-negative integer, got {value!r}")
        _positive_int("epochs", self.epochs)
        _positive_int("batch_size", self.batch_size)
        if not (isinstance(self.width, (int, float)) and 0 < self.width <= 16):
            raise UserError(f"width must be in (0, 16], got {self.width!r}")
        if not (isinstance(self.lr, (int, float)) and self.lr > 0 and math.isfinite(self.lr)):
            raise UserError(f"lr must be a positive number, got {self.lr!r}")
        if not (0 < self.p_gen < 1 and 0 < self.p_mem <= 1):
            raise UserError(f"p_gen must be in (0, 1) and p_mem in (0, 1], got {self.p_gen!r}, {self.p_mem!r}")
        return self

    @property
    def run_id(self) -> str:
        """Stable id from every field that changes the result: the same run always gets the same id."""
        blob = json.dumps(asdict(self), sort_keys=True)
        short = hashlib.sha256(blob.encode()).hexdigest()[:10]
        return f"{self.dataset}-{self.arch}-{self.variant}-n{self.noise:g}-s{self.seed}-{short}"

    @property
    def config_id(self) -> str:
        """The run's identity without its seeds (initialisation and noise draw): runs with one config_id are
        seeds of one experiment, and analyses pool exactly those, never runs that differ in any other field."""
        blob = json.dumps({k: v for k, v in asdict(self).items() if k not in SEED_FIELDS}, sort_keys=True)
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
    flip_clean: int = 1000
    flip_noisy: int = 1000
    flip_cap: int = 1000
    flip_population: int = 512
    flip_noise_copies: int = 0
    flip_noise_scale: float = 0.01
    flip_eval_size: int | None = 1000
    # targets per flip task: larger chunks share more population passes (digits, 1140 targets: 54 s in chunks
    # of 250, 48 s in one); 500 keeps four tasks per run for retries and spreading over a cluster
    flip_chunk: int = 500

    def validate(self) -> AnalysisConfig:
        """Refuse settings that would make a probe meaningless (counts or caps below 1, negative epochs)."""
        if any((not isinstance(e, int)) or e < 0 for e in self.rewind_epochs):
            raise UserError(f"rewind_epochs must be non-negative integers, got {self.rewind_epochs!r}")
        if not isinstance(self.rewind_buffers, bool):
            raise UserError(f"rewind_buffers must be true or false, got {self.rewind_buffers!r}")
        for name in ("retrain_epochs", "retrain_patience", "flip_clean", "flip_noisy", "flip_cap",
                     "flip_population", "flip_chunk"):
            _positive_int(name, getattr(self, name))
        if not isinstance(self.flip_noise_copies, int) or self.flip_noise_copies < 0:
            raise UserError(f"flip_noise_copies must be a non-negative integer, got {self.flip_noise_copies!r}")
        if self.flip_eval_size is not None:
            _positive_int("flip_eval_size", self.flip_eval_size)
        if not self.retrain_lr > 0:
            raise UserError(f"retrain_lr must be positive, got {self.retrain_lr!r}")
        return self

    @classmethod
    def from_dict(cls, values: dict[str, object]) -> AnalysisConfig:
        """Build from a mapping; `flip_eval_size = "all"` means the whole split."""
        values = dict(values)
        if values.get("flip_eval_size") == "all":
            values["flip_eval_size"] = None
        if "rewind_epochs" in values:
            values["rewind_epochs"] = tuple(values["rewind_epochs"])  # type: ignore[arg-type]
        return _from_dict(cls, values)


def _positive_int(name: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise UserError(f"{name} must be an integer >= 1, got {value!r}")


def _from_dict(cls: type, values: dict[str, object]):  # noqa: ANN202 - returns an instance of cls
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise UserError(f"unknown {cls.__name__} field(s) {', '.join(unknown)}; accepted: {', '.join(sorted(known))}")
    return cls(**values).validate()
