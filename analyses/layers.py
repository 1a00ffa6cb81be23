"""Layer-level localization (paper Figures 3 and 4): rewinding one layer to an earlier checkpoint, and
retraining one layer from its initial weights on clean examples only. Both figures mark the final
(unedited) model's accuracy, the `*_acc_base` columns, as the reference the edit is read against."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from analyses.plotting import (
    ACC_COLOURS,
    FINAL_MODEL,
    PERCENT,
    Output,
    band,
    config_label,
    config_rows,
    configs,
    heatmap,
    integer_ticks,
    layer_labels,
    legend_below,
    seeds,
    styled,
)
from analyses.stats import across_seeds, declare, group_columns

declare({"last_epoch": "epoch"})
# "Best single-layer rewind": only cells that keep clean accuracy within this much (a fraction: 5 points) of the
# final model's count, so a rewind that wrecks the whole model is not read as removing memorization.
CLEAN_TOLERANCE = 0.05
ACCURACIES = (("clean_acc", "clean train"), ("noisy_acc", "noisy train (memorized)"), ("test_acc", "test"))
LAYERS_PER_ROW = 5  # Figure 4's small multiples: one panel per layer group, wrapped


def _values(df: pd.DataFrame) -> list[str]:
    """The accuracies, and the final model's (`<acc>_base`) where the table has them."""
    names = [c for c, _ in ACCURACIES]
    return names + [f"{c}_base" for c in names if f"{c}_base" in df.columns]


def _base(rows: pd.DataFrame, column: str) -> float:
    """The final model's accuracy (%) for `column` in one configuration, NaN where the table has none."""
    base = f"{column}_base_mean"
    if base not in rows.columns or not rows[base].notna().any():
        return math.nan
    return float(rows[base].mean()) * PERCENT


@styled
def figure3(rewinding: pd.DataFrame) -> Output:
    """Accuracy (%) after rewinding one layer group to an earlier epoch, across seeds: per configuration three
    heatmaps (clean, noisy, test), layer x rewind epoch, each with a last column 'final' holding the final,
    unrewound model's accuracy (white rule before it)."""
    table = across_seeds(rewinding, _values(rewinding), keys=["layer", "layer_name", "rewind_epoch"])
    if table.empty:
        return Output(table, None)
    groups = list(configs(table))
    heights = [max(2.6, 0.32 * rows["layer"].nunique() + 1.5) for _, rows in groups]
    fig, subs = config_rows(len(groups), heights, width=13.0)
    for sub, (config, rows) in zip(subs, groups, strict=False):
        rows = rows.assign(label=layer_labels(rows))
        order = rows.drop_duplicates("layer").sort_values("layer")["label"]
        sub.suptitle(f"{config_label(config)} ({seeds(int(rows['n_seeds'].max()))})")
        row_axes = sub.subplots(1, 3, sharey=True)
        for i, (ax, (column, name)) in enumerate(zip(row_axes, ACCURACIES, strict=False)):
            matrix = rows.pivot_table(index="label", columns="rewind_epoch", values=f"{column}_mean")
            matrix = matrix.reindex(order) * PERCENT
            matrix.columns = [str(c) for c in matrix.columns]
            base = _base(rows, column)
            if np.isfinite(base):
                matrix["final"] = base
            image = heatmap(ax, matrix, 0.0, 100.0, "viridis")
            if np.isfinite(base):
                ax.axvline(len(matrix.columns) - 1.5, color="white", lw=4, gid=FINAL_MODEL)
                name += f"\nfinal model {base:.0f}%"
            ax.set_title(name)
            ax.set_xlabel("epoch the layer is rewound to")
            if i == 0:
                ax.set_ylabel("layer group")
        sub.colorbar(image, ax=list(row_axes), label="accuracy (%)", shrink=0.9)
    return Output(table, fig)


