"""The report's detection section ("Beyond the paper: finding the mislabeled examples"), built here so that
analyses.report keeps one small call for it.

It reads the sweep's tables through analyses.load.Results, scores every registered signal (analyses.signals),
writes the comparison into the results folder as the `detection` table (analyses.detection_table) and its CSVs
into the report, draws the comparison and the per-epoch AUROC figure, puts the published AUROCs beside ours
where the setting matches (analyses.published), and writes one ranked-suspects CSV per run.
"""

from __future__ import annotations

import html
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import pandas as pd
from matplotlib.figure import Figure

from analyses.detection import (
    ALL_SET,
    FLIP_SET,
    SUSPECTS_ORDER,
    Collected,
    collect,
    coverage_gaps,
    evaluate,
    short,
    summarise,
    suspects,
    verdicts,
    write_suspects,
)
from analyses.detection_cost import with_costs
from analyses.detection_epochs import detection_by_epoch, late_decay
from analyses.detection_table import FILE, write_comparison
from analyses.load import Results
from analyses.published import beside
from analyses.report_tables import readable_config
from analyses.signals import REGISTRY, Tables, registry_table
from analyses.stats import format_summary, group_columns


class Writer(Protocol):
    """What the report's writer gives this section: its folder, a figure's HTML, a table's HTML (with its CSV)."""

    out: Path

    def figure(self, fig: Figure | None, stem: str, alt: str) -> str: ...

    def table(self, df: pd.DataFrame, stem: str, full: pd.DataFrame | None = None, max_rows: int = ...) -> str: ...


def _p(text: str, cls: str | None = None) -> str:
    return f'<p class="{cls}">{html.escape(text)}</p>' if cls else f"<p>{html.escape(text)}</p>"


NAMES = ("examples", "flips", "dropout_examples", "oos_predictions", "ssft", "memorization")


def read(results: Results) -> Tables:
    """The tables the signals read, ordinary runs' rows for the main tables; auxiliary runs from aux_runs."""
    return Tables(**{n: results.table(n) for n in NAMES}, runs=results.table("runs"),
                  aux_runs=results.table("aux_runs"))


def _listing(signals: Callable[[], pd.DataFrame]) -> str:
    table = signals()
    return "; ".join(f"{r['signal']} ({r['source']}, {'higher' if r['suspicious'] == 'high' else 'lower'} = "
                     "more suspicious)" for r in table.to_dict("records"))


