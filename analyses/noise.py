"""Against the noise rate: each configuration's key quantities over the noise rates its grid has (the `full`
grid has 0.05, 0.1 and 0.2), with across-seed intervals.

A series is a configuration without its noise rate (dataset / arch / variant / width / training settings);
only series with two or more noise rates are drawn. Per run, then across seeds at each rate:
- accuracy at the end of training (epochs, last epoch): noisy train vs its noisy label (memorized), test,
  clean train;
- units removed to flip a flipped example (flips): the run's median, noisy and clean targets;
- best single-layer rewind (rewinding): the lowest noisy-train accuracy over the layers x rewind epochs that keep
  clean accuracy within 5 points of the final model's (analyses.layers.CLEAN_TOLERANCE; NaN for a run where
  none does), beside the final model's noisy-train accuracy on the same examples;
- mislabel detection AUROC per signal (examples, flips, dropout_examples, oos_predictions; see
  analyses.detection), on all training examples where the signal scores them, else on the flip subset.
"""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd

from analyses.detection import SIGNALS, detection_per_run, headline
from analyses.layers import CLEAN_TOLERANCE
from analyses.plotting import (
    PERCENT,
    Output,
    config_label,
    config_rows,
    configs,
    errorbars,
    legend_below,
    seed_points,
    seeds,
    styled,
)
from analyses.stats import across_seeds, declare, group_columns
from sweep.schemas import ACC

# (panel title, y label, scale, [(value column, line label, colour)])
SIGNAL_COLOURS = tuple(matplotlib.colormaps["tab20"].colors)  # one per SIGNALS entry, in order (cycled)
PANELS = (
    ("end of training", "accuracy (%)", PERCENT, [
        ("final_noisy_acc", "noisy train vs noisy label (memorized)", "tab:red"),
        ("final_test_acc", "test", "tab:green"),
        ("final_clean_acc", "clean train", "tab:blue"),
    ]),
    ("neuron flipping", "units removed to flip\n(median over flipped examples)", 1.0, [
        ("units_noisy", "units to flip: noisy targets", "tab:purple"),
        ("units_clean", "units to flip: clean targets", "tab:cyan"),
    ]),
    ("best single-layer rewind", "noisy-train accuracy (%)", PERCENT, [
        ("rewind_noisy_acc", "lowest noisy-train accuracy over layers x rewind epochs\nthat keep clean accuracy "
         "within 5 points", "tab:orange"),
        ("final_model_noisy_acc", "final model's noisy-train accuracy (same examples)", "black"),
    ]),
    ("finding the mislabeled examples", "detection AUROC (0-1; 0.5 = chance)", 1.0, [
        (f"{name}_auroc", f"AUROC: {signal.short}", SIGNAL_COLOURS[i % len(SIGNAL_COLOURS)])
        for i, (name, signal) in enumerate(SIGNALS.items())
    ]),
)
VALUES = [v for _, _, _, lines in PANELS for v, _, _ in lines]
declare({**{v: ACC for v in VALUES if v.endswith(("_acc", "_auroc"))}, "units_noisy": "units", "units_clean": "units"})


def series_columns(df: pd.DataFrame) -> list[str]:
    """The configuration columns that define a series: all but the noise rate and the config_id it is in."""
    return [c for c in group_columns(df) if c not in ("config_id", "noise")]


