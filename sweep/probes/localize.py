"""The localization probe (issue 23): do localizers find where a training example's label was memorized?

Targets: `localize_clean` clean and `localize_noisy` mislabeled training examples the final model predicts as
their training label (the flip probe's seeded draw, `select_targets`; an example-tied run's targets must be
predicted right in both modes), label-sorted and cut into chunks of `localize_chunk` (the shards). For every
target and every localizer of `localizers` (sweep/localizers), the ranking is scored three ways:

- Tied truth (example-tied runs, sweep/localizers/truth.py): the target's own memorization channels. Mode
  `tied` forwards the target with its own mask (the other examples' memorization channels are dead for it, so
  the candidates are its live units); mode `all` forwards it plainly, every unit a candidate.
- Injected truth (standard runs, sweep/localizers/inject.py): a copy of the run fine-tuned so that
  `inject_targets` clean examples take a new wrong label through `inject_units` random units only; those units
  are the truth, every unit a candidate (mode `all`), the label localized is the new one. The injection is made
  once per run, in shard 0 only (deterministic from the run's seed, so it is one fixed model however the
  shards are scheduled); an injected target that did not fit is reported (fitted = false) and not scored.
- No truth (standard runs' own targets, truth `none`): the deletion view only.

Every scored ranking also gets its units to flip (`sweep.localizers.evaluate.units_to_flip`) and the deletion
ladder (`ladder_rows`): top-k removed for k = 1, 2, 3, 5, 8, ... up to `localize_cap`, with the edited model's
accuracy on the flip probe's fixed evaluation sample (flip_eval_size).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
import time
from collections.abc import Iterable

import numpy as np
import pandas as pd
import torch

from sweep import schemas
from sweep.config import AnalysisConfig, RunConfig
from sweep.errors import UserError
from sweep.localizers import LOCALIZERS, Problem, check_localizers, localize
from sweep.localizers.evaluate import EvalPart, edited_part_accuracies, ladder_rows, precision_recall, units_to_flip
from sweep.localizers.truth import TiedTruth
from sweep.probes import Probe, RunData, register_probe
from sweep.probes.flip import (
    PARTS,
    Selection,
    UnitSpace,
    _generator,
    chunk_order,
    eval_picks,
    population_ids,
    predict_plain,
    select_targets,
)

TABLES = ("localize", "localize_units", "localize_ladder", "injections")
PRECISION_KS = (1, 5, 10, 20)
VARIANTS = ("standard", "tied")
OWN_SETTINGS = ("localizers", "localize_clean", "localize_noisy", "localize_cap", "localize_chunk",
                "flip_population", "flip_eval_size", "inject_targets", "inject_units", "inject_steps", "inject_lr",
                "inject_population")


# The built-in localizers' settings, listed here rather than read from the registry alone: the probe registers
# while sweep.localizers may still be importing its modules (either package can be imported first).
BUILTIN_LOCALIZER_SETTINGS = tuple(f.name for f in dataclasses.fields(AnalysisConfig)
                                   if f.name.startswith(("ig_", "slimming_", "hard_concrete_")))


def localize_settings() -> tuple[str, ...]:
    """The AnalysisConfig fields the probe's rows depend on: its own, the built-in localizers', and those of
    every localizer registered so far (a setting of a localizer that is not run still signs the shard: simpler
    than a per-grid list, and harmless)."""
    registered = {s for loc in LOCALIZERS.values() for s in loc.settings}
    extra = sorted((set(BUILTIN_LOCALIZER_SETTINGS) | registered) - set(OWN_SETTINGS))
    return (*OWN_SETTINGS, *extra)


_last_signature: tuple[AnalysisConfig, tuple, str] | None = None  # (settings, registry, signature) asked last


def localize_signature(analysis: AnalysisConfig) -> str:
    # Planning asks once per run: cached by the settings and the registry's localizers (what localize_settings reads).
    # The last answer is kept by the settings' identity (one grid's planning asks with one AnalysisConfig; hashing
    # its 35 fields per run was a good part of planning a 100,000-run grid).
    global _last_signature
    registry = tuple(LOCALIZERS.items())
    last = _last_signature
    if last is not None and last[0] is analysis and last[1] == registry:
        return last[2]
    signature = _signature(analysis, tuple((name, tuple(loc.settings)) for name, loc in LOCALIZERS.items()))
    _last_signature = (analysis, registry, signature)
    return signature


@functools.lru_cache(maxsize=16)
def _signature(analysis: AnalysisConfig, registry: tuple[tuple[str, tuple[str, ...]], ...]) -> str:
    settings = sorted((name, getattr(analysis, name)) for name in localize_settings())
    return hashlib.sha256(f"localize:{settings!r}".encode()).hexdigest()[:8]


def localize_shards(cfg: RunConfig, analysis: AnalysisConfig) -> list[str]:
    """Chunks "0-<sig>".."K-1-<sig>", K = ceil((localize_clean + localize_noisy) / localize_chunk), at least
    one (shard 0 also makes the injection)."""
    n = max(1, math.ceil((analysis.localize_clean + analysis.localize_noisy) / analysis.localize_chunk))
    signature = localize_signature(analysis)
    return [f"{i}-{signature}" for i in range(n)]


# Checks before anything runs -----------------------------------------------------------------------------------

_UNITS: dict[tuple[str, str, float, str], int] = {}


def model_units(cfg: RunConfig) -> int:
    """Units (rule "outputs") of a run's model, built once on the CPU per (arch, dataset, width, variant)."""
    from sweep.models.for_run import build_model_for

    key = (cfg.arch, cfg.dataset, cfg.width, cfg.variant)
    if key not in _UNITS:
        _UNITS[key] = UnitSpace.of(build_model_for(RunConfig(dataset=cfg.dataset, arch=cfg.arch, width=cfg.width,
                                                             variant=cfg.variant))).total
    return _UNITS[key]


