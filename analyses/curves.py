"""Training curves: when the noisy examples get memorized, against clean and test accuracy."""

from __future__ import annotations

import pandas as pd

from analyses.plotting import Output, band, config_label, configs, wrap_grid
from analyses.stats import across_seeds

CURVES = (
    ("clean_acc", "clean train"),
    ("noisy_acc", "noisy train (vs noisy label: memorized)"),
    ("noisy_true_acc", "noisy train (vs true label)"),
    ("test_acc", "test"),
)


def training_curves(epochs: pd.DataFrame) -> Output:
    """Per configuration and epoch, clean / noisy / noisy-vs-true / test accuracy and training loss across
    seeds; one panel per configuration with the interval shaded."""
    curves = [(c, name) for c, name in CURVES if c in epochs.columns]
    values = [c for c, _ in curves] + (["train_loss"] if "train_loss" in epochs.columns else [])
    table = across_seeds(epochs, values, keys=["epoch"])
    if table.empty:
        return Output(table, None)
    groups = list(configs(table))
    fig, axes = wrap_grid(len(groups))
    for ax, (config, rows) in zip(axes, groups, strict=False):
        rows = rows.sort_values("epoch")
        for column, name in curves:
            band(ax, rows["epoch"].to_numpy(), rows, column, name)
        n = int(rows["n_seeds"].max())
        ax.set_title(f"{config_label(config)}\n(n={n} seed{'s' if n != 1 else ''})", fontsize=8)
        ax.set_xlabel("epoch")
        ax.set_ylabel("accuracy")
        ax.set_ylim(-0.02, 1.02)
    axes[0].legend(fontsize=7, loc="lower right")
    return Output(table, fig)
