"""Training curves: when the noisy examples get memorized, against clean and test accuracy."""

from __future__ import annotations

import pandas as pd

from analyses.panels import share_axes
from analyses.plotting import (
    ACC_COLOURS,
    PERCENT,
    Output,
    band,
    config_title,
    configs,
    integer_ticks,
    legend_below,
    styled,
    wrap_grid,
)
from analyses.stats import across_seeds

CURVES = (
    ("clean_acc", "clean train"),
    ("noisy_acc", "noisy train vs noisy label (memorized)"),
    ("noisy_true_acc", "noisy train vs true label"),
    ("test_acc", "test"),
)


@styled
def training_curves(epochs: pd.DataFrame) -> Output:
    """Per configuration and epoch, clean / noisy / noisy-vs-true / test accuracy and training loss across
    seeds; one panel per configuration (accuracy in %) with the interval shaded, one legend under them."""
    curves = [(c, name) for c, name in CURVES if c in epochs.columns]
    values = [c for c, _ in curves] + (["train_loss"] if "train_loss" in epochs.columns else [])
    table = across_seeds(epochs, values, keys=["epoch"])
    if table.empty:
        return Output(table, None)
    groups = list(configs(table))
    fig, axes = wrap_grid(len(groups), size=(4.0, 3.0))
    for ax, (config, rows) in zip(axes, groups, strict=False):
        rows = rows.sort_values("epoch")
        for column, name in curves:
            band(ax, rows["epoch"].to_numpy(), rows, column, name, scale=PERCENT, color=ACC_COLOURS.get(column))
        ax.set_title(config_title(config, int(rows["n_seeds"].max())))
        ax.set_xlabel("epoch")
        integer_ticks(ax)
        ax.set_ylabel("accuracy (%)")
        ax.set_ylim(-2, 102)
    share_axes(axes, x=True)
    legend_below(fig, axes, ncols=2)
    return Output(table, fig)
