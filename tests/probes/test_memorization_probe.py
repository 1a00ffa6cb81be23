"""The memorization probe on a run held in memory: its packs' predictions read back from a store, the three
tables it writes, and the target sets it flips."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from sweep import schemas
from sweep.config import AnalysisConfig, RunConfig
from sweep.errors import UserError
from sweep.packs import train_pack_in_memory
from sweep.probes import PROBES
from sweep.probes.memorization import pack_predictions, run_memorization, target_sets
from sweep.store import Store
from sweep.train import train_in_memory
from tests.test_memorization import planted_toy

BASE = RunConfig(dataset="digits", arch="mlp", noise=0.1, epochs=20, batch_size=16, lr=0.1, width=0.5)


def _write(store: Store, pack: RunConfig, frame: pd.DataFrame) -> None:
    """A pack's file where sweep.packs.execute_pack puts it: subset_predictions/<pack run id>.parquet."""
    store.write_bytes(store.table_file("subset_predictions", pack.run_id), frame.to_parquet(index=False))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A standard run of the planted toy with label noise, and its 8 subset models in two packs of 4 in a store."""
    data = planted_toy(per_class=10, spread=1.5)  # clusters loose enough for the model to fit its mislabeled examples
    run = train_in_memory(BASE, data=data)
    store = Store(str(tmp_path_factory.mktemp("results")))
    for index in range(2):
        pack = replace(BASE, subsets=8, subset_fraction=0.5, pack=4, pack_index=index)
        _write(store, pack, train_pack_in_memory(pack, data))
    # another seed's pack must never be read as this run's
    other = replace(BASE, seed=1, epochs=1, subsets=2, subset_fraction=0.5, pack=2, pack_index=0)
    _write(store, other, train_pack_in_memory(other, data))
    run.store = store
    return run, store


def test_pack_predictions_read_this_runs_complete_set(trained) -> None:
    run, store = trained
    pred = pack_predictions(store, run.cfg)
    assert sorted(pred["model"].unique()) == list(range(8))
    assert (pred["seed"] == 0).all()
    with pytest.raises(UserError, match="no complete set"):
        pack_predictions(store, replace(BASE, seed=2))


def test_probe_writes_three_tables(trained) -> None:
    run, _ = trained
    analysis = AnalysisConfig(mem_targets=3, mem_influence_top=5, localizers=("greedy", "zero_out"),
                              localize_cap=30, flip_population=64)
    probe = PROBES["memorization"]
    assert set(probe.tables) == {"memorization", "mem_influence", "mem_flips"}
    assert probe.applies(BASE) and not probe.applies(replace(BASE, variant="tied"))
    assert probe.needs(replace(BASE, subsets=8, pack=4)) and not probe.needs(replace(BASE, cv_folds=3))
    frames = run_memorization(run, "all", analysis)
    for name, frame in frames.items():
        schemas.to_arrow(name, frame.assign(**{c.name: None for c in schemas.RUN_COLUMNS}))  # fits its schema
    mem = frames["memorization"]
    assert len(mem) == len(run.labels) and (mem["is_noisy"] == run.is_noisy.numpy()).all()
    assert (mem["n_models"] == 8).all() and (mem["n_in"] + mem["n_out"] == 8).all()
    planted = len(run.labels) - 1  # the unique input with its own label: among the clean examples of highest mem
    assert mem.loc[planted, "mem"] > 0.5
    assert len(frames["mem_influence"]) == 5 and frames["mem_influence"]["influence"].is_monotonic_decreasing
    flips = frames["mem_flips"]
    assert set(flips["set"]) == {"noisy", "atypical", "typical"} and set(flips["localizer"]) == {"greedy", "zero_out"}
    assert (flips.groupby(["set", "localizer"]).size() == 3).all()
    assert flips.loc[flips.set == "noisy", "is_noisy"].all() and not flips.loc[flips.set != "noisy", "is_noisy"].any()
    assert flips.loc[flips.set == "atypical", "mem"].min() >= flips.loc[flips.set == "typical", "mem"].max()
    assert planted in set(flips.loc[flips.set == "atypical", "example_id"])
    assert (flips["flipped"] == flips["units_to_flip"].notna()).all()
    assert (flips.loc[flips.flipped, "units_to_flip"] <= flips.loc[flips.flipped, "cap"]).all()
    none = run_memorization(run, "all", replace(analysis, mem_influence_top=0, mem_targets=0))
    assert none["mem_influence"].empty and none["mem_flips"].empty and len(none["memorization"]) == len(mem)


def test_target_sets_pick_by_mem_among_eligible() -> None:
    mem = pd.DataFrame({"example_id": np.arange(6), "is_noisy": [False, False, False, False, True, True],
                        "mem": [0.9, 0.1, 0.5, np.nan, 0.8, 0.7]})
    eligible = np.array([True, True, False, True, True, True])
    sets = target_sets(mem, eligible, 2, seed=0)
    assert list(sets["atypical"]) == [0, 1]  # 2 is not eligible, 3 has no score
    assert list(sets["typical"]) == []  # no eligible clean example left that is not atypical
    assert sorted(sets["noisy"]) == [4, 5]
    assert list(target_sets(mem, eligible, 1, seed=0)["typical"]) == [1]
