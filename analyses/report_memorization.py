"""The report's memorization section ("Beyond the paper: memorization beyond mislabeling"), built here so that
analyses.report keeps one small call for it.

From the `memorization` and `mem_flips` tables (sweep/probes/memorization.py): the mem-score distributions of
clean and mislabeled examples and the AUROC of mem for the mislabeled, a gallery of the clean training images of
highest mem with their labels, units to flip per target set (noisy / atypical clean / typical clean) and
localizer, and Figure 7 quantified against `dropout_examples` (are the clean examples forgotten under `drop` the
high-mem ones?). Every number is across seeds with the intervals of analyses.stats.
"""

from __future__ import annotations

import html

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from analyses.dropout import ImageLoader, dataset_images
from analyses.load import Results
from analyses.memorization import flip_summary, forgotten_mem, mem_detection, mem_histograms, top_clean
from analyses.plotting import configs, styled, thumbnail_gallery
from analyses.report_detection import Writer
from analyses.stats import across_seeds, format_summary, group_columns


def _p(text: str, cls: str | None = None) -> str:
    return f'<p class="{cls}">{html.escape(text)}</p>' if cls else f"<p>{html.escape(text)}</p>"


@styled
def gallery(top: pd.DataFrame, images: dict[str, tuple[np.ndarray, np.ndarray]], cols: int = 8) -> Figure | None:
    """Thumbnails of `top` (analyses.memorization.top_clean) per configuration, titled with id, label and mem."""
    blocks = [(config, rows, images[config["dataset"]]) for config, rows in configs(top, group_columns(top))
              if config.get("dataset") in images]
    if not blocks:
        return None
    shown = [(config, rows, x, y) for config, rows, (x, y) in blocks]
    return thumbnail_gallery(shown, lambda row, label: f"#{row.example_id} label {label}\nmem {row.mem:.2f}", cols)


def _gallery_part(memorization: pd.DataFrame, w: Writer, loader: ImageLoader) -> str:
    top = top_clean(memorization)
    images, notes = {}, []
    for dataset in top["dataset"].unique() if "dataset" in top else []:
        try:
            images[str(dataset)] = loader(str(dataset))
        except Exception as exc:  # noqa: BLE001 - the dataset files may not be here; the table still is
            notes.append(f"images for {dataset} not available here ({type(exc).__name__}: {exc})")
    for dataset, (x, y) in images.items():
        rows = top["dataset"] == dataset
        valid = rows & top["example_id"].between(0, len(x) - 1)
        top.loc[valid, "label"] = y[top.loc[valid, "example_id"].to_numpy()]
    parts = [_p("The clean training examples of highest mem (mean over seeds): correctly labelled, yet predicted "
                "right mostly by the subset models that trained on them.")]
    parts += [_p(n, "note") for n in notes]  # the table below still lists every example
    parts.append(w.figure(gallery(top, images), "memorization_gallery", "clean training images of highest mem"))
    parts.append(w.table(top, "memorization_top_clean"))
    return "".join(parts)


def memorization_section(results: Results, w: Writer, data_dir: str = "data",
                         loader: ImageLoader | None = None) -> str:
    """The section's HTML; figures and CSVs are written by `w`."""
    mem = results.table("memorization")
    if mem is None or mem.empty:
        return _p("Table 'memorization' is missing or empty: no run of this sweep trained subset models (grid field "
                  "subsets = M), so there are no held-out memorization scores.", "missing")
    per_run, summary = mem_detection(mem)
    parts = [_p("Held-out memorization (Feldman and Zhang 2020): mem = accuracy of the subset models that trained on "
                "an example minus that of the models that left it out. AUROC: how well a high mem finds the "
                "mislabeled examples; medians of mem per run, then across seeds."),
             w.table(format_summary(summary, ["auroc", "mem_clean", "mem_noisy"]), "memorization_detection",
                     full=summary),
             w.figure(mem_histograms(mem), "memorization_histogram", "mem scores, clean vs mislabeled")]
    parts.append(_gallery_part(mem, w, loader or dataset_images(data_dir)))
    flips = results.table("mem_flips")
    if flips is None or flips.empty:
        parts.append(_p("Table 'mem_flips' is missing or empty (mem_targets = 0, or the probe has not run): no units "
                        "to flip per target set.", "missing"))
    else:
        _, flip_seeds = flip_summary(flips)
        parts += [_p("Units to flip per target set: noisy (mislabeled), atypical (clean, highest mem), typical "
                     "(clean, lowest mem); median per run (inf: half or more not flipped within the cap), then "
                     "across seeds, and the share flipped."),
                  w.table(format_summary(flip_seeds, ["median_units"], scale=1.0, digits=1).pipe(
                      format_summary, ["flipped_share"]), "memorization_flips", full=flip_seeds)]
    forgotten, note = forgotten_mem(results.table("dropout_examples"), mem)
    if note:
        parts.append(_p(f"Figure 7 quantified: {note}.", "missing"))
    else:
        summary = across_seeds(forgotten, ["mem_forgotten", "mem_kept", "auroc_forgotten"])
        parts += [_p("Figure 7 quantified: mean mem (from the same-seed standard run) of the clean examples forgotten "
                     "under drop against those kept, and the AUROC of mem for the forgotten ones (0.5 = unrelated)."),
                  w.table(format_summary(summary, ["mem_forgotten", "mem_kept"], scale=1.0, digits=2).pipe(
                      format_summary, ["auroc_forgotten"]), "memorization_figure7", full=forgotten)]
    return "".join(parts)
