"""Huge grids (issue 26, item 6): planning looks at each folder once, whatever the number of runs, and a dry run
of more runs than a screen holds prints a summary table instead of one line per run. Speed figures live in
bench/grid_plan.py; these tests check the behaviour that makes them possible."""

from __future__ import annotations

from collections import Counter

import pytest

from sweep import records
from sweep.config import AnalysisConfig
from sweep.dryrun import describe
from sweep.engine import Options
from sweep.grids import Grid, expand, load_grid
from sweep.plan import make_plan, selected_probes
from sweep.store import FileEntry, Store
from sweep.summary import SCREEN_RUNS


def seeds_grid(n_seeds: int) -> Grid:
    runs = expand([{"dataset": "digits", "arch": "mlp", "variant": ["standard", "tied", "dropout", "sparse"],
                    "noise": 0.1, "seed": list(range(n_seeds)), "epochs": 3, "batch_size": 128}])
    return Grid("seeds", runs, AnalysisConfig(rewind_epochs=(0, 2)))


def counting(monkeypatch) -> Counter:  # noqa: ANN001
    """Count every listing and every single-file look of a Store, by path."""
    looks: Counter = Counter()
    for method in ("list", "sizes", "exists"):
        original = getattr(Store, method)

        def wrapped(self, rel, _original=original, _method=method):  # noqa: ANN001, ANN202
            looks[(_method, rel)] += 1
            return _original(self, rel)

        monkeypatch.setattr(Store, method, wrapped)
    return looks


def test_planning_lists_each_folder_once_and_looks_at_no_single_file(tmp_path, monkeypatch):
    grid = seeds_grid(30)  # 120 runs
    store = Store(str(tmp_path / "res"))
    done = [cfg for cfg in grid.runs if cfg.variant == "standard"][:5]
    for cfg in done:  # five finished runs, each with one table file its record lists
        data = f"rows of {cfg.run_id}".encode()
        store.write_bytes(f"epochs/{cfg.run_id}.parquet", data)
        records.write(store, records.run_record_path(cfg.run_id),
                      records.Record(cfg.run_id, {}, {f"epochs/{cfg.run_id}.parquet": FileEntry.of(data)}))
    looks = counting(monkeypatch)
    plan = make_plan(store, grid, selected_probes(None))
    assert {cfg.run_id for cfg in grid.runs} - {cfg.run_id for cfg in plan.pending} == {c.run_id for c in done}
    assert not [key for key in looks if key[0] == "exists"]  # no look per run or per task
    assert max(looks.values()) == 1, [key for key, n in looks.items() if n > 1]  # each folder listed once
    assert ("sizes", "epochs") in looks and ("list", records.RUNS) in looks and ("list", records.TASKS) in looks


def test_a_screenful_prints_one_line_per_run_and_more_prints_the_summary_table(tmp_path):
    small, large = seeds_grid(SCREEN_RUNS // 4), seeds_grid(SCREEN_RUNS // 4 + 1)
    opts = Options(results=str(tmp_path / "res"))
    lines = describe(small, opts)
    head = lines.index(next(line for line in lines if line.startswith("run ")))  # the run table (tests/test_dryrun)
    assert sum(" to train " in line for line in lines[head + 1:]) == SCREEN_RUNS
    lines = describe(large, opts)
    assert not any(line.startswith("run ") for line in lines)  # no run table: the summary's instead
    head = lines.index(next(line for line in lines if line.startswith("dataset")))
    assert lines[head].split()[:6] == ["dataset", "arch", "variant", "runs", "to", "train"]
    rows = {tuple(line.split()[:3]): line.split()[3:] for line in lines[head + 1:head + 5]}
    n = SCREEN_RUNS // 4 + 1
    for variant in ("dropout", "sparse", "standard", "tied"):
        assert rows[("digits", "mlp", variant)][:3] == [str(n), str(n), "0"]  # runs, to train, done
    assert lines[head + 5].split()[:3] == ["total", str(4 * n), str(4 * n)]
    assert lines[-1].startswith(f"{4 * n} runs, ")


@pytest.mark.slow
def test_a_100000_run_dry_run_prints_the_summary_table(tmp_path, capsys):
    import run_sweep

    seeds = ", ".join(map(str, range(25_000)))
    (tmp_path / "g.toml").write_text(f'[[runs]]\ndataset = "digits"\narch = "mlp"\nvariant = ["standard", "tied", '
                                     f'"dropout", "sparse"]\nnoise = 0.1\nseed = [{seeds}]\nepochs = 3\n'
                                     'batch_size = 128\n\n[analysis]\nrewind_epochs = [0, 2]\n')
    assert len(load_grid(str(tmp_path / "g.toml")).runs) == 100_000
    code = run_sweep.main(["--grid", str(tmp_path / "g.toml"), "--results", str(tmp_path / "res"), "--dry-run"])
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert len(out) < 30 and out[0].startswith("analysis settings: rewind_epochs 0,2 ")
    assert any(line.startswith("100000 runs (more than 40") for line in out)
    assert any(line.split()[:4] == ["digits", "mlp", "standard", "25000"] for line in out)
    assert any(line.split()[:3] == ["total", "100000", "100000"] for line in out)
    assert out[-1].startswith("100000 runs, ")
    assert not (tmp_path / "res").exists()
