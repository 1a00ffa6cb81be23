"""Shared figure plumbing: the (table, figure) pair every analysis returns, panel layouts, one text style.

Figures are built as `matplotlib.figure.Figure` objects rather than through pyplot, so nothing depends on
(or changes) the global backend: they render with Agg when saved, display in notebooks, and are freed when
dropped, which matters when the report draws dozens of them.

Conventions every figure follows (the report's tests check them): text from one style (`STYLE`, applied by
the `styled` decorator: titles 10 pt, everything else 8-9 pt), accuracies in percent with the unit on the axis
or colour bar, every axis labelled, legends outside the axes (`legend_below` for a legend the panels share,
`legend_right` for one panel's own), and PNGs written at `DPI` beside an SVG (`save`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import NamedTuple, TypeVar

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure, SubFigure
from matplotlib.legend import Legend
from matplotlib.ticker import MaxNLocator

from analyses.stats import MIN_SEEDS, group_columns

DPI = 150  # resolution of the report's PNGs; every figure is written as SVG too
PERCENT = 100.0  # accuracies, fractions and shares are drawn in percent
TITLE_PT = 10.0
TEXT_PT = 8.0  # the smallest text of any figure
STYLE = {
    "font.size": 9.0,
    "axes.titlesize": TITLE_PT,
    "axes.labelsize": 9.0,
    "xtick.labelsize": TEXT_PT,
    "ytick.labelsize": TEXT_PT,
    "legend.fontsize": TEXT_PT,
    "legend.title_fontsize": TEXT_PT,
    "figure.titlesize": 10.5,
    "figure.labelsize": 9.0,
    "axes.titlepad": 4.0,
    "savefig.dpi": DPI,
}
ACC_COLOURS = {"clean_acc": "tab:blue", "noisy_acc": "tab:red", "noisy_true_acc": "tab:orange",
               "test_acc": "tab:green"}  # one colour per evaluation set in every figure
FINAL_MODEL = "final-model"  # gid of the marks that show the final (unedited) model's accuracy
SEEDS = "seed-points"  # gid of the points that show each seed where there are too few seeds for an interval
SEED_LABEL = f"dots: each seed (fewer than {MIN_SEEDS} seeds: no interval)"
F = TypeVar("F", bound=Callable)


def styled(func: F) -> F:
    """Build the figure under `STYLE`, so every figure's text has the same sizes whatever the caller's rc."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with matplotlib.rc_context(STYLE):
            return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


class Output(NamedTuple):
    """What every figure/table function returns: the numbers (for notebooks) and the drawn figure
    (None when there is nothing to draw)."""

    table: pd.DataFrame
    figure: Figure | None


def save(fig: Figure, stem: str | Path) -> tuple[Path, Path]:
    """Write `fig` as <stem>.png (at `DPI`) and <stem>.svg; returns both paths."""
    stem = Path(stem)
    png, svg = stem.parent / f"{stem.name}.png", stem.parent / f"{stem.name}.svg"
    with matplotlib.rc_context(STYLE):
        fig.savefig(png, dpi=DPI, metadata={"Software": None})
        fig.savefig(svg, metadata={"Date": None})
    return png, svg


# Named after noise and width in a title when they differ between the configurations of one figure.
DISTINGUISHING = ("epochs", "lr", "batch_size", "p_gen", "p_mem", "cv_folds", "ssft_half", "dropout_places",
                  "sparse_mask")


class Config(dict):
    """One configuration's column values (what `configs` yields), plus what its title needs to tell it apart from
    the other configurations of the same table: `varies`, the DISTINGUISHING columns whose values differ between
    them, and `setting`, a footnote letter when two of them differ only in fields the table does not carry (the
    report's tables give the same letters). Titles never print the config_id's hash."""

    varies: frozenset[str] = frozenset()
    setting: str | None = None


