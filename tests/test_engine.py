"""The sweep engine end to end on a real local Ray cluster started here (2 CPUs, shared by this module)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest

from sweep.store import TABLE_KEYS
from tests import ray_cluster

ROOT = Path(__file__).resolve().parents[1]
KEYS = TABLE_KEYS

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster():
    temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    address = ray_cluster.start([2], temp)
    yield address
    ray_cluster.stop(temp)


def sweep(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "run_sweep.py", *args], cwd=ROOT, capture_output=True, text=True,
                          env=ray_cluster.env(), timeout=600, **kwargs)


def check_complete(results: Path) -> dict[str, pd.DataFrame]:
    """Every table present, no duplicate keys, each run with epochs 1..E (1..2E for an SSFT run) and gradients
    for every group, each in the table its kind of run writes (sweep.store.table_for)."""
    from sweep.grids import load_grid
    from sweep.ssft import train_epochs
    from sweep.store import table_for

    grid = load_grid("smoke")
    tables = {t: pd.read_parquet(results / t) for t in KEYS}
    for table, key in KEYS.items():
        frame = tables[table]
        assert not frame.empty, table
        assert not frame.duplicated(key).any(), f"duplicate rows in {table}"
    for table in ("runs", "aux_runs"):
        runs = tables[table]
        assert sorted(runs["run_id"]) == sorted(c.run_id for c in grid.runs if table_for(c, "runs") == table)
        assert (runs["status"] == "complete").all()
    for cfg in grid.runs:
        epochs = tables[table_for(cfg, "epochs")].query("run_id == @cfg.run_id")
        assert sorted(epochs["epoch"]) == list(range(1, train_epochs(cfg) + 1))
        if cfg.subsets:  # a pack of subset models writes no gradients (sweep.packs)
            continue
        grads = tables[table_for(cfg, "gradients")].query("run_id == @cfg.run_id")
        assert len(grads) == train_epochs(cfg) * grads["layer"].nunique() and grads["layer"].nunique() >= 2
    standard = [c for c in grid.runs if c.variant == "standard" and not c.auxiliary]
    for table in ("rewinding", "retraining", "flips"):
        assert set(tables[table]["run_id"]) == {c.run_id for c in standard}, table
    assert set(tables["dropout"]["run_id"]) == {c.run_id for c in grid.runs if c.variant != "standard"}
    # the localization benchmark: every localizer on the standard and the tied run, precision in [0, 1], chance on
    # every row that has a truth, the injection reported
    localized = tables["localize"]
    tied = [c for c in grid.runs if c.variant == "tied" and not c.auxiliary]
    assert set(localized["run_id"]) == {c.run_id for c in standard + tied}
    for run_id, rows in localized.groupby("run_id"):
        assert set(rows["localizer"]) == set(grid.analysis.localizers), run_id
    scored = localized[localized["truth"] != "none"]
    assert set(scored["truth"]) == {"tied", "injected"} and scored["chance"].between(0, 1).all()
    for column in ("precision_at_1", "precision_at_5", "precision_at_10", "precision_at_20", "precision_at_flip"):
        assert localized[column].dropna().between(0, 1).all(), column
    assert scored.loc[scored["fitted"], "precision_at_5"].notna().all()
    assert set(tables["injections"]["run_id"]) == {c.run_id for c in standard}
    folds = {c.run_id for c in grid.runs if c.cv_folds}  # the out-of-sample runs predict every example once
    oos = tables["oos_predictions"]
    assert set(oos["run_id"]) == folds and set(oos["of_run_id"]) == {standard[0].run_id}
    assert sorted(oos["example_id"]) == sorted(tables["examples"].query("run_id == @standard[0].run_id")["example_id"])
    ssft = tables["ssft"]  # the two SSFT runs score every example once
    assert set(ssft["run_id"]) == {c.run_id for c in grid.runs if c.ssft_half}
    assert set(ssft["of_run_id"]) == {standard[0].run_id}
    assert sorted(ssft["example_id"]) == sorted(oos["example_id"])
    # keep_checkpoints = "probes": epoch 0, the rewind epochs and the last for the standard run; the last otherwise
    # (an SSFT run: the end of each phase)
    for cfg in grid.runs:
        kept = sorted(p.name for p in (results / "checkpoints" / cfg.run_id).glob("epoch_*.pt"))
        # a pack keeps no weights (its resume state only)
        want = [0, 4, 8, 20] if cfg in standard else [20, 40] if cfg.ssft_half else [] if cfg.subsets else [20]
        assert kept == [f"epoch_{e:03d}.pt" for e in want], (cfg.run_id, kept)
    n_groups = tables["gradients"].query("run_id == @standard[0].run_id")["layer"].nunique()
    assert tables["rewinding"]["layer"].nunique() == n_groups == tables["retraining"]["layer"].nunique()
    return tables


def smoke_counts() -> tuple[int, int]:
    """The smoke grid's trainings (its packs of subset models among them) and analysis tasks (every probe; those
    with `needs` where the grid has the trainings they read)."""
    from sweep.grids import load_grid
    from sweep.plan import auxiliary_by_base, selected_probes, tasks_for

    grid = load_grid("smoke")
    aux = auxiliary_by_base(grid.runs)
    return len(grid.runs), sum(len(tasks_for(c, selected_probes(None), grid.analysis, aux)) for c in grid.runs)


@pytest.fixture(scope="module")
def smoke(cluster, tmp_path_factory):
    """The smoke grid swept once on the module's cluster; the tests below read it, then damage it in order."""
    results = tmp_path_factory.mktemp("smoke") / "results"
    start = time.monotonic()
    proc = sweep("--grid", "smoke", "--address", cluster, "--results", str(results))
    return results, proc, time.monotonic() - start


