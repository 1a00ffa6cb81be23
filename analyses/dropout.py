"""Example-tied dropout (paper Tables 1 and 3, Figure 7): does dropping the memorization channels forget
the noisy examples while keeping clean and test accuracy, compared with ordinary dropout baselines."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from analyses import paper
from analyses.panels import MARK_STYLE, PAPER_LEGEND, paper_mark, share_axes
from analyses.plotting import (
    PERCENT,
    Output,
    config_label,
    config_title,
    configs,
    errorbars,
    legend_below,
    seed_points,
    styled,
    thumbnail_gallery,
    wrap_grid,
)
from analyses.stats import across_seeds, group_columns

ACC = ("clean_acc", "noisy_acc", "test_acc")
# Table 1 rows: (phase, label). "before" = clean/noisy under each example's own mask, test under `all`.
PHASES = (
    ("before", "before dropout (tied; test: all)"),
    ("after", "after dropout (drop, paper factor)"),
    ("after-expected", "after dropout (drop, expected factor)"),
)
# Table 3 rows: (variant, mode, method label).
METHODS = (
    ("dropout", "test", "standard dropout"),
    ("sparse", "test", "sparse network"),
    ("tied", "drop", "example-tied (paper factor)"),
    ("tied", "drop-expected", "example-tied (expected factor)"),
)


def _table1_rows(dropout: pd.DataFrame) -> pd.DataFrame:
    """Per tied run, one row per Table 1 phase, assembled from the evaluation modes."""
    cols = group_columns(dropout)
    tied = dropout[dropout["variant"] == "tied"] if "variant" in dropout.columns else dropout
    rows = []
    for run_id, run in tied.groupby("run_id", sort=True):
        modes = {m: r.iloc[0] for m, r in run.groupby("mode")}
        config = {c: run[c].iloc[0] for c in cols}
        if "tied" in modes:
            test = modes["all"]["test_acc"] if "all" in modes else math.nan
            rows.append(
                {
                    **config,
                    "run_id": run_id,
                    "phase": "before",
                    "clean_acc": modes["tied"]["clean_acc"],
                    "noisy_acc": modes["tied"]["noisy_acc"],
                    "test_acc": test,
                    "scale": modes["tied"].get("scale", 1.0),
                }
            )
        for phase, mode in (("after", "drop"), ("after-expected", "drop-expected")):
            if mode in modes:
                m = modes[mode]
                rows.append(
                    {
                        **config,
                        "run_id": run_id,
                        "phase": phase,
                        "clean_acc": m["clean_acc"],
                        "noisy_acc": m["noisy_acc"],
                        "test_acc": m["test_acc"],
                        "scale": m.get("scale"),
                    }
                )
    return pd.DataFrame(rows, columns=cols + ["run_id", "phase", *ACC, "scale"])


@styled
def table1(dropout: pd.DataFrame) -> Output:
    """Paper Table 1: clean / noisy / test accuracy before and after dropping the memorization channels of
    example-tied runs, across seeds, with the paper's numbers beside matching settings."""
    table = across_seeds(_table1_rows(dropout), [*ACC, "scale"], keys=["phase"])
    rank = {p: i for i, (p, _) in enumerate(PHASES)}
    table.insert(table.columns.get_loc("phase") + 1, "phase_label", table["phase"].map(dict(PHASES)))
    table = table.assign(_rank=table["phase"].map(rank)).sort_values(group_columns(table) + ["_rank"])
    table = table.drop(columns="_rank").reset_index(drop=True)
    papers = []
    for _, row in table.iterrows():
        numbers = None
        if row["phase"] in ("before", "after"):
            numbers = paper.table1_numbers(row, row["phase"])
        papers.append(numbers)
    for i, column in enumerate(ACC):
        table[f"paper_{column}"] = [p[i] if p else np.nan for p in papers]
    table["paper_note"] = [
        "paper Table 1"
        if p
        else (paper.NO_PAPER if row_phase != "after-expected" else "the paper used its own factor only")
        for p, row_phase in zip(papers, table["phase"], strict=False)
    ]
    return Output(table, _bars(table, "phase", [p for p, _ in PHASES], dict(PHASES)) if len(table) else None)


