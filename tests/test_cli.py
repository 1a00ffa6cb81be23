"""Choosing runs from the command line (--where, --set), the help text, and the installed `memloc-sweep` command.

--where/--set are applied in one place (sweep.grids.select_runs), used by the sweep, --dry-run and --status; the
in-process cases below call run_sweep.main as the command line does, with Ray made to fail loudly.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
import ray

import run_sweep
from sweep.errors import UserError
from sweep.grids import load_grid, select_runs, selection_lines

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def cli(tmp_path, monkeypatch, capsys):
    """run_sweep.main in tmp_path, Ray forbidden, pytest's signal handlers given back; returns (code, out, err)."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    def no_ray(*a, **k):
        raise AssertionError("ray.init was called")

    monkeypatch.setattr(ray, "init", no_ray)
    monkeypatch.chdir(tmp_path)

    def call(*argv: str) -> tuple[int, str, str]:
        code = run_sweep.main(["--results", str(tmp_path / "res"), *argv])
        out, err = capsys.readouterr()
        return code, out, err

    yield call
    for s, handler in saved.items():
        signal.signal(s, handler)


def test_where_keeps_the_runs_that_match_every_field_given():
    demo = load_grid("demo")  # mlp x 4 variants x seeds 0, 1 (+ out-of-sample and SSFT runs); resnet9 x seeds 0, 1
    mlp = select_runs(demo, ["arch=mlp,cv_folds=0,ssft_half=0,subsets=0"])
    assert len(mlp.runs) == 8 and {c.arch for c in mlp.runs} == {"mlp"}
    two = select_runs(demo, ["arch=mlp,variant=tied"])  # several fields: all must match
    assert [(c.arch, c.variant) for c in two.runs] == [("mlp", "tied")] * 2
    several = select_runs(demo, ["variant=tied,dropout,seed=1"])  # several values of one field: any may match
    assert sorted((c.variant, c.seed) for c in several.runs) == [("dropout", 1), ("tied", 1)]
    repeated = select_runs(demo, ["variant=tied", "variant=dropout", "seed=1"])  # flags count as one list
    assert repeated.runs == several.runs
    typed = select_runs(demo, ["noise=0.10,width=0.25"])  # read as the field's type: 0.10 is the grid's 0.1
    assert {c.arch for c in typed.runs} == {"resnet9"} and len(typed.runs) == 2
    assert select_runs(demo).runs == demo.runs and [c.run_id for c in mlp.runs] == [
        c.run_id for c in demo.runs if c.arch == "mlp" and not c.auxiliary]  # order kept, ids unchanged


def test_set_replaces_a_field_on_every_run_which_makes_them_other_runs():
    smoke = load_grid("smoke")
    short = select_runs(smoke, sets=["epochs=3"])
    assert [c.epochs for c in short.runs] == [3] * len(smoke.runs)
    assert not {c.run_id for c in short.runs} & {c.run_id for c in smoke.runs}  # other runs, other ids
    assert [c.variant for c in short.runs] == [c.variant for c in smoke.runs]
    both = select_runs(smoke, ["variant=standard,cv_folds=0,ssft_half=0,subsets=0"], ["epochs=3", "lr=0.05,seed=2"])
    (cfg,) = both.runs
    assert (cfg.epochs, cfg.lr, cfg.seed, cfg.noise_seed) == (3, 0.05, 2, 2)  # seed sets the noise draw too
    where = ["arch=mlp,cv_folds=0,ssft_half=0,subsets=0"]
    merged = select_runs(load_grid("demo"), where, ["seed=0"])  # seeds 0 and 1 become one run each
    assert len(merged.runs) == 4
    lines = selection_lines(load_grid("demo"), merged, where, ["seed=0"])
    assert lines == [f"--where {where[0]}: 8 of {len(load_grid('demo').runs)} runs",
                     "--set seed=0 (8 runs became 4: equal runs are kept once)"]


def test_set_with_several_values_expands_as_a_product_of_the_chosen_runs():
    demo = load_grid("demo")
    where = ["arch=resnet9"]
    wide = select_runs(demo, where, ["seed=0,1,2", "noise=0.05,0.2"])
    assert len(select_runs(demo, where).runs) == 2 and len(wide.runs) == 6  # 2 runs x 3 seeds x 2 rates, merged
    assert sorted((c.seed, c.noise_seed, c.noise) for c in wide.runs) == [
        (s, s, n) for s in (0, 1, 2) for n in (0.05, 0.2)]
    assert selection_lines(demo, wide, where, ["seed=0,1,2", "noise=0.05,0.2"])[1] == (
        "--set seed=0,1,2,noise=0.05,0.2 (2 runs became 6: several values expand as a product)")