def test_smoke_grid_end_to_end_then_rerun_does_nothing(cluster, smoke):
    results, proc, elapsed = smoke
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    runs, tasks = smoke_counts()
    assert f"runs {runs}/{runs}" in proc.stdout and "read_parquet" in proc.stdout
    assert f"{runs} of {runs} runs and {tasks} of {tasks} analysis tasks finished" in proc.stdout
    check_complete(results)
    from sweep.schemas import catalogue

    assert (results / "README.md").read_text() == catalogue()  # the folder explains its own columns
    from analyses.report import SECTIONS
    from tests.analyses.test_report import sections

    found = sections((results / "report" / "index.html").read_text())
    assert list(found) == [key for key, _, _ in SECTIONS]
    for key, body in found.items():  # real smoke output: every section drawn, none failed or missing
        assert 'class="error"' not in body and 'class="missing"' not in body, (key, body[:1500])
        assert key == "overview" or "<img " in body, key
    from tests.analyses.test_intervals import check_report

    intervals, seed_rows = check_report(results / "report" / "index.html")  # one seed: each value, no interval
    assert intervals == 0 and seed_rows > 0
    stamps = {p: p.stat().st_mtime_ns for p in results.rglob("*.parquet")}
    again = sweep("--grid", "smoke", "--address", cluster, "--results", str(results), "--no-report")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "(this call trained 0 runs and ran 0 analysis tasks)" in again.stdout
    assert {p: p.stat().st_mtime_ns for p in results.rglob("*.parquet")} == stamps
    print(f"smoke grid took {elapsed:.0f}s")


