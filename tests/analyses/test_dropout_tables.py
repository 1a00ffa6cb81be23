"""Tables 1 and 3 and Figure 7 (example-tied dropout) on hand-made numbers."""

import numpy as np
import pytest

from analyses import paper
from analyses.dropout import figure7, forgotten_clean, table1, table3
from tests.analyses.builders import frame


def tied_rows(**config):
    rows = []
    for seed, shift in ((0, 0.0), (1, 0.02)):
        for mode, clean, noisy, test, scale in (
            ("tied", 0.99, 0.98, 0.10, 1.0),  # tied test accuracy is not Table 1's: `all` is
            ("all", 0.90, 0.05, 0.80, 1.0),
            ("drop", 0.91 + shift, 0.03, 0.82, 1.5),
            ("drop-expected", 0.93, 0.05, 0.83, 1.3),
        ):
            rows.append(
                {
                    "seed": seed,
                    "variant": "tied",
                    "mode": mode,
                    "clean_acc": clean,
                    "noisy_acc": noisy,
                    "test_acc": test,
                    "scale": scale,
                    "scale_rule": "paper",
                }
            )
    return frame(rows, **config)


def test_table1_before_uses_tied_for_train_and_all_for_test():
    t = table1(tied_rows()).table.set_index("phase")
    assert t.loc["before", "clean_acc_mean"] == pytest.approx(0.99)
    assert t.loc["before", "test_acc_mean"] == pytest.approx(0.80)
    assert t.loc["after", "clean_acc_mean"] == pytest.approx(0.92)
    assert t.loc["after", "scale_mean"] == pytest.approx(1.5)
    assert t.loc["after", "n_seeds"] == 2
    assert list(t.index) == ["before", "after", "after-expected"]


def test_table1_paper_numbers_beside_matching_setting_only():
    t = table1(tied_rows()).table.set_index("phase")
    assert t.loc["after", "paper_noisy_acc"] == pytest.approx(0.031)
    assert t.loc["before", "paper_test_acc"] == pytest.approx(0.793)
    assert np.isnan(t.loc["after-expected", "paper_noisy_acc"])
    other = table1(tied_rows(dataset="digits", arch="mlp")).table
    assert other["paper_clean_acc"].isna().all()
    assert (other.loc[other["phase"] == "after", "paper_note"] == paper.NO_PAPER).all()


def test_table3_methods_and_paper():
    baselines = frame(
        [
            {"variant": "dropout", "mode": "test", "clean_acc": 1.0, "noisy_acc": 0.99, "test_acc": 0.78},
            {"variant": "sparse", "mode": "test", "clean_acc": 0.99, "noisy_acc": 0.98, "test_acc": 0.77},
        ]
    )
    import pandas as pd

    t = table3(pd.concat([tied_rows(), baselines], ignore_index=True)).table
    assert t["method"].tolist() == [
        "standard dropout",
        "sparse network",
        "example-tied (paper factor)",
        "example-tied (expected factor)",
    ]
    by = t.set_index("method")
    assert by.loc["sparse network", "noisy_acc_mean"] == pytest.approx(0.98)
    assert by.loc["sparse network", "paper_noisy_acc"] == pytest.approx(0.998)
    assert by.loc["example-tied (paper factor)", "paper_noisy_acc"] == pytest.approx(0.031)
    assert by.loc["example-tied (expected factor)", "paper_note"] == "the paper used its own factor only"
    other = table3(tied_rows(dataset="mnist")).table
    assert (other["paper_note"] == paper.NO_PAPER).all()  # Table 3 is CIFAR-10 only


def example_rows():
    rows = []
    for seed in (0, 1):
        for ex, noisy, tied, drop in (
            (0, False, True, False),
            (1, False, True, True),
            (2, True, True, False),
            (3, False, False, False),
        ):
            rows.append(
                {
                    "seed": seed,
                    "variant": "tied",
                    "example_id": ex,
                    "is_noisy": noisy,
                    "correct_tied": tied,
                    "correct_drop": drop,
                }
            )
    return frame(rows)


def test_forgotten_clean_counts():
    counts = forgotten_clean(example_rows())
    assert counts["n_clean"].tolist() == [3, 3]
    assert counts["n_correct_tied"].tolist() == [2, 2]
    assert counts["n_forgotten"].tolist() == [1, 1]
    assert counts["forgotten_frac"].tolist() == [0.5, 0.5]


def test_figure7_gallery_with_images():
    images = np.random.default_rng(0).normal(size=(5, 1, 8, 8))
    labels = np.array([7, 1, 2, 3, 4])
    out, notes = figure7(example_rows(), loader=lambda name: (images, labels))
    assert notes == []
    assert out.table["example_id"].tolist() == [0]  # noisy 2 and never-correct 3 are not Figure 7's
    assert out.table["forgotten_in"].tolist() == [2] and out.table["runs"].tolist() == [2]
    assert out.table["label"].tolist() == [7]
    assert out.figure is not None and any(ax.images for ax in out.figure.axes)


def test_figure7_without_dataset_says_why_and_keeps_the_table():
    def missing(name):
        raise FileNotFoundError(f"no files for {name}")

    out, notes = figure7(example_rows(), loader=missing)
    assert out.figure is None
    assert len(notes) == 1 and "cifar10" in notes[0] and "no files" in notes[0]
    assert out.table["example_id"].tolist() == [0]


def test_runs_that_differ_in_p_mem_are_not_pooled_as_seeds():
    """Two example-tied runs with p_mem 0.2 (seed 0) and 0.5 (seed 1) are two experiments of one seed each,
    not one of two seeds; only the paper's p_mem gets the paper's number."""
    rows = tied_rows()
    rows.loc[rows["seed"] == 1, "p_mem"] = 0.5
    rows["config_id"] = [f"tied-p{p}" for p in rows["p_mem"]]
    t = table1(rows).table
    after = t[t["phase"] == "after"].set_index("p_mem")
    assert sorted(after.index) == [0.2, 0.5] and (after["n_seeds"] == 1).all()
    assert after.loc[0.2, "paper_noisy_acc"] == pytest.approx(0.031)
    assert np.isnan(after.loc[0.5, "paper_noisy_acc"]) and after.loc[0.5, "paper_note"] == paper.NO_PAPER
    assert after["clean_acc_lo"].isna().all()  # one seed: no interval, let alone one far outside [0, 1]
