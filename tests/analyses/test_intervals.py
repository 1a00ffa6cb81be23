"""Every interval of every report CSV lies inside its column's range, the range its declared unit gives (the
smoke-shaped fixture, with one, two and three seeds, and a results set where every configuration has three);
fewer than three seeds show each seed's value instead of a t-interval, in the CSVs, the page and the figures."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analyses import report
from analyses.plotting import SEEDS
from analyses.stats import MIN_SEEDS, value_range
from tests.analyses.builders import BASELINE, STANDARD, TIED, run_config, write_folds, write_run

SUFFIX = re.compile(r"^(?P<base>.+)_(?P<part>mean|lo|hi|min|max|seeds)$")


def make_three_seed_results(root: Path) -> Path:
    """The fixture's configurations, each with three seeds."""
    for seed in (0, 1, 2):
        cifar = run_config("cifar10", "resnet9", "standard", 0.1, seed)
        write_run(root, cifar, STANDARD)
        write_folds(root, cifar, 3)
        for variant, tables in (("tied", TIED), ("dropout", BASELINE), ("sparse", BASELINE)):
            write_run(root, run_config("cifar10", "resnet9", variant, 0.1, seed), tables)
        for noise in (0.1, 0.2):
            write_run(root, run_config("digits", "mlp", "standard", noise, seed), STANDARD)
        write_run(root, run_config("digits", "mlp", "tied", 0.2, seed), TIED)
    return root


@pytest.fixture(scope="module")
def three_seed_report(tmp_path_factory):
    root = make_three_seed_results(tmp_path_factory.mktemp("three-seeds"))
    return report.write_report(root, root / "report", data_dir=str(tmp_path_factory.mktemp("no-data")))


def seed_values(cell: object) -> list[float]:
    """A CSV cell of `<v>_seeds`: the tuple's numbers ('inf' included)."""
    if not isinstance(cell, str):
        return []
    return [float(x) for x in re.findall(r"-?(?:inf|\d+(?:\.\d*)?(?:e-?\d+)?)", cell)]


def summarised(table: pd.DataFrame) -> dict[str, set[str]]:
    """The summarised values of a CSV (those with a `<v>_mean` column) and which summary parts it has."""
    parts: dict[str, set[str]] = {}
    for column in table.columns:
        match = SUFFIX.match(column)
        if match:
            parts.setdefault(match["base"], set()).add(match["part"])
    return {base: found for base, found in parts.items() if "mean" in found}


def check_report(index: Path) -> tuple[int, int]:
    """Assert every report CSV's intervals and seed values lie inside their ranges; (intervals, seed rows)."""
    intervals = few = 0
    for csv in sorted((index.parent / "tables").glob("*.csv")):
        table = pd.read_csv(csv)
        for base, parts in summarised(table).items():
            low, high = value_range(base)  # every summarised column has a declared, range-able unit
            assert {"lo", "hi", "min", "max", "seeds"} <= parts, (csv.name, base, parts)
            mean = table[f"{base}_mean"].astype(float)
            lo, hi = table[f"{base}_lo"].astype(float), table[f"{base}_hi"].astype(float)
            has = lo.notna() & hi.notna()
            assert (lo[has] >= low - 1e-12).all() and (hi[has] <= high + 1e-12).all(), (csv.name, base)
            assert (lo[has] <= mean[has] + 1e-12).all() and (mean[has] <= hi[has] + 1e-12).all(), (csv.name, base)
            intervals += int(has.sum())
            for i, cell in table[f"{base}_seeds"].items():
                values = seed_values(cell)
                assert all(low - 1e-12 <= v <= high + 1e-12 for v in values), (csv.name, base, cell)
                if len(values) < MIN_SEEDS:  # too few seeds: no t-interval, but the seeds and their min-max
                    assert not has[i], (csv.name, base, i)
                    if values:
                        assert table.loc[i, f"{base}_min"] == pytest.approx(min(values))
                        assert table.loc[i, f"{base}_max"] == pytest.approx(max(values))
                        few += int(table.loc[i, "n_seeds"] < MIN_SEEDS)  # not a value missing in some seeds
    return intervals, few


def test_every_interval_of_the_smoke_shaped_report_lies_in_its_range(report_index):
    intervals, few = check_report(report_index)
    assert intervals > 100 and few > 100  # the fixture has configurations with 3 seeds and with 1 or 2
    final = pd.read_csv(report_index.parent / "tables" / "figure4_final.csv")
    assert final[["noisy_acc_base_hi", "test_acc_base_hi", "clean_acc_hi"]].max().max() <= 1.0
    counts = pd.read_csv(report_index.parent / "tables" / "figure5c.csv")
    assert (counts["n_capped_lo"].dropna() >= 0).all() and counts["n_capped_lo"].notna().any()


def test_every_interval_of_a_three_seed_report_lies_in_its_range(three_seed_report):
    intervals, few = check_report(three_seed_report)
    assert intervals > 500 and few == 0
    curves = pd.read_csv(three_seed_report.parent / "tables" / "curves_last.csv")
    assert (curves["n_seeds"] == 3).all() and curves["noisy_acc_lo"].notna().all()


def test_two_seed_rows_show_each_seed_on_the_page_and_in_the_csv(report_index):
    """The fixture's example-tied CIFAR-10 runs have two seeds: Table 1 shows both values and their min-max."""
    page = report_index.read_text()
    body = dict(re.findall(r'<section id="([^"]+)">(.*?)</section>', page, flags=re.S))["table1"]
    assert re.search(r"\d+\.\d \(n=2 seeds: \d+\.\d, \d+\.\d; min-max \d+\.\d to \d+\.\d\)", body)
    assert f"fewer than {MIN_SEEDS} seeds show each seed" in body
    t1 = pd.read_csv(report_index.parent / "tables" / "table1.csv")
    two = t1[t1["n_seeds"] == 2]
    assert len(two) and two["clean_acc_lo"].isna().all()
    assert all(len(seed_values(c)) == 2 for c in two["clean_acc_seeds"])


def test_figures_draw_two_seeds_as_points(report_figures):
    """Two-seed configurations (example-tied CIFAR-10): their curves and bars carry each seed as a point (no
    band, no error bar)."""
    for stem in ("curves", "table1"):
        points = [c for ax in report_figures[stem].axes for c in ax.collections
                  if c.get_gid() == SEEDS and len(c.get_offsets())]
        assert points, stem
        ys = np.concatenate([c.get_offsets()[:, 1] for c in points])
        assert np.isfinite(ys).all() and ys.min() >= -100 and ys.max() <= 100, stem