def detection_section(results: Results, w: Writer) -> str:
    """The section's HTML (figures and CSVs written by `w`; the `detection` table into the results folder)."""
    tables = read(results)
    present = {n: tables.get(n) is not None and len(tables.get(n)) > 0 for n in NAMES}
    if not any(present.values()):
        return _p("Tables 'examples', 'flips', 'dropout_examples', 'oos_predictions', 'ssft' and 'memorization' are "
                  "all missing or empty: no signal to score.", "missing") + _epochs(results, w)
    got: Collected = collect(tables)
    per_run = with_costs(evaluate(got.scores), got.tables)
    out = summarise(per_run)
    metrics = ["auroc", "average_precision", "precision_at_rate", "chance", "flag_precision", "flag_recall"]
    shown = format_summary(format_summary(out.table, metrics, scale=1.0, digits=3), ["n_examples"], scale=1.0,
                           digits=0)
    if "seconds_mean" in shown.columns:
        shown = format_summary(shown, ["seconds"], scale=1.0, digits=1)
    parts = [
        _p("Beyond the paper: do the localization signals find the mislabeled examples better than the detectors "
           "the label-noise literature uses, computed as published? Each signal ranks a run's examples by its "
           "natural value, read in the direction in which it is suspicious: " + _listing(registry_table)
           + ". Every table shows the value itself (AUM, units, epochs, label quality), never a negated score.",
           "caption"),
        _p(f"Every signal of a run is compared on the same examples, in two sets: '{FLIP_SET}' (the examples the "
           "flip analysis scored, about as many clean as noisy; units to flip exists only there) and "
           f"'{ALL_SET}' (every training example; the signals that score them all). Quality: AUROC (0.5 = chance), "
           "average precision and precision among the top round(rate x n) examples (rate = share of noisy "
           "examples in the set, also the chance level of both precisions), each a mean across seeds; for the "
           "flags (tied drop, cleanlab flag) also the flag's own precision and recall. Cost: extra trainings per "
           "run (cleanlab: its cv_folds fold runs; SSFT: 2), the passes it adds, and measured seconds per run "
           "where the results hold them (seconds_source says which figure). Numbers on the flip subset (rate "
           "about 1/2) and on all examples (rate = the noise rate) are not comparable with each other.", "caption"),
    ]
    parts += _absent(got, present, w)
    gaps = coverage_gaps(got.scores)
    if len(gaps):
        parts += [_p("Signals left out of a set because they score only part of its examples (so that every signal "
                     "of a set is measured on the same examples):", "note"),
                  w.table(gaps, "detection_coverage_gaps")]
    said = verdicts(out.table)
    if said:
        parts.append("<h3>Which signal wins where</h3><p>Highest mean AUROC per configuration and set:</p><ul>"
                     + "".join(f"<li>{html.escape(line)}</li>" for line in said) + "</ul>")
    try:
        path, left = write_comparison(per_run, tables.runs, results.root)
        where = (f"also in the results folder as the table 'detection' ({FILE}: "
                 f"pd.read_parquet(\"{results.root.name}/detection\"))")
    except OSError as exc:  # a read-only results folder still gets its report (the CSVs below)
        path, left = None, []
        where = f"not written into the results folder ({type(exc).__name__}: {exc})"
    parts += [
        w.figure(out.figure, "detection", "mislabel detection, every signal side by side"),
        w.table(shown, "detection", full=out.table),
        _p(f"Per run (n = examples of the set, k = round(rate x n); flagged / flag_precision / flag_recall for the "
           f"flags), {where}:"),
        w.table(per_run, "detection_per_run"),
    ]
    if left and path is not None:
        parts.append(_p(f"{len(left)} run(s) are left out of {path.name} because the runs table does not have them "
                        f"yet (their run columns are unknown), e.g. {left[0]}.", "note"))
    parts += [_published(out.table, w), _epochs(results, w), _suspects(results, w, got.scores),
              "<h3>The signals</h3>", w.table(registry_table(), "detection_signals")]
    return "".join(parts)


def _absent(got: Collected, present: dict[str, bool], w: Writer) -> list[str]:
    """Notes for the signals this folder cannot give and for auxiliary rows that could not be used."""
    parts = []
    if not present["oos_predictions"]:
        # a grid's choice (cv_folds is off by default), not something missing from a finished sweep
        parts.append(_p("No out-of-sample predictions (table 'oos_predictions'), so no cleanlab signal: a grid "
                        "block with cv_folds = K (K >= 2) trains K fold runs beside each of its standard runs to make "
                        "them.", "note"))
    if not present["ssft"]:
        parts.append(_p("No second-split forgetting scores (table 'ssft'), so no SSFT signal: a grid block with "
                        "ssft = true trains two second-split runs beside each of its standard runs.", "note"))
    for name in ("examples", "flips", "dropout_examples"):
        if not present[name]:
            parts.append(_p(f"Table '{name}' missing or empty: its signals are absent.", "missing"))
    quiet = {"oos_predictions", "ssft", "examples", "flips", "dropout_examples"}
    other = got.absent[~got.absent["reason"].str.contains("|".join(f"'{n}' is missing" for n in quiet))]
    if len(other):
        parts += [_p("Signals this results folder cannot give (left out of every table below):", "note"),
                  w.table(other.assign(signal=other["signal"].map(short)), "detection_absent")]
    cleanlab = got.skipped[got.skipped["signal"] == "cleanlab"]
    if len(cleanlab):
        parts += [_p(f"{len(cleanlab)} run(s) have out-of-sample predictions that do not cover their training "
                     "examples exactly once, so cleanlab does not score them (never from part of the folds):",
                     "missing"), w.table(cleanlab, "detection_cleanlab_skipped")]
    rest = got.skipped[got.skipped["signal"] != "cleanlab"]
    if len(rest):
        parts += [_p(f"{len(rest)} run(s) have auxiliary rows that could not be used:", "missing"),
                  w.table(rest, "detection_skipped")]
    return parts


