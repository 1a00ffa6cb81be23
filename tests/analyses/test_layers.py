"""Rewinding and retraining (Figures 3 and 4) on hand-made numbers."""

import numpy as np
import pytest

from analyses.layers import best_rewind, figure3, figure4, final_retraining
from analyses.plotting import FINAL_MODEL
from tests.analyses.builders import RESNET9, frame

BASE = {"clean_acc_base": 0.99, "noisy_acc_base": 0.95, "test_acc_base": 0.8}


def final_marks(ax):
    return [line for line in ax.lines if line.get_gid() == FINAL_MODEL]


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
            **BASE,
        }
        for s in (0, 1)
        for layer, name in enumerate(["conv1", "linear"])
        for r in (0, 2, 4)
    ]


def test_figure3_means_and_heatmaps():
    out = figure3(frame(rewind_rows()))
    row = out.table[(out.table["layer"] == 1) & (out.table["rewind_epoch"] == 2)].iloc[0]
    assert row["noisy_acc_mean"] == pytest.approx(0.2 + 0.2 + 0.1 + 0.01)
    assert row["noisy_acc_base_mean"] == pytest.approx(0.95)
    assert row["n_seeds"] == 2
    assert len([ax for ax in out.figure.axes if ax.images]) == 3


def test_figure3_is_in_percent_with_the_final_model_as_last_column():
    out = figure3(frame(rewind_rows()))
    heatmaps = [ax for ax in out.figure.axes if ax.images]
    for ax, base in zip(heatmaps, (99, 95, 80), strict=True):
        values = ax.images[0].get_array()
        assert ax.images[0].get_clim() == (0.0, 100.0)
        assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "2", "4", "final"]
        assert np.allclose(values[:, -1], base)  # the final model's accuracy, on every layer's row
        assert len(final_marks(ax)) == 1  # the rule that sets the final column apart
        assert f"final model {base}%" in ax.get_title()
        assert str(base) in {t.get_text() for t in ax.texts}  # cells in % like the colour bar
    noisy = heatmaps[1]
    assert noisy.images[0].get_array()[0, 0] == pytest.approx(21.0)  # layer 0 rewound to 0: seeds 0.2, 0.22
    assert "21" in {t.get_text() for t in noisy.texts}
    bars = [ax for ax in out.figure.axes if ax.get_label() == "<colorbar>"]
    assert len(bars) == 1 and bars[0].get_ylabel() == "accuracy (%)"


def test_figure3_without_final_model_columns_has_no_final_column():
    rows = frame(rewind_rows()).drop(columns=list(BASE))
    out = figure3(rows)
    for ax in (ax for ax in out.figure.axes if ax.images):
        assert "final" not in [t.get_text() for t in ax.get_xticklabels()] and not final_marks(ax)


def test_best_rewind_is_the_lowest_noisy_accuracy_among_cells_that_keep_clean_accuracy():
    """Layer 0: rewinding to 0 gives the lowest noisy accuracy but clean accuracy collapses (0.5 against the
    final model's 0.99), to 2 it keeps clean accuracy at 0.95 (4 points lost): 2 is the best rewind. Layer 1: every
    cell loses 9 points or more, so none qualifies and the row says so."""
    rows = frame(rewind_rows())
    rows["clean_acc"] = [0.5 if (layer, r) == (0, 0) else 0.95 if layer == 0 else 0.9
                         for layer, r in zip(rows["layer"], rows["rewind_epoch"], strict=True)]
    best = best_rewind(rows).set_index("layer")
    assert best.loc[0, "rewind_epoch"] == 2 and best.loc[0, "choice"] == "clean kept"
    assert best.loc[0, "noisy_acc_mean"] == pytest.approx(0.41)
    assert best.loc[1, "choice"] == "none kept clean accuracy" and np.isnan(best.loc[1, "noisy_acc_mean"])
    assert best.loc[1, "layer_name"] == "linear"


