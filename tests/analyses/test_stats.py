"""Across-seed summaries: known means and t-intervals of hand-made numbers, each value's range from its declared
unit (never its name), and fewer than three seeds shown seed by seed instead of as an interval."""

import math

import pytest

from analyses import stats
from analyses.stats import MIN_SEEDS, across_seeds, fmt_interval, format_summary, mean_interval, value_range
from sweep import schemas
from tests.analyses.builders import frame

T_975_DF2 = 4.302652729911275  # t quantile 0.975 with 2 degrees of freedom
T_975_DF3 = 3.182446305284263


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
        {"seed": 2, "epoch": 1, "clean_norm": 1.1},
        {"seed": 3, "epoch": 1, "clean_norm": 1.3},
        {"seed": 0, "epoch": 2, "clean_norm": 1.0},
    ]
    out = across_seeds(frame(rows), ["clean_norm"], keys=["epoch"]).set_index("epoch")
    assert out.loc[1, "clean_norm_mean"] == pytest.approx(1.0)
    assert out.loc[1, "n_seeds"] == 4
    sd = math.sqrt(((0.7 - 1) ** 2 + 0.1 ** 2 + 0.1 ** 2 + 0.3 ** 2) / 3)
    half = T_975_DF3 * sd / 2  # a norm lives on [0, inf): a plain t-interval, cut at 0 where it reaches below
    assert out.loc[1, "clean_norm_hi"] == pytest.approx(1.0 + half)
    assert out.loc[1, "clean_norm_lo"] == pytest.approx(max(0.0, 1.0 - half))
    assert out.loc[1, "clean_norm_seeds"] == pytest.approx((0.7, 0.9, 1.1, 1.3))
    assert (out.loc[1, "clean_norm_min"], out.loc[1, "clean_norm_max"]) == pytest.approx((0.7, 1.3))
    assert out.loc[2, "n_seeds"] == 1 and math.isnan(out.loc[2, "clean_norm_lo"])


@pytest.mark.parametrize("name, values, low, high", [
    ("clean_acc", (0.9, 1.0, 0.95), 0.0, 1.0), ("noisy_acc", (0.05, 0.15, 0.1), 0.0, 1.0),
    ("noisy_acc_base", (0.96, 1.0, 0.99), 0.0, 1.0), ("test_acc_base", (0.97, 0.99, 0.93), 0.0, 1.0),
    ("fraction", (0.0, 0.0, 0.1), 0.0, 1.0), ("cosine", (-0.95, -0.6, -0.8), -1.0, 1.0),
    ("clean_acc_drop", (0.9, 0.99, 0.97), -1.0, 1.0),
])
def test_bounded_values_get_intervals_inside_their_range(name, values, low, high):
    """A plain t-interval of (0.96, 1.0, 0.99) reaches 103.5%; on the logit scale of the range its unit declares
    it stays below 100%, holds the mean, and matches the logit-scale t-interval mapped back. The final model's
    accuracies (`*_acc_base`) are accuracies by their declared unit, whatever their name ends with."""
    import analyses.flips  # noqa: F401 - declares fraction and the *_drop differences

    rows = [{"seed": seed, name: value} for seed, value in enumerate(values)]
    out = across_seeds(frame(rows), [name]).iloc[0]
    mean, lo, hi = out[f"{name}_mean"], out[f"{name}_lo"], out[f"{name}_hi"]
    assert mean == pytest.approx(sum(values) / len(values))
    assert low <= lo <= mean <= hi <= high
    unit = [min(max((v - low) / (high - low), 1e-3), 1 - 1e-3) for v in values]
    logits = [math.log(u / (1 - u)) for u in unit]
    centre = sum(logits) / len(logits)
    sd = math.sqrt(sum((x - centre) ** 2 for x in logits) / (len(logits) - 1))
    expected_hi = low + (high - low) / (1 + math.exp(-(centre + T_975_DF2 * sd / math.sqrt(len(values)))))
    assert hi == pytest.approx(max(expected_hi, mean))


def test_a_count_gets_its_interval_on_zero_to_infinity():
    """n_noisy is declared in 'examples': (0, 0, 1) has a plain t-interval [-1.1, 1.8]; it is cut at 0."""
    rows = [{"seed": seed, "n_noisy": value} for seed, value in enumerate((0, 0, 1))]
    out = across_seeds(frame(rows), ["n_noisy"]).iloc[0]
    half = T_975_DF2 * math.sqrt(1 / 3) / math.sqrt(3)
    assert out["n_noisy_lo"] == 0.0 and out["n_noisy_hi"] == pytest.approx(1 / 3 + half)


