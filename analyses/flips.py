"""Neuron flipping (paper Figure 5): how many units must be zeroed to flip an example, what the edit costs
the model elsewhere, and in which layers the removed units sit; clean versus noisy target examples."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from analyses import paper
from analyses.plotting import Output, config_label, configs, wrap_grid
from analyses.stats import across_seeds, group_columns

KINDS = ("clean", "noisy")
EVAL_SETS = (("clean_acc", "clean train"), ("noisy_acc", "noisy train"), ("test_acc", "test"))


def _with_kind(flips: pd.DataFrame) -> pd.DataFrame:
    """Add 'kind' = clean/noisy for the target example, the split every panel of Figure 5 compares."""
    return flips.assign(kind=np.where(flips["is_noisy"].astype(bool), "noisy", "clean"))


def figure5a(flips: pd.DataFrame) -> Output:
    """Units removed until the prediction flips, clean vs noisy targets.

    Per run and kind: median and mean units over the examples that flipped, the fraction that flipped
    before the cap, and the number analysed; then across seeds. The cap censors: an example that hit it is
    left out of the median and mean (its count is unknown, only larger than the cap) and counted in
    `flipped_frac`, which the figure shows beside each median. The paper's approximate 'about 5' for noisy
    examples is put beside noisy rows of a matching setting.
    """
    df = _with_kind(flips)
    cols = group_columns(df)
    flipped = df[df["flipped"].astype(bool)]
    per_run = df.groupby(cols + ["run_id", "kind"], dropna=False).agg(
        n_examples=("example_id", "size"), flipped_frac=("flipped", "mean")
    )
    units = flipped.groupby(cols + ["run_id", "kind"], dropna=False)["n_units"].agg(
        median_units="median", mean_units="mean"
    )
    per_run = per_run.join(units).reset_index()
    table = across_seeds(per_run, ["median_units", "mean_units", "flipped_frac", "n_examples"], keys=["kind"])
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
    groups = list(configs(df))
    fig, axes = wrap_grid(len(groups))
    for ax, (config, rows) in zip(axes, groups, strict=False):
        done = rows[rows["flipped"].astype(bool)]
        top = max(1, int(done["n_units"].max())) if len(done) else 1
        bins = (
            np.arange(0.5, top + 1.5) if top <= 40 else np.unique(np.geomspace(1, top + 1, 30).round()) - 0.5
        )
        for kind in KINDS:
            values = done.loc[done["kind"] == kind, "n_units"]
            if len(values):
                share = len(values) / max(1, int((rows["kind"] == kind).sum()))
                patches = ax.hist(
                    values, bins=bins, alpha=0.55,
                    label=f"{kind}: median {values.median():g} of the {share:.0%} that flipped",
                )[2]
                ax.axvline(values.median(), ls="--", lw=1, color=patches[0].get_facecolor())
        if top > 40:
            ax.set_xscale("log")
        not_flipped = int((~rows["flipped"].astype(bool)).sum())
        ax.set_title(
            f"{config_label(config)} (n={rows['run_id'].nunique()})\n"
            f"{not_flipped} example(s) hit the cap unflipped: out of the median, in the flipped share",
            fontsize=8,
        )
        ax.set_xlabel("units removed to flip")
        ax.set_ylabel("examples")
        ax.legend(fontsize=7)
    return Output(table, fig)


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
    table = across_seeds(df, drops, keys=["kind"])
    if table.empty:
        return Output(table, None)
    groups = list(configs(table))
    fig, axes = wrap_grid(len(groups))
    for ax, (config, rows) in zip(axes, groups, strict=False):
        x = np.arange(len(drops))
        for offset, kind in zip((-0.2, 0.2), KINDS, strict=False):
            row = rows[rows["kind"] == kind]
            if row.empty:
                continue
            means = np.array([row[f"{d}_mean"].iloc[0] for d in drops], dtype=float)
            lo = np.array([row[f"{d}_lo"].iloc[0] for d in drops], dtype=float)
            hi = np.array([row[f"{d}_hi"].iloc[0] for d in drops], dtype=float)
            err = np.vstack([means - lo, hi - means]) if np.isfinite(lo).all() else None
            ax.bar(x + offset, means, 0.4, yerr=err, capsize=3, label=f"{kind} target")
        names = dict(EVAL_SETS)
        ax.set_xticks(x, [names[d.removesuffix("_drop")] for d in drops], fontsize=8)
        ax.axhline(0, color="black", lw=0.6)
        ax.set_ylabel("accuracy lost by the edit")
        ax.set_title(f"{config_label(config)} (n={int(rows['n_seeds'].max())})", fontsize=8)
        ax.legend(fontsize=7)
    return Output(table, fig)


def unit_groups(cell: object) -> list[str]:
    """The layer-group names of one example's removed units (Parquet gives a list/array of dicts)."""
    if cell is None or (isinstance(cell, float) and np.isnan(cell)):
        return []
    return [str(unit["group"]) for unit in cell]