def test_a_plain_read_of_every_main_table_holds_ordinary_runs_only(smoke):
    """On the real smoke sweep, `pd.read_parquet` of every table but the aux_* ones and the auxiliary trainings'
    own outputs finds ordinary runs only (cv_folds == 0 and ssft_half == 0); each aux_* table holds exactly the
    auxiliary trainings, with the columns of its main table."""
    from sweep.grids import load_grid
    from sweep.schemas import AUX_PREFIX, TRAINING_TABLES

    results = smoke[0]
    grid = load_grid("smoke")
    ordinary = {c.run_id for c in grid.runs if not c.auxiliary}
    auxiliary = {c.run_id for c in grid.runs if c.auxiliary}
    packs = {c.run_id for c in grid.runs if c.subsets}
    assert len(auxiliary) == 5 and len(packs) == 1  # two fold runs, two SSFT runs, one pack of subset models
    outputs = ("oos_predictions", "ssft", "subset_predictions")  # the auxiliary trainings' own tables
    for table in KEYS:
        if table.startswith(AUX_PREFIX) or table in outputs:
            continue
        frame = pd.read_parquet(results / table)
        assert ((frame["cv_folds"] == 0) & (frame["ssft_half"] == 0) & (frame["subsets"] == 0)).all(), table
        assert set(frame["run_id"]) <= ordinary, table
    for table in TRAINING_TABLES:
        main, aux = pd.read_parquet(results / table), pd.read_parquet(results / f"{AUX_PREFIX}{table}")
        # a pack writes only runs and epochs rows of the training tables
        assert set(aux["run_id"]) == auxiliary - (set() if table in ("runs", "epochs") else packs), table
        assert set(main["run_id"]) == ordinary, table
        assert list(aux.columns) == list(main.columns), table
    for table in outputs:
        assert set(pd.read_parquet(results / table)["run_id"]) <= auxiliary, table
    assert set(pd.read_parquet(results / "subset_predictions")["run_id"]) == packs


def python_blocks(text: str, heading: str) -> list[str]:
    """The ```python blocks of one README section."""
    section = text.split(f"\n{heading}\n", 1)[1].split("\n## ", 1)[0]
    return [block.split("```", 1)[0] for block in section.split("```python\n")[1:]]


def test_every_detection_signal_is_scored_on_the_smoke_sweep(smoke):
    """On the real smoke sweep (digits, MLP, 10% noise; two out-of-sample runs), the detection table has every
    signal, each on the sets it covers, every AUROC in [0, 1]; area under the margin finds the mislabeled
    examples (AUROC above 0.8), as does cleanlab from the out-of-sample predictions."""
    from analyses.detection import SIGNALS, detection_per_run
    from analyses.load import Results

    results = Results(smoke[0])
    tables = {n: results.table(n) for n in ("examples", "flips", "dropout_examples", "oos_predictions", "runs",
                                            "ssft", "aux_runs", "memorization")}
    per_run = detection_per_run(**tables)
    assert set(per_run["signal"]) == set(SIGNALS)
    assert per_run["auroc"].between(0, 1).all() and per_run["average_precision"].between(0, 1).all()
    from sweep.grids import load_grid

    standard = next(c.run_id for c in load_grid("smoke").runs if c.variant == "standard" and not c.auxiliary)
    whole = per_run[(per_run["set"] == "all training examples") & (per_run["run_id"] == standard)]
    whole = whole.set_index("signal")
    assert whole.loc["aum", "auroc"] > 0.8 and whole.loc["cleanlab", "auroc"] > 0.8, whole["auroc"]
    assert whole.loc["aum", "n"] == whole.loc["cleanlab", "n"] == 1437  # every training example, same examples
    print(whole["auroc"].round(3).to_dict())


def test_readme_python_api_and_table_examples_run_on_a_real_sweep(smoke, monkeypatch, capsys):
    """What the README and results/README.md tell a notebook user to type works, as written, next to the smoke
    sweep's `results/` (before the tests below damage it)."""
    from sweep.schemas import TABLES
    from tests.test_schemas import run_example

    results = smoke[0]
    monkeypatch.chdir(results.parent)
    blocks = python_blocks((ROOT / "README.md").read_text(), "## Python API (notebooks)")
    assert len(blocks) == 3
    scope: dict[str, object] = {}
    for block in blocks:
        exec(block, scope)  # noqa: S102 - the README's own code
    printed = capsys.readouterr().out  # what pandas prints depends on the terminal's width: check values
    assert "Accuracies(clean=" in printed and "figure3.png" in printed
    assert "noisy_acc" in scope["epochs"].columns and not scope["out"].table.empty
    assert scope["run"].epochs == list(range(31))
    assert scope["final"].noisy > 0.95  # the settings memorize the mislabeled examples, as the comment says
    assert scope["rewound"]["noisy_acc"].min() < scope["final"].noisy - 0.05  # so rewinding shows a drop
    assert (results.parent / "figure3.png").stat().st_size > 0 and (results.parent / "figure3.svg").exists()
    for table in TABLES:
        answer = run_example(table)
        assert answer is not None and len(answer) > 0, table


