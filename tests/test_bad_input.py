"""Every bad input is one line on stderr and exit 2, with nothing written and Ray never started.

One table holds every case for the three command lines (run_sweep.py, python -m sweep.train, python -m
analyses.report), each called in-process. A case prepares what it needs under tmp_path and returns its argv;
the test then snapshots tmp_path, runs the command with tmp_path as the working directory and `ray.init`
made to fail loudly, and checks the exit code, the one stderr line and that tmp_path did not change.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import ray

import run_sweep
from analyses import report
from sweep import train

RUN = {"dataset": '"digits"', "arch": '"mlp"', "noise": "0.1", "seed": "0", "epochs": "2", "batch_size": "128"}
ANALYSIS = {"rewind_epochs": "[0, 1]"}


def toml(runs: dict[str, str] | None = None, analysis: dict[str, str] | None = None) -> str:
    """The valid base grid (a small digits run) with some fields replaced by TOML literals."""
    body = lambda d: "".join(f"{k} = {v}\n" for k, v in d.items())  # noqa: E731
    return f"[[runs]]\n{body({**RUN, **(runs or {})})}\n[analysis]\n{body({**ANALYSIS, **(analysis or {})})}"


def unwritable(tmp: Path) -> str:
    """A folder to create inside a folder this process may not write into. File modes do not stop root, so
    there it is under /proc/self, which nobody may write into."""
    if os.geteuid() == 0:
        return "/proc/self/memloc-test"
    locked = tmp / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    return str(locked / "out")


def a_file(tmp: Path) -> str:
    path = tmp / "taken"
    path.write_text("not a folder\n")
    return str(path)


def folder(tmp: Path, files: dict[str, str]) -> str:
    """A folder holding `files` (relative path -> text), but no sweep's tables."""
    root = tmp / "some-folder"
    root.mkdir()
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return str(root)


def repository(tmp: Path) -> str:
    """The top folder of a repository (it holds .git)."""
    (tmp / "repo" / ".git").mkdir(parents=True)
    return str(tmp / "repo")


def with_runs_table(tmp: Path) -> str:
    """A results folder with the smallest runs table: enough to get past the report's 'no results' check."""
    (tmp / "res" / "runs").mkdir(parents=True)
    pd.DataFrame({"run_id": ["x"]}).to_parquet(tmp / "res" / "runs" / "x.parquet")
    return str(tmp / "res")


def plugin(name: str, text: str) -> Callable[[Path], str]:
    """A plug-in module file `name` under tmp_path holding `text`; the case gets its path relative to tmp_path
    (the working directory), as a user types it."""
    def setup(tmp: Path) -> str:
        (tmp / name).write_text(text)
        return name

    return setup


SHAPELESS = "from sweep.data import register\nregister('shapeless')(lambda data_dir, download: None)\n"


@dataclass(frozen=True)
class Case:
    cli: str  # run_sweep | train | report
    setup: Callable[[Path], list[str]]  # prepares tmp_path, returns the argv
    needle: str  # in the error line: names the field or flag
    by_argparse: bool = False  # argparse's own error: SystemExit(2) and its usage text
    hide: tuple[str, ...] = ()  # modules made unimportable for the case (a tracker's package absent, whatever is here)


def grid(text: str) -> Callable[[Path], list[str]]:
    def setup(tmp: Path) -> list[str]:
        (tmp / "grid.toml").write_text(text)
        return ["--grid", str(tmp / "grid.toml")]

    return setup


def sweep_case(text: str, needle: str) -> Case:
    return Case("run_sweep", grid(text), needle)


def run_field(name: str, literal: str, message: str) -> Case:
    """The base grid with one [[runs]] field set to a TOML literal; the error line must hold `message`."""
    return sweep_case(toml(runs={name: literal}), message)


def analysis_field(name: str, literal: str, message: str) -> Case:
    return sweep_case(toml(analysis={name: literal}), message)


def args(*argv: str) -> Callable[[Path], list[str]]:
    return lambda tmp: list(argv)


