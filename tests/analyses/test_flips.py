"""Neuron flipping (Figure 5 a/b/c) on hand-made examples."""

import math

import pytest

from analyses import paper
from analyses.flips import capped_text, censored_median, figure5a, figure5b, figure5c, unit_groups, unit_layers
from analyses.panels import PAPER_LEGEND
from analyses.plotting import SEED_LABEL, SEEDS
from tests.analyses.builders import frame

LAYERS = {"conv1": 0, "conv2": 1, "conv3": 2, "linear": 8, "fc1": 0, "fc2": 1, "head": 2}


def units(*groups):
    """flips.units as the engine writes it: {layer (forward index), layer_name, module, unit}, removal order."""
    return [{"layer": LAYERS[g], "layer_name": g, "module": f"layers.{LAYERS[g]}", "unit": i}
            for i, g in enumerate(groups)]


def flip_rows(**config):
    rows = []
    for seed in (0, 1):
        rows += [
            {
                "seed": seed,
                "example_id": 1,
                "is_noisy": True,
                "n_units": 2,
                "flipped": True,
                "units": units("conv2", "conv1"),
                "clean_acc": 0.88,
                "clean_acc_base": 0.9,
                "noisy_acc": 0.8,
                "noisy_acc_base": 0.8,
                "test_acc": 0.7,
                "test_acc_base": 0.7,
            },
            {
                "seed": seed,
                "example_id": 2,
                "is_noisy": True,
                "n_units": 4,
                "flipped": True,
                "units": units("conv1", "conv1", "conv1", "conv1"),
                "clean_acc": 0.9,
                "clean_acc_base": 0.9,
                "noisy_acc": 0.8,
                "noisy_acc_base": 0.8,
                "test_acc": 0.7,
                "test_acc_base": 0.7,
            },
            {
                "seed": seed,
                "example_id": 3,
                "is_noisy": False,
                "n_units": 10,
                "flipped": True,
                "units": units(*["conv2"] * 10),
                "clean_acc": 0.7,
                "clean_acc_base": 0.9,
                "noisy_acc": 0.8,
                "noisy_acc_base": 0.8,
                "test_acc": 0.6,
                "test_acc_base": 0.7,
            },
            {
                "seed": seed,
                "example_id": 4,
                "is_noisy": False,
                "n_units": 1000,
                "flipped": False,
                "units": units("linear"),
                "clean_acc": 0.1,
                "clean_acc_base": 0.9,
                "noisy_acc": 0.1,
                "noisy_acc_base": 0.8,
                "test_acc": 0.1,
                "test_acc_base": 0.7,
            },
        ]
    return frame(rows, **config)


def test_figure5a_units_flip_rate_and_paper_number():
    out = figure5a(flip_rows(flip_units="paper"))
    t = out.table.set_index("kind")
    assert t.loc["noisy", "median_units_mean"] == pytest.approx(3.0)
    assert t.loc["clean", "median_units_mean"] == pytest.approx(10.0)  # the capped example is not counted
    assert t.loc["clean", "flipped_frac_mean"] == pytest.approx(0.5)
    assert t.loc["noisy", "n_seeds"] == 2
    assert t.loc["noisy", "paper_units"] == 5.0
    assert out.figure is not None
    (ax,) = out.figure.axes
    legend = ax.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == [
        "clean: 50% flipped; median 10 of those, > 1000 of all", "noisy: 100% flipped; median 3 of those, 3 of all",
        PAPER_LEGEND,  # the paper's setting and unit rule: its 'about 5' is drawn (analyses.panels)
    ]
    assert "2 hit the cap unflipped" in legend.get_title().get_text()
    assert "units: paper rule" in ax.get_title()
    assert ax.get_ylabel() == "examples (count)"


