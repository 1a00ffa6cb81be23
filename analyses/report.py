"""The sweep's static HTML report: one section per paper figure/table plus the detection study.

`python -m analyses.report --results DIR --out DIR/report` (or `write_report`) writes index.html with every
figure beside it as a PNG (150 dpi, shown in the page) and an SVG (linked under it), and every section's numbers
as CSV, plus one ranked-suspects CSV per ordinary run (suspects/<run_id>.csv: every training example ranked by
each detection signal, the true flag beside it), so the page opens offline from a laptop or a cluster share. Rows
of auxiliary trainings (out-of-sample fold runs, cv_folds > 0; second-split forgetting runs, ssft_half > 0) are
in the aux_* tables: they feed only their signals and are left out of everything else (analyses.load). Partial
results are the normal case while a sweep runs: a missing or empty table, or a section that fails on odd data,
turns into a sentence in that section instead of stopping the report.
"""

from __future__ import annotations

import argparse
import html
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from analyses import paper
from analyses.curves import training_curves
from analyses.dropout import figure7, forgotten_clean, table1, table3
from analyses.flips import capped_text, figure5a, figure5b, figure5c
from analyses.gradients import figure1, figure2
from analyses.layers import CLEAN_TOLERANCE, best_rewind, figure3, figure4, final_retraining
from analyses.load import Results, table_files
from analyses.noise import VALUES, noise_figure
from analyses.plotting import DPI, save
from analyses.report_detection import detection_section
from analyses.report_localize import localize_section
from analyses.report_memorization import memorization_section
from analyses.report_tables import linked, table_html
from analyses.stats import MIN_SEEDS, SUFFIXES, fmt_interval, format_summary, group_columns
from sweep.errors import Interrupted

MAX_ROWS = 80

# Marks every <img> with data-loaded="yes"/"no" once the page has loaded and puts the totals on <body>; then
# loads each figure's SVG (the img's data-svg) and marks data-svg-loaded likewise, with its totals on <body>
# once every SVG has loaded or failed. A headless browser (the report's test) reads them from the DOM. It also
# puts the page's laid-out size there (data-page-height/-width, the window's data-window-width, and the figures'
# drawn heights summed, data-figures-height), so `chromium --headless --window-size=1400,1000 --dump-dom` measures
# how tall the page is and whether it overflows a narrow window.
IMAGE_CHECK = """<script>
window.addEventListener("load", function () {
  var images = document.querySelectorAll("img"), loaded = 0;
  images.forEach(function (img) {
    var ok = img.complete && img.naturalWidth > 0;
    img.setAttribute("data-loaded", ok ? "yes" : "no");
    if (ok) { loaded += 1; }
  });
  document.body.setAttribute("data-images-total", String(images.length));
  document.body.setAttribute("data-images-loaded", String(loaded));
  var root = document.documentElement, drawn = 0;
  images.forEach(function (img) { drawn += img.getBoundingClientRect().height; });
  document.body.setAttribute("data-page-height", String(root.scrollHeight));
  document.body.setAttribute("data-page-width", String(root.scrollWidth));
  document.body.setAttribute("data-window-width", String(root.clientWidth));
  document.body.setAttribute("data-figures-height", String(Math.round(drawn)));
  var figures = document.querySelectorAll("img[data-svg]"), svgs = 0, settled = 0;
  function done(img, ok) {
    img.setAttribute("data-svg-loaded", ok ? "yes" : "no");
    if (ok) { svgs += 1; }
    settled += 1;
    if (settled === figures.length) {
      document.body.setAttribute("data-svgs-total", String(figures.length));
      document.body.setAttribute("data-svgs-loaded", String(svgs));
    }
  }
  if (figures.length === 0) {
    document.body.setAttribute("data-svgs-total", "0");
    document.body.setAttribute("data-svgs-loaded", "0");
  }
  figures.forEach(function (img) {
    var probe = new Image();
    probe.onload = function () { done(img, probe.naturalWidth > 0); };
    probe.onerror = function () { done(img, false); };
    probe.src = img.getAttribute("data-svg");
  });
});
</script>"""

