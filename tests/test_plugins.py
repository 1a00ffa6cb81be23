"""Plug-ins (sweep.plugins): how specs resolve, what importing them registers, entry points of an installed
distribution, what travels to a joined cluster, and one real sweep on a real cluster with a dataset, a model and
a localizer from a module in a temporary folder outside the package, run from another folder."""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import pytest

from sweep import plugins
from sweep.config import RunConfig
from sweep.data import DATASETS, SHAPES, load_dataset
from sweep.errors import UserError
from sweep.grids import load_grid
from sweep.localizers import LOCALIZERS
from sweep.models import MODELS
from sweep.models.for_run import build_model_for
from sweep.models.groups import unit_layers
from sweep.models.registry import DROPOUT_ARCHS
from tests import ray_cluster

ROOT = Path(__file__).resolve().parents[1]

# A plug-in as a user writes it: a dataset made in code, a model with its groups that places dropout modules, and
# a localizer; every process that imports it appends its pid to LOG, so the test sees which processes did.
PLUGIN = '''
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from sweep.data import Dataset, Split, register
from sweep.localizers import Ranking, register_localizer
from sweep.models import register as register_model

LOG = {log!r}
if LOG:
    with open(LOG, "a") as f:
        f.write(f"{{os.getpid()}}\\n")


@register("{dataset}", shape=(1, 4, 4), num_classes=3)
def _load(data_dir: Path, download: bool) -> Dataset:
    rng = np.random.default_rng(0)
    protos = rng.normal(size=(3, 1, 4, 4))

    def split(n):
        y = np.arange(n) % 3
        x = protos[y] + 0.7 * rng.normal(size=(n, 1, 4, 4))
        return Split(torch.tensor(x, dtype=torch.float32), torch.tensor(y))

    return Dataset("{dataset}", split(96), split(48), 3, (1, 4, 4))


class Net(nn.Module):
    def __init__(self, shape, classes, width, dropout):
        super().__init__()
        self.hidden = nn.Linear(16, 24)
        self.bn = nn.BatchNorm1d(24)
        self.drop = None if dropout is None else dropout(0, 24)
        self.fc = nn.Linear(24, classes)
        self.head = "fc"
        self.groups = [("hidden", ["hidden", "bn", "drop"]), ("head", ["fc"])]

    def forward(self, x, ids=None):
        h = torch.relu(self.bn(self.hidden(x.flatten(1))))
        return self.fc(h if self.drop is None else self.drop(h, ids))


@register_model("{arch}", dropout=True)
def _build(shape, classes, width, dropout, dropout_places="paper"):
    return Net(shape, classes, width, dropout)


@register_localizer("{localizer}")
def _by_index(problem, analysis):
    units = np.arange(problem.k_max)
    return [Ranking(units, -units.astype(float)) for _ in range(len(problem.ids))]
'''


