"""Shared axes, no empty panels and the paper's numbers as reference marks (analyses.panels), checked on the
Axes of figures built from small hand-made frames: one frame in the paper's setting (CIFAR-10 / ResNet-9 at 10%
noise, 50 epochs), where a mark must be drawn, beside digits / MLP frames, where none may be."""

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from analyses.curves import training_curves
from analyses.detection import ALL_SET, FLIP_SET, summarise
from analyses.detection_epochs import detection_by_epoch
from analyses.dropout import table1, table3
from analyses.flips import figure5a, figure5b, figure5c
from analyses.gradients import figure1
from analyses.localize import forget_keep_figure, precision_figure, units_figure
from analyses.noise import noise_figure
from analyses.panels import PAPER_LEGEND, PAPER_MARK, paper_labels, paper_mark, paper_marks, share_axes
from analyses.plotting import wrap_grid
from tests.analyses.builders import frame
from tests.analyses.test_dropout_tables import tied_rows
from tests.analyses.test_flips import flip_rows, units

DIGITS = {"dataset": "digits", "arch": "mlp"}


def axes_of(fig: Figure):
    return [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]


def assert_shared(axes, x: bool = False) -> None:
    """Every panel has the first one's y range (and x range and scale when `x`)."""
    assert len(axes) >= 2
    for ax in axes[1:]:
        assert ax.get_ylim() == pytest.approx(axes[0].get_ylim())
        assert ax.get_yscale() == axes[0].get_yscale()
        if x:
            assert ax.get_xlim() == pytest.approx(axes[0].get_xlim())
            assert ax.get_xscale() == axes[0].get_xscale()


def panel(fig: Figure, text: str):
    (ax,) = [ax for ax in axes_of(fig) if text in ax.get_title()]
    return ax


# ---- the helpers ---------------------------------------------------------------------------------------------

def test_share_axes_gives_every_panel_the_union_of_the_ranges():
    fig, axes = wrap_grid(3)
    axes[0].plot([0, 1], [0, 1])
    axes[1].plot([0, 5], [2, 30])
    axes[2].plot([2, 3], [-4, 3])
    share_axes(axes, x=True)
    for ax in axes:
        low, high = ax.get_ylim()
        assert low <= -4 and high >= 30
        assert ax.get_xlim() == pytest.approx(axes[0].get_xlim()) and ax.get_xlim()[1] >= 5


def test_share_axes_refuses_a_mixed_log_and_linear_axis():
    _, axes = wrap_grid(2)
    axes[0].set_xscale("log")
    with pytest.raises(ValueError, match="linear and log x scales"):
        share_axes(axes, x=True)
    share_axes(axes)  # y alone is one scale: fine


def test_wrap_grid_deletes_the_slots_it_does_not_use():
    fig, axes = wrap_grid(5, max_cols=3)
    assert len(axes) == 5 and len(fig.axes) == 5  # the sixth slot of the 2 x 3 grid is gone, not hidden


def test_paper_mark_draws_a_labelled_line_and_names_it_once_in_the_legend():
    _, (ax,) = wrap_grid(1)
    ax.bar([0, 1], [50, 60])
    paper_mark(ax, 62.0, "paper: 62", axis="y")
    paper_mark(ax, 3.1, "3.1", at=1.0, width=0.4)
    paper_mark(ax, 0.5, "paper: about 5", axis="x")
    assert len(paper_marks(ax)) == 3 and all(line.get_gid() == PAPER_MARK for line in paper_marks(ax))
    assert paper_labels(ax) == ["paper: 62", "3.1", "paper: about 5"]
    over_bar = paper_marks(ax)[1]
    assert list(over_bar.get_xdata()) == pytest.approx([0.8, 1.2]) and list(over_bar.get_ydata()) == [3.1, 3.1]
    assert ax.get_legend_handles_labels()[1].count(PAPER_LEGEND) == 1


# ---- Figure 5 --------------------------------------------------------------------------------------------------

def many_units(**config):
    """Flips of a digits MLP that need up to 120 units: a panel whose counts span decades."""
    rows = flip_rows(**config)
    rows["n_units"] = np.where(rows["flipped"], rows["n_units"] * 12, rows["n_units"])
    return rows


def test_figure5a_panels_share_one_x_scale_and_range_and_the_paper_mark_sits_on_its_setting_only():
    paper_rows = flip_rows(flip_units="paper")  # ResNet-9 / CIFAR-10 / 10%, counted by the paper's unit rule
    digits = many_units(flip_units="paper", **DIGITS)
    other_rule = flip_rows(flip_units="outputs")  # the paper's training setting, another unit rule: no number
    fig = figure5a(pd.concat([paper_rows, digits, other_rule], ignore_index=True)).figure
    axes = axes_of(fig)
    assert len(axes) == 3  # three panels, no fourth (empty) slot of the 2 x 2 grid
    assert {ax.get_xscale() for ax in axes} == {"log"}  # the digits counts span decades: log for every panel
    assert_shared(axes, x=True)
    marked = [ax for ax in axes if paper_marks(ax)]
    assert len(marked) == 1 and "cifar10 / resnet9" in marked[0].get_title() and "paper rule" in marked[0].get_title()
    (line,) = paper_marks(marked[0])
    assert list(line.get_xdata()) == [5.0, 5.0] and paper_labels(marked[0]) == ["paper: about 5 (noisy)"]
    assert PAPER_LEGEND in [t.get_text() for t in marked[0].get_legend().get_texts()]