def check_localize_grid(runs: Iterable[RunConfig], analysis: AnalysisConfig,
                        n_train: dict[str, int] | None = None) -> None:
    """Refuse, in one line, settings the localization probe cannot honour on these runs: an unknown localizer,
    localize_cap above a model's unit count, and (when the training-set sizes are known) inject_targets above
    a dataset's clean examples."""
    runs = [cfg for cfg in runs if cfg.variant in VARIANTS and not cfg.auxiliary]
    if not runs:
        return
    check_localizers(analysis.localizers)
    for cfg in runs:
        units = model_units(cfg)
        if analysis.localize_cap > units:
            raise UserError(f"localize_cap={analysis.localize_cap} but the {cfg.arch} (width {cfg.width}) of run "
                            f"{cfg.run_id} has {units} units; accepted: 1 to {units}")
        if n_train is not None and cfg.variant == "standard" and cfg.dataset in n_train:
            clean = n_train[cfg.dataset] - round(cfg.noise * n_train[cfg.dataset])
            if analysis.inject_targets > clean:
                raise UserError(f"inject_targets={analysis.inject_targets} but {cfg.dataset} at noise {cfg.noise} "
                                f"has {clean} clean training examples; accepted: 0 to {clean}")


# Targets and samples -------------------------------------------------------------------------------------------

def _predict_tied(model: torch.nn.Module, x: torch.Tensor, rows: int = 4096) -> torch.Tensor:
    """argmax in eval mode with each training example's own mask (ids = row indices of the training set)."""
    out = []
    with torch.no_grad():
        for s in range(0, len(x), rows):
            ids = torch.arange(s, min(s + rows, len(x)), device=x.device)
            out.append(model(x[s:s + rows], ids=ids).argmax(1))
    return torch.cat(out)


