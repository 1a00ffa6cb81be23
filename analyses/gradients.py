"""Gradient accounting (paper Figures 1 and 2): how much of each layer's gradient the noisy examples
contribute, and how aligned it is with the clean examples' gradient, epoch by epoch."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from analyses.panels import share_axes
from analyses.plotting import (
    Output,
    config_label,
    config_rows,
    config_title,
    configs,
    heatmap,
    integer_ticks,
    layer_labels,
    legend_right,
    seeds,
    styled,
    wrap_grid,
)
from analyses.stats import across_seeds

NORM = "gradient norm contribution\n(sum of ‖G‖₂/√numel)"
# The two clean/noisy cosines of a layer group: the mean over its tensors (the paper's code; drawn) and the cosine
# of its gradients flattened into one vector (in the table, where the results have it: large tensors weigh more).
COSINES = (("cosine", "mean over the group's tensors, as the paper's code"),
           ("cosine_flat", "the group's gradient flattened into one vector"))


def memorization_window(last_epoch: int) -> tuple[int, int]:
    """The epochs the paper's Figure 1 averages (15-20 of 50), scaled to a run of `last_epoch` epochs."""
    lo = max(1, round(0.3 * last_epoch))
    hi = max(lo, round(0.4 * last_epoch))
    return lo, hi


@styled
def figure1(gradients: pd.DataFrame) -> Output:
    """Clean and noisy gradient-norm contribution per layer and epoch, across seeds.

    The table also carries `noisy_to_clean` (ratio of the means) and `in_window` (the epochs the paper
    averages in its bar chart). Each configuration gets a row of two panels: the contributions over epochs
    (solid clean, dashed noisy, one colour per layer) and per-layer bars over the window.
    """
    table = across_seeds(gradients, ["clean_norm", "noisy_norm"], keys=["layer", "layer_name", "epoch"])
    if table.empty:
        return Output(table, None)
    with np.errstate(divide="ignore", invalid="ignore"):
        table["noisy_to_clean"] = table["noisy_norm_mean"] / table["clean_norm_mean"]
    table["in_window"] = False
    groups = list(configs(table))
    fig, subs = config_rows(len(groups), [3.4] * len(groups), width=12.5)
    line_axes = []
    for sub, (config, rows) in zip(subs, groups, strict=False):
        lo, hi = memorization_window(int(rows["epoch"].max()))
        window = rows["epoch"].between(lo, hi)
        table.loc[rows.index[window.to_numpy()], "in_window"] = True
        lines, bars = sub.subplots(1, 2, width_ratios=[1.3, 1])
        sub.suptitle(f"{config_label(config)} ({seeds(int(rows['n_seeds'].max()))})")
        for layer, per_layer in rows.sort_values("epoch").groupby("layer", sort=True):
            label = f"{layer} {per_layer['layer_name'].iloc[0]}"
            line = lines.plot(per_layer["epoch"], per_layer["clean_norm_mean"], label=label, lw=1.2)[0]
            lines.plot(
                per_layer["epoch"], per_layer["noisy_norm_mean"], ls="--", lw=1.2, color=line.get_color()
            )
        lines.axvspan(lo, hi, color="grey", alpha=0.12)
        lines.set_title("per epoch (grey: the averaged window)")
        lines.set_xlabel("epoch")
        integer_ticks(lines)
        lines.set_ylabel(NORM)
        layer_handles, layer_labels_ = lines.get_legend_handles_labels()
        style = [Line2D([], [], color="black", lw=1.2), Line2D([], [], color="black", lw=1.2, ls="--")]
        lines.legend(
            layer_handles + style, layer_labels_ + ["clean examples", "noisy examples"],
            loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, ncols=1 + len(layer_handles) // 8,
            title="layer group",
        )
        win = rows[window].groupby(["layer", "layer_name"], sort=True)[["clean_norm_mean", "noisy_norm_mean"]]
        win = win.mean().reset_index()
        x = np.arange(len(win))
        bars.bar(x - 0.2, win["clean_norm_mean"], 0.4, label="clean examples")
        bars.bar(x + 0.2, win["noisy_norm_mean"], 0.4, label="noisy examples")
        bars.set_xticks(x, layer_labels(win), rotation=60, ha="right", rotation_mode="anchor")
        bars.set_title(f"mean over epochs {lo}-{hi}")
        bars.set_xlabel("layer group")
        bars.set_ylabel(NORM)
        legend_right(bars)
        line_axes.append(lines)
    # The curves of every configuration on one epoch axis and one range. The bars keep their own range: each is a
    # zoom into its run's window, where contributions differ ~100x between variants (tied vs standard), so on one
    # shared range most would be blank.
    share_axes(line_axes, x=True)
    return Output(table, fig)


@styled
def figure2(gradients: pd.DataFrame) -> Output:
    """Cosine between the clean and the noisy examples' summed gradients, layer x epoch, across seeds.

    The table has both cosines of `COSINES` (`cosine_flat` only where the results have it); the heatmap draws
    `cosine`, the mean over the group's tensors as the paper's code computes it, and its colour bar says so."""
    values = [c for c, _ in COSINES if c in gradients.columns]
    table = across_seeds(gradients, values, keys=["layer", "layer_name", "epoch"])
    if table.empty:
        return Output(table, None)
    groups = list(configs(table))
    fig, axes = wrap_grid(len(groups), max_cols=2, size=(5.5, 3.6))
    for ax, (config, rows) in zip(axes, groups, strict=False):
        rows = rows.assign(label=layer_labels(rows))
        order = rows.drop_duplicates("layer").sort_values("layer")["label"]
        matrix = rows.pivot_table(index="label", columns="epoch", values="cosine_mean", aggfunc="mean")
        matrix = matrix.reindex(order)
        image = heatmap(ax, matrix, -1.0, 1.0, "coolwarm", annotate=False)
        ax.set_title(config_title(config, int(rows["n_seeds"].max())))
        ax.set_xlabel("epoch")
        ax.set_ylabel("layer group")
        fig.colorbar(image, ax=ax, label="cosine(clean, noisy gradient), -1 to 1:\nmean over the group's tensors")
    return Output(table, fig)