def test_figure5a_small_counts_stay_linear_in_every_panel():
    fig = figure5a(pd.concat([flip_rows(), flip_rows(**DIGITS)], ignore_index=True)).figure
    axes = axes_of(fig)
    assert {ax.get_xscale() for ax in axes} == {"linear"}
    assert_shared(axes, x=True)
    assert not any(paper_marks(ax) for ax in axes)  # no flip_units column: not the paper's unit rule, no mark


def test_figures_5b_and_5c_share_the_y_range():
    digits = many_units(**DIGITS).assign(clean_acc=0.2)  # the edit costs more: taller 5b bars
    digits["units"] = [units("fc1", "fc2") for _ in range(len(digits))]  # half in each group: lower 5c bars
    both = pd.concat([flip_rows(), digits], ignore_index=True)
    for build in (figure5b, figure5c):
        axes = axes_of(build(both).figure)
        assert len(axes) == 2
        assert_shared(axes)


# ---- Tables 1 and 3 -----------------------------------------------------------------------------------------

def test_table1_marks_each_paper_number_over_its_bar_and_none_for_digits():
    rows = pd.concat([tied_rows(), tied_rows(**DIGITS)], ignore_index=True)
    fig = table1(rows).figure
    axes = axes_of(fig)
    assert len(axes) == 2
    assert_shared(axes)
    cifar, digits = panel(fig, "cifar10"), panel(fig, "digits")
    assert not paper_marks(digits) and not paper_labels(digits)
    # before (clean, noisy, test) and after (clean, noisy, test); the expected factor has no paper number
    assert sorted(paper_labels(cifar)) == sorted(["99.9", "99.3", "79.3", "90.8", "3.1", "82.7"])
    heights = sorted(float(line.get_ydata()[0]) for line in paper_marks(cifar))
    assert heights == pytest.approx(sorted([99.9, 99.3, 79.3, 90.8, 3.1, 82.7]))
    assert any("paper's number" in t.get_text() for t in fig.legends[0].get_texts())


def test_table1_without_a_matching_setting_draws_no_mark_and_no_legend_entry():
    fig = table1(tied_rows(**DIGITS)).figure
    assert not any(paper_marks(ax) for ax in axes_of(fig))
    assert not any("paper's number" in t.get_text() for t in fig.legends[0].get_texts())


def test_table3_marks_the_cifar10_numbers():
    baselines = frame([{"variant": "sparse", "mode": "test", "clean_acc": 0.99, "noisy_acc": 0.98,
                        "test_acc": 0.77}])
    fig = table3(pd.concat([tied_rows(), baselines, tied_rows(**DIGITS)], ignore_index=True)).figure
    axes = axes_of(fig)
    assert_shared(axes)
    assert sorted(paper_labels(panel(fig, "cifar10"))) == sorted(["100", "99.8", "90.8", "3.1"])
    assert not paper_marks(panel(fig, "digits"))


# ---- detection --------------------------------------------------------------------------------------------

def per_run_rows(sets, signals, **config) -> pd.DataFrame:
    rows = [{"seed": seed, "set": name, "signal": signal, "n": 100, "auroc": 0.8 + 0.01 * seed,
             "average_precision": 0.5, "precision_at_rate": 0.4, "chance": 0.1, "flag_precision": np.nan,
             "flag_recall": np.nan} for seed in (0, 1) for name in sets for signal in signals]
    return frame(rows, **config)


def test_detection_draws_only_the_panels_with_rows_and_the_published_aurocs_where_the_setting_matches():
    paper_setting = per_run_rows((FLIP_SET, ALL_SET), ("csl", "learning_time", "aum"))
    digits = [per_run_rows((ALL_SET,), ("csl", "aum"), variant=v, **DIGITS) for v in ("dropout", "sparse", "tied")]
    out = summarise(pd.concat([paper_setting, *digits], ignore_index=True))
    axes = axes_of(out.figure)
    assert len(axes) == 5  # 2 for the paper's setting + 1 each for three configurations without a flip subset
    assert_shared(axes)
    whole = [ax for ax in axes if "cifar10" in ax.get_title() and ALL_SET in ax.get_title()]
    flip = [ax for ax in axes if FLIP_SET in ax.get_title()]
    assert len(whole) == 1 and len(flip) == 1
    # Ravikumar et al. Table 2 at 10% noise: CSL 0.987, learning time 0.495; none published for AUM
    assert sorted(paper_labels(whole[0])) == ["0.495", "0.987"]
    assert not paper_marks(flip[0])  # published AUROCs are on all training examples, not the flip subset
    assert all(not paper_marks(ax) for ax in axes if "digits" in ax.get_title())
    # the configurations with both sets keep them side by side on the first row
    first_row = sorted(axes, key=lambda ax: -ax.get_position().y0)[:2]
    assert {ax.get_title().splitlines()[-1] for ax in first_row} == {FLIP_SET, ALL_SET}
    assert all("cifar10" in ax.get_title() for ax in first_row)


