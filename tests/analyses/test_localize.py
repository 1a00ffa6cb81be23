"""The localization section: summaries from small hand-made `localize` / `localize_ladder` tables equal values
computed by hand, the sentence names the right localizer and judges its lead against the seeds, the figures
draw one curve per localizer plus chance, and the section appears in a built report."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analyses import localize as lz
from analyses.load import Results
from analyses.report import write_report
from sweep.config import RunConfig
from sweep.schemas import rows_frame, to_arrow
from sweep.store import with_run_columns
from tests.analyses.test_intervals import check_report

TIED = RunConfig(dataset="digits", arch="mlp", variant="tied", noise=0.1)
STANDARD = RunConfig(dataset="digits", arch="mlp", variant="standard", noise=0.1)
# precision@5 of (example 0 = clean, example 1 = noisy) per (config, seed, localizer)
P5 = {
    ("tied", 0, "greedy"): (0.8, 0.6), ("tied", 1, "greedy"): (1.0, 0.8),          # run means 0.7, 0.9
    ("tied", 0, "zero_out"): (0.4, 0.2), ("tied", 1, "zero_out"): (0.5, 0.3),      # 0.3, 0.4
    ("tied", 0, "activation"): (0.2, 0.2), ("tied", 1, "activation"): (0.1, 0.1),  # 0.2, 0.1
    ("standard", 0, "greedy"): (0.5, 0.5), ("standard", 1, "greedy"): (0.3, 0.3),      # 0.5, 0.3
    ("standard", 0, "zero_out"): (0.6, 0.6), ("standard", 1, "zero_out"): (0.4, 0.3),  # 0.6, 0.35
}
# k_flip of (clean, noisy) per (seed, localizer) in the tied config; None: never flipped within the cap
K_FLIP = {(0, "greedy"): (3, 2), (1, "greedy"): (5, None)}


def _localize_rows(variant: str, seed: int) -> list[dict]:
    truth, mode = ("tied", "tied") if variant == "tied" else ("injected", "all")
    rows = []
    for (v, s, localizer), values in P5.items():
        if (v, s) != (variant, seed):
            continue
        for example, p5 in enumerate(values):
            k_flip = K_FLIP.get((seed, localizer), (4, 4))[example] if variant == "tied" else 4
            row = {"truth": truth, "mode": mode, "localizer": localizer, "example_id": example,
                   "is_noisy": variant == "tied" and example == 1, "label": 1, "n_units": 100,
                   "n_candidates": 50, "n_truth": 5, "chance": 0.1, "k_flip": k_flip, "precision_at_flip": 0.5,
                   "recall_at_flip": 0.5, "outside_at_5": 0, "seconds": 0.01, "fitted": True}
            for k in lz.KS:
                row[f"precision_at_{k}"] = p5 if k <= 5 else p5 / 2
                row[f"recall_at_{k}"] = p5
            rows.append(row)
    if variant == "standard":  # an injection that did not take: perfect precision, never scored
        rows.append({**rows[0], "localizer": "activation", "example_id": 7, "fitted": False,
                     **{f"precision_at_{k}": 1.0 for k in lz.KS}})
    return rows


def _ladder_rows(seed: int) -> list[dict]:
    flipped = {(0, 1): (True, False), (1, 1): (True, True), (0, 2): (True, True), (1, 2): (True, True)}
    rows = []
    for k in (1, 2):
        for example, f in enumerate(flipped[(seed, k)]):
            rows.append({"truth": "tied", "mode": "tied", "localizer": "greedy", "example_id": example,
                         "is_noisy": example == 1, "k": k, "flipped": f, "target_loss": 1.0, "precision": 0.5,
                         "recall": 0.5, "clean_acc": 0.95, "noisy_acc": 0.5, "test_acc": (0.9, 0.8)[seed] - k / 100,
                         "clean_acc_base": 1.0, "noisy_acc_base": 1.0, "test_acc_base": 0.9})
    return rows


def _table(name: str, cfg: RunConfig, rows: list[dict]) -> pd.DataFrame:
    return to_arrow(name, with_run_columns(rows_frame(name, rows), cfg)).to_pandas()


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("localize-results")
    for seed in (0, 1):
        for base, variant in ((TIED, "tied"), (STANDARD, "standard")):
            cfg = RunConfig(**{**base.__dict__, "seed": seed, "noise_seed": seed})
            tables = {"localize": _localize_rows(variant, seed)}
            if variant == "tied":
                tables["localize_ladder"] = _ladder_rows(seed)
            for name, rows in tables.items():
                (root / name).mkdir(exist_ok=True)
                _table(name, cfg, rows).to_parquet(root / name / f"{cfg.run_id}.parquet", index=False)
    return root


@pytest.fixture(scope="module")
def tables(results):
    res = Results(results)
    return res.table("localize"), res.table("localize_ladder")


def _row(frame: pd.DataFrame, **where) -> pd.Series:
    hit = frame
    for key, value in where.items():
        hit = hit[hit[key] == value]
    assert len(hit) == 1, where
    return hit.iloc[0]


def test_precision_at_k_equals_the_hand_computed_means(tables):
    precision = lz.precision_at_k(tables[0])
    greedy = _row(precision, variant="tied", localizer="greedy", k=5)
    assert greedy["precision_mean"] == pytest.approx(0.8)
    assert (greedy["precision_min"], greedy["precision_max"]) == pytest.approx((0.7, 0.9))
    assert greedy["chance_mean"] == pytest.approx(0.1) and greedy["n_seeds"] == 2
    assert _row(precision, variant="tied", localizer="greedy", k=20)["precision_mean"] == pytest.approx(0.4)
    assert _row(precision, variant="standard", localizer="zero_out", k=5)["precision_mean"] == pytest.approx(0.475)
    # the unfitted injected target is not scored: activation has no injected row at all
    assert precision[(precision["variant"] == "standard") & (precision["localizer"] == "activation")].empty


def test_sentences_name_the_best_localizer_and_judge_its_lead_by_the_seed_ranges(tables):
    said = lz.verdicts(lz.precision_at_k(tables[0]))
    assert len(said) == 2
    tied = next(s for s in said if "truth tied" in s)
    injected = next(s for s in said if "truth injected" in s)
    assert "best by precision@5 is greedy (0.80" in tied and "ahead of zero_out (0.35)" in tied
    assert "beyond seed-to-seed variation" in tied and "do not overlap" in tied
    assert "best by precision@5 is zero_out (0.47" in injected and "ahead of greedy (0.40)" in injected
    assert "within seed-to-seed variation" in injected and "overlap" in injected
    best = lz.best_localizers(lz.precision_at_k(tables[0]))
    assert set(zip(best["best"], best["beyond_seeds"], strict=True)) == {("greedy", True), ("zero_out", False)}


def test_units_to_flip_are_censored_medians_per_kind(tables):
    units = lz.units_to_flip(tables[0])
    clean = _row(units, variant="tied", localizer="greedy", kind="clean")
    noisy = _row(units, variant="tied", localizer="greedy", kind="noisy")
    assert clean["k_flip_median_mean"] == pytest.approx(4.0) and clean["flipped_share_mean"] == 1.0
    assert math.isinf(noisy["k_flip_median_mean"]) and noisy["flipped_share_mean"] == pytest.approx(0.5)
    assert noisy["k_flip_median_seeds"] == (2.0, math.inf)


def test_forget_keep_shares_and_accuracies(tables):
    keep = lz.forget_keep(tables[1])
    one = _row(keep, localizer="greedy", k=1)
    assert one["forgotten_mean"] == pytest.approx(0.75) and one["test_acc_mean"] == pytest.approx(0.84)
    assert _row(keep, localizer="greedy", k=2)["forgotten_mean"] == pytest.approx(1.0)


def _labels(fig) -> list[list[str]]:
    return [[line.get_label() for line in ax.get_lines()] for ax in fig.axes if ax.get_visible() and ax.get_lines()]


def test_figures_draw_one_curve_per_localizer_plus_chance(tables):
    precision = lz.precision_at_k(tables[0])
    fig = lz.precision_figure(precision).figure
    panels = _labels(fig)
    assert sorted(map(sorted, panels)) == [["activation", "chance", "greedy", "zero_out"],
                                           ["chance", "greedy", "zero_out"]]
    tied_ax = next(ax for ax in fig.axes if ax.get_visible() and len(ax.get_lines()) == 4)
    chance = next(line for line in tied_ax.get_lines() if line.get_label() == "chance")
    assert np.allclose(chance.get_ydata(), 10.0)
    keep = lz.forget_keep_figure(lz.forget_keep(tables[1])).figure
    assert _labels(keep) == [["greedy", "test accuracy before removal"]]
    assert lz.units_figure(lz.units_to_flip(tables[0])).figure is not None


def test_the_section_appears_in_a_built_report(results, tmp_path):
    index = write_report(results, tmp_path / "report", data_dir=str(tmp_path / "no-data"))
    page = index.read_text()
    assert '<section id="localize"><h2>Do localizers localize?</h2>' in page
    section = page.split('<section id="localize">')[1].split("</section>")[0]
    assert "could not be built" not in section
    assert "best by precision@5 is greedy" in section
    for stem in ("localize_precision", "localize_best", "localize_units_to_flip", "localize_forget_keep"):
        assert (index.parent / "tables" / f"{stem}.csv").exists(), stem
    for stem in ("localize_precision", "localize_forget_keep", "localize_units_to_flip"):
        assert (index.parent / "figures" / f"{stem}.png").exists(), stem
    intervals, few = check_report(index)
    assert few > 0  # two seeds: per-seed values, min-max, no t-interval
