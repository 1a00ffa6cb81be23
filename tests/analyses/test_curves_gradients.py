"""Training curves and gradient accounting (Figures 1 and 2) on hand-made numbers."""

import pytest
from matplotlib.figure import Figure

from analyses.curves import training_curves
from analyses.gradients import figure1, figure2, memorization_window
from tests.analyses.builders import frame


def test_training_curves_mean_across_seeds_and_one_panel_per_config():
    rows = [
        {
            "seed": s,
            "epoch": e,
            "clean_acc": c,
            "noisy_acc": n,
            "noisy_true_acc": 0.0,
            "test_acc": 0.5,
            "train_loss": 1.0,
        }
        for s, c, n in ((0, 0.8, 0.2), (1, 1.0, 0.4))
        for e in (1, 2)
    ] + [
        {
            "seed": 0,
            "epoch": 1,
            "clean_acc": 0.3,
            "noisy_acc": 0.1,
            "noisy_true_acc": 0.0,
            "test_acc": 0.2,
            "train_loss": 2.0,
            "dataset": "mnist",
        }
    ]
    out = training_curves(frame(rows))
    cifar = out.table[(out.table["dataset"] == "cifar10") & (out.table["epoch"] == 1)].iloc[0]
    assert cifar["clean_acc_mean"] == pytest.approx(0.9)
    assert cifar["noisy_acc_mean"] == pytest.approx(0.3)
    assert cifar["n_seeds"] == 2
    assert isinstance(out.figure, Figure)
    assert len([ax for ax in out.figure.axes if ax.get_visible()]) == 2


def test_memorization_window_scales_the_papers_epochs():
    assert memorization_window(50) == (15, 20)
    assert memorization_window(10) == (3, 4)
    assert memorization_window(1) == (1, 1)


def gradient_rows():
    return [
        {
            "seed": s,
            "epoch": e,
            "layer": layer,
            "layer_name": name,
            "clean_norm": 2.0 + s,
            "noisy_norm": 1.0,
            "cosine": 0.1 * layer + 0.2 * s,
        }
        for s in (0, 1)
        for e in range(1, 11)
        for layer, name in enumerate(["conv1", "conv2", "linear"])
    ]


def test_figure1_ratio_and_window():
    out = figure1(frame(gradient_rows()))
    row = out.table[(out.table["layer"] == 0) & (out.table["epoch"] == 3)].iloc[0]
    assert row["clean_norm_mean"] == pytest.approx(2.5)
    assert row["noisy_to_clean"] == pytest.approx(0.4)
    assert bool(row["in_window"])
    assert set(out.table.loc[out.table["in_window"], "epoch"]) == {3, 4}
    assert len(out.figure.axes) == 2


def test_figure2_cosine_mean():
    out = figure2(frame(gradient_rows()))
    row = out.table[(out.table["layer"] == 2) & (out.table["epoch"] == 5)].iloc[0]
    assert row["cosine_mean"] == pytest.approx(0.3)
    assert row["n_seeds"] == 2
    assert out.figure is not None


def test_empty_input_gives_no_figure():
    out = figure1(frame(gradient_rows()).iloc[:0])
    assert out.table.empty and out.figure is None


def test_figure2_summarises_both_cosines_and_draws_the_papers():
    """cosine (mean over the group's tensors, the paper's) is drawn; cosine_flat (one flattened vector) is in the
    table beside it; results written before cosine_flat still give the figure."""
    rows = frame([{**row, "cosine_flat": 0.5 - 0.1 * row["layer"]} for row in gradient_rows()])
    out = figure2(rows)
    row = out.table[(out.table["layer"] == 2) & (out.table["epoch"] == 5)].iloc[0]
    assert row["cosine_mean"] == pytest.approx(0.3) and row["cosine_flat_mean"] == pytest.approx(0.3)
    first = out.table[(out.table["layer"] == 0) & (out.table["epoch"] == 5)].iloc[0]
    assert first["cosine_flat_mean"] == pytest.approx(0.5) and first["cosine_mean"] == pytest.approx(0.1)
    heat = next(ax for ax in out.figure.axes if ax.images)
    assert heat.images[0].get_array()[0, 4] == pytest.approx(0.1)  # layer 0, epoch 5: the paper's cosine
    bar = next(ax for ax in out.figure.axes if ax.get_label() == "<colorbar>")
    assert "mean over the group's tensors" in bar.get_ylabel()
    old = figure2(frame(gradient_rows()))
    assert "cosine_flat_mean" not in old.table.columns and old.figure is not None
