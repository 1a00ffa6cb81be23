"""Detection by epoch: how well each per-epoch signal (training loss, margin, correctness, from that epoch's
training forward pass) finds the mislabeled examples as training goes on (table `detection_epochs`).

The literature shows loss AUROC decaying late in training, as the network memorizes the wrong labels; this draws
it per configuration: the across-seed mean AUROC per signal against the epoch, each seed's own AUROC as points
behind it, chance (0.5) as a line.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analyses.load import ordinary
from analyses.panels import share_axes
from analyses.plotting import Output, config_title, configs, integer_ticks, legend_below, styled, wrap_grid
from analyses.stats import across_seeds, group_columns

EPOCH_SIGNALS = {"loss": ("training loss (high = suspicious)", "tab:red"),
                 "margin": ("margin (low = suspicious)", "tab:blue"),
                 "correct": ("predicted as labelled (wrong = suspicious)", "tab:green")}


def epochs_table(detection_epochs: pd.DataFrame | None) -> pd.DataFrame:
    """Across seeds per configuration, signal and epoch: AUROC and average precision (mean, seeds, interval)."""
    df = ordinary(detection_epochs)
    if df is None or df.empty:
        return across_seeds(pd.DataFrame(columns=["run_id", "signal", "epoch", "auroc", "average_precision"]),
                            ["auroc", "average_precision"], keys=["signal", "epoch"], group=[])
    return across_seeds(df, ["auroc", "average_precision"], keys=["signal", "epoch"])


@styled
def detection_by_epoch(detection_epochs: pd.DataFrame | None) -> Output:
    """The table of `epochs_table` and its figure: one panel per configuration, AUROC (0-1) against the epoch."""
    table = epochs_table(detection_epochs)
    if table.empty:
        return Output(table, None)
    raw = ordinary(detection_epochs)
    groups = list(configs(table))
    fig, axes = wrap_grid(len(groups), max_cols=3, size=(4.2, 3.3))
    cols = group_columns(table)
    for ax, (config, rows) in zip(axes, groups, strict=True):
        mine = raw.merge(pd.DataFrame([config]), on=cols, how="inner")
        names = set(rows["signal"])
        order = [s for s in EPOCH_SIGNALS if s in names] + sorted(names - set(EPOCH_SIGNALS))
        for signal in order:
            label, colour = EPOCH_SIGNALS.get(signal, (signal, None))
            line = rows[rows["signal"] == signal].sort_values("epoch")
            points = mine[mine["signal"] == signal]
            drawn = ax.plot(line["epoch"], line["auroc_mean"], color=colour, lw=1.4, label=f"{label}: mean")[0]
            ax.scatter(points["epoch"], points["auroc"], s=6, alpha=0.35, color=drawn.get_color(),
                       label=f"{label}: each seed")
        ax.axhline(0.5, color="grey", lw=0.8, ls=":", label="chance (0.5)")
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("epoch")
        ax.set_ylabel("AUROC (0-1)")
        integer_ticks(ax)
        ax.set_title(config_title(config, int(rows["n_seeds"].max())))
    share_axes(axes, x=True)
    legend_below(fig, axes, ncols=2)
    return Output(table, fig)


def late_decay(table: pd.DataFrame) -> pd.DataFrame:
    """Per configuration and signal: the best mean AUROC, its epoch, and the mean AUROC at the last epoch (how
    much of its best the signal has lost by the end)."""
    if table.empty:
        return pd.DataFrame(columns=["signal", "best_epoch", "best_auroc", "last_epoch", "last_auroc"])
    cols = group_columns(table) + ["signal"]
    rows = []
    for key, part in table.groupby(cols, dropna=False, sort=True):
        part = part[np.isfinite(part["auroc_mean"].astype(float))]
        if part.empty:
            continue
        best = part.loc[part["auroc_mean"].idxmax()]
        last = part.loc[part["epoch"].idxmax()]
        rows.append({**dict(zip(cols, key if isinstance(key, tuple) else (key,), strict=True)),
                     "best_epoch": int(best["epoch"]), "best_auroc": float(best["auroc_mean"]),
                     "last_epoch": int(last["epoch"]), "last_auroc": float(last["auroc_mean"])})
    return pd.DataFrame(rows)