def smoke_toml(tmp_path: Path, **changes: object) -> Path:
    """The smoke grid as a TOML file, with analysis settings changed."""
    from sweep.grids import BUILTIN

    blocks, analysis = BUILTIN["smoke"]
    block = blocks[0]
    lines = ["[[runs]]", *(f"{k} = {json.dumps(v)}" for k, v in block.items()), "[analysis]"]  # TOML values
    lines += [f"{k} = {v!r}" for k, v in {**analysis, **changes}.items()]
    path = tmp_path / "changed.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("change", [{"rewind_epochs": [0, 4]}, {"retrain_epochs": 3}, {"retrain_lr": 0.02}])
def test_changed_rewind_or_retrain_settings_are_refused_in_one_line(smoke, tmp_path, change):
    results = smoke[0]
    before = {p: p.stat().st_mtime_ns for p in results.rglob("*")}
    for dry in ([], ["--dry-run"]):
        proc = sweep("--grid", str(smoke_toml(tmp_path, **change)), "--results", str(results), "--no-report", *dry)
        assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
        lines = proc.stderr.strip().splitlines()
        (name, value), = change.items()
        assert len(lines) == 1 and "made with other settings" in lines[0] and f"(this grid: {value!r})" in lines[0]
        assert "delete those result files" in lines[0] and "use another --results" in lines[0]
    assert {p: p.stat().st_mtime_ns for p in results.rglob("*")} == before


def test_damaged_files_are_found_in_one_line_each_and_redone_with_what_depends_on_them(cluster, smoke):
    """A cut final checkpoint, a deleted one, a cut Parquet file of `runs` and of `flips`: each unit is
    named once with what is wrong and redone (a run from the start, with its analyses); nothing else is."""
    from sweep.grids import load_grid

    results = smoke[0]
    runs = {c.variant: c.run_id for c in load_grid("smoke").runs if not c.auxiliary}
    reference = {t: pd.read_parquet(results / t) for t in ("epochs", "rewinding")}
    final = results / "checkpoints" / runs["standard"] / "epoch_020.pt"
    size = final.stat().st_size
    final.write_bytes(final.read_bytes()[:1000])
    (results / "checkpoints" / runs["tied"] / "epoch_020.pt").unlink()  # the only one a tied run keeps
    (results / "runs" / f"{runs['sparse']}.parquet").write_bytes(b"PAR1")
    untouched = {p: p.stat().st_mtime_ns for p in (results / "checkpoints" / runs["dropout"]).iterdir()}
    proc = sweep("--grid", "smoke", "--address", cluster, "--results", str(results), "--no-report")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    said = proc.stdout + proc.stderr
    standard = runs["standard"]
    assert f"run {standard}: checkpoints/{standard}/epoch_020.pt has 1000 bytes, recorded {size}" in said
    assert f"run {runs['tied']}: checkpoints/{runs['tied']}/epoch_020.pt is missing" in said
    assert f"run {runs['sparse']}: runs/{runs['sparse']}.parquet has 4 bytes" in said
    # every task of the three runs trained again (the standard run's include those reading its pack: the run they
    # score is new; the tied and sparse runs' dropout tasks, and the tied run's localize task)
    from sweep.plan import auxiliary_by_base, selected_probes, tasks_for

    grid = load_grid("smoke")
    aux = auxiliary_by_base(grid.runs)
    retrained = [c for c in grid.runs if c.run_id in (standard, runs["tied"], runs["sparse"])]
    redone = sum(len(tasks_for(c, selected_probes(None), grid.analysis, aux)) for c in retrained)
    assert f"(this call trained 3 runs and ran {redone} analysis tasks)" in proc.stdout
    check_complete(results)
    assert final.stat().st_size == size and (results / "checkpoints" / runs["tied"] / "epoch_020.pt").exists()
    assert {p: p.stat().st_mtime_ns for p in (results / "checkpoints" / runs["dropout"]).iterdir()} == untouched
    for table, reference_rows in reference.items():  # retrained from the start: the same numbers
        key = KEYS[table]
        ours = pd.read_parquet(results / table).sort_values(key).reset_index(drop=True)
        pd.testing.assert_frame_equal(ours.drop(columns="seconds", errors="ignore"),
                                      reference_rows.sort_values(key).reset_index(drop=True)
                                      .drop(columns="seconds", errors="ignore"), rtol=1e-4)
    flips = sorted((results / "flips").glob("*.parquet"))
    flips[0].write_bytes(b"PAR1")
    proc = sweep("--grid", "smoke", "--address", cluster, "--results", str(results), "--no-report")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"flips/{flips[0].name} has 4 bytes" in proc.stdout + proc.stderr
    assert "(this call trained 0 runs and ran 1 analysis tasks)" in proc.stdout
    check_complete(results)