STYLE = """<style>
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1300px; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
img { max-width: 100%; height: auto; display: block; }
figure.plot { margin: .8em 0; } figure.plot figcaption { font-size: .85em; color: #555; }
div.scroll { max-width: 100%; overflow-x: auto; margin: .3em 0; }
table.data { border-collapse: collapse; font-size: .82em; }
table.data th, table.data td { border: 1px solid #ddd; padding: 1px 6px; text-align: right; white-space: nowrap; }
table.data td.text { white-space: normal; min-width: 24em; text-align: left; }
table.data th { background: #f3f3f3; } table.data tr[title] { cursor: help; }
p.constants { font-size: .85em; color: #444; margin: .4em 0 0; overflow-wrap: anywhere; }
p.csv-link { font-size: .9em; } ul.runs li { display: inline-block; margin-right: 1.2em; }
nav ul { padding-left: 0; } nav li { display: inline-block; margin: .1em 1.2em .1em 0; }
.caption { color: #444; } .paper { background: #f4f8ff; border-left: 3px solid #5b8def; padding: .3em .6em; }
.missing { background: #fff6e5; border-left: 3px solid #e0a030; padding: .3em .6em; }
.error { background: #ffecec; border-left: 3px solid #d33; padding: .3em .6em; white-space: pre-wrap; }
.note { color: #555; font-size: .9em; }
</style>"""


@dataclass
class _Writer:
    """Saves figures and CSVs under the report folder and returns the HTML that shows them."""

    out: Path

    def figure(self, fig: Figure | None, stem: str, alt: str) -> str:
        """The figure as figures/<stem>.png and .svg; the page shows the PNG at the figure's own size (96 CSS
        pixels per inch, so its text reads at its point size) and links both files under it."""
        if fig is None:
            return ""
        save(fig, self.out / "figures" / stem)
        width = round(fig.get_size_inches()[0] * 96)
        png, svg = f"figures/{stem}.png", f"figures/{stem}.svg"
        return (
            f'<figure class="plot"><a href="{svg}"><img src="{png}" data-svg="{svg}" width="{width}" '
            f'alt="{html.escape(alt)}"></a><figcaption>{html.escape(alt)}: <a href="{svg}">SVG</a> · '
            f'<a href="{png}">PNG, {DPI} dpi</a></figcaption></figure>'
        )

    def table(
        self, df: pd.DataFrame, stem: str, full: pd.DataFrame | None = None, max_rows: int = MAX_ROWS
    ) -> str:
        """`full` (or df) as tables/<stem>.csv; on the page df as analyses.report_tables shows it (constant
        columns on one line above, first `max_rows` rows), or only the CSV's link for a per-run or long table."""
        data = full if full is not None else df
        csv = self.out / "tables" / f"{stem}.csv"
        data.to_csv(csv, index=False)
        if linked(df):  # keyed by run or too long: the CSV link only (analyses.report_tables)
            return table_html(df, stem, len(data))
        shown = df.head(max_rows)
        text = table_html(shown, stem, len(data))
        more = f"showing {len(shown)} of {len(df)} rows; " if len(df) > len(shown) else ""
        notes = []
        if "n_seeds" in df.columns and (df["n_seeds"] == 1).any():
            notes.append("n_seeds = 1 rows come from a single seed: a mean, no interval.")
        if "n_seeds" in df.columns and df["n_seeds"].between(2, MIN_SEEDS - 1).any():
            notes.append(f"Rows with fewer than {MIN_SEEDS} seeds show each seed's value and their min-max, not a "
                         "t-interval (two seeds would give one spanning most of the range).")
        note = f'<p class="note">{more}all numbers: <a href="tables/{stem}.csv">tables/{stem}.csv</a>. '
        note += " ".join(notes) + "</p>"
        return text + note


def _p(text: str, cls: str | None = None) -> str:
    return f'<p class="{cls}">{html.escape(text)}</p>' if cls else f"<p>{html.escape(text)}</p>"