@styled
def table3(dropout: pd.DataFrame) -> Output:
    """Paper Table 3: accuracy after dropping, for example-tied dropout against standard dropout and a
    sparse network (baselines evaluated in their usual test mode), grouped by dataset/arch/noise/width."""
    wanted = pd.Series(False, index=dropout.index)
    for variant, mode, _ in METHODS:
        wanted |= (dropout["variant"] == variant) & (dropout["mode"] == mode)
    rows = dropout[wanted]
    table = across_seeds(rows, list(ACC), keys=["mode"])
    labels = {(v, m): name for v, m, name in METHODS}
    methods = [labels[(v, m)] for v, m in zip(table["variant"], table["mode"], strict=True)]
    table.insert(table.columns.get_loc("mode") + 1, "method", methods)
    rank = {name: i for i, (_, _, name) in enumerate(METHODS)}
    keys = [c for c in ("dataset", "arch", "noise", "width") if c in table.columns]
    table = table.assign(_rank=table["method"].map(rank)).sort_values(keys + ["_rank"]).drop(columns="_rank")
    table = table.reset_index(drop=True)
    papers = []
    for _, row in table.iterrows():
        numbers = None
        if row["mode"] != "drop-expected":
            numbers = paper.table3_numbers(row)
        papers.append(numbers)
    table["paper_clean_acc"] = [p[0] if p else np.nan for p in papers]
    table["paper_noisy_acc"] = [p[1] if p else np.nan for p in papers]
    notes = []
    for numbers, (_, row) in zip(papers, table.iterrows(), strict=True):
        if numbers:
            notes.append("paper Table 3")
        elif row["mode"] == "drop-expected" and paper.matches(row, "cifar10"):
            notes.append("the paper used its own factor only")
        else:
            notes.append(paper.NO_PAPER)
    table["paper_note"] = notes
    if table.empty:
        return Output(table, None)
    return Output(table, _bars(table, "method", [name for _, _, name in METHODS], group=keys))


ACC_NAMES = {"clean_acc": "clean train", "noisy_acc": "noisy train", "test_acc": "test"}


def _bars(table: pd.DataFrame, by: str, order: list[str], labels: dict | None = None, group=None):
    """Grouped bars in % (one group per accuracy, one bar per phase/method in `order`, the same colour for it
    in every panel) with seed intervals, the paper's numbers as black dashes over the bar they compare with (the
    value written above) where the setting matches, one y range for all panels, one legend below."""
    entries = [e for e in order if e in set(table[by])]
    colours = {e: f"C{i}" for i, e in enumerate(entries)}
    names = {e: labels[e] if labels else e for e in entries}
    groups = list(configs(table, group))
    fig, axes = wrap_grid(len(groups), max_cols=3, size=(4.0, 3.0))
    paper_shown = False
    has_paper = bool(np.isfinite(table[[c for c in table.columns if c.startswith("paper_") and c != "paper_note"]]
                                 .to_numpy(float)).any())
    for ax, (config, rows) in zip(axes, groups, strict=False):
        x = np.arange(len(ACC))
        width = 0.8 / max(len(rows), 1)
        for i, (_, row) in enumerate(rows.iterrows()):
            pos = x - 0.4 + width * (i + 0.5)
            means, lo, hi = (np.array([row[f"{v}_{s}"] for v in ACC], dtype=float) * PERCENT
                             for s in ("mean", "lo", "hi"))
            ax.bar(pos, np.nan_to_num(means), width, yerr=errorbars(means, lo, hi), capsize=2,
                   color=colours[row[by]], label=names[row[by]])
            seed_points(ax, pos, [row.get(f"{v}_seeds") for v in ACC], PERCENT)
            marks = np.array([row.get(f"paper_{v}", np.nan) for v in ACC], dtype=float) * PERCENT
            for at, mark in zip(pos, marks, strict=True):
                if np.isfinite(mark):
                    paper_mark(ax, float(mark), f"{mark:g}", at=float(at), width=width)
                    paper_shown = True
        ax.set_xticks(x, [ACC_NAMES[v] for v in ACC])
        ax.set_ylim(0, 128 if has_paper else 105)  # room above 100% for a mark's standing value
        ax.set_yticks(range(0, 101, 20))
        ax.set_xlabel("evaluation set")
        ax.set_ylabel("accuracy (%)")
        n = sorted(set(rows["n_seeds"].astype(int)))
        title = config_title(config, n[0]) if len(n) == 1 else config_title(config) + f" / n={n[0]}-{n[-1]} seeds"
        ax.set_title(title)
    share_axes(axes)
    handles = [Patch(color=colours[e]) for e in entries]
    labels_ = [names[e] for e in entries]
    if paper_shown:
        handles.append(Line2D([], [], **MARK_STYLE))
        labels_.append(PAPER_LEGEND)
    legend_below(fig, handles=handles, labels=labels_, ncols=min(len(handles), 3))
    return fig