def test_a_checkpoint_altered_in_place_fails_its_reader_once_and_the_run_is_trained_again(cluster, smoke):
    """Same size, other bytes: the cheap check passes, the probe reading it checks its SHA-256, fails once
    (never retried) with a line naming the file, and withdraws the run, which the next sweep trains again."""
    from sweep.grids import load_grid

    results = smoke[0]
    run = next(c.run_id for c in load_grid("smoke").runs if c.variant == "standard")
    middle = results / "checkpoints" / run / "epoch_008.pt"
    data = bytearray(middle.read_bytes())
    data[len(data) // 2] ^= 0xFF
    middle.write_bytes(bytes(data))
    for record in (results / "_done" / "tasks").glob(f"{run}-rewind-*.json"):
        record.unlink()  # the rewind shards run again, and read epoch 8
    proc = sweep("--grid", "smoke", "--address", cluster, "--results", str(results), "--only", "rewind")
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    failed = [line for line in proc.stderr.splitlines() if line.startswith("FAILED rewind ")]
    assert any("epoch_008.pt differs from its done-record" in line for line in failed), failed
    # the first reader withdrew the run (its record and the damaged file): the other shards find either gone
    assert all(any(why in line for why in ("differs from its done-record", "has no done-record", "is missing"))
               for line in failed), failed
    assert all(line.endswith("the next sweep trains it again") for line in failed)
    proc = sweep("--grid", "smoke", "--address", cluster, "--results", str(results), "--no-report")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "(this call trained 1 runs" in proc.stdout
    check_complete(results)


def test_more_gpus_or_cpus_than_any_node_has_is_refused_before_anything_waits(cluster, tmp_path):
    for flag, value, needle in (("--gpus-per-trial", "1", "(0 GPUs on its largest node)"),
                                ("--cpus-per-trial", "3", "(2 CPUs on its largest node)")):
        start = time.monotonic()
        proc = sweep("--grid", "smoke", "--address", cluster, "--results", str(tmp_path / "r"), flag, value)
        assert time.monotonic() - start < 60
        assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
        lines = [line for line in proc.stderr.strip().splitlines() if line.startswith("error")]
        assert len(lines) == 1 and f"{flag} {value} asks for more than any node" in lines[0] and needle in lines[0]
        assert not (tmp_path / "r" / "_tune").exists() and not (tmp_path / "r" / "_lock.json").exists()


def test_a_wrapped_error_is_named_by_its_real_last_line():
    from sweep.engine import first_line

    wrapped = RuntimeError("ray::ImplicitFunc.train() (pid=7, ip=127.0.0.1)\n  File \"x.py\", line 3, in f\n"
                           "    raise OSError('disk gone')\nOSError: disk gone\n")
    assert first_line(wrapped) == "OSError: disk gone"
    assert first_line(ValueError("bad value\nmore")) == "ValueError: bad value"


def test_killed_driver_resumes_without_loss_or_duplicates(cluster, tmp_path):
    results = tmp_path / "results"
    proc = subprocess.Popen([sys.executable, "run_sweep.py", "--grid", "smoke", "--address", cluster, "--results",
                             str(results), "--no-report"], cwd=ROOT, env=ray_cluster.env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not list((results / "runs").glob("*.parquet")):
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = {p.stem for p in (results / "runs").glob("*.parquet")}
    assert finished, "no run finished before the deadline"
    weights = {p: p.stat().st_mtime_ns for run in finished for p in (results / "checkpoints" / run).glob("epoch_*")}
    again = sweep("--grid", "smoke", "--address", cluster, "--results", str(results), "--no-report")
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    check_complete(results)
    assert {p: p.stat().st_mtime_ns for p in weights} == weights  # finished runs were not trained again


@pytest.mark.parametrize("args, needle", [
    (["--grid", "huge"], "unknown grid"),
    (["--grid", "missing.toml"], "does not exist"),
    (["--grid", "{bad}"], "TOML"),
    (["--grid", "{noise}"], "noise"),
    (["--grid", "{field}"], "unknown grid field"),
    (["--only", "telepathy"], "unknown analysis"),
    (["--cpus-per-trial", "0"], "cpus-per-trial"),
    (["--grid", "{cifar}"], "cifar10"),
])
def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path, args, needle):
    files = {"{bad}": "[[runs]\ndataset = ", "{noise}": "[[runs]]\ndataset='digits'\narch='mlp'\nnoise=1.5\n",
             "{field}": "[[runs]]\ndataset='digits'\narch='mlp'\ncolour='red'\n",
             "{cifar}": "[[runs]]\ndataset='cifar10'\narch='resnet9'\n"}
    for i, arg in enumerate(args):
        if arg in files:
            path = tmp_path / f"{arg.strip('{}')}.toml"
            path.write_text(files[arg])
            args[i] = str(path)
    results = tmp_path / "results"
    proc = sweep(*args, "--results", str(results), "--data-dir", str(tmp_path / "data"))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], proc.stderr
    assert not results.exists()


