"""The localization probe on briefly trained digits MLPs (one example-tied, one standard): its rows, their
ranges, greedy against the flip probe, the evaluation's batched passes against plain weight zeroing."""

from __future__ import annotations

import copy
import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
import torch

from sweep.config import AnalysisConfig, RunConfig
from sweep.localizers import Problem, Ranking, localize
from sweep.localizers.evaluate import EvalPart, edited_part_accuracies, ladder_ks, ladder_rows, units_to_flip
from sweep.localizers.truth import TiedTruth
from sweep.probes import PROBES
from sweep.probes.flip import UnitSpace, edited_accuracies, eval_parts, flip_signature, run_flip
from sweep.probes.localize import TABLES, eval_sample, localize_shards, localize_signature, run_localize
from sweep.schemas import TABLES as SCHEMAS
from sweep.train import train_in_memory

ANALYSIS = AnalysisConfig(localize_clean=4, localize_noisy=4, localize_cap=20, localize_chunk=8, inject_targets=3,
                          inject_units=10, inject_steps=100, flip_population=128, flip_eval_size=200, ig_steps=4,
                          slimming_steps=20, hard_concrete_steps=20)
PRECISIONS = [f"{w}_at_{k}" for k in (1, 5, 10, 20) for w in ("precision", "recall")] + ["precision_at_flip",
                                                                                         "recall_at_flip"]


def _run(digits, variant: str):
    return train_in_memory(RunConfig(dataset="digits", arch="mlp", width=0.25, noise=0.1, epochs=20,
                                     batch_size=128, variant=variant), data=digits)


@pytest.fixture(scope="module")
def tied_run(digits):
    return _run(digits, "tied")


@pytest.fixture(scope="module")
def standard_run(digits):
    return _run(digits, "standard")


@pytest.fixture(scope="module")
def tied_tables(tied_run):
    return run_localize(tied_run, localize_shards(tied_run.cfg, ANALYSIS)[0], ANALYSIS)


@pytest.fixture(scope="module")
def standard_tables(standard_run):
    return run_localize(standard_run, localize_shards(standard_run.cfg, ANALYSIS)[0], ANALYSIS)


def _columns_match_schema(tables: dict[str, pd.DataFrame]) -> None:
    assert set(tables) == set(TABLES)
    for name, frame in tables.items():
        assert list(frame.columns) == [c.name for c in SCHEMAS[name].columns]


def test_tied_rows_cover_every_localizer_and_mode(tied_tables, tied_run):
    _columns_match_schema(tied_tables)
    lo = tied_tables["localize"]
    assert set(lo.truth) == {"tied"} and set(lo["mode"]) == {"tied", "all"}
    assert set(lo.localizer) == set(ANALYSIS.localizers)
    per = lo.groupby(["mode", "localizer"]).size()
    assert len(per) == 2 * len(ANALYSIS.localizers) and (per == 8).all()  # 4 clean + 4 noisy targets each
    assert lo.is_noisy.sum() == 2 * 4 * len(ANALYSIS.localizers)
    for column in PRECISIONS:
        values = lo[column].dropna()
        assert ((values >= 0) & (values <= 1)).all(), column
    assert lo.precision_at_5.notna().all() and lo.chance.notna().all()
    assert ((lo.chance > 0) & (lo.chance < 1)).all()
    assert lo.fitted.all() and tied_tables["injections"].empty
    # chance = own channels / candidates; in mode all every unit is a candidate, in mode tied only live ones
    total = UnitSpace.of(tied_run.model_at(tied_run.final_epoch)).total
    assert (lo.n_units == total).all()
    assert (lo.loc[lo["mode"] == "all", "n_candidates"] == total).all()
    tied_rows = lo[lo["mode"] == "tied"]
    assert (tied_rows.n_candidates < total).all()
    assert np.allclose(lo.chance, lo.n_truth / lo.n_candidates)


