"""What each detection signal costs, per run, so that a reader sees the price of each AUROC.

Three parts, from each signal's registry entry (analyses.signals) and the runs' own measurements:
- `extra_trainings`: trainings beyond the run itself: cleanlab, the run's out-of-sample fold runs (cv_folds of
  them); SSFT, its two second-split runs; every other signal 0;
- `extra_passes`: what the signal adds to the training's own forward and backward passes, in words;
- `seconds`: measured wall time per run, where the results hold it: `runs.dynamics_seconds` for the
  training-pass signals (one figure for all of them together: they share the pass), `runs.curvature_seconds`
  for loss curvature, and the summed `seconds` of the auxiliary runs that belong to the run (fold runs for
  cleanlab, the two halves for SSFT; from `aux_runs`, or from `runs` in results written before the auxiliary
  tables). `seconds_source` says which figure it is, or why there is none (the eval-pass signals are part of the
  per-epoch evaluation every run does; flip and drop task times are not recorded).

An auxiliary run belongs to an ordinary run when its predictions or SSFT rows name it (`of_run_id`), else when
every run field but the auxiliary ones (cv_folds, cv_fold, ssft_half, curvature settings) matches.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analyses.signals import REGISTRY, Tables

# The run fields an auxiliary run shares with its ordinary run (the rest say which auxiliary run it is, and
# curvature is a signal of the ordinary run only).
SHARED_FIELDS = ("dataset", "arch", "variant", "noise", "seed", "noise_seed", "width", "epochs", "lr", "batch_size",
                 "p_gen", "p_mem", "dropout_places", "sparse_mask")
NOT_TIMED = "not timed apart: part of the training's per-epoch evaluation, which every run does"
SOURCES = {
    "dynamics_seconds": "runs.dynamics_seconds (every training-pass signal together: they share one pass)",
    "curvature_seconds": "runs.curvature_seconds",
    "folds": "aux_runs.seconds summed over the run's out-of-sample fold runs",
    "ssft": "aux_runs.seconds summed over the run's two SSFT runs",
    "packs": "aux_runs.seconds summed over the packs of the run's subset models",
    "flip": "not recorded: flip task times are not kept in the results",
    "dropout": "not recorded: the dropout probe's time is not kept in the results",
}


def _number(frame: pd.DataFrame | None, column: str) -> pd.Series:
    if frame is None or column not in frame.columns:
        return pd.Series(0.0, index=[] if frame is None else frame.index)
    return pd.to_numeric(frame[column], errors="coerce").fillna(0).astype(float)


def auxiliary_runs(tables: Tables) -> pd.DataFrame:
    """Every auxiliary run's row (fold or SSFT run): `aux_runs`, plus such rows still in `runs` (older layout)."""
    parts = []
    for frame in (tables.aux_runs, tables.runs):
        if frame is not None and len(frame):
            aux = (_number(frame, "cv_folds") > 0) | (_number(frame, "ssft_half") > 0) | (_number(frame, "subsets") > 0)
            parts.append(frame[aux])
    if not parts:
        return pd.DataFrame(columns=["run_id", "seconds", "cv_folds", "ssft_half"])
    return pd.concat(parts, ignore_index=True).drop_duplicates("run_id")


def _links(frame: pd.DataFrame | None) -> dict[str, set[str]]:
    """of_run_id -> the run ids of the auxiliary runs whose rows name it."""
    if frame is None or frame.empty or not {"of_run_id", "run_id"} <= set(frame.columns):
        return {}
    pairs = frame[["of_run_id", "run_id"]].drop_duplicates()
    pairs = pairs[pairs["of_run_id"] != pairs["run_id"]]
    return {str(k): set(v["run_id"].astype(str)) for k, v in pairs.groupby("of_run_id")}


