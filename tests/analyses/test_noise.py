"""The figure against the noise rate: per-run quantities, one point per rate, only series with two or more."""

import pandas as pd
import pytest

from analyses.load import load_table
from analyses.noise import VALUES, noise_figure, per_run, series_columns
from tests.analyses.builders import STANDARD, frame, run_config, write_run


def tables(root):
    return {n: load_table(root, n) for n in ("epochs", "flips", "rewinding", "examples", "dropout_examples")}


def test_per_run_quantities_on_hand_made_rows():
    epochs = frame([{"epoch": e, "clean_acc": 1.0, "noisy_acc": 0.1 * e, "test_acc": 0.7} for e in (1, 5)])
    flips = frame([{"example_id": i, "is_noisy": noisy, "n_units": n, "flipped": flipped}
                   for i, (noisy, n, flipped) in enumerate([(True, 2, True), (True, 6, True), (True, 1000, False),
                                                            (False, 30, True)])])
    rewinding = frame([{"layer": layer, "rewind_epoch": r, "noisy_acc": 0.2 + 0.1 * layer + 0.05 * r,
                        "noisy_acc_base": 0.95} for layer in (0, 1) for r in (0, 2)])
    row = per_run(epochs=epochs, flips=flips, rewinding=rewinding).iloc[0]
    assert row["final_noisy_acc"] == pytest.approx(0.5)  # the last epoch's
    assert row["units_noisy"] == 4 and row["units_clean"] == 30  # medians over flipped examples only
    assert row["rewind_noisy_acc"] == pytest.approx(0.2) and row["final_model_noisy_acc"] == pytest.approx(0.95)
    assert row["units_to_flip_auroc"] == pytest.approx(2 / 3)  # 2 and 6 beat the clean 30; the capped one last
    assert row["noise"] == 0.1 and "config_id" in row.index
    assert set(VALUES) <= set(row.index)


def test_one_point_per_noise_rate_with_intervals_and_single_rate_series_left_out(tmp_path):
    for noise in (0.05, 0.1, 0.2):
        for seed in (0, 1, 2):
            write_run(tmp_path, run_config("cifar10", "resnet9", "standard", noise, seed), STANDARD)
    write_run(tmp_path, run_config("digits", "mlp", "standard", 0.2, 0), STANDARD)  # one rate: not drawn
    out = noise_figure(**tables(tmp_path))
    t = out.table
    assert set(t["arch"]) == {"resnet9"} and sorted(t["noise"]) == [0.05, 0.1, 0.2]
    assert (t["n_seeds"] == 3).all() and t["final_noisy_acc_lo"].notna().all()
    assert "config_id" not in t.columns and "noise" not in series_columns(t)
    (sub,) = out.figure.subfigs
    panels = [ax for ax in sub.axes if ax.get_visible()]
    assert [ax.get_title() for ax in panels] == [
        "end of training", "neuron flipping", "best single-layer rewind", "finding the mislabeled examples"
    ]
    for ax in panels:
        assert ax.get_xlabel() == "noise rate (%)" and ax.get_ylabel()
        assert [t.get_text() for t in ax.get_xticklabels()] == ["5", "10", "20"]
        assert ax.containers, ax.get_title()
        for series in ax.containers:  # one errorbar series per quantity: one point per rate, dodged a little
            assert list(series.lines[0].get_xdata()) == pytest.approx([5, 10, 20], abs=0.5)
            assert series.has_yerr
    accuracy = panels[0]
    memorized = next(c for c in accuracy.containers if c.get_label().startswith("noisy train"))
    expected = t.sort_values("noise")["final_noisy_acc_mean"].to_numpy() * 100
    assert list(memorized.lines[0].get_ydata()) == pytest.approx(list(expected))
    assert accuracy.get_ylabel() == "accuracy (%)"
    assert len(out.figure.legends) == 1 and all(ax.get_legend() is None for ax in panels)