@pytest.mark.parametrize("n", [1, 2])
def test_fewer_than_three_seeds_show_each_seed_not_an_interval(n):
    """Two accuracies 0.80 and 0.84 give a t-interval of [56.6, 100]%: below MIN_SEEDS runs the table has no
    interval, but each seed's value and their min-max, and the text shows them."""
    assert MIN_SEEDS == 3
    values = (0.80, 0.84)[:n]
    out = across_seeds(frame([{"seed": s, "clean_acc": v} for s, v in enumerate(values)]), ["clean_acc"]).iloc[0]
    assert math.isnan(out["clean_acc_lo"]) and math.isnan(out["clean_acc_hi"])
    assert out["clean_acc_seeds"] == pytest.approx(values)
    assert (out["clean_acc_min"], out["clean_acc_max"]) == pytest.approx((min(values), max(values)))
    text = format_summary(across_seeds(frame([{"seed": s, "clean_acc": v} for s, v in enumerate(values)]),
                                       ["clean_acc"]), ["clean_acc"])["clean_acc"].iloc[0]
    if n == 2:
        assert text == "82.0 (n=2 seeds: 80.0, 84.0; min-max 80.0 to 84.0)"
    else:
        assert text == "80.0 (n=1, no interval)"


def test_an_infinite_value_makes_the_mean_infinite_without_an_interval():
    """A censored statistic (+inf = more than the cap) in one seed: the mean is infinite, no interval."""
    import analyses.flips  # noqa: F401 - declares censored_median_units

    rows = [{"seed": s, "censored_median_units": v} for s, v in enumerate((3.0, math.inf, 5.0))]
    out = across_seeds(frame(rows), ["censored_median_units"]).iloc[0]
    assert out["censored_median_units_mean"] == math.inf and math.isnan(out["censored_median_units_lo"])
    assert out["censored_median_units_max"] == math.inf and out["censored_median_units_min"] == 3.0


def test_ranges_come_from_declared_units_and_an_undeclared_value_is_refused():
    assert value_range("noisy_acc_base") == (0.0, 1.0)
    assert value_range("cosine") == value_range("cosine_flat") == (-1.0, 1.0)
    assert value_range("n_noisy") == (0.0, math.inf) and value_range("aum") == (-math.inf, math.inf)
    assert value_range("something_acc", {"something_acc": "nats"}) == (0.0, math.inf)  # the unit, not the name
    with pytest.raises(ValueError, match="no range-able unit declared for 'made_up_acc'"):
        across_seeds(frame([{"seed": 0, "made_up_acc": 0.5}]), ["made_up_acc"])
    with pytest.raises(ValueError, match="already declared"):
        stats.declare({"clean_acc": "nats"})
    with pytest.raises(ValueError, match="has no range"):
        stats.declare({"new_thing": "furlongs"})


def test_every_numeric_column_of_every_table_declares_a_unit_with_a_range():
    """Each table's own float columns (and integer ones with a unit other than a class label) are quantities:
    their unit must be in the vocabulary with a range, so any of them can be summarised with an honest interval."""
    assert schemas.UNIT_RANGES[schemas.ACC] == (0.0, 1.0)
    for spec in schemas.TABLES.values():
        for column in spec.columns:
            numeric = str(column.type) in ("double", "int64")
            if str(column.type) == "double" or (numeric and column.unit not in ("", "class")):
                assert column.unit in schemas.UNIT_RANGES, (spec.name, column.name, column.unit)
                assert schemas.UNIT_RANGES[column.unit] is not None, (spec.name, column.name, column.unit)


def test_configurations_are_kept_apart():
    rows = [{"seed": 0, "clean_acc": 0.1}, {"seed": 0, "clean_acc": 0.3, "dataset": "mnist"}]
    out = across_seeds(frame(rows), ["clean_acc"])
    assert dict(zip(out["dataset"], out["clean_acc_mean"], strict=True)) == {"cifar10": 0.1, "mnist": 0.3}


def test_formatting_says_when_there_is_no_interval():
    assert fmt_interval(0.5, 0.4, 0.6, 3) == "50.0 [40.0, 60.0]"
    assert fmt_interval(0.5, 0.4, 0.6, 3, seeds=(0.4, 0.5, 0.6)) == "50.0 [40.0, 60.0]"
    assert fmt_interval(0.5, float("nan"), float("nan"), 1) == "50.0 (n=1, no interval)"
    assert fmt_interval(float("nan"), 0, 0, 0) == "-"
    out = across_seeds(frame([{"seed": 0, "clean_acc": 0.25}]), ["clean_acc"])
    shown = format_summary(out, ["clean_acc"])
    assert shown["clean_acc"].tolist() == ["25.0 (n=1, no interval)"]
    assert not [c for c in shown.columns if c.startswith("clean_acc_")]