def test_tied_rankings_hold_live_units_and_truth_flags_are_right(tied_tables, tied_run):
    lu = tied_tables["localize_units"]
    tied = TiedTruth.of(tied_run.model_at(tied_run.final_epoch))
    ids = torch.tensor(sorted(set(lu.example_id)))
    truth, live = tied.truth(ids).numpy(), tied.live(ids).numpy()
    row_of = {int(i): r for r, i in enumerate(ids.tolist())}
    rows = np.array([row_of[int(i)] for i in lu.example_id])
    units = lu.global_unit.to_numpy()
    assert (lu.in_truth.astype(int).to_numpy() == truth[rows, units]).all()
    in_tied = (lu["mode"] == "tied").to_numpy()
    assert live[rows[in_tied], units[in_tied]].all()
    assert not live[rows[~in_tied], units[~in_tied]].all()  # mode all may, and does, rank dead units
    # ranks are 0.. per ranking, and a ranking is localize_cap long (every MLP layer has enough live units)
    sizes = lu.groupby(["mode", "localizer", "example_id"]).size()
    assert (sizes == ANALYSIS.localize_cap).all()
    # precision_at_5 is the share of in-truth units among ranks 0-4
    top5 = lu[lu["rank"] < 5].groupby(["mode", "localizer", "example_id"]).in_truth.mean()
    lo = tied_tables["localize"].set_index(["mode", "localizer", "example_id"])
    assert np.allclose(lo.loc[top5.index, "precision_at_5"], top5.astype(float))


def test_standard_run_has_no_truth_rows_and_scored_injections(standard_tables, standard_run):
    _columns_match_schema(standard_tables)
    lo = standard_tables["localize"]
    none = lo[lo.truth == "none"]
    assert set(none.localizer) == set(ANALYSIS.localizers) and set(none["mode"]) == {"all"}
    assert none.precision_at_5.isna().all() and none.chance.isna().all()
    inj = standard_tables["injections"]
    assert len(inj) == ANALYSIS.inject_targets
    assert (inj.n_units_injected == ANALYSIS.inject_units).all() and (inj.new_label != inj.original_label).all()
    injected = lo[lo.truth == "injected"]
    assert len(injected) == len(inj) * len(ANALYSIS.localizers)
    total = UnitSpace.of(standard_run.model_at(standard_run.final_epoch)).total
    assert np.allclose(injected.chance, ANALYSIS.inject_units / total)
    fitted_ids = set(inj.example_id[inj.fitted])
    assert fitted_ids, "no injection took: the test would score nothing"
    scored = injected[injected.fitted]
    assert set(scored.example_id) == fitted_ids
    assert scored.precision_at_5.between(0, 1).all() and scored.recall_at_20.between(0, 1).all()
    assert injected.loc[~injected.fitted, "precision_at_5"].isna().all()
    assert (scored.label.to_numpy() == inj.set_index("example_id").loc[scored.example_id, "new_label"]).all()


def test_greedy_units_to_flip_equal_the_flip_probe(standard_run, standard_tables):
    flip_analysis = AnalysisConfig(flip_clean=ANALYSIS.localize_clean, flip_noisy=ANALYSIS.localize_noisy,
                                   flip_chunk=8, flip_cap=ANALYSIS.localize_cap,
                                   flip_population=ANALYSIS.flip_population, flip_eval_size=200)
    flips = run_flip(standard_run, f"0-{flip_signature(flip_analysis)}", flip_analysis)["flips"]
    lo = standard_tables["localize"]
    greedy = lo[(lo.truth == "none") & (lo.localizer == "greedy")].set_index("example_id")
    flips = flips.set_index("example_id")
    assert set(greedy.index) == set(flips.index)
    assert flips.flipped.any()
    for example, row in flips.iterrows():
        got = greedy.loc[example, "k_flip"]
        if row.flipped:
            assert got == row.n_units, example
        else:
            assert pd.isna(got), example


def test_ladder_rows_agree_with_units_to_flip(standard_tables):
    lo = standard_tables["localize"].set_index(["truth", "localizer", "example_id"])
    ld = standard_tables["localize_ladder"]
    assert set(ld.k) <= set(ladder_ks(ANALYSIS.localize_cap))
    assert set(ld.localizer) == set(ANALYSIS.localizers)
    for (truth, name, example), rows in ld.groupby(["truth", "localizer", "example_id"]):
        k_flip = lo.loc[(truth, name, example), "k_flip"]
        before = rows[rows.k < (k_flip if not pd.isna(k_flip) else math.inf)]
        assert not before.flipped.any()
        if not pd.isna(k_flip) and k_flip in set(rows.k):
            assert rows.loc[rows.k == k_flip, "flipped"].item()
    for column in ("clean_acc", "test_acc", "clean_acc_base", "test_acc_base"):
        assert ld[column].between(0, 1).all()
    injected = ld[ld.truth == "injected"]
    assert injected.precision.between(0, 1).all() and ld.loc[ld.truth == "none", "precision"].isna().all()


def test_ladder_ks() -> None:
    assert ladder_ks(1) == [1]
    assert ladder_ks(2) == [1, 2]
    assert ladder_ks(20) == [1, 2, 3, 5, 8, 13, 20]
    assert ladder_ks(21) == [1, 2, 3, 5, 8, 13, 21]