CASES = {
    # run_sweep.py: grid fields of the wrong type, by name
    "p_gen-string": run_field("p_gen", '"x"', "p_gen must be a number, got 'x'"),
    "p_mem-bool": run_field("p_mem", "false", "p_mem must be a number, got False"),
    "arch-number": run_field("arch", "3", "arch must be a string, got 3"),
    "variant-number-in-list": run_field("variant", '["standard", 1]', "variant must be a string, got 1"),
    "epochs-bool": run_field("epochs", "true", "epochs must be an integer, got True"),
    "epochs-list": run_field("epochs", "[1, 2]", "epochs must be an integer, got [1, 2]"),
    "seed-bool": run_field("seed", "true", "seed must be an integer, got True"),
    "noise-string": run_field("noise", '"0.1"', "noise must be a number, got '0.1'"),
    "width-string": run_field("width", '"wide"', "width must be a number, got 'wide'"),
    "lr-string": run_field("lr", '"fast"', "lr must be a number, got 'fast'"),
    "batch_size-float": run_field("batch_size", "1.5", "batch_size must be an integer, got 1.5"),
    "dataset-nested-list": run_field("dataset", '[["digits"]]', "dataset must be a string, got ['digits']"),
    "dataset-table": run_field("dataset", '{name = "digits"}', "dataset must be a string, got {'name': 'digits'}"),
    # subset models (held-out memorization): counts, fractions and pack sizes that cannot make them
    "subsets-one": run_field("subsets", "1", "subsets must be 0 (off) or an integer >= 2 (subset models per "
                                             "standard run), got 1"),
    "subset_fraction-one": sweep_case(toml(runs={"subsets": "4", "subset_fraction": "1.0"}),
                                      "subset_fraction must be a number strictly between 0 and 1"),
    "subset_fraction-zero": sweep_case(toml(runs={"subsets": "4", "subset_fraction": "0"}),
                                       "subset_fraction must be a number strictly between 0 and 1"),
    "pack-over-subsets": sweep_case(toml(runs={"subsets": "4", "pack": "5"}),
                                    "pack must be an integer from 1 to subsets (4): subset models per trial, got 5"),
    "pack-without-subsets": run_field("pack", "2", "pack need subsets = M"),
    "subsets-on-tied-block": sweep_case(toml(runs={"subsets": "4", "variant": '"tied"'}),
                                        "subsets are added for a block's standard runs only"),
    "runs-not-tables": sweep_case("runs = [1, 2]\n", "each [[runs]] block must be a table, got 1"),
    "analysis-not-a-table": sweep_case("analysis = 5\n" + toml().split("\n[analysis]")[0],
                                       "[analysis] must be a table, got 5"),
    "rewind_epochs-int": analysis_field("rewind_epochs", "5", "rewind_epochs must be a list of integers, got 5"),
    "rewind_epochs-string": analysis_field("rewind_epochs", '"0, 1"',
                                           "rewind_epochs must be a list of integers, got '0, 1'"),
    "rewind_buffers-int": analysis_field("rewind_buffers", "1", "rewind_buffers must be true or false, got 1"),
    "retrain_lr-string": analysis_field("retrain_lr", '"fast"', "retrain_lr must be a number, got 'fast'"),
    "retrain_patience-float": analysis_field("retrain_patience", "1.5",
                                             "retrain_patience must be an integer, got 1.5"),
    "flip_cap-bool": analysis_field("flip_cap", "true", "flip_cap must be an integer, got True"),
    "flip_noise_scale-string": analysis_field("flip_noise_scale", '"big"',
                                              "flip_noise_scale must be a number, got 'big'"),
    "flip_noise_scale-negative": analysis_field("flip_noise_scale", "-0.5",
                                                "flip_noise_scale must be a finite number >= 0, got -0.5"),
    "flip_noise_scale-nan": analysis_field("flip_noise_scale", "nan",
                                           "flip_noise_scale must be a finite number >= 0, got nan"),
    "flip_noise_scale-inf": analysis_field("flip_noise_scale", "inf",
                                           "flip_noise_scale must be a finite number >= 0, got inf"),
    "flip_eval_size-string": analysis_field("flip_eval_size", '"some"',
                                            'flip_eval_size must be an integer or "all", got \'some\''),
    "flip_eval_size-float": analysis_field("flip_eval_size", "1.5",
                                           'flip_eval_size must be an integer or "all", got 1.5'),
    "flip_eval_size-bool": analysis_field("flip_eval_size", "true",
                                          'flip_eval_size must be an integer or "all", got True'),
    # the localization probe: checked against the grid's models and datasets before anything runs
    "localize_cap-above-units": analysis_field("localize_cap", "100000",
                                               "localize_cap=100000 but the mlp (width 1.0) of run"),
    "localizers-unknown": analysis_field("localizers", '["greedy", "psychic"]', "unknown localizer(s) 'psychic'"),
    "inject_targets-above-clean": analysis_field("inject_targets", "100000",
                                                 "inject_targets=100000 but digits at noise 0.1 has"),
    # run_sweep.py: flags
    "results-is-a-file": Case("run_sweep", lambda t: [*grid(toml())(t), "--results", a_file(t)], "is a file"),
    "results-under-a-file": Case("run_sweep", lambda t: [*grid(toml())(t), "--results", a_file(t) + "/res"],
                                 "cannot be created under a file"),
    "results-unwritable": Case("run_sweep", lambda t: [*grid(toml())(t), "--results", unwritable(t)],
                               "not writable"),
    "results-unknown-scheme": Case("run_sweep", lambda t: [*grid(toml())(t), "--results", "foo://bar"],
                                   "unsupported URI scheme"),
    "cpus-per-trial-zero": Case("run_sweep", lambda t: [*grid(toml())(t), "--cpus-per-trial", "0"],
                                "--cpus-per-trial"),
    "gpus-per-trial-negative": Case("run_sweep", lambda t: [*grid(toml())(t), "--gpus-per-trial", "-1"],
                                    "--gpus-per-trial"),
    "max-concurrent-negative": Case("run_sweep", lambda t: [*grid(toml())(t), "--max-concurrent", "-1"],
                                    "--max-concurrent"),
    "cpus-per-trial-not-a-number": Case("run_sweep", args("--cpus-per-trial", "abc"), "--cpus-per-trial",
                                        by_argparse=True),
    "max-concurrent-float": Case("run_sweep", args("--max-concurrent", "1.5"), "--max-concurrent",
                                 by_argparse=True),
    # run_sweep.py: values bounded by what they meet (issue 26, item 4: each passed validation and then failed)
    "cpus-per-trial-nan": Case("run_sweep", lambda t: [*grid(toml())(t), "--cpus-per-trial", "nan"],
                               "--cpus-per-trial must be a finite number > 0, got nan"),
    "gpus-per-trial-inf": Case("run_sweep", lambda t: [*grid(toml())(t), "--gpus-per-trial", "inf"],
                               "--gpus-per-trial must be a finite number >= 0, got inf"),
    "gpus-per-trial-nan": Case("run_sweep", lambda t: [*grid(toml())(t), "--gpus-per-trial", "nan"],
                               "--gpus-per-trial must be a finite number >= 0, got nan"),
    "seed-int64-max": run_field("seed", "9223372036854775807",
                                "seed must be an integer in 0..4294967295 (what every random generator used takes)"),
    "seed-2**32": run_field("seed", "4294967296", "seed must be an integer in 0..4294967295"),
    "noise-nan": run_field("noise", "nan", "noise rate must be in [0, 1), got nan"),
    "lr-inf": run_field("lr", "inf", "lr must be a positive number, got inf"),
    "cv_folds-above-examples": run_field("cv_folds", "2000",
                                         "cv_folds = 2000 is more than the 1437 training examples of digits; "
                                         "accepted: 2..1437"),
    "flip_clean-1e9": analysis_field("flip_clean", "1000000000",
                                     'flip_clean = 1000000000 asks for more examples than there are (run '),
    "flip_noisy-above-examples": analysis_field("flip_noisy", "1438", "give at most 1437 or \"all\""),
    "flip_population-above-examples": analysis_field("flip_population", "5000",
                                                     "flip_population = 5000 asks for more examples"),
    "flip_clean-word": analysis_field("flip_clean", '"every"', 'flip_clean must be an integer or "all", got \'every\''),
    "localize_clean-above-examples": analysis_field("localize_clean", "100000",
                                                    "localize_clean = 100000 asks for more examples"),
    "localize_noisy-above-examples": analysis_field("localize_noisy", "100000",
                                                    "localize_noisy = 100000 asks for more examples"),
    "rewind_epochs-beyond-epochs": analysis_field("rewind_epochs", "[0, 100]",
                                                  "rewind_epochs 100 beyond the 2 epochs of run "),
    "rewind_epochs-beyond-epochs-dry-run": Case("run_sweep", lambda t: [
        *grid(toml(analysis={"rewind_epochs": "[0, 100]"}))(t), "--dry-run"], "rewind_epochs 100 beyond"),
    "retrain_peak-nan": analysis_field("retrain_peak", "nan", "retrain_peak must be a fraction"),
    "address-word": Case("run_sweep", lambda t: [*grid(toml())(t), "--address", "foo"],
                         "--address 'foo' is not an address Ray takes; accepted: auto, local, HOST:PORT"),
    "address-no-port": Case("run_sweep", lambda t: [*grid(toml())(t), "--address", "127.0.0.1:"],
                            "--address '127.0.0.1:' is not an address Ray takes"),
    "address-port-not-a-number": Case("run_sweep", lambda t: [*grid(toml())(t), "--address", "host:notaport"],
                                      "--address 'host:notaport' is not an address Ray takes"),
    "address-port-out-of-range": Case("run_sweep", lambda t: [*grid(toml())(t), "--address", "ray://host:70000"],
                                      "is not an address Ray takes"),
    # run_sweep.py: the results folder is ours only where we made it (issue 26, item 1)
    "results-empty": Case("run_sweep", lambda t: [*grid(toml())(t), "--results", ""], "--results is empty"),
    "results-filesystem-root": Case("run_sweep", lambda t: [*grid(toml())(t), "--results", "/"],
                                    "is the filesystem's root"),
    "results-repository-top": Case("run_sweep", lambda t: [*grid(toml())(t), "--results", repository(t)],
                                   "is the top folder of a repository"),
    "results-file-in-the-way": Case("run_sweep", lambda t: [*grid(toml())(t), "--results",
                                                            folder(t, {"epochs": "my own notes"})],
                                    "epochs is a file that a sweep did not write"),
    "results-file-in-the-way-dry-run": Case("run_sweep", lambda t: [*grid(toml())(t), "--dry-run", "--results",
                                                                    folder(t, {"checkpoints": "mine"})],
                                            "checkpoints is a file that a sweep did not write"),
    # run_sweep.py: plug-ins (sweep.plugins), refused before the grid is read, for --status and --dry-run too
    "plugin-unknown-module": Case("run_sweep", lambda t: [*grid(toml())(t), "--plugin", "no_such_plugin_here"],
                                  "--plugin no_such_plugin_here: no module named 'no_such_plugin_here'"),
    "plugin-missing-file": Case("run_sweep", lambda t: [*grid(toml())(t), "--plugin", "missing.py"],
                                "--plugin missing.py: no such file"),
    "plugin-not-a-py-file": Case("run_sweep", lambda t: [*grid(toml())(t), "--plugin", "some/where.txt"],
                                 "--plugin some/where.txt: not a .py file"),
    "plugin-not-a-module-name": Case("run_sweep", lambda t: [*grid(toml())(t), "--plugin", "my-plugin"],
                                     "--plugin my-plugin: not a module name"),
    "plugin-raises": Case("run_sweep", lambda t: [*grid(toml())(t), "--plugin",
                                                  plugin("raising_plugin.py", "raise RuntimeError('boom')\n")(t)],
                          "raising_plugin.py: importing it raised RuntimeError: boom"),
    "plugin-raises-status": Case("run_sweep", lambda t: [
        *grid(toml())(t), "--status", "--plugin", plugin("raising_plugin.py", "1 / 0\n")(t)],
        "raising_plugin.py: importing it raised ZeroDivisionError: division by zero"),
    "plugin-raises-dry-run": Case("run_sweep", lambda t: [
        *grid(toml())(t), "--dry-run", "--plugin", plugin("raising_plugin.py", "import no_such_module_x\n")(t)],
        "importing it raised ModuleNotFoundError: No module named 'no_such_module_x'"),
    "plugin-dataset-without-shape": Case("run_sweep", lambda t: [
        *grid(toml(runs={"dataset": '"shapeless"'}))(t), "--plugin", plugin("shapeless_plugin.py", SHAPELESS)(t)],
        "importing it raised ValueError: dataset 'shapeless': register it with shape=(C, H, W) and num_classes=K"),
    "grid-plugins-missing-file": sweep_case('plugins = ["nope.py"]\n' + toml(), "plugins entry nope.py: no such file"),
    "grid-plugins-not-a-list": sweep_case('plugins = "mine.py"\n' + toml(), "plugins must be a list"),
    "unknown-dataset-without-plugin": run_field("dataset", '"mydigits"', "synthetic-small, or your own from --plugin"),
    # run_sweep.py: experiment trackers (sweep.trackers)
    "logger-unknown": Case("run_sweep", args("--logger", "neptune"), "--logger", by_argparse=True),
    "logger-package-missing": Case("run_sweep", lambda t: [*grid(toml())(t), "--logger", "csv", "--logger", "wandb"],
                                   "--logger wandb needs the wandb package, which is not installed here; install it "
                                   "with `pip install wandb`", hide=("wandb",)),
    "logger-tensorboardx-missing": Case("run_sweep", lambda t: [*grid(toml())(t), "--logger", "tensorboard"],
                                        "`pip install tensorboardX`", hide=("tensorboardX",)),
    # python -m sweep.train (--epochs 1 keeps today's wrongly accepted runs short)
    "train-batch-size-zero": Case("train", args("--epochs", "1", "--batch-size", "0"), "batch_size"),
    "train-batch-size-negative": Case("train", args("--epochs", "1", "--batch-size", "-5"), "batch_size"),
    "train-results-is-a-file": Case("train", lambda t: ["--epochs", "1", "--results", a_file(t)], "is a file"),
    "train-results-unwritable": Case("train", lambda t: ["--epochs", "1", "--results", unwritable(t)],
                                     "not writable"),
    "train-results-unknown-scheme": Case("train", args("--epochs", "1", "--results", "foo://bar"),
                                         "unsupported URI scheme"),
    "train-epochs-not-a-number": Case("train", args("--epochs", "abc"), "--epochs", by_argparse=True),
    # python -m analyses.report
    "report-empty-folder": Case("report", lambda t: ["--results", folder(t, {})], "no sweep results"),
    "report-unrelated-folder": Case("report", lambda t: ["--results", folder(t, {"notes.txt": "hello"})],
                                    "no sweep results"),
    "report-runs-folder-without-tables": Case("report", lambda t: ["--results", folder(t, {"runs/notes.txt": ""})],
                                              "no runs table"),
    "report-out-is-a-file": Case("report", lambda t: ["--results", with_runs_table(t), "--out", a_file(t)],
                                 "is a file"),
    "report-out-under-a-file": Case("report", lambda t: ["--results", with_runs_table(t), "--out",
                                                         a_file(t) + "/report"], "cannot be created under a file"),
    "report-out-unwritable": Case("report", lambda t: ["--results", with_runs_table(t), "--out", unwritable(t)],
                                  "not writable"),
    "report-unknown-flag": Case("report", args("--bogus"), "--bogus", by_argparse=True),
}