def select_localize_targets(model: torch.nn.Module, run: RunData, n_clean: int, n_noisy: int,
                            seed: int) -> Selection:
    """The flip probe's draw (`select_targets`: the same seeded streams); an example-tied run's eligible
    examples are those predicted as labelled in both modes (tied and all), since both are scored."""
    if run.cfg.variant != "tied":
        return select_targets(model, run, n_clean, n_noisy, seed)
    x = run.data.train.x
    eligible = ((predict_plain(model, x) == run.labels) & (_predict_tied(model, x) == run.labels)).cpu()
    noisy = run.is_noisy.cpu()
    chosen, counts = [], []
    for part, wanted, flag in (("clean", n_clean, ~noisy), ("noisy", n_noisy, noisy)):
        pool = torch.nonzero(eligible & flag).flatten()
        counts.append(len(pool))
        chosen.append(pool[torch.randperm(len(pool), generator=_generator(seed, f"flip-select-{part}"))[:wanted]])
    ids = torch.cat(chosen)
    return Selection(ids, noisy[ids], counts[0], counts[1])


def eval_sample(run: RunData, size: int | None, seed: int) -> list[EvalPart]:
    """The flip probe's fixed evaluation sample (`sweep.probes.flip.eval_parts`: the same draws), with the
    training parts' example ids, which mode `tied` forwards them with."""
    train, test = run.data.train, run.data.test
    return [EvalPart(part, test.x[pick], test.y[pick], None) if part == "test"
            else EvalPart(part, train.x[pick], run.labels[pick], pick) for part, pick in eval_picks(run, size, seed)]


# Scoring ---------------------------------------------------------------------------------------------------------

def _score(problem: Problem, analysis: AnalysisConfig, parts: list[EvalPart], space: UnitSpace,
           meta: dict[str, object], is_noisy: np.ndarray, truth: torch.Tensor | None,
           candidates: torch.Tensor, outside: torch.Tensor) -> dict[str, list[dict[str, object]]]:
    """Rows of the three localize tables for every localizer on one problem. `truth`, `candidates`: (targets,
    units) bool (truth None: no truth); `outside`: (units,) bool, units in layers without a dropout mask."""
    cap = analysis.localize_cap
    out: dict[str, list[dict[str, object]]] = {"localize": [], "localize_units": [], "localize_ladder": []}
    ids = problem.ids.cpu().numpy()
    labels = problem.y.cpu().numpy()
    cand = candidates.numpy()
    within = None if truth is None else (truth & candidates).numpy()
    outside_np = outside.numpy()
    for name in analysis.localizers:
        start = time.perf_counter()
        rankings = localize(name, problem, analysis)
        seconds = (time.perf_counter() - start) / max(1, len(rankings))
        k_flip = units_to_flip(problem, rankings, cap)
        ladder = ladder_rows(problem, rankings, cap, parts, within)
        for t, ranking in enumerate(rankings):
            key = {**meta, "localizer": name, "example_id": int(ids[t]), "is_noisy": bool(is_noisy[t])}
            tw = None if within is None else within[t]
            row: dict[str, object] = {
                **key, "label": int(labels[t]), "n_units": space.total, "n_candidates": int(cand[t].sum()),
                "n_truth": 0 if tw is None else int(tw.sum()),
                "chance": float("nan") if tw is None else float(tw.sum() / cand[t].sum()),
                "k_flip": int(k_flip[t]) if k_flip[t] > 0 else pd.NA,
                "outside_at_5": int(outside_np[np.asarray(ranking.units[:5], dtype=np.int64)].sum()),
                "seconds": seconds, "fitted": True}
            for k in PRECISION_KS:
                row[f"precision_at_{k}"], row[f"recall_at_{k}"] = precision_recall(ranking.units[:k], tw)
            flip_pr = precision_recall(ranking.units[:k_flip[t]], tw) if k_flip[t] > 0 else (math.nan, math.nan)
            row["precision_at_flip"], row["recall_at_flip"] = flip_pr
            out["localize"].append(row)
            for rank, (unit, score) in enumerate(zip(ranking.units, ranking.scores, strict=True)):
                out["localize_units"].append({
                    **key, "rank": rank, **space.describe(int(unit)), "global_unit": int(unit),
                    "score": float(score), "in_truth": pd.NA if tw is None else int(tw[int(unit)]),
                    "outside": bool(outside_np[int(unit)])})
        for lrow in ladder:
            t = lrow.pop("target")
            out["localize_ladder"].append({**meta, "localizer": name, "example_id": int(ids[t]),
                                           "is_noisy": bool(is_noisy[t]), **lrow})
    return out