def _published(summary: pd.DataFrame, w: Writer) -> str:
    table, notes = beside(summary, group_columns(summary), ALL_SET)
    head = "<h3>Published AUROCs beside ours</h3>"
    text = [_p("Published AUROCs for finding the mislabeled examples (all training examples), shown only where our "
               "configuration is the published setting: CIFAR-10, the paper's ResNet-9 (width 1, standard training) "
               "and the same noise rate. The authors' training recipes are their own, so a match sets two numbers "
               "side by side, not a replication.", "caption")]
    if len(table):
        text.append(w.table(table, "detection_published"))
    else:
        text.append(_p("No configuration of this sweep matches a published setting, so no published number is shown "
                       "beside ours.", "note"))
    if notes:
        text.append("<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>")
    return head + "".join(text)


def _epochs(results: Results, w: Writer) -> str:
    df = results.table("detection_epochs")
    head = "<h3>Detection by epoch</h3>"
    if df is None or df.empty:
        return head + _p("Table 'detection_epochs' missing or empty: no per-epoch AUROC (results written before the "
                         "training recorded it).", "note")
    out = detection_by_epoch(df)
    decay = late_decay(out.table)
    return (head + _p("AUROC of the per-epoch signals (each epoch's training forward pass: loss, margin, whether "
                      "predicted as labelled) against the epoch: the across-seed mean as a line, each seed's AUROC as "
                      "points. Late in training the network memorizes the wrong labels and the signals fade.",
                      "caption")
            + w.figure(out.figure, "detection_epochs", "mislabel detection AUROC by epoch")
            + _p("Per configuration and signal: its best mean AUROC and epoch, and the last epoch's:")
            + w.table(decay, "detection_epochs_decay", full=out.table))


def _suspects(results: Results, w: Writer, scores: pd.DataFrame) -> str:
    """Every run's examples ranked by each signal, one CSV per run under suspects/, linked in a list."""
    frames = suspects(scores, results.table("examples"))
    if not frames:
        return ""
    paths = write_suspects(frames, w.out / "suspects")
    items = []
    for run_id, frame in frames.items():
        by = frame["sorted_by"].iloc[0] if len(frame) else None
        noisy = frame["is_noisy"].fillna(False).astype(bool)
        k = int(noisy.sum())
        top = f"; {int(noisy.iloc[:k].sum())} of its top {k} by {short(by)} are mislabeled" if by and k else ""
        href = "suspects/" + urllib.parse.quote(paths[run_id].name)
        items.append(f'<li><a href="{href}" title="run_id {html.escape(run_id)}">'
                     f"{html.escape(readable_config(run_id))}</a> ({len(frame)} examples{top})</li>")
    order = ", then ".join(short(s) for s in SUSPECTS_ORDER[1:4] if s in REGISTRY)
    return (
        "<h3>Ranked suspects</h3>"
        + _p(
            "Per run, every training example with its training label, its original (true) label, is_noisy, and "
            "for each signal its natural value (column named after the signal: the AUM itself, the units to flip "
            "with inf = never flipped, the epoch with inf = never learned or never forgotten, ...) and its rank "
            "(column <signal>_rank: 1 = most suspicious in the signal's direction; ties in example order; empty "
            "where the signal does not score the example, e.g. units to flip outside the flip subset). Rows are "
            f"sorted by the AUM rank (where a run has no AUM: {order}, ...; the column sorted_by says which): AUM "
            "is cheap, scores every training example and does not look at the true flags, which picking each "
            "run's best signal would. Look at the top of a file for the examples to check first; is_noisy shows "
            "which of them really are mislabeled."
        )
        + f"<ul class=\"runs\">{''.join(items)}</ul>"
    )
