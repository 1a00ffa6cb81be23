"""Gradient accounting (paper Figures 1 and 2): how much of each layer's gradient the noisy examples
contribute, and how aligned it is with the clean examples' gradient, epoch by epoch."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analyses.plotting import Output, config_label, configs, heatmap, layer_labels, panel_grid, wrap_grid
from analyses.stats import across_seeds


def memorization_window(last_epoch: int) -> tuple[int, int]:
    """The epochs the paper's Figure 1 averages (15-20 of 50), scaled to a run of `last_epoch` epochs."""
    lo = max(1, round(0.3 * last_epoch))
    hi = max(lo, round(0.4 * last_epoch))
    return lo, hi


def figure1(gradients: pd.DataFrame) -> Output:
    """Clean and noisy gradient-norm contribution per layer and epoch, across seeds.

    The table also carries `noisy_to_clean` (ratio of the means) and `in_window` (the epochs the paper
    averages in its bar chart). Each configuration gets two panels: the contributions over epochs
    (solid clean, dashed noisy, one colour per layer) and per-layer bars over the window.
    """
    table = across_seeds(gradients, ["clean_norm", "noisy_norm"], keys=["layer", "layer_name", "epoch"])
    if table.empty:
        return Output(table, None)
    with np.errstate(divide="ignore", invalid="ignore"):
        table["noisy_to_clean"] = table["noisy_norm_mean"] / table["clean_norm_mean"]
    table["in_window"] = False
    groups = list(configs(table))
    fig, axes = panel_grid(len(groups), 2, size=(5.0, 3.3))
    for row_axes, (config, rows) in zip(axes, groups, strict=False):
        lo, hi = memorization_window(int(rows["epoch"].max()))
        window = rows["epoch"].between(lo, hi)
        table.loc[rows.index[window.to_numpy()], "in_window"] = True
        lines, bars = row_axes
        colours = {}
        for layer, per_layer in rows.sort_values("epoch").groupby("layer", sort=True):
            label = f"{layer} {per_layer['layer_name'].iloc[0]}"
            line = lines.plot(per_layer["epoch"], per_layer["clean_norm_mean"], label=label, lw=1.2)[0]
            colours[layer] = line.get_color()
            lines.plot(
                per_layer["epoch"], per_layer["noisy_norm_mean"], ls="--", lw=1.2, color=line.get_color()
            )
        lines.axvspan(lo, hi, color="grey", alpha=0.12)
        n = int(rows["n_seeds"].max())
        lines.set_title(f"{config_label(config)} (n={n})\nsolid clean, dashed noisy", fontsize=8)
        lines.set_xlabel("epoch")
        lines.set_ylabel("gradient norm contribution")
        lines.legend(fontsize=6, ncol=2)
        win = rows[window].groupby(["layer", "layer_name"], sort=True)[["clean_norm_mean", "noisy_norm_mean"]]
        win = win.mean().reset_index()
        x = np.arange(len(win))
        bars.bar(x - 0.2, win["clean_norm_mean"], 0.4, label="clean")
        bars.bar(x + 0.2, win["noisy_norm_mean"], 0.4, label="noisy")
        bars.set_xticks(x, layer_labels(win), rotation=60, fontsize=7)
        bars.set_title(f"mean over epochs {lo}-{hi}", fontsize=8)
        bars.legend(fontsize=7)
    return Output(table, fig)


def figure2(gradients: pd.DataFrame) -> Output:
    """Cosine between the clean and the noisy examples' summed gradients, layer x epoch, across seeds."""
    table = across_seeds(gradients, ["cosine"], keys=["layer", "layer_name", "epoch"])
    if table.empty:
        return Output(table, None)
    groups = list(configs(table))
    fig, axes = wrap_grid(len(groups), max_cols=2, size=(5.5, 3.4))
    for ax, (config, rows) in zip(axes, groups, strict=False):
        rows = rows.assign(label=layer_labels(rows))
        order = rows.drop_duplicates("layer").sort_values("layer")["label"]
        matrix = rows.pivot_table(index="label", columns="epoch", values="cosine_mean", aggfunc="mean")
        matrix = matrix.reindex(order)
        image = heatmap(ax, matrix, -1.0, 1.0, "coolwarm", annotate=False)
        n = int(rows["n_seeds"].max())
        ax.set_title(f"{config_label(config)} (n={n})", fontsize=8)
        ax.set_xlabel("epoch")
        fig.colorbar(image, ax=ax, label="cosine(clean, noisy)")
    return Output(table, fig)