def _snapshot(root: Path) -> dict[str, tuple[bool, int]]:
    return {str(p.relative_to(root)): (p.is_dir(), p.stat().st_size if p.is_file() else 0) for p in root.rglob("*")}


@pytest.fixture
def restore_signals():
    """run_sweep.main installs its own SIGINT/SIGTERM handlers; give pytest its own back afterwards."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    for s, handler in saved.items():
        signal.signal(s, handler)


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_bad_input_is_one_line_exit_2_nothing_written_no_ray(case, tmp_path, capsys, monkeypatch, restore_signals):
    def no_ray(*a, **k):
        raise AssertionError("ray.init was called: bad input must be refused before Ray starts")

    monkeypatch.setattr(ray, "init", no_ray)
    for module in case.hide:  # importlib.util.find_spec finds None for a module set to None in sys.modules
        monkeypatch.setitem(sys.modules, module, None)
    monkeypatch.chdir(tmp_path)  # default relative paths (results/, data/) would land here and be seen
    try:
        argv = case.setup(tmp_path)
        main = {"run_sweep": run_sweep.main, "train": train.main, "report": report.main}[case.cli]
        if case.cli != "report":  # the default output folder, unless the case names its own (argparse: last wins)
            argv = ["--results", str(tmp_path / "res"), *argv]
        before = _snapshot(tmp_path)
        if case.by_argparse:
            with pytest.raises(SystemExit) as stop:
                main(argv)
            code = stop.value.code
        else:
            code = main(argv)
        after = _snapshot(tmp_path)
    finally:
        for folder in [tmp_path, *tmp_path.rglob("*")]:  # let tmp_path be cleaned up after a read-only case
            if folder.is_dir() and not folder.is_symlink():
                folder.chmod(0o700)
    err = capsys.readouterr().err
    assert code == 2, err
    assert case.needle in err, err
    if not case.by_argparse:
        assert err.startswith("error: ") and err.endswith("\n") and err.count("\n") == 1, err
    assert after == before, "bad input must write nothing"
    assert not (tmp_path / "res").exists() or case.cli == "report"
    assert not ray.is_initialized()