def test_dry_run_lists_runs_tasks_and_storage(tmp_path):
    # without the datasets' files, --download: the dry run says they are fetched when the sweep starts (and
    # fetches nothing); without --download it is the real run's one line (tests/test_dryrun.py)
    proc = sweep("--grid", "paper", "--dry-run", "--results", str(tmp_path / "r"), "--data-dir",
                 str(tmp_path / "data"), "--download")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert [line.split(":")[0] for line in lines[:3]] == ["dataset 'cifar10'", "dataset 'mnist'", "dataset 'svhn'"]
    assert sum(" to train " in line for line in lines) == 18 and not (tmp_path / "data").exists()
    assert "GiB" in lines[-1] and "probe tasks" in lines[-1]
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("dry_run", [False, True])
def test_results_from_other_flip_settings_are_refused(tmp_path, dry_run):
    """A flip chunk written under other settings (here: the old unsigned name) is not taken for a finished one:
    the sweep stops before any work with one clear line, and writes nothing."""
    from sweep.grids import load_grid
    from sweep.probes.flip import empty_flips

    results = tmp_path / "results"
    run = next(c for c in load_grid("smoke").runs if c.variant == "standard")
    (results / "flips").mkdir(parents=True)
    empty_flips().to_parquet(results / "flips" / f"{run.run_id}-flip-0.parquet")
    before = sorted(p.relative_to(results) for p in results.rglob("*"))
    proc = sweep("--grid", "smoke", "--results", str(results), "--no-report", *(["--dry-run"] if dry_run else []))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "other analysis settings" in lines[0] and f"{run.run_id}-flip-0" in lines[0]
    assert sorted(p.relative_to(results) for p in results.rglob("*")) == before