def _pct(values: pd.Series) -> list[str]:
    return ["-" if pd.isna(v) else f"{100 * float(v):.1f}" for v in values]


def _missing(results: Results, names: Sequence[str]) -> str | None:
    """A sentence for the first needed table that is missing or empty, else None."""
    for name in names:
        df = results.table(name)
        where = results.root / name
        if df is None:
            files = "no readable Parquet file" if table_files(results.root, name) else "no Parquet file"
            return (
                f"Table '{name}' is missing: {files} under {where} (the sweep has not produced it yet, "
                "or this grid does not include that analysis)."
            )
        if len(df) == 0:
            return f"Table '{name}' is empty (0 rows under {where})."
    return None


def _claim(key: str) -> str:
    return _p("Paper: " + paper.CLAIMS[key], "paper") if key in paper.CLAIMS else ""


# Each builder returns the section body HTML; it may raise, and the report then shows the error there.
def _overview(results: Results, w: _Writer) -> str:
    parts = [
        _p(f"Results folder: {results.root.resolve()}"),
        _p(f"Generated {datetime.now(UTC):%Y-%m-%d %H:%M UTC}."),
        w.table(results.status(), "tables"),
    ]
    runs = results.table("runs")
    if runs is None or runs.empty:
        parts.append(
            _p("Table 'runs' is missing or empty: no finished training run recorded yet.", "missing")
        )
    else:
        aux, folds, halves = results.table("aux_runs"), results.fold_runs(), results.ssft_runs()
        if folds or halves:
            parts.append(_p(
                f"Beside these {runs['run_id'].nunique()} runs, {folds} out-of-sample fold runs (cv_folds > 0: each "
                "trained without one fold of the training set, for the out-of-sample predictions behind the cleanlab "
                f"signal, table 'oos_predictions') and {halves} second-split forgetting runs (ssft_half > 0: trained "
                "on one half, then fine-tuned on the other, for the SSFT scores, table 'ssft') are auxiliary "
                "trainings: their rows are in the aux_* tables, left out of every figure and table below and out of "
                "this summary; runs_summary.csv lists every run."
            ))
        full = runs if aux is None else pd.concat([runs, aux], ignore_index=True)
        cols = group_columns(runs)
        summary = (
            runs.groupby(cols, dropna=False)
            .agg(
                runs=("run_id", "nunique"),
                seeds=("seed", lambda s: ", ".join(str(v) for v in sorted(set(s)))),
            )
            .reset_index()
        )
        if "status" in runs.columns:
            status = runs.groupby(cols, dropna=False)["status"].agg(
                lambda s: ", ".join(f"{k}: {v}" for k, v in s.value_counts().items())
            )
            summary = summary.join(status, on=cols)
        parts.append(w.table(summary, "runs_summary", full=full.drop(columns=["versions"], errors="ignore")))
    if results.problems:
        parts.append(_p("Files that could not be read (skipped):\n" + "\n".join(results.problems), "error"))
    parts.append('<h3 id="noise">Against the noise rate</h3>')
    try:
        parts.append(_noise(results, w))
    except Interrupted:  # Ctrl-C or SIGTERM: the command stops, never a figure "that could not be built"
        raise
    except Exception:  # noqa: BLE001 - the overview's tables stay even if this figure cannot be drawn
        error = traceback.format_exc(limit=4)
        print(f"analyses.report: the noise-rate figure failed:\n{error}", file=sys.stderr)
        parts.append(_p(f"The noise-rate figure could not be built:\n{error}", "error"))
    return "".join(parts)


