"""Neuron flipping (paper Figure 5): how many units must be zeroed to flip an example, what the edit costs
the model elsewhere, and in which layers the removed units sit; clean versus noisy target examples."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from analyses import paper
from analyses.panels import paper_mark, share_axes
from analyses.plotting import (
    PERCENT,
    Output,
    config_title,
    configs,
    errorbars,
    integer_ticks,
    legend_below,
    legend_right,
    seed_points,
    styled,
    wrap_grid,
)
from analyses.stats import across_seeds, declare, group_columns
from sweep.schemas import ACC, DIFFERENCE

KINDS = ("clean", "noisy")
COLOURS = {"clean": "tab:blue", "noisy": "tab:red"}
EVAL_SETS = (("clean_acc", "clean train"), ("noisy_acc", "noisy train"), ("test_acc", "test"))


RULE = "flip_units"  # the row column recording the unit rule (outputs / paper): rows of two rules never pool
declare({"median_units": "units", "censored_median_units": "units", "mean_units": "units", "flipped_frac": ACC,
         "n_examples": "examples", "cap_units": "units", "fraction": ACC, "n_capped": "examples",
         **{f"{column}_drop": DIFFERENCE for column, _ in EVAL_SETS}})


def _with_kind(flips: pd.DataFrame) -> pd.DataFrame:
    """Add 'kind' = clean/noisy for the target example, the split every panel of Figure 5 compares."""
    return flips.assign(kind=np.where(flips["is_noisy"].astype(bool), "noisy", "clean"))


def _keys(flips: pd.DataFrame, *more: str) -> list[str]:
    """The unit rule (where the rows record it), then `more`: what every Figure 5 table is split by beyond the
    configuration."""
    return ([RULE] if RULE in flips.columns else []) + list(more)


def censored_median(units: pd.Series, flipped: pd.Series) -> float:
    """Median units to flip over every analysed example, an unflipped (capped) one counting as +infinity: its
    count is only known to exceed the cap. Infinite when at least half of them hit the cap (then the median
    itself is only known to exceed it); NaN for no examples."""
    values = np.where(flipped.astype(bool).to_numpy(), units.to_numpy(dtype=float), np.inf)
    if values.size == 0:
        return float("nan")
    ordered = np.sort(values)
    middle = (values.size - 1) / 2
    low, high = ordered[int(np.floor(middle))], ordered[int(np.ceil(middle))]
    return float(high) if not np.isfinite(high) else float((low + high) / 2)


def capped_text(value: float, cap: float, digits: int | None = 1) -> str:
    """A censored median for a table: the number (`digits` decimals, None: as short as it goes), or '> cap' when
    it is infinite (at least half capped)."""
    if np.isnan(value):
        return "-"
    if np.isinf(value):
        return f"> {cap:g}" if np.isfinite(cap) else "> cap"
    return f"{value:g}" if digits is None else f"{value:.{digits}f}"


def _title(config: dict, n: int) -> str:
    """The panel title, with the unit rule where the rows record it."""
    rule = f"\nunits: {config[RULE]} rule" if isinstance(config.get(RULE), str) else ""
    return config_title(config, n) + rule


@styled
def figure5a(flips: pd.DataFrame) -> Output:
    """Units removed until the prediction flips, clean vs noisy targets.

    Per run and kind: the censored median over every analysed example (`censored_median_units`: one that hit
    the cap unflipped counts as +infinity, its count being only known to exceed the cap; infinite, shown as
    '> cap', when at least half hit it), the median and mean units over the examples that flipped, the fraction
    that flipped before the cap, the number analysed and the cap (`cap_units`: the most units an unflipped
    example was given; NaN when every example flipped); then across seeds (an infinite censored median in any
    seed makes the across-seed mean '> cap'). The paper's approximate 'about 5' for noisy examples is put
    beside noisy rows of a matching setting counted by the paper's unit rule.
    """
    df = _with_kind(flips)
    cols = group_columns(df)
    keys = _keys(df, "kind")
    flipped = df[df["flipped"].astype(bool)]
    by = cols + ["run_id"] + keys
    per_run = df.groupby(by, dropna=False).agg(
        n_examples=("example_id", "size"), flipped_frac=("flipped", "mean")
    )
    per_run["censored_median_units"] = df.groupby(by, dropna=False)[["n_units", "flipped"]].apply(
        lambda g: censored_median(g["n_units"], g["flipped"]))
    capped = df[~df["flipped"].astype(bool)]
    per_run["cap_units"] = capped.groupby(by, dropna=False)["n_units"].max().astype(float)
    units = flipped.groupby(by, dropna=False)["n_units"].agg(
        median_units="median", mean_units="mean"
    )
    per_run = per_run.join(units).reset_index()
    values = ["censored_median_units", "median_units", "mean_units", "flipped_frac", "n_examples", "cap_units"]
    table = across_seeds(per_run, values, keys=keys)
    paper_units, notes = [], []
    for _, row in table.iterrows():
        number = paper.flip_units_noisy(row)
        if number is None:
            paper_units.append(np.nan)
            notes.append(paper.NO_PAPER)
        elif row["kind"] == "noisy":
            paper_units.append(number)
            notes.append("paper: about 5 units for noisy examples (approximate, from the text)")
        else:
            paper_units.append(np.nan)
            notes.append("paper: clean examples need far more units (no number given)")
    table["paper_units"] = paper_units
    table["paper_note"] = notes
    if table.empty:
        return Output(table, None)
    groups = list(configs(df, cols + _keys(df)))
    fig, axes = wrap_grid(len(groups), max_cols=2, size=(6.2, 3.0))
    bins, log = _unit_bins(df[df["flipped"].astype(bool)]["n_units"])
    for ax, (config, rows) in zip(axes, groups, strict=False):
        done = rows[rows["flipped"].astype(bool)]
        for kind in KINDS:
            values = done.loc[done["kind"] == kind, "n_units"]
            if len(values):
                analysed = rows[rows["kind"] == kind]
                share = len(values) / max(1, len(analysed))
                cap = analysed.loc[~analysed["flipped"].astype(bool), "n_units"].max()
                everyone = capped_text(censored_median(analysed["n_units"], analysed["flipped"]),
                                       float(cap) if pd.notna(cap) else np.nan, digits=None)
                ax.hist(
                    values, bins=bins, alpha=0.55, color=COLOURS[kind],
                    label=f"{kind}: {share:.0%} flipped; median {values.median():g} of those, {everyone} of all",
                )
                ax.axvline(values.median(), ls="--", lw=1, color=COLOURS[kind])
        if log:
            ax.set_xscale("log")
        number = paper.flip_units_noisy(config)
        if number is not None:
            paper_mark(ax, number, f"paper: about {number:g} (noisy)", axis="x")
        not_flipped = int((~rows["flipped"].astype(bool)).sum())
        ax.set_title(_title(config, rows["run_id"].nunique()))
        ax.set_xlabel("units removed until the prediction flips")
        ax.set_ylabel("examples (count)")
        integer_ticks(ax, "y")
        legend_right(ax, title=f"targets (dashed: median of the flipped)\n{not_flipped} hit the cap unflipped: "
                               "'of all'\ncounts them as more than the cap")
    share_axes(axes, x=True, y=True)
    return Output(table, fig)


def _unit_bins(units: pd.Series, linear_up_to: int = 40) -> tuple[np.ndarray, bool]:
    """(bin edges, log scale?) for every panel of Figure 5a at once, from the flipped examples' unit counts of
    all panels: one bin per unit while the largest count is small, else ~30 log-spaced bins. One choice for the
    whole figure, so no panel reads on a linear axis beside a log one."""
    top = max(1, int(units.max())) if len(units) else 1
    if top <= linear_up_to:
        return np.arange(0.5, top + 1.5), False
    return np.unique(np.geomspace(1, top + 1, 30).round()) - 0.5, True


@styled
def figure5b(flips: pd.DataFrame) -> Output:
    """Accuracy lost by the edited model (unedited minus edited, on the fixed evaluation sample) after a
    flip, clean vs noisy targets; only examples that flipped count, since the others were edited up to the
    cap without reaching the point the paper measures."""
    df = _with_kind(flips)
    df = df[df["flipped"].astype(bool)].copy()
    drops = []
    for column, _ in EVAL_SETS:
        if column in df.columns and f"{column}_base" in df.columns:
            df[f"{column}_drop"] = df[f"{column}_base"].astype(float) - df[column].astype(float)
            drops.append(f"{column}_drop")
    table = across_seeds(df, drops, keys=_keys(df, "kind"))
    if table.empty:
        return Output(table, None)
    groups = list(configs(table, group_columns(table) + _keys(table)))
    fig, axes = wrap_grid(len(groups), size=(4.0, 3.0))
    names = dict(EVAL_SETS)
    for ax, (config, rows) in zip(axes, groups, strict=False):
        x = np.arange(len(drops))
        for offset, kind in zip((-0.2, 0.2), KINDS, strict=False):
            row = rows[rows["kind"] == kind]
            if row.empty:
                continue
            means = np.array([row[f"{d}_mean"].iloc[0] for d in drops], dtype=float) * PERCENT
            lo = np.array([row[f"{d}_lo"].iloc[0] for d in drops], dtype=float) * PERCENT
            hi = np.array([row[f"{d}_hi"].iloc[0] for d in drops], dtype=float) * PERCENT
            ax.bar(x + offset, means, 0.4, yerr=errorbars(means, lo, hi), capsize=3, color=COLOURS[kind],
                   label=f"{kind} target flipped")
            seed_points(ax, x + offset, [row[f"{d}_seeds"].iloc[0] for d in drops], PERCENT)
        ax.set_xticks(x, [names[d.removesuffix("_drop")] for d in drops])
        ax.axhline(0, color="black", lw=0.6)
        ax.set_xlabel("evaluation set")
        ax.set_ylabel("accuracy lost by the edit\n(percentage points)")
        ax.set_title(_title(config, int(rows["n_seeds"].max())))
    share_axes(axes)
    legend_below(fig, axes)
    return Output(table, fig)


def unit_layers(cell: object) -> list[tuple[int | None, str]]:
    """(layer index, layer-group name) of one example's removed units, in removal order (Parquet gives a
    list/array of dicts {layer, layer_name, module, unit}). Results written before those names ({group,
    layer: module path, index}) give (None, group): their forward order then comes from `group_order`."""
    if cell is None or (isinstance(cell, float) and np.isnan(cell)):
        return []
    return [
        (int(unit["layer"]), str(unit["layer_name"])) if "layer_name" in unit else (None, str(unit["group"]))
        for unit in cell
    ]


def unit_groups(cell: object) -> list[str]:
    """The layer-group names of one example's removed units."""
    return [name for _, name in unit_layers(cell)]


