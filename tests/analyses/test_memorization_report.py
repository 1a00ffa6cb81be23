"""The memorization summaries, the mem_score detection signal and the report section, on hand-made tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analyses.detection import detection_per_run, gather
from analyses.load import Results
from analyses.memorization import flip_summary, forgotten_mem, mem_detection, top_clean
from analyses.report import _Writer
from analyses.report_memorization import memorization_section
from tests.analyses.builders import run_config, with_config, write

N = 40
NOISY = np.arange(N) % 10 == 0  # 4 mislabeled examples


def _mem(seed: int, variant: str = "standard") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    mem = np.where(NOISY, 0.8 + 0.1 * rng.random(N), 0.1 * rng.random(N))
    mem[5] = 0.95  # a clean example memorized like a mislabeled one: the top of the gallery
    mem[7] = np.nan  # in every subset model: no estimate
    frame = pd.DataFrame({"example_id": np.arange(N), "is_noisy": NOISY, "mem": mem, "in_acc": 1.0,
                          "out_acc": 1.0 - mem, "n_in": 6, "n_out": 2, "mem_se": 0.1, "mem_prob": mem,
                          "n_models": 8, "fraction": 0.7})
    return with_config(frame, run_config("digits", "mlp", variant, 0.1, seed, epochs=10))


def _flips(seed: int) -> pd.DataFrame:
    rows = []
    for name, units in (("noisy", [2, 3, 4]), ("atypical", [3, 5, None]), ("typical", [40, None, None])):
        for localizer in ("greedy", "zero_out"):
            for i, k in enumerate(units):
                rows.append({"set": name, "localizer": localizer, "example_id": i, "is_noisy": name == "noisy",
                             "mem": 0.5, "units_to_flip": k, "flipped": k is not None, "cap": 50})
    frame = pd.DataFrame(rows).astype({"units_to_flip": "Int64"})
    return with_config(frame, run_config("digits", "mlp", "standard", 0.1, seed, epochs=10))


def _dropout(seed: int) -> pd.DataFrame:
    clean = ~NOISY
    frame = pd.DataFrame({"example_id": np.arange(N), "is_noisy": NOISY, "correct_tied": True,
                          "correct_drop": ~(NOISY | (np.arange(N) == 5) | (np.arange(N) == 11))})
    assert clean.sum() > 2
    return with_config(frame, run_config("digits", "mlp", "tied", 0.1, seed, epochs=10))


def test_mem_detection_and_flip_summary() -> None:
    per_run, summary = mem_detection(pd.concat([_mem(s) for s in range(3)]))
    assert per_run["n"].tolist() == [N - 1] * 3
    # every mislabeled example is above every clean one but example 5: AUROC = 1 - 4/(4*35)
    assert per_run["auroc"].tolist() == pytest.approx([1 - 4 / (4 * 35)] * 3)
    assert summary["n_seeds"].tolist() == [3] and np.isfinite(summary["auroc_lo"]).all()
    per_run, seeds = flip_summary(pd.concat([_flips(s) for s in range(3)]))
    med = per_run.groupby(["set"])["median_units"].first()
    assert med["noisy"] == 3 and med["atypical"] == 5 and med["typical"] == np.inf
    share = per_run.groupby("set")["flipped_share"].first()
    assert share["typical"] == pytest.approx(1 / 3)
    assert len(seeds) == 6 and (seeds["n_seeds"] == 3).all()


def test_top_clean_and_figure7_join() -> None:
    mem = pd.concat([_mem(s) for s in range(2)])
    top = top_clean(mem, per_config=3)
    assert top["example_id"].iloc[0] == 5 and not NOISY[top["example_id"]].any() and len(top) == 3
    forgotten, note = forgotten_mem(pd.concat([_dropout(s) for s in range(2)]), mem)
    assert note is None and forgotten["n_forgotten"].tolist() == [2, 2]
    row = forgotten.iloc[0]
    assert row["mem_forgotten"] == pytest.approx(mem[(mem.seed == 0) & mem.example_id.isin([5, 11])]["mem"].mean())
    _, none = forgotten_mem(_dropout(7), mem)  # no standard run of seed 7
    assert none is not None and "no example-tied run" in none


def test_mem_score_signal_in_the_detection_comparison() -> None:
    examples = _mem(0).drop(columns=["mem", "in_acc", "out_acc", "n_in", "n_out", "mem_se", "mem_prob",
                                     "n_models", "fraction"]).assign(final_loss=np.where(NOISY, 2.0, 0.1))
    with_mem = detection_per_run(examples=examples, memorization=_mem(0))
    row = with_mem[(with_mem.signal == "mem_score") & (with_mem.set == "all training examples")].iloc[0]
    # example 7 has no estimate and counts as 0 (below every noisy one): only example 5 outranks the noisy
    assert row["auroc"] == pytest.approx(1 - 4 / (4 * 36)) and row["n"] == N
    assert row["suspicious"] == "high"
    without = gather(examples=examples)
    assert "mem_score" not in set(without.scores["signal"])
    assert "memorization" in without.absent.set_index("signal").loc["mem_score", "reason"]


def test_report_section_draws(tmp_path: Path) -> None:
    root = tmp_path / "results"
    for seed in range(3):
        write(root, "memorization", f"m{seed}", _mem(seed))
        write(root, "mem_flips", f"f{seed}", _flips(seed))
        write(root, "dropout_examples", f"d{seed}", _dropout(seed))
    out = tmp_path / "report"
    for sub in ("figures", "tables"):
        (out / sub).mkdir(parents=True)
    rng = np.random.default_rng(0)
    images = (rng.random((N, 1, 8, 8)).astype(np.float32), np.arange(N) % 10)
    text = memorization_section(Results(root), _Writer(out), loader=lambda name: images)
    for stem in ("memorization_histogram", "memorization_gallery"):
        assert (out / "figures" / f"{stem}.png").exists() and f"figures/{stem}.png" in text
    for stem in ("memorization_detection", "memorization_top_clean", "memorization_flips", "memorization_figure7"):
        assert (out / "tables" / f"{stem}.csv").exists()
    top = pd.read_csv(out / "tables" / "memorization_top_clean.csv")
    assert top["example_id"].iloc[0] == 5 and top["label"].iloc[0] == 5
    empty = memorization_section(Results(tmp_path / "nothing"), _Writer(out))
    assert "missing or empty" in empty