def test_a_bug_fails_once_with_its_run_id_and_the_rest_completes(cluster, tmp_path):
    """A resume state that reads and matches its checkpoints but lacks the model (a bug, not damage) cannot
    heal by retrying: the trial reports it once (no Tune retry), the sweep lists it with the run id and the
    error's first line and exits 1; every other run finishes."""
    import torch

    from sweep.grids import load_grid
    from sweep.train import Trainer

    results = tmp_path / "results"
    runs = load_grid("smoke").runs
    broken = runs[0].run_id
    folder = results / "checkpoints" / broken
    folder.mkdir(parents=True)
    (folder / "epoch_000.pt").write_bytes(b"0123456789")
    state = {"trainer": {"version": Trainer.STATE_VERSION},
             "files": {f"checkpoints/{broken}/epoch_000.pt": [10, "x"]}}
    torch.save(state, folder / "state.pt")
    proc = sweep("--grid", "smoke", "--address", cluster, "--results", str(results), "--only", "rewind")
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    failed = [line for line in proc.stderr.splitlines() if line.startswith("FAILED")]
    assert failed == [f"FAILED training {broken}: KeyError: 'model'"]
    assert "worker logs (tracebacks): " in proc.stderr and "whole tracebacks: " in proc.stderr
    for whole in (results / "_failed" / "runs" / f"{broken}.txt", results / "_tune" / "sweep-smoke" / broken /
                  "error.txt"):  # beside the note, and where Tune users look
        assert whole.read_text().startswith("Traceback") and "KeyError: 'model'" in whole.read_text(), whole
    assert f"error: the sweep is not complete ({len(runs) - 1} of {len(runs)} runs" in proc.stderr
    assert not (results / "report").exists()
    trial_results = (results / "_tune" / "sweep-smoke" / broken / "result.json").read_text().splitlines()
    assert len(trial_results) == 1 and '"error"' in trial_results[0]  # tried once, not retried
    done = [*pd.read_parquet(results / "runs")["run_id"], *pd.read_parquet(results / "aux_runs")["run_id"]]
    assert sorted(done) == sorted(c.run_id for c in runs[1:])


def test_joining_a_token_cluster_after_importing_ray_first(cluster):
    """`import ray` before the engine: the driver still sends the cluster's token (found in RAY_AUTH_TOKEN)."""
    code = ("import sys, ray\nfrom sweep.engine import Options, init_ray\ninit_ray(Options(address=sys.argv[1]))\n"
            "print(ray.get(ray.remote(lambda: 42).remote()))\n")
    env = {k: v for k, v in ray_cluster.env().items() if k != "RAY_AUTH_MODE"}
    proc = subprocess.run([sys.executable, "-c", code, cluster], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["42"]


def test_the_full_grid_keeps_a_quarter_of_the_checkpoints_of_every_epoch(tmp_path):
    """`--dry-run` states the storage; keeping only what the analyses read brings `full` under 57 GiB, at most
    a quarter of keeping every epoch (229 GiB)."""
    import dataclasses
    import re

    from sweep.dryrun import describe
    from sweep.engine import Options
    from sweep.grids import load_grid

    def gib(grid) -> float:
        last = describe(grid, Options(results=str(tmp_path / "r")))[-1]
        return float(re.search(r"need about ([\d.]+) GiB", last).group(1))

    full = load_grid("full")
    every = dataclasses.replace(full, analysis=dataclasses.replace(full.analysis, keep_checkpoints="all"))
    kept, all_epochs = gib(full), gib(every)
    assert kept <= 57 and kept <= all_epochs / 4 and all_epochs > 200, (kept, all_epochs)
    assert not (tmp_path / "r").exists()