def belonging(tables: Tables, kind: str) -> dict[str, pd.DataFrame]:
    """Ordinary run id -> its auxiliary runs' rows of `kind` ('folds', 'ssft' or 'packs')."""
    aux = auxiliary_runs(tables)
    column = {"folds": "cv_folds", "ssft": "ssft_half", "packs": "subsets"}[kind]
    aux = aux[_number(aux, column) > 0]
    ordinary = tables.runs
    if ordinary is not None and len(ordinary):
        ordinary = ordinary[(_number(ordinary, "cv_folds") == 0) & (_number(ordinary, "ssft_half") == 0)
                            & (_number(ordinary, "subsets") == 0)]
    out: dict[str, pd.DataFrame] = {}
    links = _links({"folds": tables.oos_predictions, "ssft": tables.ssft}.get(kind))
    for of_run, ids in links.items():
        out[of_run] = aux[aux["run_id"].astype(str).isin(ids)]
    if ordinary is not None and len(ordinary) and len(aux):
        shared = [c for c in SHARED_FIELDS if c in ordinary.columns and c in aux.columns]
        for _, row in ordinary.iterrows():
            if str(row["run_id"]) in out:
                continue
            match = np.ones(len(aux), dtype=bool)
            for c in shared:
                match &= (aux[c] == row[c]).to_numpy()
            if match.any():
                out[str(row["run_id"])] = aux[match]
    return out


def _one_pack_set(aux: pd.DataFrame) -> pd.DataFrame:
    """The pack runs of the largest M among a run's packs (one grid's set; another M is another set)."""
    m = _number(aux, "subsets")
    return aux[m == m.max()]


def run_costs(tables: Tables, run_ids: list[str]) -> pd.DataFrame:
    """Per (run, signal) of the registry: extra_trainings, extra_passes, seconds and seconds_source."""
    runs = tables.runs
    own = runs.drop_duplicates("run_id").set_index("run_id") if runs is not None and len(runs) else None
    folds, halves, packs = belonging(tables, "folds"), belonging(tables, "ssft"), belonging(tables, "packs")
    rows = []
    for run_id in run_ids:
        for signal in REGISTRY.values():
            trainings: float = float(signal.trainings) if isinstance(signal.trainings, int) else np.nan
            seconds, source = np.nan, SOURCES.get(signal.seconds or "", NOT_TIMED)
            if signal.seconds in ("dynamics_seconds", "curvature_seconds"):
                if own is not None and signal.seconds in own.columns and run_id in own.index:
                    seconds = float(pd.to_numeric(pd.Series([own.at[run_id, signal.seconds]]), errors="coerce")[0])
                else:
                    source = f"runs.{signal.seconds} is not in this results folder"
            elif signal.seconds in ("folds", "ssft", "packs"):
                aux = {"folds": folds, "ssft": halves, "packs": packs}[signal.seconds].get(run_id)
                expected = 2 if signal.seconds == "ssft" else None
                if aux is not None and len(aux):
                    if signal.trainings == "cv_folds":
                        trainings = float(len(aux))
                        expected = int(_number(aux, "cv_folds").max())
                    if signal.trainings == "subsets":  # M models, in packs of `pack`: one aux run per pack
                        aux = _one_pack_set(aux)
                        trainings = float(_number(aux, "subsets").max())
                        expected = -(-int(trainings) // int(_number(aux, "pack").max()))
                    if "seconds" in aux.columns and len(aux) == expected:
                        seconds = float(pd.to_numeric(aux["seconds"], errors="coerce").sum(min_count=len(aux)))
                    else:
                        source = f"{len(aux)} of its {expected} auxiliary runs found, so no total"
                else:
                    source = "its auxiliary runs are not in the runs or aux_runs table"
            rows.append({"run_id": run_id, "signal": signal.name, "extra_trainings": trainings,
                         "extra_passes": signal.passes, "seconds": seconds, "seconds_source": source})
    return pd.DataFrame(rows, columns=["run_id", "signal", "extra_trainings", "extra_passes", "seconds",
                                       "seconds_source"])


def with_costs(per_run: pd.DataFrame, tables: Tables) -> pd.DataFrame:
    """`per_run` (analyses.detection.evaluate) with each row's cost columns."""
    costs = run_costs(tables, sorted(per_run["run_id"].astype(str).unique()) if len(per_run) else [])
    return per_run.merge(costs, on=["run_id", "signal"], how="left")
