"""The report's localization section ("Do localizers localize?"), built here so that analyses.report keeps one
small call for it: precision at k against chance (tied and injected truths), forget/keep curves, units to flip
clean vs noisy, one sentence per configuration on the best localizer, and the CSVs behind each."""

from __future__ import annotations

import html

import pandas as pd

from analyses.load import Results
from analyses.localize import (
    best_localizers,
    forget_keep,
    forget_keep_figure,
    precision_at_k,
    precision_figure,
    units_figure,
    units_to_flip,
    verdicts,
)
from analyses.report_detection import Writer
from analyses.stats import format_summary


def _p(text: str, cls: str | None = None) -> str:
    return f'<p class="{cls}">{html.escape(text)}</p>' if cls else f"<p>{html.escape(text)}</p>"


def _present(df: pd.DataFrame | None) -> bool:
    return df is not None and len(df) > 0


def localize_section(results: Results, w: Writer) -> str:
    """The section's HTML; figures and CSVs are written by `w`."""
    localize, ladder, injections = (results.table(n) for n in ("localize", "localize_ladder", "injections"))
    if not _present(localize) and not _present(ladder):
        return _p("Tables 'localize' and 'localize_ladder' are missing or empty: the localization probe has not "
                  "run (grid analysis setting `localizers`).", "missing")
    parts = [_p(
        "Beyond the paper: greedy flipping's 'few units' are units whose removal flips an example, not necessarily "
        "where it was memorized. Here every localizer ranks units for the same targets and is scored against a "
        "planted truth: in example-tied runs the target's own memorization channels (mode 'tied': each target "
        "forwarded with its own mask, so only generalization and own channels are candidates; mode 'all': every "
        "unit live), in injected runs the units fine-tuned to learn a new wrong label for a few clean examples "
        "(everything else bit-identical; the vision analogue of Chang et al. 2024's INJ benchmark). Precision at "
        "k is the share of the top-k units in the truth set, beside chance (truth units / candidate units). The "
        "deletion view (every run, truth or not): remove a localizer's top-k units, does the target flip, and "
        "what accuracy does the model keep?", "caption")]
    if _present(injections):
        fitted = injections["fitted"].astype(bool)
        parts.append(_p(f"Injections: {int(fitted.sum())} of {len(fitted)} injected targets fitted; the others "
                        "are reported in table 'injections' and not scored.", "note"))
    if _present(localize):
        parts += _precision(localize, w) + _units(localize, w)
    if _present(ladder):
        keep = forget_keep(ladder)
        parts += ["<h3>Forget / keep</h3>",
                  w.figure(forget_keep_figure(keep).figure, "localize_forget_keep",
                           "targets forgotten against test accuracy kept, top-k units removed, per localizer"),
                  w.table(format_summary(keep, ["forgotten", "test_acc", "clean_acc", "test_acc_base"]),
                          "localize_forget_keep", full=keep)]
    return "".join(parts)


def _precision(localize: pd.DataFrame, w: Writer) -> list[str]:
    precision = precision_at_k(localize)
    if precision.empty:
        return [_p("No row of 'localize' has a ground truth (no example-tied or injected run): precision at k "
                   "needs one; the deletion view below still applies.", "note")]
    said = verdicts(precision)
    parts = ["<h3>Precision at k against the truth</h3>",
             w.figure(precision_figure(precision).figure, "localize_precision",
                      "precision at k of each localizer's ranked units against the planted truth, and chance")]
    if said:
        parts.append("<p>Best localizer by precision@5, per configuration:</p><ul>"
                     + "".join(f"<li>{html.escape(s)}</li>" for s in said) + "</ul>")
        parts.append(w.table(best_localizers(precision), "localize_best"))
    parts.append(w.table(format_summary(precision, ["precision", "chance"]), "localize_precision", full=precision))
    return parts


def _units(localize: pd.DataFrame, w: Writer) -> list[str]:
    units = units_to_flip(localize)
    shown = format_summary(format_summary(units, ["flipped_share"]), ["k_flip_median", "n_targets"], scale=1.0,
                           digits=1)
    return ["<h3>Units to flip, clean vs noisy targets</h3>",
            w.figure(units_figure(units).figure, "localize_units_to_flip",
                     "median units each localizer removes before the target flips, clean and noisy targets"),
            _p("Per run: the median of k_flip over its targets, a target that never flipped within the cap "
               "counting as more than any count (inf: half or more never flipped); flipped_share: targets that "
               "flipped within the cap.", "note"),
            w.table(shown, "localize_units_to_flip", full=units)]
