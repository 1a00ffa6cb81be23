"""The bench scripts run from a fresh clone, without the package installed, from any directory; bench/e2e.py's
plain baseline is the engine's architecture, and its in-process mode (no Ray) runs every stage."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

from sweep.models import build_model

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(p.name for p in (ROOT / "bench").glob("*.py"))

# Runs a script as `python SCRIPT ARGS...` would, in an interpreter where the repository is not importable: the
# editable install's finder (pip install -e) is removed and no sys.path entry leads to the repository. It first
# checks that `import sweep` now fails, so a pass means the script finds the package on its own.
RUNNER = r"""
import os, runpy, sys
from pathlib import Path
class Blocked:  # BENCH_BLOCK=ray: as on a machine without Ray
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name.split(".")[0] in os.environ.get("BENCH_BLOCK", "").split(","):
            raise ImportError(f"No module named {name!r} (blocked by the test)")
        return None
sys.meta_path.insert(0, Blocked)
repo, script = Path(sys.argv[1]).resolve(), sys.argv[2]
def editable(obj):
    return str(getattr(obj, "__module__", "") or "").startswith("__editable__")
sys.meta_path[:] = [f for f in sys.meta_path if not editable(f)]
sys.path_hooks[:] = [h for h in sys.path_hooks if not editable(h)]
sys.path[:] = [p for p in sys.path if p and Path(p).resolve() != repo]
sys.path_importer_cache.clear()
try:
    import sweep
except ImportError:
    pass
else:
    raise SystemExit(f"test setup: sweep is still importable, from {sweep.__file__}")
sys.argv = [script, *sys.argv[3:]]
sys.path.insert(0, str(Path(script).resolve().parent))
runpy.run_path(script, run_name="__main__")
"""


def run_outside(script: Path, *args: str, cwd: Path, block: str = "") -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["BENCH_BLOCK"] = block
    return subprocess.run([sys.executable, "-c", RUNNER, str(ROOT), str(script), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def test_the_runner_reproduces_a_missing_package(tmp_path: Path) -> None:
    """A script that does not add the repository to its path fails under the runner, as on a fresh clone."""
    script = tmp_path / "bare.py"
    script.write_text("import sweep\n")
    proc = run_outside(script, cwd=tmp_path)
    assert proc.returncode != 0 and "No module named 'sweep'" in proc.stderr


@pytest.mark.parametrize("name", SCRIPTS)
def test_bench_script_runs_from_a_fresh_clone_in_another_directory(name: str, tmp_path: Path) -> None:
    assert {"train.py", "e2e.py", "scaling.py", "flip.py"} <= set(SCRIPTS)
    proc = run_outside(ROOT / "bench" / name, "--help", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "usage:" in proc.stdout


# script -> (its quickest arguments, a phrase of its result line)
QUICKEST = {"train.py": (("--device", "cpu", "--steps", "1", "--width", "0.125", "--batch", "32"), "accounting costs"),
            "dropout.py": (("--device", "cpu", "--steps", "1", "--rounds", "1", "--width", "0.125", "--batch", "32"),
                           "slowdown:"),
            "localizers.py": (("--device", "cpu", "--quick"), "x greedy"),
            "packs.py": (("--device", "cpu", "--k", "2", "--epochs", "1", "--batch", "256"), "ratio")}


@pytest.mark.parametrize("name", sorted(QUICKEST))
def test_step_benches_run_their_quickest_mode_from_a_fresh_clone(name: str, tmp_path: Path) -> None:
    """A few steps, so a change to the trainer's or the models' interfaces cannot leave a bench broken unseen."""
    args, result = QUICKEST[name]
    proc = run_outside(ROOT / "bench" / name, *args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert result in proc.stdout


def load_e2e() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_e2e", ROOT / "bench" / "e2e.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(("arch", "width", "shape"), [("resnet9", 1.0, (3, 32, 32)), ("resnet9", 0.25, (3, 32, 32)),
                                                      ("mlp", 1.0, (3, 32, 32)), ("mlp", 0.5, (1, 8, 8))])
def test_plain_baseline_has_the_engines_architecture(arch: str, width: float, shape: tuple[int, int, int]) -> None:
    e2e = load_e2e()
    plain = e2e.plain_model(arch, width, shape)
    engine = build_model(arch, shape, 10, width=width)
    assert sorted(p.numel() for p in plain.parameters()) == sorted(p.numel() for p in engine.parameters())
    x = torch.randn(4, *shape)
    assert plain.eval()(x).shape == engine.eval()(x).shape == (4, 10)


@pytest.mark.slow
def test_e2e_without_ray_times_every_stage(tmp_path: Path) -> None:
    """--no-ray on a machine without Ray (imports of ray fail), from another directory, without the package."""
    proc = run_outside(ROOT / "bench" / "e2e.py", "--quick", "--no-ray", "--epochs", "4", "--device", "cpu",
                       cwd=tmp_path, block="ray")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    for stage in ("trainings", "probe rewind", "probe retrain", "probe flip", "probe dropout", "report", "total"):
        assert f"\n{stage} " in out, out
    assert "plain hand-written mlp loop" in out and "the plain epoch" in out and "ray start" not in out
    assert list(tmp_path.iterdir()) == []  # results went to a temporary folder, since removed