def _unfitted_rows(meta: dict[str, object], analysis: AnalysisConfig, ids: np.ndarray, labels: np.ndarray,
                   n_units: int, n_truth: int) -> list[dict[str, object]]:
    """One unscored row per localizer and injected target that did not fit."""
    nan = float("nan")
    return [{**meta, "localizer": name, "example_id": int(i), "is_noisy": False, "label": int(y),
             "n_units": n_units, "n_candidates": n_units, "n_truth": n_truth, "chance": n_truth / n_units,
             **{f"{w}_at_{k}": nan for k in PRECISION_KS for w in ("precision", "recall")},
             "k_flip": pd.NA, "precision_at_flip": nan, "recall_at_flip": nan, "outside_at_5": 0, "seconds": nan,
             "fitted": False}
            for name in analysis.localizers for i, y in zip(ids, labels, strict=True)]


def _injected(run: RunData, model: torch.nn.Module, analysis: AnalysisConfig, parts: list[EvalPart],
              pop: torch.Tensor, space: UnitSpace) -> dict[str, list[dict[str, object]]]:
    """Shard 0 of a standard run: make the injection, report it, and score the fitted injected targets."""
    from sweep.localizers.inject import inject

    seed = run.cfg.seed
    train = run.data.train
    injection = inject(model, train.x, run.labels, run.is_noisy, seed, analysis)
    tuned = run.build_model()
    tuned.load_state_dict(injection.state)
    tuned.eval()
    ids = injection.target_ids.to(run.device)
    new = injection.new_labels.to(run.device)
    fitted = np.asarray(injection.fitted, dtype=bool)
    truth_units = torch.from_numpy(np.asarray(injection.units, dtype=np.int64))
    out: dict[str, list[dict[str, object]]] = {"localize": [], "localize_units": [], "localize_ladder": [],
                                               "injections": []}
    base, acc = (_part_acc(m, parts, run.device) for m in (model, tuned))
    described = [space.describe(int(u)) for u in truth_units]
    for i in range(len(ids)):
        out["injections"].append({
            "example_id": int(ids[i]), "original_label": int(run.labels[ids[i]]), "new_label": int(new[i]),
            "fitted": bool(fitted[i]), "steps": int(injection.steps), "n_units_injected": len(truth_units),
            "injected_units": described,
            **{f"{p}_acc": acc[j] for j, p in enumerate(PARTS)},
            **{f"{p}_acc_base": base[j] for j, p in enumerate(PARTS)}})
    meta = {"truth": "injected", "mode": "all"}
    out["localize"] += _unfitted_rows(meta, analysis, ids[~torch.from_numpy(fitted).to(run.device)].cpu().numpy(),
                                      new[~torch.from_numpy(fitted).to(run.device)].cpu().numpy(), space.total,
                                      len(truth_units))
    keep = torch.from_numpy(fitted).to(run.device)
    if keep.any():
        labels = run.labels.clone()
        labels[ids] = new
        pop_dev = pop.to(run.device)
        problem = Problem(tuned, train.x[ids[keep]], new[keep], ids[keep], train.x[pop_dev], labels[pop_dev],
                          pop_dev, analysis.localize_cap, tied=False, live=None, seed=seed)
        n = int(keep.sum())
        truth = torch.zeros(n, space.total, dtype=torch.bool)
        truth[:, truth_units] = True
        scored = _score(problem, analysis, parts, space, meta, np.zeros(n, dtype=bool), truth,
                        torch.ones(n, space.total, dtype=torch.bool), torch.zeros(space.total, dtype=torch.bool))
        for table, rows in scored.items():
            out[table] += rows
    return out


