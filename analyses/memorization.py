"""Summaries of the held-out memorization scores (tables `memorization`, `mem_flips`; sweep/probes/memorization.py).

- `mem_detection`: per run, how well mem ranks the mislabeled examples (AUROC) and the median mem of clean and
  noisy examples, then across seeds;
- `mem_histograms`: mem distributions of clean vs noisy examples per configuration (every seed pooled);
- `top_clean`: the clean training examples of highest mem (mean over seeds), for the gallery;
- `flip_summary`: per target set (noisy / atypical / typical) and localizer, the median units to flip per run
  (a target not flipped within the cap counts as infinitely many: a censored median) and the share flipped;
- `forgotten_mem`: the paper's Figure 7 quantified: per example-tied run, the mean mem (from the same-seed
  standard run) of the clean examples forgotten under `drop` against those kept, and the AUROC of mem for them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from analyses.detection import auroc
from analyses.plotting import config_title, configs, legend_below, new_figure, styled
from analyses.stats import across_seeds, declare, group_columns
from sweep.schemas import ACC, DIFFERENCE

declare({"mem_clean": DIFFERENCE, "mem_noisy": DIFFERENCE, "median_units": "units", "flipped_share": ACC,
         "mem_forgotten": DIFFERENCE, "mem_kept": DIFFERENCE, "auroc_forgotten": ACC})
JOIN = ("dataset", "noise", "seed", "noise_seed", "example_id")


def mem_detection(memorization: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per run: auroc of mem for the noisy examples, median mem of clean and noisy; the same across seeds).
    Examples without a score (in every or no subset model) are left out here."""
    cols = group_columns(memorization)
    rows = []
    for key, part in memorization.dropna(subset=["mem"]).groupby(cols + ["run_id"], dropna=False, sort=True):
        noisy = part["is_noisy"].astype(bool).to_numpy()
        rows.append({**dict(zip(cols + ["run_id"], key, strict=True)), "n": len(part), "n_noisy": int(noisy.sum()),
                     "auroc": auroc(part["mem"].to_numpy(float), noisy) if 0 < noisy.sum() < len(part) else np.nan,
                     "mem_clean": float(np.median(part.loc[~noisy, "mem"])) if (~noisy).any() else np.nan,
                     "mem_noisy": float(np.median(part.loc[noisy, "mem"])) if noisy.any() else np.nan})
    per_run = pd.DataFrame(rows, columns=[*cols, "run_id", "n", "n_noisy", "auroc", "mem_clean", "mem_noisy"])
    return per_run, across_seeds(per_run, ["auroc", "mem_clean", "mem_noisy"], group=cols)


@styled
def mem_histograms(memorization: pd.DataFrame) -> Figure | None:
    """One panel per configuration: the share of clean and of noisy examples per mem bin (seeds pooled)."""
    shown = list(configs(memorization.dropna(subset=["mem"])))
    if not shown:
        return None
    fig = new_figure(4.2 * len(shown), 3.2)
    axes = fig.subplots(1, len(shown), squeeze=False)[0]
    bins = np.linspace(-1, 1, 41)
    for ax, (config, part) in zip(axes, shown, strict=True):
        noisy = part["is_noisy"].astype(bool)
        for flag, colour, label in ((False, "tab:blue", "clean"), (True, "tab:red", "mislabeled")):
            values = part.loc[noisy == flag, "mem"].to_numpy(float)
            if len(values):
                ax.hist(values, bins=bins, weights=np.full(len(values), 100.0 / len(values)), alpha=0.55,
                        color=colour, label=label)
        ax.set_xlabel("mem score: P(correct | in) - P(correct | out)")
        ax.set_ylabel("examples (%)")
        ax.set_title(config_title(config, part["run_id"].nunique()))
    legend_below(fig, axes)
    return fig