def test_best_rewind_keeps_a_cell_exactly_five_points_below_and_without_the_final_model_is_unrestricted():
    rows = frame(rewind_rows())
    rows["clean_acc"] = 0.94  # 5 points below 0.99: kept
    assert (best_rewind(rows)["choice"] == "clean kept").all()
    best = best_rewind(rows.drop(columns=list(BASE)))
    assert best["rewind_epoch"].tolist() == [0, 0] and (best["choice"] == "unrestricted").all()
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
                    "retrain_epoch": e,
                    "clean_acc": 0.5 + 0.1 * e,
                    "noisy_acc": 0.1 * e,
                    "test_acc": 0.6,
                    **BASE,
                }
            )
    return rows


def test_figure4_curve_counts_runs_that_reached_each_epoch():
    out = figure4(frame(retrain_rows()))
    t = out.table.set_index("retrain_epoch")
    assert t.loc[2, "n_seeds"] == 2 and t.loc[5, "n_seeds"] == 1
    assert t.loc[2, "noisy_acc_mean"] == pytest.approx(0.2)
    assert out.figure is not None


def test_final_retraining_takes_each_runs_last_epoch():
    final = final_retraining(frame(retrain_rows())).iloc[0]
    assert final["noisy_acc_mean"] == pytest.approx((0.3 + 0.5) / 2)
    assert final["last_epoch_mean"] == pytest.approx(4.0)
    assert final["noisy_acc_base_mean"] == pytest.approx(0.95)


def resnet_retraining():
    return frame([
        {"seed": s, "layer": layer, "layer_name": name, "retrain_epoch": e, "clean_acc": 0.9, "noisy_acc": 0.3,
         "test_acc": 0.7, **BASE}
        for s in (0, 1) for layer, name in enumerate(RESNET9) for e in range(0, 4)
    ])


def test_figure4_has_one_panel_per_layer_with_the_final_model_marked():
    """Nine ResNet-9 layer groups: nine panels (wrapped in rows of five), each titled by its group, each with
    the three accuracies in % and the final model's three as dashed lines; one legend below them all."""
    out = figure4(resnet_retraining())
    (sub,) = out.figure.subfigs
    panels = [ax for ax in sub.axes if ax.get_visible()]
    assert [ax.get_title() for ax in panels] == [f"{i} {name}" for i, name in enumerate(RESNET9)]
    for ax in panels:
        marks = final_marks(ax)
        assert sorted(round(m.get_ydata()[0]) for m in marks) == [80, 95, 99]
        curves = [line for line in ax.lines if line.get_gid() != FINAL_MODEL]
        assert len(curves) == 3 and max(max(line.get_ydata()) for line in curves) == pytest.approx(90.0)
    assert sub.get_supylabel() == "accuracy (%)" and "retrain epoch" in sub.get_supxlabel()
    (legend,) = out.figure.legends
    assert "final model" in legend.get_texts()[-1].get_text()


def test_figure4_splits_configurations_and_wraps_few_layers_in_one_row():
    rows = resnet_retraining()
    mlp = frame([
        {"layer": layer, "layer_name": name, "retrain_epoch": e, "clean_acc": 1.0, "noisy_acc": 0.1,
         "test_acc": 0.9}
        for layer, name in enumerate(["fc1", "fc2", "head"]) for e in (1, 2)
    ], dataset="digits", arch="mlp")
    import pandas as pd

    out = figure4(pd.concat([rows, mlp], ignore_index=True))
    counts = sorted(len([ax for ax in sub.axes if ax.get_visible()]) for sub in out.figure.subfigs)
    assert counts == [3, 9]
    mlp_panels = [ax for sub in out.figure.subfigs for ax in sub.axes if ax.get_title() == "0 fc1"]
    assert len(mlp_panels) == 1 and not final_marks(mlp_panels[0])  # no *_base columns: no marks
