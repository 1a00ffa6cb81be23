"""Shared figure plumbing: the (table, figure) pair every analysis returns, one panel per configuration.

Figures are built as `matplotlib.figure.Figure` objects rather than through pyplot, so nothing depends on
(or changes) the global backend: they render with Agg when saved, display in notebooks, and are freed when
dropped, which matters when the report draws dozens of them.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from analyses.stats import group_columns

DPI = 90


class Output(NamedTuple):
    """What every figure/table function returns: the numbers (for notebooks) and the drawn figure
    (None when there is nothing to draw)."""

    table: pd.DataFrame
    figure: Figure | None


def config_label(config: dict) -> str:
    """A short human label such as 'cifar10 / resnet9 / tied / noise 0.1 / width 1'."""
    parts = [str(config[k]) for k in ("dataset", "arch", "variant") if k in config]
    if "noise" in config:
        parts.append(f"noise {float(config['noise']):g}")
    if "width" in config:
        parts.append(f"width {float(config['width']):g}")
    if isinstance(config.get("config_id"), str):  # tells apart settings that differ in epochs, lr, p_mem, ...
        parts.append(f"cfg {config['config_id'].rsplit('-', 1)[-1][:6]}")
    return " / ".join(parts)


def configs(df: pd.DataFrame, columns: Sequence[str] | None = None) -> Iterator[tuple[dict, pd.DataFrame]]:
    """Iterate (config dict, rows) over the configurations in `df`, in sorted order."""
    cols = list(columns) if columns is not None else group_columns(df)
    if not cols:
        yield {}, df
        return
    for key, rows in df.groupby(cols, dropna=False, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        yield dict(zip(cols, key, strict=False)), rows


def panel_grid(n_rows: int, n_cols: int, size: tuple[float, float] = (4.2, 3.2)) -> tuple[Figure, np.ndarray]:
    """A figure with an n_rows x n_cols array of axes."""
    fig = Figure(figsize=(size[0] * n_cols, size[1] * n_rows), dpi=DPI, layout="constrained")
    axes = fig.subplots(max(n_rows, 1), max(n_cols, 1), squeeze=False)
    return fig, axes


def wrap_grid(n: int, max_cols: int = 3, size: tuple[float, float] = (4.2, 3.2)) -> tuple[Figure, list[Axes]]:
    """n panels wrapped into rows of at most `max_cols`; unused axes are hidden."""
    cols = max(1, min(n, max_cols))
    rows = max(1, math.ceil(n / cols))
    fig, axes = panel_grid(rows, cols, size)
    flat = list(axes.ravel())
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def band(ax: Axes, x: Sequence[float], table: pd.DataFrame, value: str, label: str, **style) -> None:
    """A mean line with its across-seed interval shaded (the interval is absent for one seed)."""
    line = ax.plot(x, table[f"{value}_mean"], label=label, **style)[0]
    lo, hi = table[f"{value}_lo"].to_numpy(float), table[f"{value}_hi"].to_numpy(float)
    if np.isfinite(lo).any():
        ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.2, linewidth=0)


def heatmap(
    ax: Axes,
    matrix: pd.DataFrame,
    vmin: float,
    vmax: float,
    cmap: str,
    annotate: bool = True,
    scale: float = 100.0,
    digits: int = 0,
):
    """Draw `matrix` (rows = y labels, columns = x labels), optionally annotated; returns the image."""
    values = matrix.to_numpy(dtype=float)
    image = ax.imshow(values, aspect="auto", vmin=vmin, vmax=vmax, cmap=cmap, interpolation="nearest")
    ax.set_yticks(range(len(matrix.index)), [str(i) for i in matrix.index])
    step = max(1, math.ceil(len(matrix.columns) / 12))
    ticks = list(range(0, len(matrix.columns), step))
    ax.set_xticks(ticks, [str(matrix.columns[i]) for i in ticks])
    if annotate and values.size and values.shape[0] <= 14 and values.shape[1] <= 14:
        mid = (vmin + vmax) / 2
        for (i, j), v in np.ndenumerate(values):
            if np.isfinite(v):
                colour = "white" if v < mid else "black"
                ax.text(j, i, f"{v * scale:.{digits}f}", ha="center", va="center", fontsize=7, color=colour)
    return image


def layer_labels(table: pd.DataFrame) -> pd.Series:
    """'<index> <name>' labels so heatmap rows read in forward order and keep the group's name."""
    if "layer_name" in table.columns:
        return table["layer"].astype(int).astype(str) + " " + table["layer_name"].astype(str)
    return table["layer"].astype(int).astype(str)
