"""Rewinding and retraining (Figures 3 and 4) on hand-made numbers."""

import pytest

from analyses.layers import best_rewind, figure3, figure4, final_retraining
from tests.analyses.builders import frame


def rewind_rows():
    return [
        {
            "seed": s,
            "layer": layer,
            "layer_name": name,
            "rewind_epoch": r,
            "clean_acc": 0.9,
            "noisy_acc": 0.2 + 0.1 * r + 0.1 * layer + 0.02 * s,
            "test_acc": 0.7,
        }
        for s in (0, 1)
        for layer, name in enumerate(["conv1", "linear"])
        for r in (0, 2, 4)
    ]


def test_figure3_means_and_heatmaps():
    out = figure3(frame(rewind_rows()))
    row = out.table[(out.table["layer"] == 1) & (out.table["rewind_epoch"] == 2)].iloc[0]
    assert row["noisy_acc_mean"] == pytest.approx(0.2 + 0.2 + 0.1 + 0.01)
    assert row["n_seeds"] == 2
    assert len([ax for ax in out.figure.axes if ax.images]) == 3


def test_best_rewind_is_the_lowest_noisy_accuracy_per_layer():
    best = best_rewind(frame(rewind_rows()))
    assert best["rewind_epoch"].tolist() == [0, 0]
    assert best["noisy_acc_mean"].tolist() == pytest.approx([0.21, 0.31])


def retrain_rows():
    rows = []
    for s, last in ((0, 3), (1, 5)):  # runs stop at different epochs (early stopping)
        for e in range(1, last + 1):
            rows.append(
                {
                    "seed": s,
                    "layer": 0,
                    "layer_name": "conv1",
                    "epoch": e,
                    "clean_acc": 0.5 + 0.1 * e,
                    "noisy_acc": 0.1 * e,
                    "test_acc": 0.6,
                }
            )
    return rows


def test_figure4_curve_counts_runs_that_reached_each_epoch():
    out = figure4(frame(retrain_rows()))
    t = out.table.set_index("epoch")
    assert t.loc[2, "n_seeds"] == 2 and t.loc[5, "n_seeds"] == 1
    assert t.loc[2, "noisy_acc_mean"] == pytest.approx(0.2)
    assert out.figure is not None


def test_final_retraining_takes_each_runs_last_epoch():
    final = final_retraining(frame(retrain_rows())).iloc[0]
    assert final["noisy_acc_mean"] == pytest.approx((0.3 + 0.5) / 2)
    assert final["last_epoch_mean"] == pytest.approx(4.0)
