"""The memorization probe: held-out memorization scores of an ordinary run, and flipping on three target sets.

It applies to a standard run whose grid also trains its subset models (`subsets = M`, sweep/packs.py); the
engine runs it once those packs are complete (`Probe.needs`). It reads the packs' `subset_predictions` files
(one per pack, named by the pack's run id) from the run's store and writes:

- `memorization`: per training example, Feldman and Zhang's mem score and its parts (sweep.memorization);
- `mem_influence`: the `mem_influence_top` training/test pairs of highest influence (none at 0);
- `mem_flips`: for three target sets of `mem_targets` examples each, all predicted as their training label by
  the final model - `noisy` (mislabeled, drawn by seed), `atypical` (clean, highest mem: memorized although
  correctly labelled), `typical` (clean, lowest mem) - the units each localizer must remove to flip the
  target. Greedy's count is the flip engine's own (`flip_batched`); every other localizer's is the smallest k
  whose top-k removal flips the target (`sweep.localizers.evaluate.units_to_flip`). Whether the paper's
  "few units" result holds for naturally memorized clean examples is the atypical row against the typical one.
"""

from __future__ import annotations

import importlib
import math
import pkgutil

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import torch

from sweep import schemas
from sweep.config import CONFIG_COLUMNS, AnalysisConfig, RunConfig
from sweep.errors import UserError
from sweep.memorization import influence, mem_scores
from sweep.probes import Probe, RunData, register_probe
from sweep.probes.flip import UnitSpace, _generator, flip_batched, population_ids, predict_plain
from sweep.store import Store

PREDICTIONS = "subset_predictions"
PACK_FIELDS = ("subsets", "subset_fraction", "pack", "pack_index")
SETS = ("noisy", "atypical", "typical")
SETTINGS = ("mem_targets", "mem_influence_top", "localizers", "localize_cap", "flip_population", "ig_steps",
            "slimming_steps", "slimming_lr", "slimming_l1", "hard_concrete_steps", "hard_concrete_lr",
            "hard_concrete_l0")


def _columns(table: str) -> list[str]:
    return [c.name for c in schemas.TABLES[table].columns]


# Reading the packs -------------------------------------------------------------------------------------------

def _prefix(cfg: RunConfig) -> str:
    """The start every pack run id of `cfg` shares (its run id up to the seed, then '-pack')."""
    return cfg.run_id.rsplit("-", 1)[0] + "-pack"


def pack_predictions(store: Store, cfg: RunConfig) -> pd.DataFrame:
    """The subset predictions of the ordinary run `cfg`'s subset models: the files of one complete set of packs
    (every pack index of one (subsets, subset_fraction, pack)); where a results folder holds several complete
    sets (two grids with other M), the one of most models. No complete set is an error naming what was found."""
    names = [n for n in store.list(PREDICTIONS) if n.startswith(_prefix(cfg)) and n.endswith(".parquet")]
    own = {k: v for k, v in cfg.columns().items() if k in CONFIG_COLUMNS and k not in PACK_FIELDS}
    sets: dict[tuple, dict[int, pd.DataFrame]] = {}
    for name in names:
        frame = pq.read_table(store.path(f"{PREDICTIONS}/{name}"), filesystem=store.fs).to_pandas()
        if frame.empty or any(frame[k].iloc[0] != v for k, v in own.items()):
            continue
        first = frame.iloc[0]
        key = (int(first["subsets"]), float(first["subset_fraction"]), int(first["pack"]))
        sets.setdefault(key, {})[int(first["pack_index"])] = frame
    complete = {key: packs for key, packs in sets.items() if set(packs) == set(range(math.ceil(key[0] / key[2])))}
    if not complete:
        found = ", ".join(f"{len(p)} of {math.ceil(k[0] / k[2])} packs of M={k[0]}" for k, p in sets.items())
        raise UserError(f"run {cfg.run_id}: no complete set of subset-model packs in {store.uri}/{PREDICTIONS} "
                        f"({found or 'none found'}); train its packs first (grid field subsets)")
    key = max(complete, key=lambda k: (k[0], k[1], -k[2]))
    return pd.concat([complete[key][i] for i in sorted(complete[key])], ignore_index=True)


# Scores ------------------------------------------------------------------------------------------------------

def memorization_rows(pred: pd.DataFrame, is_noisy: np.ndarray) -> pd.DataFrame:
    """The `memorization` table's own columns from one run's subset predictions."""
    scores = mem_scores(pred)
    ids = scores["example_id"].to_numpy(np.int64)
    if len(ids) != len(is_noisy) or (ids != np.arange(len(is_noisy))).any():
        raise ValueError(f"subset predictions cover {len(ids)} training examples, the run has {len(is_noisy)}")
    models = pred["model"].nunique()
    fraction = float(pred["subset_fraction"].iloc[0]) if "subset_fraction" in pred.columns else math.nan
    out = scores.drop(columns="label").assign(is_noisy=np.asarray(is_noisy, dtype=bool), n_models=models,
                                              fraction=fraction)
    return out[_columns("memorization")].astype({"n_models": "int64"})


# Target sets and flipping ------------------------------------------------------------------------------------