def top_clean(memorization: pd.DataFrame, per_config: int = 16) -> pd.DataFrame:
    """Per configuration the `per_config` clean training examples of highest mean mem over seeds."""
    cols = group_columns(memorization)
    clean = memorization[~memorization["is_noisy"].astype(bool)].dropna(subset=["mem"])
    mean = clean.groupby(cols + ["example_id"], dropna=False)["mem"].agg(["mean", "size"]).reset_index()
    mean = mean.rename(columns={"mean": "mem", "size": "runs"})
    mean = mean.sort_values([*cols, "mem", "example_id"], ascending=[True] * len(cols) + [False, True])
    return mean.groupby(cols, dropna=False).head(per_config).reset_index(drop=True)


def flip_summary(mem_flips: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per run, set and localizer: targets, median units to flip (inf when half or more never flipped), share
    flipped; the same across seeds)."""
    cols = group_columns(mem_flips)
    units = pd.to_numeric(mem_flips["units_to_flip"], errors="coerce").astype(float)
    frame = mem_flips.assign(units=units.where(mem_flips["flipped"].astype(bool), np.inf))
    per_run = (frame.groupby([*cols, "run_id", "set", "localizer"], dropna=False, sort=True)
               .agg(targets=("example_id", "size"), median_units=("units", "median"),
                    flipped_share=("flipped", "mean")).reset_index())
    return per_run, across_seeds(per_run, ["median_units", "flipped_share"], keys=["set", "localizer"], group=cols)


def forgotten_mem(dropout_examples: pd.DataFrame | None, memorization: pd.DataFrame | None
                  ) -> tuple[pd.DataFrame, str | None]:
    """(per example-tied run: clean examples correct under their own mask, how many are forgotten under drop,
    the mean mem of the forgotten and of the kept, the AUROC of mem for the forgotten; a note when nothing
    matches). mem comes from the standard run(s) of the same dataset, noise, seed and noise seed (averaged when
    several architectures have one)."""
    out_cols = ["tied_run_id", "n_correct_tied", "n_forgotten", "mem_forgotten", "mem_kept", "auroc_forgotten",
                "mem_runs"]
    if dropout_examples is None or memorization is None or dropout_examples.empty or memorization.empty:
        return pd.DataFrame(columns=out_cols), "no example-tied run's dropout_examples and memorization scores to join"
    tied = dropout_examples
    if "variant" in tied.columns:
        tied = tied[tied["variant"] == "tied"]
    tied = tied[~tied["is_noisy"].astype(bool) & tied["correct_tied"].astype(bool)]
    keys = [k for k in JOIN if k in tied.columns and k in memorization.columns]
    mem = memorization.dropna(subset=["mem"]).groupby(keys, dropna=False).agg(
        mem=("mem", "mean"), mem_runs=("run_id", "nunique")).reset_index()
    joined = tied.merge(mem, on=keys, how="inner")
    if joined.empty:
        return pd.DataFrame(columns=out_cols), ("no example-tied run has a standard run of the same dataset, noise "
                                                "and seed with memorization scores")
    cols = group_columns(joined)
    rows = []
    for key, part in joined.groupby(cols + ["run_id"], dropna=False, sort=True):
        lost = ~part["correct_drop"].astype(bool).to_numpy()
        score = part["mem"].to_numpy(float)
        rows.append({**dict(zip(cols, key[:-1], strict=True)), "run_id": key[-1], "tied_run_id": key[-1],
                     "n_correct_tied": len(part), "n_forgotten": int(lost.sum()),
                     "mem_forgotten": float(score[lost].mean()) if lost.any() else np.nan,
                     "mem_kept": float(score[~lost].mean()) if (~lost).any() else np.nan,
                     "auroc_forgotten": auroc(score, lost) if 0 < lost.sum() < len(lost) else np.nan,
                     "mem_runs": int(part["mem_runs"].max())})
    return pd.DataFrame(rows, columns=[*cols, "run_id", *out_cols]), None