def write_plugin(folder: Path, name: str = "mine", log: str = "") -> Path:
    """A plug-in module `name`.py registering dataset, arch and localizer `<name>_data`, `<name>_net`, `<name>_loc`."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.py"
    path.write_text(PLUGIN.format(log=log, dataset=f"{name}_data", arch=f"{name}_net", localizer=f"{name}_loc"))
    return path


@pytest.fixture
def isolated(monkeypatch):
    """Registries, imported plug-ins, sys.modules and sys.path as they were before the test."""
    saved = [(reg, dict(reg)) for reg in (DATASETS, SHAPES, MODELS, LOCALIZERS, plugins._loaded)]
    arch_set = set(DROPOUT_ARCHS)
    modules = set(sys.modules)
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield
    for reg, before in saved:
        reg.clear()
        reg.update(before)
    DROPOUT_ARCHS.clear()
    DROPOUT_ARCHS.update(arch_set)
    for name in set(sys.modules) - modules:
        del sys.modules[name]


def test_resolve_paths_against_base_and_names_as_given(tmp_path):
    write_plugin(tmp_path / "sub")
    got = plugins.resolve(["sub/mine.py", "my_pkg.plug", str(tmp_path / "sub" / "mine.py")], base=tmp_path)
    assert got == (str((tmp_path / "sub" / "mine.py").resolve()), "my_pkg.plug")  # the same file kept once
    with pytest.raises(UserError, match=r"--plugin gone\.py: no such file"):
        plugins.resolve(["gone.py"], base=tmp_path)
    with pytest.raises(UserError, match="not a .py file"):
        plugins.resolve(["sub/notes.txt"], base=tmp_path)
    with pytest.raises(UserError, match="not a module name"):
        plugins.resolve(["my-plugin"])


def test_a_py_file_registers_everything_once(tmp_path, isolated):
    log = tmp_path / "imports.log"
    spec = plugins.resolve([str(write_plugin(tmp_path / "p", log=str(log)))])
    first = plugins.activate(spec)
    assert plugins.activate(spec) == first  # a second call (every task calls it) imports nothing again
    assert log.read_text().count("\n") == 1
    assert {"mine_data"} <= set(DATASETS) and SHAPES["mine_data"] == ((1, 4, 4), 3)
    assert "mine_net" in MODELS and "mine_net" in DROPOUT_ARCHS and "mine_loc" in LOCALIZERS
    # a run on them validates, its model builds for the dataset's shape, and the probes find its units
    cfg = RunConfig(dataset="mine_data", arch="mine_net", variant="tied", epochs=2, batch_size=32).validate()
    model = build_model_for(cfg)
    assert [(u.group, u.name, u.n_units) for u in unit_layers(model)] == [("hidden", "hidden", 24)]
    assert len(load_dataset("mine_data").train) == 96
    assert not (tmp_path / "p" / "__pycache__").exists()  # nothing written beside the user's file


def test_a_module_name_is_found_in_the_working_directory(tmp_path, isolated, monkeypatch):
    write_plugin(tmp_path, "cwd_plugin_mod")
    monkeypatch.chdir(tmp_path)
    plugins.activate(plugins.resolve(["cwd_plugin_mod"]))
    assert "cwd_plugin_mod_net" in MODELS


def test_a_worker_without_the_file_imports_the_shipped_copy_by_name(tmp_path, isolated):
    shipped = write_plugin(tmp_path / "unpacked", "shipped_plug")  # where Ray's py_modules unpacks it
    sys.path.append(str(shipped.parent))
    plugins.activate([str(tmp_path / "driver-only" / "shipped_plug.py")])  # the driver's path: absent here
    assert "shipped_plug_data" in DATASETS
    with pytest.raises(UserError, match="no such file on this node, and no shipped copy named 'absent_plug'"):
        plugins.activate([str(tmp_path / "driver-only" / "absent_plug.py")])


def test_bad_plugins_are_one_user_error(tmp_path, isolated):
    (tmp_path / "raises.py").write_text("raise RuntimeError('boom')\n")
    with pytest.raises(UserError, match=r"raises\.py: importing it raised RuntimeError: boom"):
        plugins.activate([str(tmp_path / "raises.py")])
    assert "raises" not in sys.modules and str(tmp_path) not in sys.path  # as before the try
    (tmp_path / "json.py").write_text("")
    with pytest.raises(UserError, match="a module named 'json' is imported already"):
        plugins.activate([str(tmp_path / "json.py")])
    with pytest.raises(UserError, match="--plugin no_such_mod_zz: no module named 'no_such_mod_zz'"):
        plugins.activate(["no_such_mod_zz"])
    (tmp_path / "twice.py").write_text("from sweep.models import register\nregister('mlp')(lambda *a: None)\n")
    with pytest.raises(UserError, match="ValueError: architecture 'mlp' registered twice"):
        plugins.activate([str(tmp_path / "twice.py")])


def _distribution(site: Path, module: str, body: str, group: str = "memloc_sweep.models") -> None:
    """An installed distribution as pip leaves it: its module and a dist-info folder with entry_points.txt."""
    (site / f"{module}.py").write_text(body)
    info = site / f"{module}_dist-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}-dist\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[{group}]\nmine = {module}\n")


def test_entry_points_of_installed_packages_are_loaded(tmp_path, isolated):
    write_plugin(tmp_path, "ep_plugin_mod")
    (tmp_path / "ep_plugin_mod.py").rename(tmp_path / "body.txt")
    _distribution(tmp_path, "ep_plugin_mod", (tmp_path / "body.txt").read_text())
    sys.path.insert(0, str(tmp_path))
    assert "ep_plugin_mod" in plugins.prepare([])  # the workers import it by name too
    assert "ep_plugin_mod_net" in MODELS and "ep_plugin_mod_data" in DATASETS


def test_a_broken_entry_point_names_its_package(tmp_path, isolated):
    _distribution(tmp_path, "broken_ep_mod", "raise ImportError('needs a GPU library')\n", "memloc_sweep.signals")
    sys.path.insert(0, str(tmp_path))
    with pytest.raises(UserError, match=r"entry point mine = 'broken_ep_mod' in group memloc_sweep.signals of "
                                        r"package broken_ep_mod-dist: loading it raised ImportError: needs a GPU"):
        plugins.prepare([])


def test_grid_file_plugins_resolve_against_the_grid_file(tmp_path, isolated, monkeypatch):
    write_plugin(tmp_path / "grids" / "lib", "gridplug")
    grid_file = tmp_path / "grids" / "g.toml"
    grid_file.write_text('plugins = ["lib/gridplug.py"]\n[[runs]]\ndataset = "gridplug_data"\narch = "gridplug_net"\n'
                         'epochs = 2\nbatch_size = 32\n')
    monkeypatch.chdir(tmp_path)  # not the grid file's folder
    grid = load_grid(str(grid_file))
    assert grid.plugins == (str((tmp_path / "grids" / "lib" / "gridplug.py").resolve()),)
    assert [c.dataset for c in grid.runs] == ["gridplug_data"]


def test_a_joined_cluster_gets_local_plugins_in_its_runtime_env(tmp_path, isolated, monkeypatch):
    from sweep import engine
    from sweep.store import FAULT_ENV

    path = write_plugin(tmp_path / "files", "joined_plug")
    package = tmp_path / "pkgs" / "local_pkg_zz"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "plug.py").write_text("VALUE = 1\n")
    sys.path.insert(0, str(tmp_path / "pkgs"))
    specs = plugins.resolve([str(path), "local_pkg_zz.plug", "json", "numpy", "sweep.data"])
    plugins.activate(specs)
    assert plugins.shipped(specs) == [str(path), str(package.resolve())]  # installed and our own: not shipped
    seen = {}
    monkeypatch.setattr(engine, "_connect", lambda opts, runtime_env: seen.update(env=runtime_env))
    monkeypatch.setattr(engine.ray, "is_initialized", lambda: False)
    monkeypatch.setenv(FAULT_ENV, "x")
    engine.init_ray(engine.Options(address="127.0.0.1:6379", plugins=specs))
    assert seen["env"] == {"env_vars": {FAULT_ENV: "x"}, "py_modules": [str(path), str(package.resolve())]}
    engine.init_ray(engine.Options(plugins=specs))  # a private cluster's workers see the driver's files
    assert seen["env"] == {"env_vars": {FAULT_ENV: "x"}}


def test_the_worked_example_passes_dry_run():
    out = subprocess.run([sys.executable, "run_sweep.py", "--plugin", "examples/plugin_example.py", "--grid",
                          "examples/plugin_example.toml", "--results", tempfile.mkdtemp(), "--dry-run"], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "prototypes" in out.stdout and "tinycnn" in out.stdout
    for probe in ("flip", "rewind", "retrain", "localize", "memorization", "dropout"):  # every analysis has work
        assert probe in out.stdout, probe


GRID = '''
[[runs]]
dataset = "mine_data"
arch = "mine_net"
variant = ["standard", "tied"]
noise = 0.1
seed = 0
epochs = 3
batch_size = 32
subsets = 2
pack = 2

[analysis]
rewind_epochs = [0, 2]
retrain_epochs = 2
flip_clean = 3
flip_noisy = 3
flip_cap = 10
flip_population = 32
flip_eval_size = 48
flip_chunk = 3
localizers = ["greedy", "mine_loc"]
localize_clean = 2
localize_noisy = 2
localize_cap = 5
inject_targets = 1
inject_units = 8
inject_steps = 20
mem_targets = 2
mem_influence_top = 5
'''


@pytest.mark.slow
def test_a_sweep_on_a_joined_cluster_runs_every_probe_on_plugin_data_and_model(tmp_path):
    """The plug-in lives outside the package, the driver runs from a third folder (workers cannot rely on its
    working directory), and the cluster is joined (--address), so the file also travels through Ray's runtime
    environment: every probe's tables must fill, and worker processes must have imported the module."""
    from sweep.probes import PROBES

    log = tmp_path / "imports.log"
    write_plugin(tmp_path / "plug", log=str(log))
    (tmp_path / "grid.toml").write_text(GRID)
    (tmp_path / "elsewhere").mkdir()
    temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    address = ray_cluster.start([2], temp)
    try:
        out = subprocess.run([sys.executable, str(ROOT / "run_sweep.py"), "--plugin", "../plug/mine.py", "--grid",
                              "../grid.toml", "--results", str(tmp_path / "r"), "--address", address, "--no-report"],
                             cwd=tmp_path / "elsewhere", capture_output=True, text=True, env=ray_cluster.env(),
                             timeout=600)
    finally:
        ray_cluster.stop(temp)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    runs = pd.read_parquet(tmp_path / "r" / "runs")
    by_variant = dict(zip(runs["variant"], runs["run_id"], strict=True))
    assert set(by_variant) == {"standard", "tied"}
    for name, probe in PROBES.items():
        for table in probe.tables:
            frame = pd.read_parquet(tmp_path / "r" / table)
            assert not frame.empty, f"{name}: table {table} is empty"
            assert set(frame["dataset"]) == {"mine_data"} and set(frame["arch"]) == {"mine_net"}, table
    assert set(pd.read_parquet(tmp_path / "r" / "dropout")["run_id"]) == {by_variant["tied"]}
    assert set(pd.read_parquet(tmp_path / "r" / "flips")["run_id"]) == {by_variant["standard"]}
    assert {"greedy", "mine_loc"} <= set(pd.read_parquet(tmp_path / "r" / "localize")["localizer"])
    assert pd.read_parquet(tmp_path / "r" / "subset_predictions")["model"].nunique() == 2
    importers = set(log.read_text().split())
    assert len(importers) >= 3, importers  # the driver, and at least a trial's and a task's worker process
    finished = re.search(r"(\d+) of (\d+) runs and (\d+) of (\d+) analysis tasks finished", out.stdout)
    assert finished and finished[1] == finished[2] == "3" and finished[3] == finished[4], out.stdout[-2000:]