def test_set_replaces_analysis_settings_of_every_run():
    smoke = load_grid("smoke")
    changed = select_runs(smoke, sets=["flip_clean=10,rewind_epochs=0,2", "localizers=greedy,zero_out",
                                       "flip_eval_size=all,rewind_buffers=true"])
    assert changed.runs == smoke.runs  # run fields untouched
    a = changed.analysis
    assert (a.flip_clean, a.rewind_epochs, a.localizers, a.flip_eval_size, a.rewind_buffers) == (
        10, (0, 2), ("greedy", "zero_out"), None, True)
    assert a.flip_noisy == smoke.analysis.flip_noisy  # the others as the grid says
    assert "flip_eval_size=all" in selection_lines(smoke, changed, sets=["flip_eval_size=all"])[0]


@pytest.mark.parametrize("where, sets, needle", [
    (["archh=mlp"], [], "unknown field 'archh' in --where archh=mlp; accepted: dataset, arch, variant, noise,"),
    ([], ["colour=red"], "unknown field 'colour' in --set colour=red; accepted: dataset, arch,"),
    (["seed=x"], [], "--where seed=x: seed must be an integer; its values in grid 'demo': 0, 1"),
    (["noise=lots"], [], "--where noise=lots: noise must be a number; its values in grid 'demo': 0.1"),
    ([], ["lr=fast"], "--set lr=fast: lr must be a number"),
    (["arch=vit"], [], "--where arch=vit matches no run; its values in grid 'demo': mlp, resnet9"),
    (["seed=0,7"], [], "--where seed=7 matches no run; its values in grid 'demo': 0, 1"),
    (["arch=resnet9,variant=tied"], [], "--where arch=resnet9,variant=tied matches no run of grid 'demo'"),
    (["arch"], [], "malformed --where 'arch'; expected FIELD=V[,V...][,FIELD=V...]"),
    (["=mlp"], [], "malformed --where '=mlp'"),
    (["arch="], [], "malformed --where 'arch='"),
    (["arch=mlp,"], [], "malformed --where 'arch=mlp,'"),
    ([], ["epochs"], "malformed --set 'epochs'; expected FIELD=V[,V...][,FIELD=V...], e.g. --set epochs=5"),
    ([], ["epochs=0"], "--set epochs=0: epochs must be an integer >= 1, got 0"),
    ([], ["noise=1.5"], "--set noise=1.5: noise rate must be in [0, 1)"),
    ([], ["arch=vit"], "--set arch=vit: variant 'tied' needs arch mlp or resnet9, not 'vit'"),
    ([], ["flip_clean=10,20"], "--set gives flip_clean several values (flip_clean=10,20); an [analysis] setting"),
    ([], ["flip_clean=0"], "--set flip_clean=0: flip_clean must be an integer >= 1, got 0"),
    ([], ["rewind_buffers=maybe"], "--set rewind_buffers=maybe: rewind_buffers must be true or false"),
    ([], ["flip_eval_size=some"], '--set flip_eval_size=some: flip_eval_size must be an integer or "all"'),
    (["flip_clean=10"], [], "unknown field 'flip_clean' in --where flip_clean=10; accepted: dataset,"),
])
def test_bad_where_or_set_names_what_is_accepted(where, sets, needle):
    with pytest.raises(UserError) as info:
        select_runs(load_grid("demo"), where, sets)
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_dry_run_shows_the_selection_and_only_the_runs_chosen(cli, tmp_path):
    code, out, err = cli("--grid", "demo", "--where", "arch=mlp,cv_folds=0,ssft_half=0,subsets=0", "--where", "seed=1",
                         "--set", "epochs=5", "--dry-run")
    assert code == 0, err
    lines = out.strip().splitlines()
    total = len(load_grid("demo").runs)
    where = "arch=mlp,cv_folds=0,ssft_half=0,subsets=0,seed=1"
    assert lines[:2] == [f"--where {where}: 4 of {total} runs", "--set epochs=5"]
    runs = [line for line in lines if " to train " in line]  # the run table's rows (tests/test_dryrun.py)
    assert len(runs) == 4 and all(r.split()[1:6] == ["digits", "mlp", r.split()[3], "0.1", "1"] for r in runs)
    assert "  epochs 5  " in next(line for line in lines if line.startswith("every run:"))  # fields of every run
    chosen = select_runs(load_grid("demo"), ["arch=mlp,cv_folds=0,ssft_half=0,subsets=0,seed=1"], ["epochs=5"])
    assert [r.split()[0] for r in runs] == [c.run_id.rsplit("-", 1)[1] for c in chosen.runs]  # the short ids
    assert lines[-1].startswith("4 runs, ")
    assert not (tmp_path / "res").exists()


