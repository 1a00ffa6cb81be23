"""Layer-level localization (paper Figures 3 and 4): rewinding one layer to an earlier checkpoint, and
retraining one layer from its initial weights on clean examples only."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analyses.plotting import Output, config_label, configs, heatmap, layer_labels, panel_grid
from analyses.stats import across_seeds

ACCURACIES = (("clean_acc", "clean train"), ("noisy_acc", "noisy train (memorized)"), ("test_acc", "test"))


def figure3(rewinding: pd.DataFrame) -> Output:
    """Accuracy after rewinding one layer group to an earlier epoch, across seeds: per configuration three
    heatmaps (clean, noisy, test), layer x rewind epoch."""
    table = across_seeds(rewinding, [c for c, _ in ACCURACIES], keys=["layer", "layer_name", "rewind_epoch"])
    if table.empty:
        return Output(table, None)
    groups = list(configs(table))
    fig, axes = panel_grid(len(groups), 3, size=(4.0, 3.3))
    for row_axes, (config, rows) in zip(axes, groups, strict=False):
        rows = rows.assign(label=layer_labels(rows))
        order = rows.drop_duplicates("layer").sort_values("layer")["label"]
        n = int(rows["n_seeds"].max())
        for ax, (column, name) in zip(row_axes, ACCURACIES, strict=False):
            matrix = rows.pivot_table(index="label", columns="rewind_epoch", values=f"{column}_mean")
            image = heatmap(ax, matrix.reindex(order), 0.0, 1.0, "viridis")
            ax.set_title(f"{config_label(config)} (n={n})\n{name}", fontsize=8)
            ax.set_xlabel("rewind epoch")
        fig.colorbar(image, ax=list(row_axes), label="accuracy", shrink=0.8)
    return Output(table, fig)


def figure4(retraining: pd.DataFrame) -> Output:
    """Accuracy while retraining one layer group on clean examples, per layer and retrain epoch, across
    seeds (a run that stopped early contributes only to the epochs it reached)."""
    table = across_seeds(retraining, [c for c, _ in ACCURACIES], keys=["layer", "layer_name", "epoch"])
    if table.empty:
        return Output(table, None)
    groups = list(configs(table))
    fig, axes = panel_grid(len(groups), 3, size=(4.0, 3.2))
    for row_axes, (config, rows) in zip(axes, groups, strict=False):
        n = int(rows["n_seeds"].max())
        for ax, (column, name) in zip(row_axes, ACCURACIES, strict=False):
            for layer, per_layer in rows.sort_values("epoch").groupby("layer", sort=True):
                ax.plot(
                    per_layer["epoch"],
                    per_layer[f"{column}_mean"],
                    marker=".",
                    lw=1,
                    label=f"{layer} {per_layer['layer_name'].iloc[0]}",
                )
            ax.set_title(f"{config_label(config)} (n={n})\n{name}", fontsize=8)
            ax.set_xlabel("retrain epoch")
            ax.set_ylim(-0.02, 1.02)
        row_axes[1].legend(fontsize=6, ncol=2)
    return Output(table, fig)


def final_retraining(retraining: pd.DataFrame) -> pd.DataFrame:
    """Per layer, the accuracies at the end of retraining (each run's last epoch for that layer), across
    seeds: whether retraining that layer alone brought the memorized examples back."""
    if retraining.empty:
        return across_seeds(retraining, [c for c, _ in ACCURACIES], keys=["layer", "layer_name"])
    last = retraining.groupby(["run_id", "layer"])["epoch"].transform("max")
    final = retraining[retraining["epoch"].to_numpy() == last.to_numpy()]
    table = across_seeds(final, [c for c, _ in ACCURACIES] + ["epoch"], keys=["layer", "layer_name"])
    return table.rename(
        columns={"epoch_mean": "last_epoch_mean", "epoch_lo": "last_epoch_lo", "epoch_hi": "last_epoch_hi"}
    )


def best_rewind(rewinding: pd.DataFrame) -> pd.DataFrame:
    """Per layer, the rewind that lowers noisy accuracy most (across-seed means), with the clean and test
    accuracy it keeps: the compact answer to 'does any single layer hold the memorization?'."""
    table = across_seeds(rewinding, [c for c, _ in ACCURACIES], keys=["layer", "layer_name", "rewind_epoch"])
    if table.empty:
        return table
    keys = [c for c in table.columns if c in ("dataset", "arch", "variant", "noise", "width")] + ["layer"]
    idx = table.groupby(keys, dropna=False)["noisy_acc_mean"].idxmin()
    return table.loc[np.sort(idx.dropna().astype(int).to_numpy())].reset_index(drop=True)
