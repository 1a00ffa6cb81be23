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
        {"seed": 0, "epoch": 1, "clean_norm": 0.8},
        {"seed": 0, "epoch": 1, "clean_norm": 0.6},  # same run twice: counts once, as 0.7
        {"seed": 1, "epoch": 1, "clean_norm": 0.9},
        {"seed": 0, "epoch": 2, "clean_norm": 1.0},
    ]
    out = across_seeds(frame(rows), ["clean_norm"], keys=["epoch"]).set_index("epoch")
    assert out.loc[1, "clean_norm_mean"] == pytest.approx(0.8)
    assert out.loc[1, "n_seeds"] == 2
    half = T_975_DF1 * math.sqrt(0.02) / math.sqrt(2)  # sd of (0.7, 0.9) = sqrt(0.02): unbounded, plain t
    assert out.loc[1, "clean_norm_hi"] == pytest.approx(0.8 + half)
    assert out.loc[2, "n_seeds"] == 1 and math.isnan(out.loc[2, "clean_norm_lo"])


@pytest.mark.parametrize("name, values, low, high", [
    ("clean_acc", (0.9, 1.0, 0.95), 0.0, 1.0), ("noisy_acc", (0.05, 0.15), 0.0, 1.0),
    ("fraction", (0.0, 0.0), 0.0, 1.0), ("cosine", (-0.95, -0.6), -1.0, 1.0),
    ("clean_acc_drop", (0.9, 0.99), -1.0, 1.0),
])
def test_bounded_values_get_intervals_inside_their_range(name, values, low, high):
    """A plain t-interval of (0.9, 1.0, 0.95) reaches 107%; on the logit scale it stays below 100%, holds the
    mean, and matches the logit-scale t-interval mapped back."""
    rows = [{"seed": seed, name: value} for seed, value in enumerate(values)]
    out = across_seeds(frame(rows), [name]).iloc[0]
    mean, lo, hi = out[f"{name}_mean"], out[f"{name}_lo"], out[f"{name}_hi"]
    assert mean == pytest.approx(sum(values) / len(values))
    assert low <= lo <= mean <= hi <= high
    unit = [min(max((v - low) / (high - low), 1e-3), 1 - 1e-3) for v in values]
    logits = [math.log(u / (1 - u)) for u in unit]
    centre = sum(logits) / len(logits)
    sd = math.sqrt(sum((x - centre) ** 2 for x in logits) / (len(logits) - 1))
    t = T_975_DF2 if len(values) == 3 else T_975_DF1
    expected_hi = low + (high - low) / (1 + math.exp(-(centre + t * sd / math.sqrt(len(values)))))
    assert hi == pytest.approx(max(expected_hi, mean))


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