@styled
def figure4(retraining: pd.DataFrame) -> Output:
    """Accuracy (%) while retraining one layer group on clean examples, per layer and retrain epoch, across
    seeds (a run that stopped early contributes only to the epochs it reached). Per configuration one small
    panel per layer group, the three accuracies in each, and the final model's accuracies as dashed lines."""
    table = across_seeds(retraining, _values(retraining), keys=["layer", "layer_name", "retrain_epoch"])
    if table.empty:
        return Output(table, None)
    groups = list(configs(table))
    shape = []
    for _, rows in groups:
        n = rows["layer"].nunique()
        shape.append((n, min(n, LAYERS_PER_ROW), math.ceil(n / LAYERS_PER_ROW)))
    width = 2.45 * max(cols for _, cols, _ in shape) + 0.6
    fig, subs = config_rows(len(groups), [1.85 * r + 0.9 for _, _, r in shape], width=max(width, 6.0), extra=0.5)
    has_base = False
    for sub, (config, rows), (n, cols, n_rows) in zip(subs, groups, shape, strict=False):
        sub.suptitle(f"{config_label(config)} ({seeds(int(rows['n_seeds'].max()))})")
        axes = sub.subplots(n_rows, cols, sharex=True, sharey=True, squeeze=False).ravel()
        for ax, (layer, per_layer) in zip(axes, rows.groupby("layer", sort=True), strict=False):
            per_layer = per_layer.sort_values("retrain_epoch")
            x = per_layer["retrain_epoch"].to_numpy()
            for column, name in ACCURACIES:
                colour = ACC_COLOURS[column]
                band(ax, x, per_layer, column, name, scale=PERCENT, color=colour, marker=".", lw=1.2, ms=4)
                base = _base(per_layer, column)
                if np.isfinite(base):
                    has_base = True
                    ax.axhline(base, color=colour, ls="--", lw=1.0, alpha=0.9, gid=FINAL_MODEL)
            ax.set_title(f"{layer} {per_layer['layer_name'].iloc[0]}")
            ax.set_ylim(-2, 102)
            integer_ticks(ax)
        for ax in axes[n:]:
            ax.set_visible(False)
        for ax in axes[max(0, n - cols):n]:  # the lowest panel of each column carries the epoch ticks
            ax.xaxis.set_tick_params(labelbottom=True)
        sub.supxlabel("retrain epoch (the layer alone, from its initial weights, on clean examples)")
        sub.supylabel("accuracy (%)")
    handles = [Line2D([], [], color=ACC_COLOURS[c], marker=".", lw=1.2) for c, _ in ACCURACIES]
    labels = [name for _, name in ACCURACIES]
    if has_base:
        handles.append(Line2D([], [], color="grey", ls="--", lw=1.0))
        labels.append("dashed: final model before the reset (same colour)")
    legend_below(fig, handles=handles, labels=labels)
    return Output(table, fig)


def final_retraining(retraining: pd.DataFrame) -> pd.DataFrame:
    """Per layer, the accuracies at the end of retraining (each run's last retrain epoch for that layer),
    across seeds, beside the final model's (`*_base`, where recorded): whether retraining that layer alone
    brought the memorized examples back."""
    values = _values(retraining)
    if retraining.empty:
        return across_seeds(retraining, values, keys=["layer", "layer_name"])
    last = retraining.groupby(["run_id", "layer"])["retrain_epoch"].transform("max")
    final = retraining[retraining["retrain_epoch"].to_numpy() == last.to_numpy()]
    table = across_seeds(final, values + ["retrain_epoch"], keys=["layer", "layer_name"])
    return table.rename(columns={f"retrain_epoch_{s}": f"last_epoch_{s}" for s in ("mean", "lo", "hi")})


def clean_kept(table: pd.DataFrame, tolerance: float = CLEAN_TOLERANCE) -> pd.Series:
    """Per row of an across-seed rewinding table: does the cell keep clean accuracy within `tolerance` of the
    final model's (mean against mean)? NaN where the final model's accuracy is not recorded."""
    if "clean_acc_base_mean" not in table.columns:
        return pd.Series(np.nan, index=table.index, dtype=object)
    kept = table["clean_acc_mean"] >= table["clean_acc_base_mean"] - tolerance - 1e-12
    return kept.where(table["clean_acc_base_mean"].notna() & table["clean_acc_mean"].notna())


def best_rewind(rewinding: pd.DataFrame, tolerance: float = CLEAN_TOLERANCE) -> pd.DataFrame:
    """Per layer, the rewind that lowers noisy accuracy most (across-seed means) among the cells whose clean
    accuracy stays within `tolerance` (5 points) of the final model's, with the clean and test accuracy it keeps
    and the final model's: the compact answer to 'does any single layer hold the memorization?' without
    counting a rewind that breaks the whole model. `choice` says how each row was picked: `clean kept` (the
    rule), `none kept clean accuracy` (no cell of that layer qualifies: the row has the layer and NaN
    elsewhere) or `unrestricted` (results without the final model's accuracy, so the rule cannot be applied:
    the lowest noisy accuracy of all cells)."""
    table = across_seeds(rewinding, _values(rewinding), keys=["layer", "layer_name", "rewind_epoch"])
    if table.empty:
        return table.assign(choice=pd.Series(dtype=object))
    keys = [*group_columns(table), "layer"]
    kept = clean_kept(table, tolerance)
    rows = []
    for _, cells in table.groupby(keys, dropna=False, sort=True):
        known = kept.loc[cells.index]
        if known.isna().all():
            pick, choice = cells["noisy_acc_mean"].idxmin(), "unrestricted"
        elif known.fillna(False).astype(bool).any():
            pick, choice = cells.loc[known.fillna(False).astype(bool), "noisy_acc_mean"].idxmin(), "clean kept"
        else:
            empty = cells.iloc[[0]].copy()
            measured = [c for c in empty.columns if c not in keys and c not in ("layer_name", "config_id")
                        and c not in group_columns(table)]
            empty[measured] = np.nan
            rows.append(empty.assign(choice="none kept clean accuracy"))
            continue
        rows.append(table.loc[[pick]].assign(choice=choice))
    return pd.concat(rows).reset_index(drop=True)