def test_two_seeds_per_rate_are_drawn_as_points_without_intervals(tmp_path):
    from analyses.plotting import SEEDS

    for noise in (0.1, 0.2):
        for seed in (0, 1):
            write_run(tmp_path, run_config("digits", "mlp", "standard", noise, seed), {"runs", "epochs"})
    out = noise_figure(epochs=load_table(tmp_path, "epochs"))
    assert out.table["final_noisy_acc_lo"].isna().all() and (out.table["n_seeds"] == 2).all()
    (ax,) = [ax for ax in out.figure.subfigs[0].axes if ax.get_visible()]
    points = [c for c in ax.collections if c.get_gid() == SEEDS and len(c.get_offsets())]
    assert sum(len(c.get_offsets()) for c in points) == 3 * 2 * 2  # 3 accuracies x 2 rates x 2 seeds
    assert all(not series.has_yerr for series in ax.containers)


def test_best_rewind_per_run_only_counts_cells_that_keep_clean_accuracy():
    """Rewinding layer 0 to epoch 0 gives the lowest noisy accuracy (0.2) but clean accuracy falls from 0.99 to
    0.5; the best rewind that keeps clean accuracy within 5 points is layer 1 at 0 (0.3); none: NaN."""
    cells = [{"layer": layer, "rewind_epoch": 0, "noisy_acc": 0.2 + 0.1 * layer, "clean_acc": clean,
              "clean_acc_base": 0.99, "noisy_acc_base": 0.95} for layer, clean in ((0, 0.5), (1, 0.95))]
    assert per_run(rewinding=frame(cells)).iloc[0]["rewind_noisy_acc"] == pytest.approx(0.3)
    cells[1]["clean_acc"] = 0.9
    assert pd.isna(per_run(rewinding=frame(cells)).iloc[0]["rewind_noisy_acc"])


def test_a_single_noise_rate_draws_nothing(tmp_path):
    for seed in (0, 1):
        write_run(tmp_path, run_config("cifar10", "resnet9", "standard", 0.1, seed), STANDARD)
    out = noise_figure(**tables(tmp_path))
    assert out.figure is None and out.table.empty


def test_series_keep_other_settings_apart(tmp_path):
    """Width 0.5 at 0.1 and width 1 at 0.2 are two series of one rate each, not one series of two rates."""
    write_run(tmp_path, run_config("digits", "mlp", "standard", 0.1, 0, width=0.5), {"runs", "epochs"})
    write_run(tmp_path, run_config("digits", "mlp", "standard", 0.2, 0, width=1.0), {"runs", "epochs"})
    assert noise_figure(epochs=load_table(tmp_path, "epochs")).figure is None
    write_run(tmp_path, run_config("digits", "mlp", "standard", 0.2, 0, width=0.5), {"runs", "epochs"})
    out = noise_figure(epochs=load_table(tmp_path, "epochs"))
    assert out.figure is not None and set(out.table["width"]) == {0.5}
    (sub,) = out.figure.subfigs
    assert len([ax for ax in sub.axes if ax.get_visible()]) == 1  # only the tables it has: accuracy
    assert pd.isna(out.table.get("units_noisy_mean", pd.Series([float("nan")]))).all()


def test_the_noise_rate_figure_scores_ssft_from_its_own_runs(tmp_path):
    """SSFT's scores live in the `ssft` table (of the auxiliary runs): passed along, the per-run quantities have an
    SSFT AUROC for the runs that have them, and none (NaN) without the table."""
    from tests.analyses.builders import write_ssft

    for noise in (0.1, 0.2):
        cfg = run_config("digits", "mlp", "standard", noise, 0)
        write_run(tmp_path, cfg, STANDARD)
        write_ssft(tmp_path, cfg)
    found = {**tables(tmp_path), "ssft": load_table(tmp_path, "ssft"), "aux_runs": load_table(tmp_path, "aux_runs")}
    assert per_run(**found)["ssft_auroc"].between(0, 1).all()
    assert per_run(**tables(tmp_path))["ssft_auroc"].isna().all()