def _noise(results: Results, w: _Writer) -> str:
    """The key quantities against the noise rate, for every configuration the sweep ran at two or more rates;
    a sentence saying so otherwise."""
    tables = {n: results.table(n) for n in ("epochs", "flips", "rewinding", "examples", "dropout_examples",
                                            "oos_predictions", "runs", "ssft", "aux_runs")}
    out = noise_figure(**tables)
    runs = results.table("runs")
    if out.figure is None:
        rates = sorted({float(r) for r in runs["noise"]}) if runs is not None and "noise" in runs else []
        return _p(
            "No configuration was run at two or more noise rates (this sweep's noise rate"
            + ("s: " if len(rates) > 1 else ": ")
            + (", ".join(f"{r:g}" for r in rates) or "none")
            + "), so nothing is plotted against the noise rate; a grid with several rates per configuration "
            "(the full grid has 0.05, 0.1 and 0.2) gets a figure here.",
            "note",
        )
    t = out.table
    present = [v for v in VALUES if f"{v}_mean" in t.columns]
    shown = format_summary(t, [v for v in present if v.endswith("_acc")])
    shown = format_summary(shown, [v for v in present if v in ("units_noisy", "units_clean")], scale=1.0)
    shown = format_summary(shown, [v for v in present if v.endswith("_auroc")], scale=1.0, digits=3)
    return (
        _p("Each configuration's key quantities against its noise rate: points are means across seeds with "
           "95% intervals; accuracies in %, units to flip as a median count, AUROC on 0-1. "
           "Only configurations run at two or more noise rates are drawn.", "caption")
        + w.figure(out.figure, "noise", "key quantities against the noise rate")
        + w.table(shown, "noise", full=t)
    )


def _curves(results: Results, w: _Writer) -> str:
    out = training_curves(results.table("epochs"))
    last = out.table[
        out.table["epoch"] == out.table.groupby(group_columns(out.table))["epoch"].transform("max")
    ]
    acc = [c for c in ("clean_acc", "noisy_acc", "noisy_true_acc", "test_acc") if f"{c}_mean" in last.columns]
    shown = format_summary(last.drop(columns=[c for c in last.columns if c.startswith("train_loss")]), acc)
    return (
        _claim("curves")
        + w.figure(out.figure, "curves", "training curves")
        + _p("Accuracy (%) at the last epoch, mean [95% interval] across seeds:")
        + w.table(shown, "curves_last", full=out.table)
    )


def _figure1(results: Results, w: _Writer) -> str:
    out = figure1(results.table("gradients"))
    t = out.table
    keys = group_columns(t) + ["layer", "layer_name"]
    window = t[t["in_window"]].groupby(keys, dropna=False)
    window = window.agg(
        clean_norm_mean=("clean_norm_mean", "mean"),
        noisy_norm_mean=("noisy_norm_mean", "mean"),
        n_seeds=("n_seeds", "max"),
    ).reset_index()
    window["noisy_to_clean"] = window["noisy_norm_mean"] / window["clean_norm_mean"]
    return (
        _claim("figure1")
        + w.figure(out.figure, "figure1", "gradient norm contribution per layer")
        + _p("Mean contribution over the memorization window (paper: epochs 15-20 of 50, scaled to the run):")
        + w.table(window, "figure1_window", full=t)
    )


def _figure2(results: Results, w: _Writer) -> str:
    out = figure2(results.table("gradients"))
    t = out.table
    keys = group_columns(t) + ["layer", "layer_name"]
    cosines = [c for c in ("cosine", "cosine_flat") if f"{c}_mean" in t.columns]
    rows = []
    for key, part in t.groupby(keys, dropna=False, sort=True):
        row = {**dict(zip(keys, key, strict=False))}
        for name in cosines:
            low = part.loc[part[f"{name}_mean"].idxmin()] if part[f"{name}_mean"].notna().any() else None
            row.update({f"mean_{name}": part[f"{name}_mean"].mean(),
                        f"min_{name}": None if low is None else low[f"{name}_mean"],
                        f"epoch_of_min_{name}": None if low is None else int(low["epoch"])})
        rows.append({**row, "n_seeds": int(part["n_seeds"].max())})
    flat = ("cosine_flat (the group's gradients flattened into one vector, where large tensors weigh more) is in "
            "the table beside it." if "cosine_flat" in cosines else
            "These results have no cosine_flat column (the cosine of the group's gradients flattened into one "
            "vector): written before it existed.")
    return (
        _claim("figure2")
        + w.figure(out.figure, "figure2", "clean/noisy gradient cosine")
        + _p("The heatmap draws cosine: per layer group the mean over its tensors of cos(G_clean, G_noisy), as the "
             "paper's code computes it. " + flat, "caption")
        + _p("Per layer: mean cosine over epochs and the epoch where it is lowest:")
        + w.table(pd.DataFrame(rows), "figure2_summary", full=t)
    )


