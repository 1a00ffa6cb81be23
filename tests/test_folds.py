"""Out-of-sample runs for confident learning: folds, the runs a grid adds, and their predictions."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch

from sweep.config import RunConfig
from sweep.errors import UserError
from sweep.folds import fold_of, fold_split
from sweep.grids import expand, load_grid
from sweep.plan import selected_probes, tasks_for
from sweep.store import Store
from sweep.train import execute_run


@pytest.mark.parametrize("n, folds", [(10, 2), (1437, 5), (7, 3)])
def test_folds_partition_the_training_set_evenly(n, folds):
    held = [fold_split(n, folds, k, seed=3)[1] for k in range(folds)]
    together = torch.cat(held).sort().values
    assert torch.equal(together, torch.arange(n))  # every example held out exactly once
    assert max(map(len, held)) - min(map(len, held)) <= 1
    for k in range(folds):
        train, out = fold_split(n, folds, k, seed=3)
        assert set(train.tolist()).isdisjoint(out.tolist()) and len(train) + len(out) == n
    assert torch.equal(fold_of(n, folds, 3), fold_of(n, folds, 3))
    assert not torch.equal(fold_of(n, folds, 3), fold_of(n, folds, 4))  # the noise seed reshuffles them


def test_a_grid_block_with_cv_folds_adds_out_of_sample_runs_for_standard_runs_only():
    runs = expand([{"dataset": "digits", "arch": "mlp", "variant": ["standard", "tied"], "seed": [0, 1],
                    "cv_folds": 3}])
    main = [c for c in runs if not c.cv_folds]
    folds = [c for c in runs if c.cv_folds]
    assert len(main) == 4 and len(folds) == 6 and {c.variant for c in folds} == {"standard"}
    for cfg in folds:
        assert dataclasses.replace(cfg, cv_folds=0, cv_fold=0) in main and cfg.cv_folds == 3
        assert f"-cv{cfg.cv_fold}of3-" in cfg.run_id
        assert tasks_for(cfg, selected_probes(None), load_grid("smoke").analysis) == []  # no probes
    # an ordinary run keeps the id it had before cv fields existed (measured on the previous version)
    assert RunConfig().run_id == "digits-mlp-standard-n0.1-s0-9f1eaa1261"
    assert RunConfig().config_id == "digits-mlp-standard-n0.1-40b20b2184"


@pytest.mark.parametrize("bad, needle", [
    ({"cv_folds": 1}, "cv_folds must be 0 (off) or an integer >= 2"),
    ({"cv_folds": True}, "cv_folds must be 0 (off) or an integer >= 2"),
    ({"cv_folds": -2}, "cv_folds must be 0 (off) or an integer >= 2"),
])
def test_bad_cv_folds_in_a_grid_are_refused(bad, needle):
    with pytest.raises(UserError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        expand([{"dataset": "digits", "arch": "mlp", **bad}])


@pytest.mark.parametrize("fields, needle", [
    ({"cv_folds": 3, "cv_fold": 3}, "0 <= cv_fold < cv_folds"),
    ({"cv_fold": 1}, "needs cv_folds >= 2"),
    ({"cv_folds": 2, "variant": "tied"}, "cv_folds needs variant 'standard'"),
])
def test_bad_fold_fields_are_refused(fields, needle):
    with pytest.raises(UserError, match=needle):
        RunConfig(**fields).validate()


def test_the_fold_runs_predict_every_example_exactly_once_out_of_sample(tmp_path):
    main = RunConfig(dataset="digits", arch="mlp", noise=0.1, epochs=3, batch_size=256, width=0.5).validate()
    store = Store(str(tmp_path))
    folds = [dataclasses.replace(main, cv_folds=2, cv_fold=k).validate() for k in range(2)]
    for cfg in folds:
        execute_run(cfg, store, torch.device("cpu"))
    oos = pd.read_parquet(tmp_path / "oos_predictions")
    examples = pd.read_parquet(tmp_path / "aux_examples")  # an auxiliary training: its rows in aux_*
    n = 1437  # digits' training split
    assert sorted(oos["example_id"]) == list(range(n)) and (oos["of_run_id"] == main.run_id).all()
    probs = np.stack(oos["probs"].to_numpy())
    assert probs.shape == (n, 10) and np.allclose(probs.sum(1), 1.0)
    for cfg in folds:  # each fold run trained on, and describes, only the examples outside its fold
        trained = set(examples.loc[examples["run_id"] == cfg.run_id, "example_id"])
        predicted = set(oos.loc[oos["run_id"] == cfg.run_id, "example_id"])
        assert trained.isdisjoint(predicted) and len(trained) + len(predicted) == n
        assert trained | predicted == set(range(n))
    # the noisy labels are the main run's: the same draw over the whole training set
    labels = oos.set_index("example_id").sort_index()
    from sweep.train import prepare

    prep = prepare(main, torch.device("cpu"))
    assert labels["label"].tolist() == prep.labels.tolist() and labels["is_noisy"].tolist() == prep.is_noisy.tolist()