@pytest.mark.parametrize("argv, needle", [
    (["--where", "arch=vit"], "--where arch=vit matches no run; its values in grid 'smoke': mlp"),
    (["--where", "colour=red"], "unknown field 'colour' in --where colour=red; accepted: dataset, arch,"),
    (["--where", "seed=one"], "--where seed=one: seed must be an integer; its values in grid 'smoke': 0"),
    (["--where", "arch"], "malformed --where 'arch'"),
    (["--set", "epochs=0"], "--set epochs=0: epochs must be an integer >= 1, got 0"),
    (["--set", "batch_size=big"], "--set batch_size=big: batch_size must be an integer"),
    (["--set", "epochs=1", "--dry-run", "--where", "variant=none"], "its values in grid 'smoke': standard, tied,"),
    (["--status", "--where", "arch=vit"], "--where arch=vit matches no run"),
    (["--status", "--set", "epochs=-1"], "--set epochs=-1: epochs must be an integer >= 1"),
])
def test_bad_where_or_set_is_one_line_exit_2_nothing_written(cli, tmp_path, argv, needle):
    code, out, err = cli("--grid", "smoke", *argv)
    assert code == 2, out + err
    assert err.startswith("error: ") and err.count("\n") == 1 and needle in err, err
    assert list(tmp_path.iterdir()) == []  # no results folder, no lock
    assert not ray.is_initialized()


def test_every_option_in_help_shows_its_default(capsys):
    with pytest.raises(SystemExit) as stop:
        run_sweep.main(["--help"])
    assert stop.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith("usage: python run_sweep.py ")
    options = text.split("\noptions:\n", 1)[1]
    entries, current = [], ""
    for line in options.splitlines():
        if line.startswith("  -"):
            entries.append(current)
            current = line
        else:
            current += " " + line.strip()
    entries = [e for e in [*entries, current] if e and not e.lstrip().startswith("-h,")]
    assert len(entries) >= 15
    missing = [e.split()[0] for e in entries if "(default: " not in e]
    assert not missing, missing
    words = " ".join(text.split())  # argparse wraps to the terminal's width
    assert "(default: demo)" in words and "(default: results)" in words and "(default: off)" in words


def test_memloc_sweep_command_after_install(tmp_path):
    """`pip install -e .` makes `memloc-sweep`, the same command line as `python run_sweep.py`."""
    script = Path(sys.executable).with_name("memloc-sweep")
    assert script.exists(), f"{script} is missing: run `pip install -e '.[test]'` (pyproject's [project.scripts])"
    proc = subprocess.run([str(script), "--help"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: memloc-sweep [-h] [--grid GRID]")
    assert "memloc-sweep --status" in proc.stdout and "--where FIELD=V[,V...][,FIELD=V...]" in proc.stdout
    bad = subprocess.run([str(script), "--grid", "smoke", "--where", "arch=vit"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.startswith("error: --where arch=vit matches no run"), bad.stderr
    assert list(tmp_path.iterdir()) == []  # the default results folder (./results) was not made


def test_only_takes_a_table_name_for_the_analysis_that_writes_it(cli):
    code, by_table, err = cli("--grid", "smoke", "--only", "rewinding,flip_units", "--dry-run")
    assert code == 0, err
    code, by_name, err = cli("--grid", "smoke", "--only", "rewind,flip", "--dry-run")
    assert code == 0, err
    runs = by_name.split("\nevery run:", 1)[1]  # the run table and the totals (the settings name every probe's)
    assert by_table == by_name and "rewind" in runs and "retrain" not in runs
    code, _, err = cli("--grid", "smoke", "--only", "rewinds", "--dry-run")
    assert code == 2 and "accepted: dropout, flip, localize, " in err
    assert "rewind, retrain (or a table they write: dropout, " in err
