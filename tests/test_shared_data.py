"""Data once per node: the driver loads each dataset once and puts it in Ray's object store; trials and probe
tasks read that copy instead of the files. Checked on a real (in-process, one-CPU) Ray with MNIST files in
their genuine format that the task's own data folder does not have."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import ray
import torch

from sweep.config import AnalysisConfig, RunConfig
from sweep.data import load_dataset
from sweep.engine import Options, _from_arrays, _probe_task, _share_datasets, _to_arrays
from sweep.errors import UserError
from sweep.store import Store
from sweep.train import execute_run
from tests.test_data import write_mnist_like


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def test_the_shared_arrays_are_the_dataset_without_a_copy():
    data = load_dataset("digits")
    arrays = _to_arrays(data)
    again = _from_arrays(arrays)
    assert np.shares_memory(again.train.x.numpy(), arrays["train_x"])  # a view, not a copy
    for split in ("train", "test"):
        for part in ("x", "y"):
            assert torch.equal(getattr(getattr(again, split), part), getattr(getattr(data, split), part))
    assert (again.name, again.num_classes, again.shape) == (data.name, data.num_classes, data.shape)


@pytest.mark.slow
def test_a_probe_task_reads_the_nodes_copy_not_the_files(tmp_path, local_ray):
    write_mnist_like(tmp_path / "data" / "MNIST" / "raw", 300, 100, gz=False)
    cfg = RunConfig(dataset="mnist", arch="mlp", noise=0.1, epochs=2, batch_size=128, width=0.25).validate()
    results = tmp_path / "results"
    execute_run(cfg, Store(str(results)), torch.device("cpu"), data_dir=str(tmp_path / "data"))
    analysis = AnalysisConfig(rewind_epochs=(0,), keep_checkpoints="all")
    shared = _share_datasets({"mnist"}, Options(data_dir=str(tmp_path / "data")))
    assert isinstance(shared["mnist"], ray.ObjectRef)
    # the task's data folder holds no MNIST: only the shared copy can make it work
    opts = dataclasses.asdict(Options(results=str(results), data_dir=str(tmp_path / "empty")))
    args = (dataclasses.asdict(cfg), "rewind", "fc1", dataclasses.asdict(analysis), opts)
    rows, _ = ray.get(_probe_task.remote(*args, shared["mnist"]))
    assert rows == 1 and (results / "rewinding" / f"{cfg.run_id}-rewind-fc1.parquet").exists()
    with pytest.raises(UserError, match="mnist"):  # the same task without it looks for the files, and fails
        ray.get(_probe_task.remote(*args, None))
    assert _share_datasets({"mnist"}, Options(data_dir=str(tmp_path / "data"), share_data=False)) == {"mnist": None}