def test_figure5a_censored_median_counts_capped_examples_as_infinite():
    """Per run, clean: 10 units (flipped) and the capped one (+inf): the median of (10, inf) is only known to
    exceed the cap, so it is infinite and reads '> 1000'; noisy (2, 4), none capped: 3, as the plain median."""
    t = figure5a(flip_rows()).table.set_index("kind")
    assert t.loc["clean", "censored_median_units_mean"] == math.inf
    assert t.loc["clean", "cap_units_mean"] == 1000
    assert capped_text(t.loc["clean", "censored_median_units_mean"], t.loc["clean", "cap_units_mean"]) == "> 1000"
    assert t.loc["noisy", "censored_median_units_mean"] == pytest.approx(3.0)
    import pandas as pd

    units, flipped = pd.Series([1, 2, 1000, 9, 1000]), pd.Series([True, True, False, True, False])
    assert censored_median(units, flipped) == 9  # 1, 2, 9, inf, inf: the middle one is finite
    assert censored_median(units[:4], flipped[:4]) == pytest.approx(5.5)  # 1, 2, 9, inf -> (2 + 9) / 2
    assert censored_median(units[2:], flipped[2:]) == math.inf  # inf, 9, inf
    assert math.isnan(censored_median(units[:0], flipped[:0]))


def test_figure5a_paper_number_needs_the_papers_unit_rule():
    for rows in (flip_rows(), flip_rows(flip_units="outputs")):  # the rule unrecorded, or ours
        t = figure5a(rows).table
        assert t["paper_units"].isna().all() and (t["paper_note"] == paper.NO_PAPER).all()


def test_figure5a_keeps_the_two_unit_rules_apart():
    import pandas as pd

    both = pd.concat([flip_rows(flip_units="paper"), flip_rows(flip_units="outputs").assign(n_units=7)])
    t = figure5a(both).table.set_index(["flip_units", "kind"])
    assert t.loc[("paper", "noisy"), "median_units_mean"] == pytest.approx(3.0)
    assert t.loc[("outputs", "noisy"), "median_units_mean"] == pytest.approx(7.0)
    assert t.loc[("paper", "noisy"), "paper_units"] == 5.0 and pd.isna(t.loc[("outputs", "noisy"), "paper_units"])


def test_figure5a_other_setting_has_no_paper_number():
    t = figure5a(flip_rows(dataset="digits", arch="mlp", flip_units="paper")).table
    assert t["paper_units"].isna().all()
    assert (t["paper_note"] == paper.NO_PAPER).all()


def test_figure5b_accuracy_lost_is_base_minus_edited_over_flipped_examples():
    out = figure5b(flip_rows())
    t = out.table.set_index("kind")
    assert t.loc["noisy", "clean_acc_drop_mean"] == pytest.approx(0.01)
    assert t.loc["clean", "clean_acc_drop_mean"] == pytest.approx(0.2)  # the unflipped 0.8 drop excluded
    assert t.loc["clean", "test_acc_drop_mean"] == pytest.approx(0.1)
    (ax,) = out.figure.axes  # drawn in percentage points, as its axis says
    assert "percentage points" in ax.get_ylabel()
    heights = sorted(round(p.get_height(), 6) for p in ax.patches)
    assert heights == sorted(round(v, 6) for v in (20.0, 0.0, 10.0, 1.0, 0.0, 0.0))