def _part_acc(model: torch.nn.Module, parts: list[EvalPart], device: torch.device) -> list[float]:
    """Unedited accuracy of a model on each evaluation part (plain forward)."""
    empty = torch.zeros(0, dtype=torch.long, device=device)
    problem = Problem(model, parts[0].x[:0], empty, empty, parts[0].x[:0], empty, empty, 1)
    return [float(a) for a in edited_part_accuracies(problem, [frozenset()], parts)[0]]


def run_localize(run: RunData, shard: str, analysis: AnalysisConfig) -> dict[str, pd.DataFrame]:
    """One chunk of a run's localization benchmark (module docstring)."""
    analysis.validate()
    check_localizers(analysis.localizers)
    index, _, signature = shard.partition("-")
    if signature != localize_signature(analysis):
        raise ValueError(f"localize shard {shard!r} was made for other localize settings than these")
    chunk, seed = int(index), run.cfg.seed
    model = run.model_at(run.final_epoch)
    space = UnitSpace.of(model, "outputs")
    if analysis.localize_cap > space.total:
        raise UserError(f"localize_cap={analysis.localize_cap} but the model has {space.total} units")
    selection = chunk_order(select_localize_targets(model, run, analysis.localize_clean, analysis.localize_noisy,
                                                    seed), run.labels)
    lo = chunk * analysis.localize_chunk
    ids = selection.ids[lo:lo + analysis.localize_chunk]
    is_noisy = selection.is_noisy[lo:lo + len(ids)].numpy().astype(bool)
    train = run.data.train
    pop = population_ids(len(train), analysis.flip_population, seed).to(run.device)
    parts = eval_sample(run, analysis.flip_eval_size, seed)
    rows: dict[str, list[dict[str, object]]] = {t: [] for t in TABLES}
    if len(ids):
        ids_dev = ids.to(run.device)
        x, y = train.x[ids_dev], run.labels[ids_dev]
        args = (x, y, ids_dev, train.x[pop], run.labels[pop], pop, analysis.localize_cap)
        if run.cfg.variant == "tied":
            tied = TiedTruth.of(model)
            truth, live = tied.truth(ids), tied.live(ids)
            everyone = torch.ones_like(live)
            for mode, candidates in (("tied", live), ("all", everyone)):
                problem = Problem(model, *args, tied=mode == "tied",
                                  live=live.to(run.device) if mode == "tied" else None, seed=seed)
                scored = _score(problem, analysis, parts, space, {"truth": "tied", "mode": mode}, is_noisy, truth,
                                candidates, tied.outside)
                for table, new_rows in scored.items():
                    rows[table] += new_rows
        else:
            problem = Problem(model, *args, tied=False, live=None, seed=seed)
            n = len(ids)
            scored = _score(problem, analysis, parts, space, {"truth": "none", "mode": "all"}, is_noisy, None,
                            torch.ones(n, space.total, dtype=torch.bool), torch.zeros(space.total, dtype=torch.bool))
            for table, new_rows in scored.items():
                rows[table] += new_rows
    if chunk == 0 and run.cfg.variant == "standard" and analysis.inject_targets > 0:
        for table, new_rows in _injected(run, model, analysis, parts, pop, space).items():
            rows[table] += new_rows
    return {table: schemas.rows_frame(table, rows[table]) for table in TABLES}


def _applies(cfg: RunConfig) -> bool:
    return cfg.variant in VARIANTS


register_probe(Probe(name="localize", tables=TABLES, shards=localize_shards, run=run_localize, applies=_applies,
                     settings=localize_settings()))