def _accuracies(table: pd.DataFrame) -> list[str]:
    """The accuracy columns of an across-seed table, the final model's (`*_base`) included where present."""
    names = ("clean_acc", "noisy_acc", "test_acc", "clean_acc_base", "noisy_acc_base", "test_acc_base")
    return [c for c in names if f"{c}_mean" in table.columns]


def _base_note(table: pd.DataFrame) -> str:
    if "noisy_acc_base_mean" in table.columns:
        return " The *_base columns are the final (unedited) model's accuracies on the same examples."
    return " This results folder has no final-model accuracies (*_acc_base), so the figure has no reference marks."


def _none_kept(best: pd.DataFrame) -> str:
    """A sentence naming the layers where no rewind keeps clean accuracy (empty when every layer has one)."""
    if "choice" not in best.columns:
        return ""
    none = best[best["choice"] == "none kept clean accuracy"]
    if none.empty:
        return ""
    names = ", ".join(dict.fromkeys(none["layer_name"].astype(str)))
    return (f" For {len(none)} row(s) (layer groups {names}) no rewind epoch keeps clean accuracy within "
            f"{CLEAN_TOLERANCE * 100:g} points of the final model's, so they have no best rewind.")


def _csv_only(w: _Writer, df: pd.DataFrame, stem: str) -> str:
    """Write `df` as tables/<stem>.csv without showing it on the page."""
    df.to_csv(w.out / "tables" / f"{stem}.csv", index=False)
    return ""


def _figure3(results: Results, w: _Writer) -> str:
    df = results.table("rewinding")
    out = figure3(df)
    best = best_rewind(df)
    return (
        _claim("figure3")
        + w.figure(out.figure, "figure3", "layer rewinding heatmaps")
        + _p("Accuracy in % in every cell and on the colour bar; the last column of each heatmap ('final') is "
             "the final model before any rewinding.", "caption")
        + _p(f"Per layer, the best single-layer rewind: the rewind epoch that lowers noisy accuracy most among "
             f"those that keep clean accuracy within {CLEAN_TOLERANCE * 100:g} points of the final model's "
             "(accuracy %, mean [95% interval] across seeds, each seed where there are fewer than "
             f"{MIN_SEEDS}); 'choice' says how each row was picked." + _none_kept(best) + _base_note(best))
        + w.table(format_summary(best, _accuracies(best)), "figure3_best", full=best)
        + _p("Every cell of the heatmaps, across seeds: tables/figure3_cells.csv.", "note")
        + _csv_only(w, out.table, "figure3_cells")
    )


def _figure4(results: Results, w: _Writer) -> str:
    df = results.table("retraining")
    out = figure4(df)
    final = final_retraining(df)
    shown = format_summary(format_summary(final, _accuracies(final)), ["last_epoch"], scale=1.0)
    return (
        _claim("figure4")
        + w.figure(out.figure, "figure4", "layer retraining curves")
        + _p("One panel per layer group: accuracy (%) while that group alone is retrained from its initial "
             "weights on clean examples; dashed lines are the final model's accuracies before the reset.",
             "caption")
        + _p("Per layer, accuracy (%) at the end of retraining on clean examples only." + _base_note(final))
        + w.table(shown, "figure4_final", full=out.table)
    )