def test_figure5c_weighs_each_flipped_example_equally_in_forward_order():
    """Noisy: example 1 removed conv2, conv1 (1/2 each), example 2 four conv1 units: conv1 = (1/2 + 1)/2 = 3/4,
    not the pooled 5/6. Clean: the capped example (1000 units, here all in `linear`) is left out and counted."""
    out = figure5c(flip_rows())
    t = out.table.set_index(["kind", "layer_name"])
    assert t.loc[("noisy", "conv1"), "fraction_mean"] == pytest.approx(3 / 4)
    assert t.loc[("noisy", "conv2"), "fraction_mean"] == pytest.approx(1 / 4)
    assert t.loc[("clean", "conv1"), "fraction_mean"] == 0.0  # zero-filled, not missing
    assert t.loc[("clean", "conv2"), "fraction_mean"] == pytest.approx(1.0)
    assert "linear" not in set(out.table["layer_name"])  # only the capped example removed units there
    assert t.loc[("clean", "conv2"), "n_capped_mean"] == 1 and t.loc[("noisy", "conv1"), "n_capped_mean"] == 0
    assert list(dict.fromkeys(out.table["layer_name"])) == ["conv1", "conv2"]  # forward order, by `layer`
    assert t.loc[("noisy", "conv2"), "layer"] == 1
    (ax,) = out.figure.axes
    assert "capped per run, left out: clean 1, noisy 0" in ax.get_title()
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0 conv1", "1 conv2"]
    assert sorted(round(p.get_height()) for p in ax.patches) == [0, 25, 75, 100]  # shares in %
    assert ax.get_ylabel().endswith("(%)")
    (legend,) = out.figure.legends
    assert [t.get_text() for t in legend.get_texts()] == ["clean targets (flipped)", "noisy targets (flipped)",
                                                          SEED_LABEL]
    points = [c for c in ax.collections if c.get_gid() == SEEDS and len(c.get_offsets())]
    assert sorted(round(float(y)) for c in points for _, y in c.get_offsets()) == [0, 0, 25, 25, 75, 75, 100, 100]


def test_figure5c_orders_groups_by_their_layer_index_not_by_name_or_appearance():
    rows = flip_rows()
    rows["units"] = [[{"layer": 7, "layer_name": "b-late", "module": "m7", "unit": 0},
                      {"layer": 2, "layer_name": "z-early", "module": "m2", "unit": 1}] for _ in range(len(rows))]
    table = figure5c(rows).table
    assert list(dict.fromkeys(table["layer_name"])) == ["z-early", "b-late"]
    assert list(dict.fromkeys(table["layer"])) == [2, 7]


def test_figure5c_reads_units_written_before_the_rename():
    """{group, layer: module path, index}: ordered by `group_order`, then first appearance."""
    rows = flip_rows()
    rows["units"] = [[{"group": g, "layer": f"{g}.0", "index": i} for i, g in enumerate(u["layer_name"] for u in cell)]
                     for cell in rows["units"]]
    table = figure5c(rows, group_order=["conv2", "conv1"]).table.set_index(["kind", "layer_name"])
    assert table.loc[("noisy", "conv1"), "fraction_mean"] == pytest.approx(3 / 4)
    assert table.loc[("noisy", "conv2"), "layer"] == 0 and table.loc[("noisy", "conv1"), "layer"] == 1


def test_unit_groups_reads_parquet_cells():
    assert unit_groups(None) == [] and unit_groups(math.nan) == []
    assert unit_groups(units("conv2", "fc1")) == ["conv2", "fc1"]
    assert unit_layers(units("conv2", "fc1")) == [(1, "conv2"), (0, "fc1")]
    assert unit_layers([{"group": "g", "layer": "layers.0", "index": 3}]) == [(None, "g")]


def test_units_survive_a_parquet_round_trip(tmp_path):
    path = tmp_path / "flips.parquet"
    flip_rows().to_parquet(path)
    import pandas as pd

    back = pd.read_parquet(path)
    assert figure5c(back).table.equals(figure5c(flip_rows()).table)


def test_figure5c_keeps_architectures_apart():
    import pandas as pd

    mlp = flip_rows(dataset="digits", arch="mlp")
    mlp["units"] = [units("fc2", "fc1") for _ in range(len(mlp))]
    both = pd.concat([flip_rows(), mlp], ignore_index=True)
    table = figure5c(both).table
    assert set(table.loc[table["arch"] == "mlp", "layer_name"]) == {"fc1", "fc2"}
    assert set(table.loc[table["arch"] == "resnet9", "layer_name"]) == {"conv1", "conv2"}
    assert list(table.loc[table["arch"] == "mlp", "layer_name"].drop_duplicates()) == ["fc1", "fc2"]