def forgotten_clean(dropout_examples: pd.DataFrame) -> pd.DataFrame:
    """Per run: clean examples, how many were correct under their own mask, and how many of those are
    forgotten under `drop` (the paper's Figure 7 population)."""
    df = dropout_examples
    if "variant" in df.columns:
        df = df[df["variant"] == "tied"]
    clean = df[~df["is_noisy"].astype(bool)]
    tied_ok = clean["correct_tied"].astype(bool)
    forgotten = tied_ok & ~clean["correct_drop"].astype(bool)
    cols = group_columns(clean) + ["run_id"]
    out = (
        clean.assign(correct_tied=tied_ok, forgotten=forgotten)
        .groupby(cols, dropna=False)
        .agg(
            n_clean=("example_id", "size"),
            n_correct_tied=("correct_tied", "sum"),
            n_forgotten=("forgotten", "sum"),
        )
        .reset_index()
    )
    out["forgotten_frac"] = out["n_forgotten"] / out["n_correct_tied"].where(out["n_correct_tied"] > 0)
    return out


ImageLoader = Callable[[str], tuple[np.ndarray, np.ndarray]]


def dataset_images(data_dir: str = "data") -> ImageLoader:
    """A loader returning (train images N x C x H x W, train labels) for a dataset name, through the
    project's own dataset code; imported here, lazily, because it brings torch, which nothing else in
    analyses needs."""

    def load(name: str) -> tuple[np.ndarray, np.ndarray]:
        from sweep.data import load_dataset

        data = load_dataset(name, data_dir=data_dir, download=False)
        return data.train.x.cpu().numpy(), data.train.y.cpu().numpy()

    return load


@styled
def figure7(
    dropout_examples: pd.DataFrame,
    loader: ImageLoader | None = None,
    data_dir: str = "data",
    per_config: int = 24,
) -> tuple[Output, list[str]]:
    """Gallery of clean examples forgotten under `drop`: correct under their own mask, wrong once the
    memorization channels are dropped. Examples forgotten in more seeds come first.

    Returns the Output (table: config, example_id, forgotten_in, runs, label) and notes explaining anything
    that could not be shown (e.g. the dataset files are not available here); the table is complete even
    when no image can be drawn.
    """
    df = dropout_examples
    if "variant" in df.columns:
        df = df[df["variant"] == "tied"]
    cols = group_columns(df)
    df = df.assign(
        forgotten=df["correct_tied"].astype(bool)
        & ~df["correct_drop"].astype(bool)
        & ~df["is_noisy"].astype(bool)
    )
    runs = df.groupby(cols, dropna=False)["run_id"].nunique().rename("runs")
    hits = df[df["forgotten"]].groupby(cols + ["example_id"], dropna=False)["run_id"].nunique()
    table = hits.rename("forgotten_in").reset_index().join(runs, on=cols)
    table = table.sort_values(
        cols + ["forgotten_in", "example_id"], ascending=[True] * len(cols) + [False, True]
    )
    table = table.reset_index(drop=True)
    table["label"] = pd.array([pd.NA] * len(table), dtype="Int64")
    notes: list[str] = []
    if table.empty:
        return Output(table, None), ["no clean example was forgotten under drop"]
    load = loader or dataset_images(data_dir)
    images: dict[str, tuple[np.ndarray, np.ndarray] | None] = {}
    for dataset in table["dataset"].unique() if "dataset" in table else []:
        try:
            images[dataset] = load(str(dataset))
        except Exception as exc:  # noqa: BLE001 - torch or the files may be missing; the report says which
            images[dataset] = None
            notes.append(f"images for {dataset} not available here ({type(exc).__name__}: {exc})")
    shown = []
    for config, rows in configs(table, cols):
        pack = images.get(config.get("dataset"))
        if pack is None:
            continue
        x, y = pack
        valid = rows[rows["example_id"].between(0, len(x) - 1)]
        if len(valid) < len(rows):
            notes.append(
                f"{config_label(config)}: {len(rows) - len(valid)} example id(s) outside the dataset"
            )
        table.loc[valid.index, "label"] = y[valid["example_id"].to_numpy()].astype(int)
        shown.append((config, valid.head(per_config), x, y))
    if not shown:
        return Output(table, None), notes
    return Output(table, _gallery(shown)), notes


def _gallery(shown: list[tuple[dict, pd.DataFrame, np.ndarray, np.ndarray]]):
    """One row block of thumbnails per configuration, each titled with its id, label and seed count."""
    return thumbnail_gallery(shown, lambda row, label: f"#{row.example_id} label {label}\n"
                                                       f"{row.forgotten_in}/{row.runs} seeds")