def test_detection_of_a_digits_sweep_has_no_published_mark():
    out = summarise(per_run_rows((FLIP_SET, ALL_SET), ("csl",), **DIGITS))
    assert len(axes_of(out.figure)) == 2
    assert not any(paper_marks(ax) for ax in axes_of(out.figure))


# ---- localization ---------------------------------------------------------------------------------------------

def test_units_to_flip_panels_share_the_y_range_and_cap_bars_one_height():
    rows = []
    for truth, top in (("injected", 4.0), ("none", 30.0)):
        for kind in ("clean", "noisy"):
            rows.append({"truth": truth, "mode": "all", "localizer": "greedy", "kind": kind, "n_seeds": 1,
                         "k_flip_median_mean": top if kind == "clean" else np.inf})
    units = frame(rows)
    axes = axes_of(units_figure(units).figure)
    assert len(axes) == 2
    assert_shared(axes)
    capped = [ax.patches[1].get_height() for ax in axes]  # the noisy bar of each panel is censored
    assert capped == [30.0, 30.0]


def test_units_to_flip_and_precision_and_forget_keep_panels_share_their_axes():
    rows = [{"truth": truth, "mode": "all", "localizer": "greedy", "k": k, "n_seeds": 1, "precision_mean": p * k / 20,
             "chance_mean": 0.1, "test_acc_mean": 0.9 - p * k / 40, "forgotten_mean": p * k / 20,
             "test_acc_base_mean": 0.9}
            for truth, p, ks in (("injected", 1.0, (1, 5, 10, 20)), ("tied", 0.5, (1, 5))) for k in ks]
    for build in (precision_figure, forget_keep_figure):
        axes = axes_of(build(frame(rows)).figure)
        assert len(axes) == 2
        assert_shared(axes, x=True)


# ---- curves over epochs ------------------------------------------------------------------------------------

def epoch_rows(n: int, peak: float, **config) -> pd.DataFrame:
    return frame([{"seed": seed, "epoch": e, "clean_acc": 0.9, "noisy_acc": min(1.0, peak * e / n),
                   "noisy_true_acc": 0.1, "test_acc": 0.8} for seed in (0, 1) for e in range(1, n + 1)],
                 **config)


def test_training_curves_share_the_epoch_axis_across_runs_of_different_lengths():
    out = training_curves(pd.concat([epoch_rows(50, 1.0), epoch_rows(20, 0.5, **DIGITS, epochs=20)],
                                    ignore_index=True))
    axes = axes_of(out.figure)
    assert len(axes) == 2
    assert_shared(axes, x=True)
    assert axes[0].get_xlim()[1] >= 50


def test_detection_by_epoch_shares_the_epoch_axis():
    rows = [frame([{"seed": 0, "signal": "loss", "epoch": e, "auroc": 0.9, "average_precision": 0.5}
                   for e in range(1, n + 1)], **config) for n, config in ((50, {}), (10, {**DIGITS, "epochs": 10}))]
    axes = axes_of(detection_by_epoch(pd.concat(rows, ignore_index=True)).figure)
    assert len(axes) == 2
    assert_shared(axes, x=True)


def test_figure1_curves_share_one_epoch_axis_and_range():
    rows = [frame([{"seed": 0, "layer": layer, "layer_name": name, "epoch": e, "clean_norm": scale * (layer + 1),
                    "noisy_norm": scale, "clean_cosine": 0.0} for layer, name in enumerate(("fc1", "head"))
                   for e in range(1, n + 1)], **config)
            for n, scale, config in ((50, 1.0, {}), (10, 5.0, {**DIGITS, "epochs": 10}))]
    out = figure1(pd.concat(rows, ignore_index=True))
    curves = [ax for ax in axes_of(out.figure) if ax.get_xlabel() == "epoch"]
    assert len(curves) == 2
    assert_shared(curves, x=True)


def test_the_noise_figure_deletes_the_panels_a_series_lacks():
    epochs = pd.concat([frame([{"seed": 0, "epoch": e, "clean_acc": 1.0, "noisy_acc": 0.5, "test_acc": 0.7}
                               for e in (1, 2)], noise=noise, **config)
                        for noise in (0.1, 0.2) for config in ({}, DIGITS)], ignore_index=True)
    flips = pd.concat([frame([{"seed": 0, "example_id": i, "is_noisy": i == 0, "n_units": 3, "flipped": True}
                              for i in range(2)], noise=noise, **DIGITS) for noise in (0.1, 0.2)], ignore_index=True)
    out = noise_figure(epochs=epochs, flips=flips)
    titles = {sub._suptitle.get_text().split()[0]: [ax.get_title() for ax in sub.axes] for sub in out.figure.subfigs}
    # digits has flips (units to flip, and units to flip as a detection signal); cifar10 only its accuracies
    assert titles == {"cifar10": ["end of training"],
                      "digits": ["end of training", "neuron flipping", "finding the mislabeled examples"]}