def target_sets(mem: pd.DataFrame, eligible: np.ndarray, n: int, seed: int) -> dict[str, np.ndarray]:
    """Example ids per set (SETS), `n` each among the eligible: noisy ones drawn by seed, clean ones of highest
    (atypical) and lowest (typical) mem, ties by example id; examples without a score are never targets. The
    atypical set is chosen first, and a typical set never repeats one of its examples."""
    mem = mem.sort_values("example_id")
    ok = eligible[mem["example_id"].to_numpy()] & mem["mem"].notna().to_numpy()
    noisy = mem["is_noisy"].to_numpy(bool)
    pool = mem["example_id"].to_numpy(np.int64)[ok & noisy]
    order = torch.randperm(len(pool), generator=_generator(seed, "mem-noisy")).numpy()
    clean = mem[ok & ~noisy]
    atypical = clean.sort_values(["mem", "example_id"], ascending=[False, True])["example_id"].to_numpy()[:n]
    rest = clean[~clean["example_id"].isin(atypical)]
    typical = rest.sort_values(["mem", "example_id"])["example_id"].to_numpy()[:n]
    return {"noisy": np.sort(pool[order[:n]]), "atypical": atypical.astype(np.int64),
            "typical": typical.astype(np.int64)}


def _load_localizers() -> dict:
    """The localizer registry with every module of sweep.localizers imported (each registers on import)."""
    import sweep.localizers as package

    for info in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{info.name}")
    return package.LOCALIZERS


def flip_rows(run: RunData, mem: pd.DataFrame, analysis: AnalysisConfig) -> pd.DataFrame:
    """The `mem_flips` table's own columns: every set x localizer x target."""
    columns = _columns("mem_flips")
    if analysis.mem_targets == 0 or not analysis.localizers:
        return schemas.rows_frame("mem_flips", [])
    registry = _load_localizers()
    unknown = [n for n in analysis.localizers if n != "greedy" and n not in registry]
    if unknown:
        raise UserError(f"unknown localizer(s) {', '.join(unknown)}; accepted: "
                        f"{', '.join(sorted({'greedy', *registry}))}")
    from sweep.localizers import Problem, localize
    from sweep.localizers.evaluate import units_to_flip

    model = run.model_at(run.final_epoch)
    train, seed = run.data.train, run.cfg.seed
    eligible = (predict_plain(model, train.x) == run.labels).cpu().numpy()
    sets = target_sets(mem, eligible, analysis.mem_targets, seed)
    pop = population_ids(len(train), analysis.flip_population, seed).to(run.device)
    cap = min(analysis.localize_cap, UnitSpace.of(model).total)
    score = mem.set_index("example_id")["mem"]
    parts = []
    for name, ids in sets.items():
        if len(ids) == 0:
            continue
        idx = torch.as_tensor(ids, device=run.device)
        problem = Problem(model=model, x=train.x[idx], y=run.labels[idx], ids=idx, pop_x=train.x[pop],
                          pop_y=run.labels[pop], pop_ids=pop, k_max=cap, seed=seed)
        for localizer in analysis.localizers:
            if localizer == "greedy":
                outcomes = flip_batched(model, problem.x, problem.y, problem.pop_x, problem.pop_y, cap)
                k = np.array([len(o.units) if o.flipped else -1 for o in outcomes], dtype=np.int64)
            else:
                k = np.asarray(units_to_flip(problem, localize(localizer, problem, analysis), cap), dtype=np.int64)
            parts.append(pd.DataFrame({
                "set": name, "localizer": localizer, "example_id": ids,
                "is_noisy": run.is_noisy.cpu().numpy()[ids], "mem": score.loc[ids].to_numpy(float),
                "units_to_flip": pd.Series(np.where(k >= 0, k, np.nan)).astype("Int64"),
                "flipped": k >= 0, "cap": cap}))
    if not parts:
        return schemas.rows_frame("mem_flips", [])
    out = pd.concat(parts, ignore_index=True)[columns]
    return out.astype({"units_to_flip": "Int64", "cap": "int64", "flipped": bool, "is_noisy": bool})


# The probe ---------------------------------------------------------------------------------------------------

def memorization_tables(run: RunData, pred: pd.DataFrame, analysis: AnalysisConfig) -> dict[str, pd.DataFrame]:
    """All three tables of a run from its subset predictions `pred` (a frame held in memory or read from the
    store by `pack_predictions`)."""
    analysis.validate()
    mem = memorization_rows(pred, run.is_noisy.cpu().numpy())
    top = influence(pred, analysis.mem_influence_top)
    return {"memorization": mem, "mem_influence": top[_columns("mem_influence")],
            "mem_flips": flip_rows(run, mem, analysis)}


def run_memorization(run: RunData, shard: str, analysis: AnalysisConfig) -> dict[str, pd.DataFrame]:
    if run.store is None:
        raise ValueError("the memorization probe reads the run's subset predictions from its store; this run has "
                         "none (call memorization_tables with the predictions instead)")
    return memorization_tables(run, pack_predictions(run.store, run.cfg), analysis)


def _shards(cfg: RunConfig, analysis: AnalysisConfig) -> list[str]:
    return ["all"]


def _is_standard(cfg: RunConfig) -> bool:
    return cfg.variant == "standard" and not cfg.auxiliary


PROBE = register_probe(Probe(name="memorization", tables=("memorization", "mem_influence", "mem_flips"),
                             shards=_shards, run=run_memorization, applies=_is_standard, settings=SETTINGS,
                             needs=lambda aux: aux.subsets > 0))
