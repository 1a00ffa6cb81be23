"""Across-seed summaries: known means and t-intervals of hand-made numbers, n=1 gives no interval."""

import math

import pytest

from analyses.stats import across_seeds, fmt_interval, format_summary, mean_interval
from tests.analyses.builders import frame

T_975_DF2 = 4.302652729911275  # t quantile 0.975 with 2 degrees of freedom
T_975_DF1 = 12.706204736174707


def test_mean_interval_of_three_values():
    mean, lo, hi, n = mean_interval([1.0, 2.0, 3.0])
    half = T_975_DF2 * 1.0 / math.sqrt(3)
    assert (mean, n) == (2.0, 3)
    assert lo == pytest.approx(2.0 - half) and hi == pytest.approx(2.0 + half)


def test_one_value_has_no_interval_and_nan_is_ignored():
    mean, lo, hi, n = mean_interval([0.4, float("nan")])
    assert (mean, n) == (0.4, 1) and math.isnan(lo) and math.isnan(hi)
    assert mean_interval([])[3] == 0


def test_across_seeds_averages_within_run_then_across_runs():
    rows = [
        {"seed": 0, "epoch": 1, "clean_acc": 0.8},
        {"seed": 0, "epoch": 1, "clean_acc": 0.6},  # same run twice: counts once, as 0.7
        {"seed": 1, "epoch": 1, "clean_acc": 0.9},
        {"seed": 0, "epoch": 2, "clean_acc": 1.0},
    ]
    out = across_seeds(frame(rows), ["clean_acc"], keys=["epoch"]).set_index("epoch")
    assert out.loc[1, "clean_acc_mean"] == pytest.approx(0.8)
    assert out.loc[1, "n_seeds"] == 2
    half = T_975_DF1 * math.sqrt(0.02) / math.sqrt(2)  # sd of (0.7, 0.9) = sqrt(0.02)
    assert out.loc[1, "clean_acc_hi"] == pytest.approx(0.8 + half)
    assert out.loc[2, "n_seeds"] == 1 and math.isnan(out.loc[2, "clean_acc_lo"])


def test_configurations_are_kept_apart():
    rows = [{"seed": 0, "x": 1.0}, {"seed": 0, "x": 3.0, "dataset": "mnist"}]
    out = across_seeds(frame(rows), ["x"])
    assert dict(zip(out["dataset"], out["x_mean"], strict=True)) == {"cifar10": 1.0, "mnist": 3.0}


def test_formatting_says_when_there_is_no_interval():
    assert fmt_interval(0.5, 0.4, 0.6, 3) == "50.0 [40.0, 60.0]"
    assert fmt_interval(0.5, float("nan"), float("nan"), 1) == "50.0 (n=1, no interval)"
    assert fmt_interval(float("nan"), 0, 0, 0) == "-"
    out = across_seeds(frame([{"seed": 0, "acc": 0.25}]), ["acc"])
    shown = format_summary(out, ["acc"])
    assert shown["acc"].tolist() == ["25.0 (n=1, no interval)"]
    assert "acc_mean" not in shown.columns