def per_run(
    epochs: pd.DataFrame | None = None,
    flips: pd.DataFrame | None = None,
    rewinding: pd.DataFrame | None = None,
    examples: pd.DataFrame | None = None,
    dropout_examples: pd.DataFrame | None = None,
    oos_predictions: pd.DataFrame | None = None,
    runs: pd.DataFrame | None = None,
    ssft: pd.DataFrame | None = None,
    aux_runs: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per run: its configuration columns and every quantity of `VALUES` the tables give (NaN else)."""
    tables = [t for t in (epochs, flips, rewinding, examples, dropout_examples) if t is not None and len(t)]
    if not tables:
        return pd.DataFrame(columns=["run_id", "noise", *VALUES])
    cols = group_columns(tables[0])
    config = pd.concat([t[[c for c in cols if c in t.columns] + ["run_id"]] for t in tables])
    out = config.drop_duplicates("run_id").set_index("run_id")
    config_columns = list(out.columns)
    if epochs is not None and len(epochs):
        last = epochs[epochs["epoch"] == epochs.groupby("run_id")["epoch"].transform("max")]
        last = last.groupby("run_id")[["noisy_acc", "test_acc", "clean_acc"]].mean()
        out = out.join(last.add_prefix("final_"))
    if flips is not None and len(flips):
        done = flips[flips["flipped"].astype(bool)]
        units = done.groupby(["run_id", done["is_noisy"].astype(bool)])["n_units"].median().unstack()
        out = out.join(units.rename(columns={True: "units_noisy", False: "units_clean"}))
    if rewinding is not None and len(rewinding):
        cells = rewinding
        if "clean_acc_base" in rewinding.columns:
            cells = rewinding[rewinding["clean_acc"] >= rewinding["clean_acc_base"] - CLEAN_TOLERANCE - 1e-12]
        best = cells.groupby("run_id")["noisy_acc"].min().rename("rewind_noisy_acc")
        out = out.join(best)
        if "noisy_acc_base" in rewinding.columns:
            out = out.join(rewinding.groupby("run_id")["noisy_acc_base"].mean().rename("final_model_noisy_acc"))
    scores = headline(detection_per_run(examples, flips, dropout_examples, oos_predictions, runs, ssft, aux_runs))
    if len(scores):
        auroc = scores.pivot_table(index="run_id", columns="signal", values="auroc", aggfunc="mean")
        out = out.join(auroc.rename(columns=lambda s: f"{s}_auroc"))
    out = out.reindex(columns=[*config_columns, *VALUES])
    return out.reset_index()


@styled
def noise_figure(
    epochs: pd.DataFrame | None = None,
    flips: pd.DataFrame | None = None,
    rewinding: pd.DataFrame | None = None,
    examples: pd.DataFrame | None = None,
    dropout_examples: pd.DataFrame | None = None,
    oos_predictions: pd.DataFrame | None = None,
    runs: pd.DataFrame | None = None,
    ssft: pd.DataFrame | None = None,
    aux_runs: pd.DataFrame | None = None,
) -> Output:
    """Per series with two or more noise rates, one row of panels (end-of-training accuracy, units to flip,
    best rewind, detection AUROC; those its tables have), one point per noise rate with its across-seed
    95% interval. The table: per series and noise rate, every quantity's mean/lo/hi and n_seeds (only the
    series drawn). No series with two rates: an empty table and no figure."""
    per = per_run(epochs, flips, rewinding, examples, dropout_examples, oos_predictions, runs, ssft, aux_runs)
    series = series_columns(per)
    if len(per) and "noise" in per.columns:
        if series:
            rates = per.groupby(series, dropna=False)["noise"].transform("nunique").to_numpy()
        else:
            rates = np.full(len(per), per["noise"].nunique())
        per = per[rates >= 2]
    else:
        per = per.iloc[:0]
    table = across_seeds(per, VALUES, keys=["noise"], group=series)
    if table.empty:
        return Output(table, None)
    groups = list(configs(table, series))
    present = [[p for p in PANELS if any(f"{v}_mean" in rows and rows[f"{v}_mean"].notna().any()
                                         for v, _, _ in p[3])] for _, rows in groups]
    n_cols = max(1, max(len(p) for p in present))
    # room under the panels for the shared legend: two entries a row, one per line drawn (a row is ~0.16 in)
    fig, subs = config_rows(len(groups), [3.1] * len(groups), width=3.4 * n_cols + 0.4,
                            extra=0.3 + 0.16 * -(-len(VALUES) // 2))
    for sub, (config, rows), panels in zip(subs, groups, present, strict=False):
        rows = rows.sort_values("noise")
        x = rows["noise"].to_numpy(float) * PERCENT
        sub.suptitle(f"{config_label(config)} ({seeds(int(rows['n_seeds'].min()))}"
                     + (f" to {int(rows['n_seeds'].max())}" if rows["n_seeds"].nunique() > 1 else "") + " per rate)")
        axes = sub.subplots(1, n_cols, squeeze=False)[0]
        for ax in axes[len(panels):]:
            sub.delaxes(ax)  # a quantity this series lacks: no empty frame
        for ax, (title, ylabel, scale, lines) in zip(axes, panels, strict=False):
            drawn = [(v, label, c) for v, label, c in lines if f"{v}_mean" in rows and rows[f"{v}_mean"].notna().any()]
            for i, (value, label, colour) in enumerate(drawn):
                means = rows[f"{value}_mean"].to_numpy(float) * scale
                lo, hi = rows[f"{value}_lo"].to_numpy(float) * scale, rows[f"{value}_hi"].to_numpy(float) * scale
                # intervals side by side, spread over at most 6% of the axis however many lines a panel has
                step = min(0.012, 0.06 / max(len(drawn) - 1, 1))
                dodge = (i - (len(drawn) - 1) / 2) * step * (x.max() - x.min())
                ax.errorbar(x + dodge, means, yerr=errorbars(means, lo, hi), marker="o", ms=4, lw=1.2, capsize=3,
                            color=colour, label=label)
                seed_points(ax, x + dodge, list(rows[f"{value}_seeds"]), scale, color=colour)
            ax.set_xticks(x, [f"{v:g}" for v in x])
            ax.set_xlabel("noise rate (%)")
            ax.set_ylabel(ylabel)
            ax.set_title(title)
            if scale == PERCENT:
                ax.set_ylim(-2, 102)
            elif "AUROC" in ylabel:
                ax.set_ylim(0, 1.02)
                ax.axhline(0.5, color="grey", lw=0.8, ls=":")
            else:
                ax.set_ylim(bottom=0)
    legend_below(fig, ncols=2)
    return Output(table.reset_index(drop=True), fig)
