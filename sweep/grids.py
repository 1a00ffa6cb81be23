"""What to run: the built-in grids as data, and user grids from TOML files with the same fields.

A grid is one or more blocks; each block is a product over its list-valued fields (dataset, arch, variant,
noise, seed, width) with shared scalars (epochs, batch_size, lr, p_gen, p_mem), plus one [analysis] table of
probe settings. The label-noise seed follows the run seed, so seed s means "noise draw s, initialisation s".
"""

from __future__ import annotations

import itertools
import tomllib
from dataclasses import dataclass
from pathlib import Path

from sweep.config import AnalysisConfig, RunConfig
from sweep.errors import UserError

PRODUCT_FIELDS = ("dataset", "arch", "variant", "noise", "seed", "width")
SCALAR_FIELDS = ("epochs", "batch_size", "lr", "p_gen", "p_mem")


@dataclass(frozen=True)
class Grid:
    """A named set of runs and the probe settings applied to each of them."""

    name: str
    runs: tuple[RunConfig, ...]
    analysis: AnalysisConfig


def expand(blocks: list[dict[str, object]]) -> tuple[RunConfig, ...]:
    """Expand blocks into validated, de-duplicated RunConfigs (order kept: it is the launch order)."""
    runs: dict[str, RunConfig] = {}
    for block in blocks:
        unknown = sorted(set(block) - set(PRODUCT_FIELDS) - set(SCALAR_FIELDS))
        if unknown:
            accepted = ", ".join(PRODUCT_FIELDS + SCALAR_FIELDS)
            raise UserError(f"unknown grid field(s) {', '.join(unknown)}; accepted: {accepted}")
        axes = {k: v if isinstance(v, list) else [v] for k, v in block.items() if k in PRODUCT_FIELDS}
        scalars = {k: v for k, v in block.items() if k in SCALAR_FIELDS}
        names = list(axes)
        for values in itertools.product(*(axes[k] for k in names)):
            fields = dict(zip(names, values, strict=True), **scalars)
            fields["noise_seed"] = fields.get("seed", 0)
            cfg = RunConfig.from_dict(fields)
            runs.setdefault(cfg.run_id, cfg)
    if not runs:
        raise UserError("the grid has no runs; give at least one block with a dataset and an arch")
    return tuple(runs.values())


_DIGITS = {"dataset": "digits", "batch_size": 128, "lr": 0.1}
_PAPER_DATA = ["cifar10", "mnist", "svhn"]

BUILTIN: dict[str, tuple[list[dict[str, object]], dict[str, object]]] = {
    "smoke": (
        [{**_DIGITS, "arch": "mlp", "variant": ["standard", "tied", "dropout", "sparse"], "noise": 0.1, "seed": 0,
          "epochs": 20}],
        {"rewind_epochs": [0, 4, 8], "retrain_epochs": 4, "flip_clean": 12, "flip_noisy": 12, "flip_cap": 60,
         "flip_population": 128, "flip_eval_size": 200, "flip_chunk": 12},
    ),
    "demo": (
        # batch 256 x 60 epochs: standard dropout p=0.4 memorizes digits' noisy labels only this long (Table 3).
        [{**_DIGITS, "arch": "mlp", "variant": ["standard", "tied", "dropout", "sparse"], "noise": 0.1,
          "seed": [0, 1], "epochs": 60, "batch_size": 256},
         {**_DIGITS, "arch": "resnet9", "width": 0.25, "variant": "standard", "noise": 0.1, "seed": [0, 1],
          "epochs": 20}],
        {"rewind_epochs": [0, 2, 4, 6, 8, 10, 12, 14], "retrain_epochs": 10, "flip_clean": 50, "flip_noisy": 50,
         "flip_cap": 200, "flip_population": 256, "flip_eval_size": 300, "flip_chunk": 50},
    ),
    "paper": (
        [{"dataset": _PAPER_DATA, "arch": ["resnet9", "resnet50"], "noise": 0.1, "seed": 0, "epochs": 50,
          "batch_size": 512},
         {"dataset": _PAPER_DATA, "arch": "vit", "noise": 0.1, "seed": 0, "epochs": 50, "batch_size": 128},
         {"dataset": _PAPER_DATA, "arch": "resnet9", "variant": ["tied", "dropout", "sparse"], "noise": 0.1,
          "seed": 0, "epochs": 50, "batch_size": 512}],
        {},
    ),
}
BUILTIN["full"] = (
    [{**block, "noise": [0.05, 0.1, 0.2], "seed": [0, 1, 2]} for block in BUILTIN["paper"][0]],
    {},
)


def load_grid(name_or_path: str) -> Grid:
    """A built-in grid by name, or a TOML file path; anything else is one clear UserError."""
    if name_or_path in BUILTIN:
        blocks, analysis = BUILTIN[name_or_path]
        return Grid(name_or_path, expand(blocks), AnalysisConfig.from_dict(analysis))
    path = Path(name_or_path)
    if not path.suffix == ".toml" and not path.exists():
        raise UserError(f"unknown grid {name_or_path!r}; accepted: {', '.join(BUILTIN)} or a path to a .toml file")
    if not path.is_file():
        raise UserError(f"grid file {name_or_path} does not exist; give one of {', '.join(BUILTIN)} or a .toml file")
    try:
        doc = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"grid file {path} is not valid TOML: {exc}") from exc
    unknown = sorted(set(doc) - {"runs", "analysis"})
    if unknown or not isinstance(doc.get("runs"), list):
        raise UserError(f"grid file {path} needs [[runs]] blocks and an optional [analysis] table"
                        + (f"; unknown top-level key(s): {', '.join(unknown)}" if unknown else ""))
    for block in doc["runs"]:
        if not isinstance(block, dict):
            raise UserError(f"grid file {path}: each [[runs]] block must be a table, got {block!r}")
    analysis = doc.get("analysis", {})
    if not isinstance(analysis, dict):
        raise UserError(f"grid file {path}: [analysis] must be a table, got {analysis!r}")
    return Grid(path.stem, expand(doc["runs"]), AnalysisConfig.from_dict(analysis))