@styled
def figure5c(
    flips: pd.DataFrame, group_order: Mapping[str, Sequence[str]] | Sequence[str] | None = None
) -> Output:
    """Where the removed units sit: per flipped example, the share of its removed units in each layer group;
    averaged over the run's examples of a kind, then across seeds. Every example weighs the same: one
    example edited up to a 1000-unit cap would otherwise outweigh hundreds that flipped after about five.
    Examples that hit the cap without flipping are left out and counted (`n_capped`, per run and kind).

    Every group seen in a configuration is zero-filled for the examples that removed nothing there, so a zero
    counts rather than vanishing from the mean. Groups are in forward order, by the units' `layer` index;
    `group_order` ({arch: [layer_name, ...]} or one list for all) only orders results that lack that index,
    and groups it does not name follow in order of first appearance. The table's `fraction` is a share in
    [0, 1]; the figure draws it in percent.
    """
    df = _with_kind(flips)
    cols = group_columns(df) + _keys(df)
    capped = (~df["flipped"].astype(bool)).groupby([df["run_id"], df["kind"]]).sum()  # run_id fixes the config
    records = []
    for row in df[df["flipped"].astype(bool)][cols + ["run_id", "kind", "example_id", "units"]].itertuples(
            index=False):
        base = row[: len(cols) + 3]
        for index, name in unit_layers(row[-1]):
            records.append((*base, index, name))
    exploded = pd.DataFrame(records, columns=cols + ["run_id", "kind", "example_id", "index", "layer_name"])
    keys = ["kind", "layer", "layer_name"]
    if exploded.empty:
        empty = exploded.drop(columns=["example_id", "index"]).assign(fraction=[], layer=[], n_capped=[])
        return Output(across_seeds(empty, ["fraction", "n_capped"], keys=keys), None)
    parts = []
    for config, rows in configs(exploded, cols):
        seen = list(dict.fromkeys(rows["layer_name"]))
        known = group_order.get(config.get("arch"), []) if isinstance(group_order, Mapping) else group_order
        fallback = [g for g in dict.fromkeys(list(known or []) + seen) if g in set(seen)]
        index = rows.groupby("layer_name")["index"].min()
        order = sorted(seen, key=lambda g: (pd.isna(index[g]), index[g] if pd.notna(index[g]) else 0,
                                            fallback.index(g)))
        number = {g: int(index[g]) if pd.notna(index[g]) else i for i, g in enumerate(order)}
        counts = rows.groupby(["run_id", "kind", "example_id", "layer_name"]).size()
        counts = counts.unstack("layer_name", fill_value=0).reindex(columns=order, fill_value=0)
        per_example = counts.div(counts.sum(axis=1), axis=0)
        per_run = per_example.groupby(level=["run_id", "kind"]).mean()
        long = per_run.stack().rename("fraction").reset_index()
        long["layer"] = long["layer_name"].map(number)
        long["n_capped"] = [int(capped.get((r, k), 0)) for r, k in zip(long["run_id"], long["kind"], strict=True)]
        parts.append(long.assign(**config))
    table = across_seeds(pd.concat(parts, ignore_index=True), ["fraction", "n_capped"], keys=_keys(df, *keys))
    table = table.sort_values(cols + ["kind", "layer"], kind="stable").reset_index(drop=True)
    groups = list(configs(table, cols))
    fig, axes = wrap_grid(len(groups), max_cols=2, size=(5.6, 3.6))
    for ax, (config, rows) in zip(axes, groups, strict=False):
        layers = rows.drop_duplicates("layer_name").sort_values("layer")
        names = list(layers["layer_name"])
        x = np.arange(len(names))
        capped_note = []
        for offset, kind in zip((-0.2, 0.2), KINDS, strict=False):
            part = rows[rows["kind"] == kind].set_index("layer_name").reindex(names)
            if part["fraction_mean"].isna().all():
                continue
            means = part["fraction_mean"].to_numpy(float) * PERCENT
            lo, hi = part["fraction_lo"].to_numpy(float) * PERCENT, part["fraction_hi"].to_numpy(float) * PERCENT
            ax.bar(x + offset, means, 0.4, yerr=errorbars(means, lo, hi), capsize=2, color=COLOURS[kind],
                   label=f"{kind} targets (flipped)")
            seed_points(ax, x + offset, list(part["fraction_seeds"]), PERCENT)
            capped_note.append(f"{kind} {float(part['n_capped_mean'].dropna().iloc[0]):g}")
        ax.set_xticks(x, [f"{i} {g}" for i, g in zip(layers["layer"], names, strict=True)], rotation=50,
                      ha="right", rotation_mode="anchor")
        ax.set_xlabel("layer group (forward order)")
        ax.set_ylabel("share of an example's\nremoved units (%)")
        ax.set_title(_title(config, int(rows["n_seeds"].max()))
                     + "\ncapped per run, left out: " + ", ".join(capped_note))
    share_axes(axes)
    legend_below(fig, axes)
    return Output(table, fig)
