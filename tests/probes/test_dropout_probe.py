"""The dropout probe on real trainings: example-tied dropout localizes memorization, the baselines do not.

A digits MLP at 10% label noise (paper Tables 1 and 3 in miniature): with example-tied dropout the noisy
examples are memorized in `tied` mode and forgotten when the memorization channels are dropped, while clean
and test accuracy hold; standard dropout and a sparse network keep their memorized noisy examples.
"""

from __future__ import annotations

import pandas as pd
import pytest

from sweep.config import AnalysisConfig, RunConfig
from sweep.probes import PROBES
from sweep.probes.dropout import DROPOUT_COLUMNS, EXAMPLE_COLUMNS
from sweep.train import train_in_memory

# One setting for all three variants. Width 1 (3 x 512) and 60 epochs at batch 256 (~10 s per run on one
# core): example-tied forgets by a wide margin from 20 epochs on, but standard dropout p = 0.4 regularizes
# this small MLP enough that it memorizes only ~70% of the noisy digits after 40 epochs (~90% after 60).
SETTINGS = {"dataset": "digits", "arch": "mlp", "noise": 0.1, "seed": 0, "noise_seed": 0, "width": 1.0,
            "epochs": 60, "batch_size": 256, "lr": 0.1}


@pytest.fixture(scope="module")
def tables() -> dict[str, dict[str, pd.DataFrame]]:
    out = {}
    for variant in ("tied", "dropout", "sparse"):
        run = train_in_memory(RunConfig(variant=variant, **SETTINGS))
        out[variant] = PROBES["dropout"].run(run, "all", AnalysisConfig())
    return out


def test_probe_is_registered_for_dropout_variants() -> None:
    probe = PROBES["dropout"]
    assert probe.tables == ("dropout", "dropout_examples")
    assert probe.shards(RunConfig(variant="tied"), AnalysisConfig()) == ["all"]
    assert not probe.applies(RunConfig(variant="standard"))
    assert all(probe.applies(RunConfig(variant=v)) for v in ("tied", "dropout", "sparse"))


@pytest.mark.slow
def test_example_tied_dropout_forgets_noisy_examples_when_dropped(tables) -> None:
    frame = tables["tied"]["dropout"]
    assert tuple(frame.columns) == DROPOUT_COLUMNS
    assert list(frame["mode"]) == ["tied", "all", "drop", "drop-expected"]
    rows = frame.set_index("mode")
    assert tuple(rows["scale_rule"]) == ("none", "none", "paper", "expected")
    assert list(rows["scale"]) == pytest.approx([1.0, 1.0, 1.5, 1.3])
    tied, all_, drop = rows.loc["tied"], rows.loc["all"], rows.loc["drop"]
    assert tied["noisy_acc"] >= 0.9, frame
    assert tied["noisy_acc"] - drop["noisy_acc"] >= 0.5, frame
    assert drop["clean_acc"] >= 0.85, frame
    assert all_["test_acc"] - drop["test_acc"] <= 0.05, frame
    # The smaller `expected` factor forgets as well (on the MLP both factors keep test accuracy).
    assert tied["noisy_acc"] - rows.loc["drop-expected", "noisy_acc"] >= 0.5, frame
    assert tied["test_acc"] == all_["test_acc"]  # test examples have no mask of their own

    examples = tables["tied"]["dropout_examples"]
    assert tuple(examples.columns) == EXAMPLE_COLUMNS
    assert list(examples["example_id"]) == list(range(len(examples)))
    assert examples["is_noisy"].mean() == pytest.approx(0.1, abs=0.002)
    by_noise = examples.groupby("is_noisy")[["correct_tied", "correct_drop"]].mean()
    assert by_noise.loc[True, "correct_tied"] == pytest.approx(tied["noisy_acc"])
    assert by_noise.loc[False, "correct_drop"] == pytest.approx(drop["clean_acc"])


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["dropout", "sparse"])
def test_baselines_keep_their_memorized_examples(tables, variant: str) -> None:
    frame = tables[variant]["dropout"]
    assert tuple(frame.columns) == DROPOUT_COLUMNS
    assert list(frame["mode"]) == ["test"] and frame["scale_rule"].iloc[0] == "none"
    assert frame["noisy_acc"].iloc[0] >= 0.75, frame
    assert frame["clean_acc"].iloc[0] >= 0.9, frame
    examples = tables[variant]["dropout_examples"]
    assert tuple(examples.columns) == EXAMPLE_COLUMNS and examples.empty