def _figure5(results: Results, w: _Writer) -> str:
    flips = results.table("flips")
    a = figure5a(flips)
    shown = a.table.copy()
    shown.insert(shown.columns.get_loc("censored_median_units_mean"), "censored_median_units", [
        capped_text(m, cap) if not np.isfinite(m) else fmt_interval(m, lo, hi, n, 1.0, 1, seeds)
        for m, cap, lo, hi, n, seeds in zip(shown["censored_median_units_mean"], shown["cap_units_mean"],
                                            shown["censored_median_units_lo"], shown["censored_median_units_hi"],
                                            shown["n_seeds"], shown["censored_median_units_seeds"], strict=True)])
    shown = shown.drop(columns=[f"censored_median_units_{s}" for s in SUFFIXES])
    shown = format_summary(shown, ["median_units", "mean_units", "n_examples", "cap_units"], scale=1.0)
    shown = format_summary(shown, ["flipped_frac"])
    shown["paper_units"] = ["-" if pd.isna(v) else f"~{v:g}" for v in shown["paper_units"]]
    b = figure5b(flips)
    drops = [c.removesuffix("_mean") for c in b.table.columns if c.endswith("_drop_mean")]
    c = figure5c(flips, _group_order(results))
    return (
        _p("(a) Units removed until the prediction flips", "caption")
        + _claim("figure5a")
        + w.figure(a.figure, "figure5a", "units to flip, clean vs noisy")
        + _p("The flip cap censors: an example that hit it unflipped has a count only known to exceed the cap. "
             "censored_median_units is the median over every analysed example with those counted as more than "
             "the cap (+infinity), the honest median; it reads '> cap' when at least half of them hit it (in any "
             "seed). median_units and mean_units are over the flipped examples only, beside the share that "
             "flipped (flipped_frac, %); cap_units is the cap they hit.")
        + w.table(shown, "figure5a", full=a.table)
        + _p("(b) Accuracy lost by the edited model (final model minus edited, in percentage points on the "
             "figure's axis and in the table)", "caption")
        + _claim("figure5b")
        + w.figure(b.figure, "figure5b", "accuracy lost by the edit")
        + w.table(format_summary(b.table, drops), "figure5b", full=b.table)
        + _p("(c) Layer groups of the removed units (share of each flipped example's removed units in %, "
             "averaged over examples so each weighs the same; n_capped = examples per run that hit the cap, "
             "left out)", "caption")
        + _claim("figure5c")
        + w.figure(c.figure, "figure5c", "layers of removed units")
        + w.table(format_summary(format_summary(c.table, ["fraction"]), ["n_capped"], scale=1.0), "figure5c",
                  full=c.table)
    )


def _group_order(results: Results) -> dict[str, list[str]]:
    """Forward order of each architecture's layer groups, from a table that has (layer index, name)."""
    for name in ("gradients", "rewinding", "retraining"):
        df = results.table(name)
        if df is not None and len(df) and {"arch", "layer", "layer_name"} <= set(df.columns):
            pairs = df[["arch", "layer", "layer_name"]].drop_duplicates().sort_values(["arch", "layer"])
            return {
                arch: list(dict.fromkeys(p["layer_name"].astype(str))) for arch, p in pairs.groupby("arch")
            }
    return {}


def _paper_column(table: pd.DataFrame, columns: Sequence[str]) -> list[str]:
    """'clean / noisy / test' of the paper in %, or the note saying why there is none."""
    out = []
    for _, row in table.iterrows():
        values = [row[f"paper_{c}"] for c in columns]
        out.append(" / ".join(_pct(pd.Series(values))) if pd.notna(values).all() else row["paper_note"])
    return out


def _table1(results: Results, w: _Writer) -> str:
    out = table1(results.table("dropout"))
    if out.table.empty:
        return _claim("table1") + _p("No example-tied (variant 'tied') runs in the dropout table.", "missing")
    shown = format_summary(out.table, ["clean_acc", "noisy_acc", "test_acc"])
    shown["paper (clean / noisy / test)"] = _paper_column(out.table, ["clean_acc", "noisy_acc", "test_acc"])
    shown = shown.drop(
        columns=[c for c in shown.columns if c.startswith(("paper_", "scale_lo", "scale_hi"))] + ["phase"]
    )
    return (
        _claim("table1")
        + _p("Accuracy in %, mean [95% interval] across seeds; the paper beside it.")
        + w.figure(out.figure, "table1", "Table 1 bars")
        + w.table(shown, "table1", full=out.table)
    )