# The batched evaluation against plain weight zeroing ------------------------------------------------------------

def _zeroed(model: torch.nn.Module, space: UnitSpace, units: list[int]) -> torch.nn.Module:
    """A copy of the model with each unit's weight row and bias set to zero (the plain edit)."""
    edited = copy.deepcopy(model).eval()
    own = dict(edited.named_modules())
    with torch.no_grad():
        for unit in units:
            d = space.describe(unit)
            module = own[d["module"]]
            module.weight[d["unit"]] = 0
            if module.bias is not None:
                module.bias[d["unit"]] = 0
    return edited


def test_units_to_flip_and_accuracies_equal_plain_zeroing(standard_run):
    model = standard_run.model_at(standard_run.final_epoch)
    space = UnitSpace.of(model)
    train = standard_run.data.train
    ids = torch.arange(6)
    x, y = train.x[ids], standard_run.labels[ids]
    problem = Problem(model, x, y, ids, train.x[:16], standard_run.labels[:16], torch.arange(16), 12)
    gen = torch.Generator().manual_seed(0)
    # greedy's rankings flip their targets within a few units, random ones mostly never: both kinds are compared
    rankings = localize("greedy", problem, ANALYSIS)[:3]
    rankings += [Ranking(torch.randperm(space.total, generator=gen)[:12].numpy(), np.zeros(12)) for _ in ids[3:]]
    got = units_to_flip(problem, rankings, 12)
    assert (got[:3] > 0).all()
    for t, ranking in enumerate(rankings):
        want = -1
        for k in range(1, 13):
            with torch.no_grad():
                pred = _zeroed(model, space, ranking.units[:k].tolist())(x[t:t + 1]).argmax(1).item()
            if pred != y[t].item():
                want = k
                break
        assert got[t] == want, t
    parts = eval_parts(standard_run, 50, 0)
    removals = [frozenset(r.units[:k].tolist()) for r in rankings[:3] for k in (1, 5)]
    mine = edited_part_accuracies(problem, removals, [EvalPart(str(i), px, py, None)
                                                      for i, (px, py) in enumerate(parts)])
    theirs = edited_accuracies(model, [sorted(r) for r in removals], parts)
    assert np.allclose(mine, theirs, equal_nan=True)
    for r, removal in enumerate(removals[:2]):
        plain = _zeroed(model, space, sorted(removal))
        with torch.no_grad():
            acc = (plain(parts[0][0]).argmax(1) == parts[0][1]).float().mean().item()
        assert mine[r, 0] == pytest.approx(acc)
    rows = ladder_rows(problem, rankings, 12, [EvalPart("clean", *parts[0], None)])
    assert {(row["target"], row["k"]) for row in rows} == {(t, k) for t in range(6) for k in ladder_ks(12)}
    for row in rows:
        k_flip = got[row["target"]]
        if k_flip == -1 or row["k"] < k_flip:
            assert not row["flipped"]
        elif row["k"] == k_flip:
            assert row["flipped"]


def test_eval_sample_is_the_flip_probes(standard_run):
    mine = eval_sample(standard_run, 100, 0)
    theirs = eval_parts(standard_run, 100, 0)
    for part, (x, y) in zip(mine, theirs, strict=True):
        assert torch.equal(part.x, x) and torch.equal(part.y, y)
        if part.ids is not None:
            assert torch.equal(standard_run.data.train.x[part.ids], x)


def test_shards_are_signed_by_every_setting():
    probe = PROBES["localize"]
    assert probe.tables == TABLES and probe.applies(RunConfig(dataset="digits", arch="mlp", variant="tied"))
    assert not probe.applies(RunConfig(dataset="digits", arch="mlp", variant="dropout"))
    cfg = RunConfig(dataset="digits", arch="mlp")
    assert len(localize_shards(cfg, ANALYSIS)) == 1
    assert len(localize_shards(cfg, dataclasses.replace(ANALYSIS, localize_chunk=3))) == 3
    for change in ({"ig_steps": 5}, {"inject_units": 4}, {"localizers": ("greedy",)}, {"flip_eval_size": 10}):
        other = dataclasses.replace(ANALYSIS, **change)
        assert localize_signature(other) != localize_signature(ANALYSIS), change
        assert next(iter(change)) in probe.settings
    with pytest.raises(ValueError, match="other localize settings"):
        run_localize(None, f"0-{localize_signature(ANALYSIS)}", dataclasses.replace(ANALYSIS, ig_steps=5))
