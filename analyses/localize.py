"""Do localizers localize? Summaries of the localization benchmark (tables `localize`, `localize_ladder`).

- Precision at k (k = 1, 5, 10, 20) of each localizer's ranked units against a planted truth (example-tied runs:
  the target's own memorization channels; injected runs: the fine-tuned units), beside the chance level (the
  precision of a random ranking of the candidate units), per configuration x truth x mode x localizer.
- Forget/keep (the deletion view, every run): with each localizer's top-k units removed, the share of targets
  that flip against the accuracy the edited model keeps, per k of the ladder.
- Units to flip (k_flip) per localizer, clean vs noisy targets: a censored median per run (a target that never
  flipped within the cap counts as more than any count, as in Figure 5) and the share that flipped.
- One sentence per configuration x truth x mode naming the best localizer by precision@5 and whether its lead
  over the second is beyond seed-to-seed variation: the two localizers' per-seed ranges (min-max) must not
  overlap; one seed has no variation to compare with and says so.

Injected targets whose injection did not take (`fitted` false) are left out of every summary: they are
reported in `injections`, never scored.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from analyses.flips import censored_median
from analyses.panels import share_axes
from analyses.plotting import (
    PERCENT,
    Output,
    config_label,
    config_title,
    configs,
    integer_ticks,
    legend_below,
    styled,
    wrap_grid,
)
from analyses.stats import across_seeds, declare, group_columns
from sweep.schemas import ACC

KS = (1, 5, 10, 20)
PANEL = ("truth", "mode")  # within a configuration, what a panel of every figure is
KINDS = ("clean", "noisy")
declare({"precision": ACC, "chance": ACC, "forgotten": ACC, "flipped_share": ACC, "k_flip_median": "units",
         "n_targets": "examples"})


def _scored(localize: pd.DataFrame) -> pd.DataFrame:
    """Rows with a truth and a fitted target: those precision is defined for."""
    keep = (localize["truth"] != "none") & localize["fitted"].astype(bool)
    return localize[keep]


def _fitted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["fitted"].astype(bool)] if "fitted" in frame.columns else frame


def precision_long(localize: pd.DataFrame) -> pd.DataFrame:
    """One row per scored target and k: its precision at k and the chance level of its row."""
    scored = _scored(localize)
    base = [c for c in scored.columns if not c.startswith(("precision_at_", "recall_at_"))]
    parts = [scored[base].assign(k=k, precision=scored[f"precision_at_{k}"].astype(float)) for k in KS]
    return pd.concat(parts, ignore_index=True) if parts else scored.assign(k=[], precision=[])


def precision_at_k(localize: pd.DataFrame) -> pd.DataFrame:
    """Per configuration x truth x mode x localizer x k: precision and chance across seeds (each run's mean
    over its targets is one sample)."""
    return across_seeds(precision_long(localize), ["precision", "chance"], keys=[*PANEL, "localizer", "k"])


def forget_keep(ladder: pd.DataFrame) -> pd.DataFrame:
    """Per configuration x truth x mode x localizer x k on the ladder: the share of targets forgotten (flipped)
    and the edited model's clean / test accuracy, with the unedited model's test accuracy beside them."""
    rows = _fitted(ladder).assign(forgotten=lambda d: d["flipped"].astype(float))
    return across_seeds(rows, ["forgotten", "test_acc", "clean_acc", "test_acc_base"],
                        keys=[*PANEL, "localizer", "k"])


def units_to_flip(localize: pd.DataFrame) -> pd.DataFrame:
    """Per configuration x truth x mode x localizer x target kind (clean/noisy): the censored median of
    k_flip (a run's value; infinite when half its targets never flipped), the share flipped, across seeds."""
    rows = _fitted(localize).assign(kind=lambda d: np.where(d["is_noisy"].astype(bool), "noisy", "clean"))
    cols = group_columns(rows)
    keys = [*PANEL, "localizer", "kind"]
    per_run = []
    for key, part in rows.groupby(cols + keys + ["run_id"], dropna=False, sort=True):
        k = part["k_flip"]
        per_run.append({**dict(zip(cols + keys + ["run_id"], key, strict=True)),
                        "k_flip_median": censored_median(k.fillna(0), k.notna()),
                        "flipped_share": float(k.notna().mean()), "n_targets": len(part)})
    frame = pd.DataFrame(per_run, columns=cols + keys + ["run_id", "k_flip_median", "flipped_share", "n_targets"])
    return across_seeds(frame, ["k_flip_median", "flipped_share", "n_targets"], keys=keys, group=cols)


def _range(row: pd.Series) -> tuple[float, float]:
    return float(row["precision_min"]), float(row["precision_max"])


def verdicts(precision: pd.DataFrame, k: int = 5) -> list[str]:
    """One sentence per configuration x truth x mode: the best localizer by mean precision@k, its lead over the
    second, and whether that lead is beyond seed-to-seed variation (per-seed ranges not overlapping)."""
    at = precision[precision["k"] == k]
    cols = group_columns(at)
    said = []
    for config, part in configs(at, cols + list(PANEL)):
        ranked = part.dropna(subset=["precision_mean"]).sort_values(
            ["precision_mean", "localizer"], ascending=[False, True])
        if ranked.empty:
            continue
        best = ranked.iloc[0]
        chance = float(best["chance_mean"])
        where = f"{config_label(config)}, truth {config['truth']}, mode {config['mode']}"
        text = (f"{where}: best by precision@{k} is {best['localizer']} ({best['precision_mean']:.2f}; chance "
                f"{chance:.2f})")
        if len(ranked) < 2:
            said.append(text + "; it is the only localizer scored.")
            continue
        second = ranked.iloc[1]
        text += f", ahead of {second['localizer']} ({second['precision_mean']:.2f})"
        n = int(min(best["n_seeds"], second["n_seeds"]))
        if n < 2:
            said.append(text + "; one seed: no seed-to-seed variation to judge the lead against.")
            continue
        (b_lo, b_hi), (s_lo, s_hi) = _range(best), _range(second)
        beyond = b_lo > s_hi
        said.append(text + (f"; the lead is {'beyond' if beyond else 'within'} seed-to-seed variation "
                            f"(seed ranges {b_lo:.2f}-{b_hi:.2f} and {s_lo:.2f}-{s_hi:.2f} "
                            f"{'do not overlap' if beyond else 'overlap'}, n={n} seeds)."))
    return said


def best_localizers(precision: pd.DataFrame, k: int = 5) -> pd.DataFrame:
    """The verdicts as a table: per configuration x truth x mode the best and second localizer at k and whether
    the lead is beyond the seeds' ranges (None with fewer than two seeds)."""
    at = precision[precision["k"] == k]
    cols = group_columns(at) + list(PANEL)
    rows = []
    for config, part in configs(at, cols):
        ranked = part.dropna(subset=["precision_mean"]).sort_values(
            ["precision_mean", "localizer"], ascending=[False, True])
        if ranked.empty:
            continue
        best = ranked.iloc[0]
        second = ranked.iloc[1] if len(ranked) > 1 else None
        seeds = int(best["n_seeds"] if second is None else min(best["n_seeds"], second["n_seeds"]))
        beyond = None if second is None or seeds < 2 else bool(_range(best)[0] > _range(second)[1])
        rows.append({**config, "best": best["localizer"], "best_precision": float(best["precision_mean"]),
                     "second": None if second is None else second["localizer"],
                     "second_precision": math.nan if second is None else float(second["precision_mean"]),
                     "chance": float(best["chance_mean"]), "beyond_seeds": beyond, "n_seeds": seeds})
    return pd.DataFrame(rows)


def _panels(table: pd.DataFrame) -> list[tuple[dict, pd.DataFrame]]:
    return list(configs(table, group_columns(table) + list(PANEL)))


def _title(config: dict, rows: pd.DataFrame) -> str:
    n = int(rows["n_seeds"].max()) if len(rows) else 0
    return config_title(config, n) + f"\ntruth {config['truth']}, mode {config['mode']}"


@styled
def precision_figure(precision: pd.DataFrame) -> Output:
    """Precision at k per localizer (a line each, across-seed band or seed points) and chance (dashed)."""
    panels = _panels(precision)
    if not panels:
        return Output(precision, None)
    fig, axes = wrap_grid(len(panels))
    for ax, (config, rows) in zip(axes, panels, strict=True):
        for localizer, line in rows.groupby("localizer", sort=True):
            line = line.sort_values("k")
            ax.plot(line["k"], line["precision_mean"] * PERCENT, marker="o", label=str(localizer))
        chance = rows.groupby("k")["chance_mean"].mean().sort_index()
        ax.plot(chance.index, chance.to_numpy() * PERCENT, color="black", linestyle="--", label="chance",
                gid="chance")
        ax.set_xscale("log")
        ax.set_xticks(list(KS), [str(k) for k in KS])
        ax.set_xlabel("k (top-k ranked units)")
        ax.set_ylabel("precision at k (%)")
        ax.set_ylim(0, 100)
        ax.set_title(_title(config, rows))
    share_axes(axes, x=True)
    legend_below(fig, axes)
    return Output(precision, fig)


@styled
def forget_keep_figure(ladder: pd.DataFrame) -> Output:
    """Share of targets forgotten against test accuracy kept, one line per localizer through k = 1, 2, 3, 5, ...;
    the unedited model's test accuracy as a dotted vertical line."""
    panels = _panels(ladder)
    if not panels:
        return Output(ladder, None)
    fig, axes = wrap_grid(len(panels))
    for ax, (config, rows) in zip(axes, panels, strict=True):
        for localizer, line in rows.groupby("localizer", sort=True):
            line = line.sort_values("k")
            ax.plot(line["test_acc_mean"] * PERCENT, line["forgotten_mean"] * PERCENT, marker="o",
                    label=str(localizer))
        base = float(rows["test_acc_base_mean"].mean())
        if math.isfinite(base):
            ax.axvline(base * PERCENT, color="black", linestyle=":", label="test accuracy before removal",
                       gid="base")
        ax.set_xlabel("test accuracy kept (%)")
        ax.set_ylabel("targets forgotten (%)")
        ax.set_ylim(0, 100)
        ax.set_title(_title(config, rows))
    share_axes(axes, x=True)
    legend_below(fig, axes)
    return Output(ladder, fig)


@styled
def units_figure(units: pd.DataFrame, localizers: Sequence[str] | None = None) -> Output:
    """Median units to flip per localizer, clean and noisy targets side by side (a bar each; a bar of a
    censored median, more than the cap, is drawn at the panel's largest finite value and marked "cap")."""
    panels = _panels(units)
    if not panels:
        return Output(units, None)
    fig, axes = wrap_grid(len(panels))
    finite = units["k_flip_median_mean"].replace(np.inf, np.nan)  # one height for "cap" bars in every panel
    top = float(finite.max()) if finite.notna().any() else 1.0
    for ax, (config, rows) in zip(axes, panels, strict=True):
        names = list(localizers) if localizers is not None else sorted(rows["localizer"].unique())
        x = np.arange(len(names))
        for i, kind in enumerate(KINDS):
            values = rows[rows["kind"] == kind].set_index("localizer")["k_flip_median_mean"].reindex(names)
            heights = values.to_numpy(float)
            censored = np.isinf(heights)
            ax.bar(x + (i - 0.5) * 0.4, np.where(censored, top, np.nan_to_num(heights)), 0.4, label=kind,
                   color=("tab:blue", "tab:red")[i])
            for j in np.nonzero(censored)[0]:
                ax.text(x[j] + (i - 0.5) * 0.4, top, "cap", ha="center", va="bottom")
        ax.set_xticks(x, names, rotation=45, ha="right")
        ax.set_xlabel("localizer")
        ax.set_ylabel("median units to flip")
        integer_ticks(ax, "y")
        ax.set_ylim(0, top * 1.12)  # the same room in every panel for the "cap" above a censored bar
        ax.set_title(_title(config, rows))
    share_axes(axes)
    legend_below(fig, axes)
    return Output(units, fig)