def setting_letters(config_ids: Iterable[str]) -> dict[str, str]:
    """'a', 'b', ... for config_ids that read the same otherwise, in sorted order, so a figure and a table over the
    same configurations give each the same letter."""
    ids = sorted({str(c) for c in config_ids})
    return {c: chr(ord("a") + i % 26) + (str(i // 26) if i >= 26 else "") for i, c in enumerate(ids)}


def _rest(config: dict) -> list[str]:
    """The title's parts after 'dataset / arch / variant': noise, width, what else varies, the setting letter."""
    parts = []
    if "noise" in config:
        parts.append(f"noise {float(config['noise']):g}")
    if "width" in config:
        parts.append(f"width {float(config['width']):g}")
    for name in DISTINGUISHING:
        if name in getattr(config, "varies", ()) and name in config:
            value = config[name]
            parts.append(f"{name} {value:g}" if isinstance(value, int | float) else f"{name} {value}")
    if getattr(config, "setting", None):
        parts.append(f"setting {config.setting}")
    return parts


def config_label(config: dict) -> str:
    """A short human label such as 'cifar10 / resnet9 / tied / noise 0.1 / width 1'."""
    parts = [str(config[k]) for k in ("dataset", "arch", "variant") if k in config]
    return " / ".join(parts + _rest(config))


def seeds(n: int) -> str:
    return f"n={n} seed{'s' if n != 1 else ''}"


def config_title(config: dict, n: int | None = None) -> str:
    """The configuration on two lines that fit a panel: 'dataset / arch / variant' and the rest, with the
    number of seeds behind the panel when given."""
    first = " / ".join(str(config[k]) for k in ("dataset", "arch", "variant") if k in config)
    rest = _rest(config)
    if n is not None:
        rest.append(seeds(n))
    return "\n".join(p for p in (first, *_lines(rest)) if p)


TITLE_CHARS = 40  # what one line of a panel title holds in a three-column figure without running into the next


def _lines(parts: list[str], width: int = TITLE_CHARS) -> list[str]:
    """The parts joined by ' / ' on as few lines of at most `width` characters as they fit (a part is never split),
    so neighbouring panels' titles do not overlap."""
    lines: list[str] = []
    for part in parts:
        if lines and len(lines[-1]) + 3 + len(part) <= width:
            lines[-1] += f" / {part}"
        else:
            lines.append(part)
    return lines


def configs(df: pd.DataFrame, columns: Sequence[str] | None = None) -> Iterator[tuple[dict, pd.DataFrame]]:
    """Iterate (config dict, rows) over the configurations in `df`, in sorted order."""
    cols = list(columns) if columns is not None else group_columns(df)
    if not cols:
        yield {}, df
        return
    groups = [(key if isinstance(key, tuple) else (key,), rows)
              for key, rows in df.groupby(cols, dropna=False, sort=True)]
    keys = pd.DataFrame([k for k, _ in groups], columns=cols).astype(str)
    varies = frozenset(c for c in DISTINGUISHING if c in cols and keys[c].nunique() > 1)
    readable = [c for c in cols if c != "config_id"]
    letters: dict[str, str] = {}
    if "config_id" in cols and readable:
        letters = setting_letters(keys.loc[keys.duplicated(readable, keep=False), "config_id"])
    for key, rows in groups:
        config = Config(zip(cols, key, strict=False))
        config.varies = varies
        config.setting = letters.get(str(config.get("config_id")))
        yield config, rows


def new_figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def panel_grid(n_rows: int, n_cols: int, size: tuple[float, float] = (4.2, 3.2)) -> tuple[Figure, np.ndarray]:
    """A figure with an n_rows x n_cols array of axes."""
    fig = new_figure(size[0] * n_cols, size[1] * n_rows)
    axes = fig.subplots(max(n_rows, 1), max(n_cols, 1), squeeze=False)
    return fig, axes


def wrap_grid(n: int, max_cols: int = 3, size: tuple[float, float] = (4.2, 3.2)) -> tuple[Figure, list[Axes]]:
    """n panels wrapped into rows of at most `max_cols`; the grid's unused slots are deleted (no empty frame, no
    hidden placeholder that a reader of `fig.axes` would count as a panel)."""
    cols = max(1, min(n, max_cols))
    rows = max(1, math.ceil(n / cols))
    fig, axes = panel_grid(rows, cols, size)
    flat = list(axes.ravel())
    for ax in flat[n:]:
        fig.delaxes(ax)
    return fig, flat[:n]


def config_rows(
    n_configs: int, heights: Sequence[float], width: float, extra: float = 0.0
) -> tuple[Figure, list[SubFigure]]:
    """One sub-figure per configuration stacked vertically (its title says which), `heights` inches each,
    plus `extra` inches at the bottom for a shared legend."""
    heights = list(heights)[:n_configs] or [1.0]
    fig = new_figure(width, sum(heights) + extra)
    subs = fig.subfigures(len(heights), 1, height_ratios=heights, squeeze=False)[:, 0]
    return fig, list(subs)


def legend_below(fig: Figure | SubFigure, axes: Sequence[Axes] | None = None, ncols: int | None = None,
                 handles: Sequence | None = None, labels: Sequence[str] | None = None) -> Legend | None:
    """One legend for the whole figure, under every panel: the entries of all `axes` (default: every axes
    of the figure), each label once."""
    if handles is None:
        seen: dict[str, object] = {}
        for ax in axes if axes is not None else fig.get_axes():
            for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
                seen.setdefault(label, handle)
        labels, handles = list(seen), list(seen.values())
    handles, labels = _seed_entry_last(list(handles), list(labels or []))
    if not handles:
        return None
    # As many columns as fit the figure's width (a legend wider than the figure would be cut off).
    longest = max(len(line) for label in labels for line in str(label).splitlines() or [""])
    entry = longest * 0.62 * TEXT_PT / 72 + 0.8  # inches, marker and gap included
    width = fig.get_figure(root=True).get_size_inches()[0]
    fits = max(1, int(width // entry))
    ncols = max(1, min(ncols or 4, len(handles), fits))
    return fig.legend(handles, labels, loc="outside lower center", ncols=ncols, frameon=False)


def legend_right(ax: Axes, **kwargs) -> Legend | None:
    """The panel's own legend, beside it on the right (never over its data)."""
    handles, labels = _seed_entry_last(*ax.get_legend_handles_labels())
    if not handles:
        return None
    return ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, **kwargs)


def _seed_entry_last(handles: list, labels: list[str]) -> tuple[list, list[str]]:
    """The legend's entries with the seed points' entry (`SEED_LABEL`) moved to the end, after the data's own."""
    order = sorted(range(len(labels)), key=lambda i: labels[i] == SEED_LABEL)
    return [handles[i] for i in order], [labels[i] for i in order]


def integer_ticks(ax: Axes, axis: str = "x") -> None:
    """Whole-number ticks (epochs)."""
    (ax.xaxis if axis == "x" else ax.yaxis).set_major_locator(MaxNLocator(integer=True))


def band(ax: Axes, x: Sequence[float], table: pd.DataFrame, value: str, label: str, scale: float = 1.0,
         **style) -> None:
    """A mean line with its across-seed interval shaded where there is one; where there are two seeds (too few
    for an interval) each seed's value as a point in the line's colour."""
    line = ax.plot(x, table[f"{value}_mean"].to_numpy(float) * scale, label=label, **style)[0]
    lo, hi = table[f"{value}_lo"].to_numpy(float), table[f"{value}_hi"].to_numpy(float)
    if np.isfinite(lo).any():
        ax.fill_between(x, lo * scale, hi * scale, color=line.get_color(), alpha=0.2, linewidth=0)
    if f"{value}_seeds" in table.columns:
        seed_points(ax, x, table[f"{value}_seeds"], scale, color=line.get_color())


def seed_points(ax: Axes, x: Sequence[float], cells: Sequence, scale: float = 1.0, color: str = "black") -> int:
    """Each seed's value (a `<v>_seeds` cell) as a small point at its x, for the rows with two to MIN_SEEDS - 1
    seeds: they get no interval, so the figure shows the seeds themselves (one seed is the mean already drawn).
    The first call on an axes adds a grey legend entry saying what the points are. Returns the points drawn."""
    xs, ys = [], []
    for position, cell in zip(x, cells, strict=True):
        values = [float(v) for v in cell] if isinstance(cell, tuple | list | np.ndarray) else []
        values = [v for v in values if np.isfinite(v)]
        if 2 <= len(values) < MIN_SEEDS:
            xs += [float(position)] * len(values)
            ys += [v * scale for v in values]
    if not xs:
        return 0
    if not any(c.get_gid() == SEEDS and c.get_label() == SEED_LABEL for c in ax.collections):
        ax.scatter([], [], s=10, color="grey", label=SEED_LABEL, gid=SEEDS)
    ax.scatter(xs, ys, s=10, color=color, edgecolors="black", linewidths=0.4, zorder=3, gid=SEEDS)
    return len(xs)


def errorbars(means: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray | None:
    """Error bar lengths below/above each mean, or None when there is no interval (one seed)."""
    means, lo, hi = (np.asarray(a, dtype=float) for a in (means, lo, hi))
    if not np.isfinite(lo).any():
        return None
    return np.vstack([np.nan_to_num(means - lo), np.nan_to_num(hi - means)]).clip(min=0)


def heatmap(
    ax: Axes,
    matrix: pd.DataFrame,
    vmin: float,
    vmax: float,
    cmap: str,
    annotate: bool = True,
    digits: int = 0,
):
    """Draw `matrix` (rows = y labels, columns = x labels) in the units it is given in, optionally with each
    cell's value written in it (same units, `digits` decimals); returns the image."""
    values = matrix.to_numpy(dtype=float)
    image = ax.imshow(values, aspect="auto", vmin=vmin, vmax=vmax, cmap=cmap, interpolation="nearest")
    ax.set_yticks(range(len(matrix.index)), [str(i) for i in matrix.index])
    step = max(1, math.ceil(len(matrix.columns) / 12))
    ticks = list(range(0, len(matrix.columns), step))
    if len(matrix.columns) and ticks[-1] != len(matrix.columns) - 1:
        ticks.append(len(matrix.columns) - 1)
    ax.set_xticks(ticks, [str(matrix.columns[i]) for i in ticks])
    if annotate and values.size and values.shape[0] <= 14 and values.shape[1] <= 14:
        mid = (vmin + vmax) / 2
        for (i, j), v in np.ndenumerate(values):
            if np.isfinite(v):
                colour = "white" if v < mid else "black"
                ax.text(j, i, f"{v:.{digits}f}", ha="center", va="center", fontsize=TEXT_PT, color=colour)
    return image


def layer_labels(table: pd.DataFrame) -> pd.Series:
    """'<index> <name>' labels so heatmap rows read in forward order and keep the group's name."""
    if "layer_name" in table.columns:
        return table["layer"].astype(int).astype(str) + " " + table["layer_name"].astype(str)
    return table["layer"].astype(int).astype(str)


def thumbnail_gallery(shown: Sequence[tuple[dict, pd.DataFrame, np.ndarray, np.ndarray]],
                      caption: Callable[[object, int], str], cols: int = 8) -> Figure:
    """One block of thumbnails per configuration (config, rows with `example_id`, images x, labels y), each image
    scaled to its own range and titled `caption(row, label)`: the galleries of Figure 7 and of the highest-mem
    clean examples draw the same way."""
    blocks = [(config, rows, x, y, max(1, math.ceil(len(rows) / cols))) for config, rows, x, y in shown]
    fig = new_figure(cols * 1.3, sum(b[4] for b in blocks) * 1.5 + 0.45 * len(blocks))
    subfigs = fig.subfigures(len(blocks), 1, height_ratios=[b[4] for b in blocks], squeeze=False)[:, 0]
    for sub, (config, rows, x, y, n_rows) in zip(subfigs, blocks, strict=True):
        sub.suptitle(config_label(config))
        axes = sub.subplots(n_rows, cols, squeeze=False).ravel()
        for ax in axes:
            ax.set_axis_off()
        for ax, row in zip(axes, rows.itertuples(index=False), strict=False):
            image = x[int(row.example_id)]
            image = np.moveaxis(image, 0, -1) if image.ndim == 3 else image
            lo, hi = float(image.min()), float(image.max())
            image = (image - lo) / (hi - lo) if hi > lo else np.zeros_like(image)
            if image.ndim == 3 and image.shape[-1] == 1:
                image = image[..., 0]
            ax.imshow(image, cmap="gray" if image.ndim == 2 else None, interpolation="nearest")
            ax.set_title(caption(row, int(y[int(row.example_id)])), fontsize=TEXT_PT)
    return fig
