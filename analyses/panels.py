"""What the panels of one figure share, and the paper's numbers drawn on them.

Panels that show the same quantity are read against each other, so they get one scale and one range
(`share_axes`): a reader comparing two histograms or two bar charts must not have to re-read the tick labels of
each. Where a published number belongs to a panel's setting (analyses.paper / analyses.published decide that),
it is drawn as a labelled reference mark (`paper_mark`) rather than only named in a sentence under the figure;
where nothing published matches, nothing is drawn. Every mark carries the gid `PAPER_MARK`, so tests and
notebooks find the marks of a figure with `paper_marks`.
"""

from __future__ import annotations

from collections.abc import Sequence

from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from analyses.plotting import TEXT_PT

PAPER_MARK = "paper-mark"  # gid of every reference line and of its label
PAPER_LEGEND = "paper's number, same setting (dashes)"
MARK_STYLE = {"color": "indigo", "ls": (0, (4, 2)), "lw": 1.3}  # unlike every data colour and chance line
# the label of a mark: readable over bars and lines (a pale box), found by its gid
LABEL_STYLE = {"fontsize": TEXT_PT, "color": MARK_STYLE["color"], "gid": PAPER_MARK,
               "bbox": {"facecolor": "white", "alpha": 0.75, "edgecolor": "none", "pad": 0.6}}


def share_axes(axes: Sequence[Axes], x: bool = False, y: bool = True) -> None:
    """Give every panel of `axes` the union of their ranges along y (and x when `x`), so equal heights mean equal
    values across panels. Call it after everything is drawn (the ranges are then final). The panels must already
    use one scale along a shared axis: a figure that mixes a log and a linear axis for one quantity is a bug of
    the figure, so it raises rather than hiding it."""
    axes = list(axes)
    if len(axes) < 2:
        return
    for name, wanted in (("x", x), ("y", y)):
        if not wanted:
            continue
        scales = {getattr(ax, f"get_{name}scale")() for ax in axes}
        if len(scales) > 1:
            raise ValueError(f"panels mix {' and '.join(sorted(scales))} {name} scales")
        limits = [getattr(ax, f"get_{name}lim")() for ax in axes]
        low = min(min(pair) for pair in limits)
        high = max(max(pair) for pair in limits)
        for ax in axes:
            getattr(ax, f"set_{name}lim")(low, high)


def paper_mark(ax: Axes, value: float, label: str, at: float | None = None, width: float = 0.3,
               axis: str = "y", legend: str = PAPER_LEGEND) -> list[Artist]:
    """Draw `value` as a dashed reference (`MARK_STYLE`) with `label` written beside it; returns the artists drawn.

    axis 'y': a horizontal line across the panel, or (`at` given) a short one `width` wide centred on x = `at`,
    over one bar, with the label standing above it (leave the panel room above its tallest value).
    axis 'x': a vertical line at x = `value`, the label along it. The
    first mark of a panel carries `legend` as its legend entry, so a shared legend explains the dashes once."""
    first = not paper_marks(ax)
    style = {**MARK_STYLE, "gid": PAPER_MARK, "label": legend if first else "_nolegend_"}
    if axis == "x":
        line = ax.axvline(value, **style)
        text = ax.text(value, 0.98, f" {label}", transform=ax.get_xaxis_transform(), rotation=90, ha="right",
                       va="top", **LABEL_STYLE)
    elif at is None:
        line = ax.axhline(value, **style)
        text = ax.text(0.99, value, label, transform=ax.get_yaxis_transform(), ha="right", va="bottom",
                       **LABEL_STYLE)
    else:
        (line,) = ax.plot([at - width / 2, at + width / 2], [value, value], scalex=False, scaley=False,
                          **{**style, "lw": 1.6})
        # upright text would be wider than a bar and run into its neighbour's; standing, it fits over its own bar
        text = ax.annotate(label, (at, value), xytext=(0, 2), textcoords="offset points", rotation=90, ha="center",
                           va="bottom", annotation_clip=False, **LABEL_STYLE)
    return [line, text]


def paper_marks(ax: Axes) -> list[Line2D]:
    """The reference lines `paper_mark` drew on `ax`."""
    return [line for line in ax.lines if line.get_gid() == PAPER_MARK]


def paper_labels(ax: Axes) -> list[str]:
    """The labels written beside the reference lines of `ax`."""
    return [text.get_text().strip() for text in ax.texts if text.get_gid() == PAPER_MARK]


def drop_unused(fig: Figure, used: Sequence[Axes]) -> None:
    """Remove every axes of `fig` not in `used`: a grid slot without data is deleted, not left as an empty
    frame or an invisible placeholder."""
    keep = {id(ax) for ax in used}
    for ax in list(fig.axes):
        if id(ax) not in keep and ax.get_label() != "<colorbar>":
            fig.delaxes(ax)