def figure5c(
    flips: pd.DataFrame, group_order: Mapping[str, Sequence[str]] | Sequence[str] | None = None
) -> Output:
    """Where the removed units sit: per flipped example, the fraction of its removed units in each layer
    group; averaged over the run's examples of a kind, then across seeds. Every example weighs the same: one
    example edited up to a 1000-unit cap would otherwise outweigh hundreds that flipped after about five.
    Examples that hit the cap without flipping are left out and counted (`n_capped`, per run and kind).

    Every group seen in a configuration is zero-filled for the examples that removed nothing there, so a zero
    counts rather than vanishing from the mean. `group_order` gives the forward order of the groups, per
    architecture ({arch: [group, ...]}; the report takes it from the gradient/rewinding tables) or one list
    for all; groups it does not name follow in order of first appearance.
    """
    df = _with_kind(flips)
    cols = group_columns(df)
    capped = (~df["flipped"].astype(bool)).groupby([df["run_id"], df["kind"]]).sum()  # run_id fixes the config
    records = []
    for row in df[df["flipped"].astype(bool)][cols + ["run_id", "kind", "example_id", "units"]].itertuples(
            index=False):
        base = row[: len(cols) + 3]
        for group in unit_groups(row[-1]):
            records.append((*base, group))
    exploded = pd.DataFrame(records, columns=cols + ["run_id", "kind", "example_id", "group"])
    keys = ["kind", "group_index", "group"]
    if exploded.empty:
        empty = exploded.drop(columns="example_id").assign(fraction=[], group_index=[], n_capped=[])
        return Output(across_seeds(empty, ["fraction", "n_capped"], keys=keys), None)
    parts = []
    for config, rows in configs(exploded, cols):
        seen = list(dict.fromkeys(rows["group"]))
        known = group_order.get(config.get("arch"), []) if isinstance(group_order, Mapping) else group_order
        order = [g for g in dict.fromkeys(list(known or []) + seen) if g in set(seen)]
        counts = rows.groupby(["run_id", "kind", "example_id", "group"]).size().unstack("group", fill_value=0)
        counts = counts.reindex(columns=order, fill_value=0)
        per_example = counts.div(counts.sum(axis=1), axis=0)
        per_run = per_example.groupby(level=["run_id", "kind"]).mean()
        long = per_run.stack().rename("fraction").reset_index()
        long["group_index"] = long["group"].map({g: i for i, g in enumerate(order)})
        long["n_capped"] = [int(capped.get((r, k), 0)) for r, k in zip(long["run_id"], long["kind"], strict=True)]
        parts.append(long.assign(**config))
    table = across_seeds(pd.concat(parts, ignore_index=True), ["fraction", "n_capped"], keys=keys)
    groups = list(configs(table))
    fig, axes = wrap_grid(len(groups), max_cols=2, size=(5.2, 3.3))
    for ax, (config, rows) in zip(axes, groups, strict=False):
        names = list(rows.sort_values("group_index")["group"].drop_duplicates())
        x = np.arange(len(names))
        for offset, kind in zip((-0.2, 0.2), KINDS, strict=False):
            part = rows[rows["kind"] == kind].set_index("group").reindex(names)
            if part["fraction_mean"].isna().all():
                continue
            means = part["fraction_mean"].to_numpy(float)
            lo, hi = part["fraction_lo"].to_numpy(float), part["fraction_hi"].to_numpy(float)
            err = np.vstack([means - lo, hi - means]) if np.isfinite(lo).all() else None
            n_capped = float(part["n_capped_mean"].dropna().iloc[0])
            ax.bar(x + offset, means, 0.4, yerr=err, capsize=2,
                   label=f"{kind} targets ({n_capped:g} capped per run, left out)")
        ax.set_xticks(x, names, rotation=60, fontsize=7)
        ax.set_ylabel("fraction of an example's removed units")
        ax.set_title(f"{config_label(config)} (n={int(rows['n_seeds'].max())}; flipped examples weigh equally)",
                     fontsize=8)
        ax.legend(fontsize=7)
    return Output(table, fig)