def _table3(results: Results, w: _Writer) -> str:
    out = table3(results.table("dropout"))
    if out.table.empty:
        return _claim("table3") + _p(
            "No dropout, sparse or example-tied runs in the dropout table.", "missing"
        )
    shown = format_summary(out.table, ["clean_acc", "noisy_acc", "test_acc"])
    shown["paper (clean / noisy)"] = _paper_column(out.table, ["clean_acc", "noisy_acc"])
    shown = shown.drop(columns=[c for c in shown.columns if c.startswith("paper_")])
    return (
        _claim("table3")
        + _p("Training accuracy (%) after dropping (baselines: their usual test mode).")
        + w.figure(out.figure, "table3", "Table 3 bars")
        + w.table(shown, "table3", full=out.table)
    )


def _figure7(results: Results, w: _Writer, data_dir: str) -> str:
    df = results.table("dropout_examples")
    counts = forgotten_clean(df)
    out, notes = figure7(df, data_dir=data_dir)
    parts = [
        _claim("figure7"),
        _p("Clean examples correct under their own mask but wrong under drop, per run:"),
        w.table(counts, "figure7_counts"),
    ]
    parts += [_p(n, "missing") for n in notes]
    parts.append(w.figure(out.figure, "figure7", "forgotten clean examples"))
    if len(out.table):
        parts += [
            _p("Forgotten clean examples, most often forgotten first:"),
            w.table(out.table, "figure7_examples"),
        ]
    return "".join(parts)


def _detection(results: Results, w: _Writer) -> str:
    """The detection study (analyses.report_detection); it also writes the `detection` table into the results."""
    return detection_section(results, w)


SECTIONS: list[tuple[str, str, tuple[str, ...]]] = [
    ("overview", "Overview", ()),
    ("curves", "Training curves", ("epochs",)),
    ("figure1", "Figure 1: gradient norm contribution, clean vs noisy", ("gradients",)),
    ("figure2", "Figure 2: clean/noisy gradient cosine, layer x epoch", ("gradients",)),
    ("figure3", "Figure 3: layer rewinding", ("rewinding",)),
    ("figure4", "Figure 4: layer retraining on clean examples", ("retraining",)),
    ("figure5", "Figure 5: neuron flipping", ("flips",)),
    ("table1", "Table 1: example-tied dropout, before and after dropping", ("dropout",)),
    ("table3", "Table 3: example-tied dropout vs standard dropout and sparse network", ("dropout",)),
    ("figure7", "Figure 7: clean examples forgotten under drop", ("dropout_examples",)),
    ("detection", "Beyond the paper: finding the mislabeled examples", ()),
    ("localize", "Do localizers localize?", ()),
    ("memorization", "Beyond the paper: memorization beyond mislabeling", ()),
]


