"""What to run: the built-in grids as data, and user grids from TOML files with the same fields.

A grid is one or more blocks; each block is a product over its list-valued fields (dataset, arch, variant,
noise, seed, width) with shared scalars (epochs, batch_size, lr, p_gen, p_mem, the curvature settings), plus one
[analysis] table of probe settings. The label-noise seed follows the run seed, so seed s means "noise draw s,
initialisation s".
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sweep.config import AnalysisConfig, RunConfig
from sweep.errors import UserError

PRODUCT_FIELDS = ("dataset", "arch", "variant", "noise", "seed", "width")
SCALAR_FIELDS = ("epochs", "batch_size", "lr", "p_gen", "p_mem", "curvature_every", "curvature_directions",
                 "curvature_h", "dropout_places", "sparse_mask")
# cv_folds = K in a block: each of its `standard` runs gets K out-of-sample runs too (confident learning's input);
# ssft = true: each of its `standard` runs gets its two second-split forgetting runs (sweep.ssft);
# subsets = M: each of its `standard` runs gets M subset models (held-out memorization, sweep.packs), each training
# on a `subset_fraction` of the examples (0.7 unless given), trained `pack` at a time per Tune trial (default: as
# many as sweep.packs.auto_pack fits on one device)
BLOCK_FIELDS = ("cv_folds", "ssft", "subsets", "subset_fraction", "pack")


@dataclass(frozen=True)
class Grid:
    """A named set of runs and the probe settings applied to each of them."""

    name: str
    runs: tuple[RunConfig, ...]
    analysis: AnalysisConfig
    # a grid file's `plugins = [...]`: resolved specs (sweep.plugins), imported before its runs were validated
    plugins: tuple[str, ...] = ()


def expand(blocks: list[dict[str, object]]) -> tuple[RunConfig, ...]:
    """Expand blocks into validated, de-duplicated RunConfigs (order kept: it is the launch order)."""
    runs: dict[str, RunConfig] = {}
    for block in blocks:
        unknown = sorted(set(block) - set(PRODUCT_FIELDS) - set(SCALAR_FIELDS) - set(BLOCK_FIELDS))
        if unknown:
            accepted = ", ".join(PRODUCT_FIELDS + SCALAR_FIELDS + BLOCK_FIELDS)
            raise UserError(f"unknown grid field(s) {', '.join(unknown)}; accepted: {accepted}")
        axes = {k: v if isinstance(v, list) else [v] for k, v in block.items() if k in PRODUCT_FIELDS}
        scalars = {k: v for k, v in block.items() if k in SCALAR_FIELDS}
        folds = block.get("cv_folds", 0)
        ssft = block.get("ssft", False)
        if not isinstance(ssft, bool):
            raise UserError(f"ssft must be true or false (second-split forgetting runs for each standard run), "
                            f"got {ssft!r}")
        subsets = _subset_settings(block)
        names = list(axes)
        for values in itertools.product(*(axes[k] for k in names)):
            fields = dict(zip(names, values, strict=True), **scalars)
            fields["noise_seed"] = fields.get("seed", 0)
            cfg = RunConfig.from_dict(fields)
            runs.setdefault(cfg.run_id, cfg)
            if folds and cfg.variant == "standard":
                for fold in out_of_sample_runs(cfg, folds):
                    runs.setdefault(fold.run_id, fold)
            if ssft and cfg.variant == "standard":
                for half in ssft_runs(cfg):
                    runs.setdefault(half.run_id, half)
            if subsets and cfg.variant == "standard":
                for pack in subset_runs(cfg, *subsets):
                    runs.setdefault(pack.run_id, pack)
    if not runs:
        raise UserError("the grid has no runs; give at least one block with a dataset and an arch")
    return tuple(runs.values())


def out_of_sample_runs(cfg: RunConfig, folds: object) -> list[RunConfig]:
    """The `folds` out-of-sample runs of `cfg` (same config and seeds; each holds out one fold)."""
    if not (isinstance(folds, int) and not isinstance(folds, bool) and folds != 1 and folds >= 0):
        raise UserError(f"cv_folds must be 0 (off) or an integer >= 2, got {folds!r}")
    return [dataclasses.replace(cfg, cv_folds=folds, cv_fold=k).validate() for k in range(folds)]


def _subset_settings(block: dict[str, object]) -> tuple[object, object, object] | None:
    """A block's (subsets, subset_fraction, pack) when it asks for subset models, else None; settings that cannot
    make them are one UserError, before any run of the block is built."""
    subsets = block.get("subsets", 0)
    if subsets == 0 and not isinstance(subsets, bool):
        given = [name for name in ("subset_fraction", "pack") if name in block]
        if given:
            raise UserError(f"{' and '.join(given)} need subsets = M (M >= 2 subset models per standard run)")
        return None
    _check_subsets(subsets)
    variants = block.get("variant", "standard")
    if "standard" not in (variants if isinstance(variants, list) else [variants]):
        raise UserError(f"subsets are added for a block's standard runs only (as cv_folds and ssft are); this block's "
                        f"variant is {variants!r}: add 'standard' to it, or move subsets to a block of standard runs")
    return subsets, block.get("subset_fraction", 0.7), block.get("pack")


def _check_subsets(subsets: object) -> None:
    if not (isinstance(subsets, int) and not isinstance(subsets, bool) and subsets >= 2):
        raise UserError(f"subsets must be 0 (off) or an integer >= 2 (subset models per standard run), got {subsets!r}")


def subset_runs(cfg: RunConfig, subsets: object, fraction: object = 0.7, pack: object = None) -> list[RunConfig]:
    """The packs of `cfg`'s `subsets` subset models: ceil(M / K) auxiliary runs of K models each (the last may hold
    fewer), model j in pack j // K; every pack has the config, seeds and noisy labels of `cfg`. `pack` None: the
    largest K that sweep.packs.auto_pack fits on one device."""
    _check_subsets(subsets)
    if not (isinstance(fraction, (int, float)) and not isinstance(fraction, bool) and 0 < fraction < 1):
        raise UserError(f"subset_fraction must be a number strictly between 0 and 1 (the share of training examples "
                        f"each subset model trains on), got {fraction!r}")
    if pack is None:
        from sweep.packs import auto_pack  # torch, and only for grids with subsets

        pack = auto_pack(cfg, subsets)
    if not (isinstance(pack, int) and not isinstance(pack, bool) and 1 <= pack <= subsets):
        raise UserError(f"pack must be an integer from 1 to subsets ({subsets}): subset models per trial, got "
                        f"{pack!r}")
    fields = {"subsets": subsets, "subset_fraction": float(fraction), "pack": pack}
    return [dataclasses.replace(cfg, **fields, pack_index=i).validate() for i in range(math.ceil(subsets / pack))]


def ssft_runs(cfg: RunConfig) -> list[RunConfig]:
    """The two second-split forgetting runs of `cfg` (same config and seeds; halves 1 and 2 trained first)."""
    return [dataclasses.replace(cfg, ssft_half=half).validate() for half in (1, 2)]


_DIGITS = {"dataset": "digits", "batch_size": 128, "lr": 0.1}
# Loss curvature (sweep/curvature.py) costs (directions + 1) forward and backward passes over the training set
# each time it is computed; these keep it small: a few epochs, few directions (Garg et al. use 2 to 10).
_CURVATURE_SMOKE = {"curvature_every": 5, "curvature_directions": 2}
# bench/curvature.py measured on a CPU: +6% of a demo MLP training, +10% of a demo ResNet-9 one; the demo as a
# whole grows less (its fold and SSFT runs skip curvature, and its probes do not change)
_CURVATURE_DEMO = {"curvature_every": 15, "curvature_directions": 2}  # MLP, 60 epochs: at 15, 30, 45, 60
_CURVATURE_DEMO_RESNET = {"curvature_every": 10, "curvature_directions": 2}  # 20 epochs: at 10 and 20
_PAPER_DATA = ["cifar10", "mnist", "svhn"]
# The localization benchmark (sweep/probes/localize.py): a handful of targets per run, short optimisations for
# the learned-mask localizers, an injection of 32 units (digits MLP, 20 epochs, Adam lr 0.01: 32 units fit 3 and 5
# targets in 5 of 5 seeds within 5-26 steps; 10 units fit only 33-100% of them in 100 steps)
# smoke: 3 + 3 targets and cap 10, so the whole smoke sweep stays inside its end-to-end test's time limit
_LOCALIZE_SMOKE = {"localize_clean": 3, "localize_noisy": 3, "localize_cap": 10, "localize_chunk": 6,
                   "inject_targets": 2, "inject_units": 32, "inject_steps": 100, "ig_steps": 4, "slimming_steps": 10,
                   "hard_concrete_steps": 10}
# demo: 3 + 3 targets and cap 13 (ladder k = 1, 2, 3, 5, 8, 13): at 5 + 5, cap 20 and 5 injected targets the six
# localize tasks took 40-75 s each of a 10 min 34 s demo on 2 cores (zero_out about 1 s a target, greedy 0.3 s)
_LOCALIZE_DEMO = {"localize_clean": 3, "localize_noisy": 3, "localize_cap": 13, "localize_chunk": 6,
                  "inject_targets": 3, "inject_units": 32, "inject_steps": 100, "ig_steps": 8, "slimming_steps": 50,
                  "hard_concrete_steps": 50}
# Held-out memorization (Feldman & Zhang 2020): subset models of each standard run, trained in packs (sweep.packs).
# smoke and demo: one pack of 8 per standard MLP run (each example in or out of a few models: scores exist, with
# wide standard errors; a demo pack of 16 took 91-112 s on 2 busy cores and gave mem AUROC 0.99 / 0.985 for the
# mislabeled examples of seeds 0 / 1)
_SUBSETS_SMOKE = {"subsets": 8, "pack": 8}
_SUBSETS_DEMO = {"subsets": 8, "pack": 8}
# the memorization probe's flipping and localizers on the three target sets, and the influence pairs kept
_MEM_SMOKE = {"mem_targets": 3, "mem_influence_top": 10}
_MEM_DEMO = {"mem_targets": 3, "mem_influence_top": 20}

BUILTIN: dict[str, tuple[list[dict[str, object]], dict[str, object]]] = {
    "smoke": (
        [{**_DIGITS, "arch": "mlp", "variant": ["standard", "tied", "dropout", "sparse"], "noise": 0.1, "seed": 0,
          "epochs": 20, "cv_folds": 2, "ssft": True, **_CURVATURE_SMOKE, **_SUBSETS_SMOKE}],
        {"rewind_epochs": [0, 4, 8], "retrain_epochs": 4, "flip_clean": 12, "flip_noisy": 12, "flip_cap": 60,
         "flip_population": 128, "flip_eval_size": 200, "flip_chunk": 12, **_LOCALIZE_SMOKE, **_MEM_SMOKE},
    ),
    "demo": (
        # batch 256 x 60 epochs: standard dropout p=0.4 memorizes digits' noisy labels only this long (Table 3).
        # cv_folds: the standard MLP's out-of-sample runs, so confident learning joins the detection comparison;
        # ssft: its two second-split forgetting runs, so SSFT does too.
        [{**_DIGITS, "arch": "mlp", "variant": ["standard", "tied", "dropout", "sparse"], "noise": 0.1,
          "seed": [0, 1], "epochs": 60, "batch_size": 256, "cv_folds": 5, "ssft": True, **_CURVATURE_DEMO,
          **_SUBSETS_DEMO},
         {**_DIGITS, "arch": "resnet9", "width": 0.25, "variant": "standard", "noise": 0.1, "seed": [0, 1],
          "epochs": 20, **_CURVATURE_DEMO_RESNET}],
        {"rewind_epochs": [0, 2, 4, 6, 8, 10, 12, 14], "retrain_epochs": 10, "flip_clean": 50, "flip_noisy": 50,
         "flip_cap": 200, "flip_population": 256, "flip_eval_size": 300, "flip_chunk": 50, **_LOCALIZE_DEMO,
         **_MEM_DEMO},
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
# The published detection protocol (Ravikumar et al. 2025, Table 2; cleanlab's benchmark): uniform label noise from 1%
# to 20%, the paper's ResNet-9 (width 1, 50 epochs, batch 512), three seeds (the report's intervals need three),
# every signal: 5 out-of-sample fold runs (confident learning), the two SSFT runs, and loss curvature at every 5th
# epoch's end and the last (11 of 50 epochs, with the default 10 directions: (10 + 1) passes each). CIFAR-10 for
# users who have it (--data-dir, or --download), and Fashion-MNIST (`apt-get install dataset-fashion-mnist`).
_DETECT = {"arch": "resnet9", "width": 1.0, "variant": "standard", "noise": [0.01, 0.02, 0.05, 0.1, 0.2],
           "seed": [0, 1, 2], "epochs": 50, "batch_size": 512, "cv_folds": 5, "ssft": True, "curvature_every": 5}
BUILTIN["detect"] = ([{"dataset": "cifar10", **_DETECT}, {"dataset": "fashion-mnist", **_DETECT}], {})
# Held-out memorization scores for a cluster: Feldman & Zhang's M = 2,000 subset models on 70% subsets of each
# dataset, for the paper's ResNet-9 standard runs (50 epochs, batch 512, 10% noise) on its three datasets and on
# Fashion-MNIST. Packs of 12: what one 80 GB GPU holds of the width-1 ResNet-9 at batch 512 (sweep.packs.auto_pack
# with device_memory = 80 GB; without a device size it plans for a CPU node, 1 per pack, 8,004 trials), so the grid
# is 668 Tune trials, the hundreds Tune is made for. `--dry-run` states the trials, packs and storage.
_MEMORIZATION = {"arch": "resnet9", "variant": "standard", "noise": 0.1, "seed": 0, "epochs": 50, "batch_size": 512,
                 "subsets": 2000, "subset_fraction": 0.7, "pack": 12}
BUILTIN["memorization"] = ([{"dataset": [*_PAPER_DATA, "fashion-mnist"], **_MEMORIZATION}], {})


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
    unknown = sorted(set(doc) - {"runs", "analysis", "plugins"})
    if unknown or not isinstance(doc.get("runs"), list):
        raise UserError(f"grid file {path} needs [[runs]] blocks, an optional [analysis] table and an optional "
                        "plugins list"
                        + (f"; unknown top-level key(s): {', '.join(unknown)}" if unknown else ""))
    for block in doc["runs"]:
        if not isinstance(block, dict):
            raise UserError(f"grid file {path}: each [[runs]] block must be a table, got {block!r}")
    analysis = doc.get("analysis", {})
    if not isinstance(analysis, dict):
        raise UserError(f"grid file {path}: [analysis] must be a table, got {analysis!r}")
    plugins = _grid_plugins(path, doc.get("plugins", []))  # imported first: its runs may name what they register
    return Grid(path.stem, expand(doc["runs"]), AnalysisConfig.from_dict(analysis), plugins)


def _grid_plugins(path: Path, specs: object) -> tuple[str, ...]:
    """A grid file's `plugins`, resolved against the file's folder and imported (sweep.plugins)."""
    from sweep import plugins

    flag = f"grid file {path}: plugins entry"
    if not (isinstance(specs, list) and all(isinstance(spec, str) for spec in specs)):
        raise UserError(f"grid file {path}: plugins must be a list of module names or .py paths, got {specs!r}")
    resolved = plugins.resolve(specs, base=path.resolve().parent, flag=flag)
    plugins.activate(resolved, flag)
    return resolved


# Choosing runs from the command line (--where, --set) -----------------------------------------------------

# Every RunConfig field and its type's name ('str', 'int' or 'float': annotations are strings in config.py), and
# every AnalysisConfig field's (also 'bool', 'int | None' = an integer or "all", and the tuple kinds).
_FIELD_TYPES = {f.name: str(f.type) for f in dataclasses.fields(RunConfig)}
_ANALYSIS_TYPES = {f.name: str(f.type) for f in dataclasses.fields(AnalysisConfig)}
RUN_FIELDS = tuple(_FIELD_TYPES)
ANALYSIS_FIELDS = tuple(_ANALYSIS_TYPES)
ASSIGN_SYNTAX = {"--where": "FIELD=V[,V...][,FIELD=V...]", "--set": "FIELD=V[,V...][,FIELD=V...]"}
_EXAMPLE = {"--where": "arch=mlp,seed=0,1", "--set": "epochs=5"}
_LIST_KINDS = {"tuple[int, ...]": "int", "tuple[str, ...]": "str"}  # analysis fields whose values form one list


def _show(value: object) -> str:
    if value is None:  # an "int | None" analysis setting: None is "all"
        return "all"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _typed(name: str, text: str, flag: str, hint: Callable[[str], str]) -> object:
    """`text` as field `name`'s type (the RunConfig or AnalysisConfig field's kind); UserError otherwise."""
    kind = _FIELD_TYPES.get(name) or _LIST_KINDS.get(_ANALYSIS_TYPES[name], _ANALYSIS_TYPES[name])
    if kind == "str":
        return text
    if kind == "bool":
        if text.lower() not in ("true", "false"):
            raise UserError(f"{flag} {name}={text}: {name} must be true or false")
        return text.lower() == "true"
    if kind == "int | None" and text == "all":
        return None
    if kind not in ("int", "float", "int | None"):
        raise TypeError(f"field {name} has type {kind}, which --where and --set do not parse yet")
    try:
        return float(text) if kind == "float" else int(text)
    except ValueError:
        accepted = {"int": "an integer", "float": "a number", "int | None": 'an integer or "all"'}[kind]
        raise UserError(f"{flag} {name}={text}: {name} must be {accepted}{hint(name)}") from None


def parse_assignments(texts: Sequence[str], flag: str,
                      hint: Callable[[str], str] = lambda name: "") -> dict[str, tuple[object, ...]]:
    """`FIELD=V[,V...][,FIELD=V...]` terms (the texts of one flag, all of them) as field -> typed values.

    Terms are split at commas; a term without '=' is one more value of the field named before it, so
    `arch=mlp,seed=0,1` means arch mlp and seed 0 or 1. A field given in several terms or flags keeps every value.
    --set also takes the [analysis] settings (AnalysisConfig fields); --where takes run fields only. A value of
    the wrong type is a UserError ending with `hint(field)`.
    """
    fields = RUN_FIELDS + ANALYSIS_FIELDS if flag == "--set" else RUN_FIELDS
    found: dict[str, list[object]] = {}
    for text in texts:
        name = None
        for term in text.split(","):
            key, eq, value = (part.strip() for part in term.partition("="))
            if eq and key:
                name = key
                if name not in fields:
                    raise UserError(f"unknown field {name!r} in {flag} {text}; accepted: {', '.join(fields)}")
            elif not eq and name is not None:
                value = key  # one more value of the field before it
            if (eq and not key) or name is None or not value:
                raise UserError(f"malformed {flag} {text!r}; expected {ASSIGN_SYNTAX[flag]}, "
                                f"e.g. {flag} {_EXAMPLE[flag]}")
            typed = _typed(name, value, flag, hint)
            if typed not in found.setdefault(name, []):
                found[name].append(typed)
    return {name: tuple(values) for name, values in found.items()}


def format_assignments(assignments: dict[str, tuple[object, ...]]) -> str:
    """The canonical `FIELD=VALUE[,VALUE...]` text of parsed assignments, for messages and --dry-run."""
    return ",".join(f"{name}={','.join(_show(v) for v in values)}" for name, values in assignments.items())


def select_runs(grid: Grid, where: Sequence[str] = (), sets: Sequence[str] = ()) -> Grid:
    """The grid's runs that match every --where field (any of its values), each with the --set fields replaced.

    `where` and `sets` are the flags' texts (ASSIGN_SYNTAX), as typed. --where chooses among the runs as the grid
    writes them. --set then replaces fields of the chosen runs; a run field given several values expands as a
    product, Hydra multirun's rule (`--set seed=0,1,2 noise=0.05,0.2`: every chosen run six times); `seed` also
    sets `noise_seed`, as in a grid, unless `noise_seed` is set too. Every changed run is validated; runs that
    become equal are kept once. --set also replaces [analysis] settings (one value each; a list setting such as
    rewind_epochs or localizers takes its values as the list), signed into the done-records as any grid's are, so
    a changed setting on a folder made with another is refused as when the grid file says it. Bad input is one
    UserError naming what is accepted: the fields, or the values of the grid for --where.
    """
    def present(name: str) -> list[object]:
        return list(dict.fromkeys(getattr(cfg, name) for cfg in grid.runs))

    def values_hint(name: str) -> str:
        return f"; its values in grid {grid.name!r}: {', '.join(_show(v) for v in present(name))}"

    chosen = grid.runs
    conditions = parse_assignments(where, "--where", values_hint)
    for name, values in conditions.items():
        missing = [v for v in values if v not in present(name)]
        if missing:
            raise UserError(f"--where {name}={','.join(_show(v) for v in missing)} matches no run"
                            f"{values_hint(name)}")
        chosen = tuple(cfg for cfg in chosen if getattr(cfg, name) in values)
    if not chosen:
        raise UserError(f"--where {format_assignments(conditions)} matches no run of grid {grid.name!r} "
                        "(each value is in it, but not together)")
    overrides = parse_assignments(sets, "--set")
    run_sets = {name: values for name, values in overrides.items() if name in RUN_FIELDS}
    analysis = _set_analysis(grid.analysis, {n: v for n, v in overrides.items() if n not in RUN_FIELDS}, overrides)
    names = list(run_sets)
    runs: dict[str, RunConfig] = {}
    for cfg in chosen:
        for values in itertools.product(*(run_sets[n] for n in names)):
            changes = dict(zip(names, values, strict=True))
            if "seed" in changes:
                changes.setdefault("noise_seed", changes["seed"])
            if changes:
                try:
                    cfg_new = dataclasses.replace(cfg, **changes).validate()
                except UserError as exc:
                    raise UserError(f"--set {format_assignments(overrides)}: {exc}") from None
            else:
                cfg_new = cfg
            runs.setdefault(cfg_new.run_id, cfg_new)
    return dataclasses.replace(grid, runs=tuple(runs.values()), analysis=analysis)


def _set_analysis(analysis: AnalysisConfig, sets: dict[str, tuple[object, ...]],
                  overrides: dict[str, tuple[object, ...]]) -> AnalysisConfig:
    """`analysis` with the --set analysis settings replaced and validated (one value each, a list for list
    settings)."""
    changes: dict[str, object] = {}
    for name, values in sets.items():
        if _ANALYSIS_TYPES[name] in _LIST_KINDS:
            changes[name] = tuple(values)
        elif len(values) > 1:
            raise UserError(f"--set gives {name} several values ({format_assignments(overrides)}); an [analysis] "
                            "setting applies to every run of a sweep: give one value")
        else:
            changes[name] = values[0]
    if not changes:
        return analysis
    try:
        return dataclasses.replace(analysis, **changes).validate()
    except UserError as exc:
        raise UserError(f"--set {format_assignments(overrides)}: {exc}") from None


def selection_lines(grid: Grid, selected: Grid, where: Sequence[str] = (), sets: Sequence[str] = ()) -> list[str]:
    """What --where and --set did, one line each (none when not given): `--where arch=mlp: 4 of 10 runs`."""
    lines = []
    chosen = len(select_runs(grid, where).runs)
    if where:
        lines.append(f"--where {format_assignments(parse_assignments(where, '--where'))}: "
                     f"{chosen} of {len(grid.runs)} runs")
    if sets:
        merged = ""
        if len(selected.runs) < chosen:
            merged = f" ({chosen} runs became {len(selected.runs)}: equal runs are kept once)"
        elif len(selected.runs) > chosen:
            merged = f" ({chosen} runs became {len(selected.runs)}: several values expand as a product)"
        lines.append(f"--set {format_assignments(parse_assignments(sets, '--set'))}{merged}")
    return lines