def write_report(results: str | Path, out: str | Path | None = None, data_dir: str = "data",
                 problems: list[str] | None = None) -> Path:
    """Write the report for `results` into `out` (default <results>/report) and return index.html's path.

    `data_dir` is where Figure 7 looks for the dataset files to draw its images. Files that could not be read
    are skipped, named in the report, and appended to `problems` when given.
    """
    res = Results(Path(results), problems if problems is not None else [])
    out = Path(out) if out is not None else Path(results) / "report"
    for sub in ("figures", "tables"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    writer = _Writer(out)
    builders: dict[str, Callable[[Results, _Writer], str]] = {
        "overview": _overview,
        "curves": _curves,
        "figure1": _figure1,
        "figure2": _figure2,
        "figure3": _figure3,
        "figure4": _figure4,
        "figure5": _figure5,
        "table1": _table1,
        "table3": _table3,
        "figure7": lambda r, w: _figure7(r, w, data_dir),
        "detection": _detection,
        "localize": localize_section,
        "memorization": lambda r, w: memorization_section(r, w, data_dir),
    }
    body = []
    for key, title, needs in SECTIONS:
        missing = _missing(res, needs)
        if missing:
            content = _claim(key) + _p(missing, "missing")
        else:
            try:
                content = builders[key](res, writer)
            except Interrupted:  # a stop signal ends the report (the command's closing line says so)
                raise
            except Exception:  # noqa: BLE001 - one broken section must not cost the rest of the report
                error = traceback.format_exc(limit=4)
                print(f"analyses.report: section {key} failed:\n{error}", file=sys.stderr)
                content = _claim(key) + _p(f"This section could not be built:\n{error}", "error")
        body.append(f'<section id="{key}"><h2>{html.escape(title)}</h2>{content}</section>')
    nav = "".join(f'<li><a href="#{k}">{html.escape(t)}</a></li>' for k, t, _ in SECTIONS[:1])
    nav += '<li><a href="#noise">Against the noise rate</a></li>'
    nav += "".join(f'<li><a href="#{k}">{html.escape(t)}</a></li>' for k, t, _ in SECTIONS[1:])
    page = (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        "<title>Memorization localization: sweep report</title>" + STYLE + "</head><body>"
        "<h1>Can neural network memorization be localized? Sweep report</h1>"
        "<p>Reproducing Maini et al. 2023. Numbers are means across the seeds of one configuration (one "
        f"config_id: runs that differ only in their seeds) with 95% t-intervals from {MIN_SEEDS} seeds on, kept "
        "inside each value's range as its declared unit gives it (results/README.md): on the logit scale for "
        "accuracies, fractions and cosines, cut at 0 for counts, losses and norms. With fewer seeds every seed's "
        "value and their min-max are shown instead (tables) or drawn as points (figures). The paper's numbers "
        "stand beside ours only for the paper's own setting, every field of it (full-width ResNet-9, 10% noise, "
        "50 epochs at batch 512 and peak lr 0.1, an ordinary run; p_gen 0.4 / p_mem 0.2 and the paper code's "
        "dropout places; its sparse mask; its flip unit rule).</p>"
        f"<nav><ul>{nav}</ul></nav>" + "".join(body) + IMAGE_CHECK + "</body></html>\n"
    )
    index = out / "index.html"
    tmp = out / ".index.html.tmp"
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, index)
    return index


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point: write the report and print the path of its index.html."""
    parser = argparse.ArgumentParser(prog="python -m analyses.report", description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="results", help="results folder of a sweep (default: results)")
    parser.add_argument("--out", default=None, help="report folder (default: <results>/report)")
    parser.add_argument("--data-dir", default="data",
                        help="dataset files, for Figure 7's images (default: data)")
    args = parser.parse_args(argv)
    # Resolved once, against the folder the command runs in, so every path the report prints is usable as is.
    args.results, args.data_dir = os.path.abspath(args.results), os.path.abspath(args.data_dir)
    args.out = os.path.abspath(args.out) if args.out else None
    if not Path(args.results).is_dir():
        print(
            f"error: results folder {args.results!r} does not exist; pass --results DIR of a sweep",
            file=sys.stderr,
        )
        return 2
    # Bad input is one line and exit 2, checked before anything is read or written (no report folder made).
    if not table_files(args.results, "runs"):
        print(
            f"error: no sweep results under {args.results} (no runs table); run `python run_sweep.py` first "
            "or pass --results DIR of a sweep",
            file=sys.stderr,
        )
        return 2
    from sweep.errors import UserError
    from sweep.paths import check_writable

    try:
        check_writable(args.out or os.path.join(args.results, "report"), "--out")
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    problems: list[str] = []
    page = write_report(args.results, args.out, args.data_dir, problems)
    for problem in problems:
        print(f"error: unreadable, left out of the report: {problem}", file=sys.stderr)
    print(page)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
