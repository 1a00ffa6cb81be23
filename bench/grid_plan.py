"""How long a huge grid takes to expand, validate, plan and dry-run print, against its size (issue 26, item 6).

A grid of N seeds x 4 variants of the digits MLP (N/4 seeds), written as a TOML file. Per size: the command
itself (`--grid FILE --dry-run`, through sweep.cli.main in this process, its lines to /dev/null: expand, validate,
bounds, the datasets' files, one plan, the lines), and its stages timed alone: load_grid (expand + validate every
run), the grid-level bounds, make_plan against an empty results folder, the dry run's lines (sweep.dryrun.describe,
which plans again). The goal: the 100,000-run command in under 10 s.

Baseline, measured in the same run: the same plan and dry-run computation done plainly, run by run
(sweep.plan_reference.plain_dry_run: a look per run and task, ids hashed afresh, shards made for each use), on
--baseline-runs runs of the same grid (it is too slow for the largest), against make_plan + describe per run.

    python bench/grid_plan.py [--sizes 1000,10000,100000] [--baseline-runs 2000]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sweep import bounds  # noqa: E402
from sweep.cli import main as cli_main  # noqa: E402
from sweep.dryrun import describe  # noqa: E402
from sweep.engine import Options  # noqa: E402
from sweep.grids import load_grid  # noqa: E402
from sweep.plan import make_plan, selected_probes  # noqa: E402
from sweep.plan_reference import plain_dry_run  # noqa: E402
from sweep.store import Store  # noqa: E402


def grid_file(folder: str, runs: int) -> str:
    seeds = ", ".join(map(str, range(runs // 4)))
    path = os.path.join(folder, f"grid{runs}.toml")
    Path(path).write_text(f'[[runs]]\ndataset = "digits"\narch = "mlp"\nvariant = ["standard", "tied", "dropout", '
                          f'"sparse"]\nnoise = 0.1\nseed = [{seeds}]\nepochs = 3\nbatch_size = 128\n\n'
                          "[analysis]\nrewind_epochs = [0, 2]\n")
    return path


def command_seconds(path: str, results: str) -> float:
    """Wall seconds of `--grid path --results results --dry-run` through the command line's own main()."""
    start = time.perf_counter()
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        code = cli_main(["--grid", path, "--results", results, "--dry-run"])
    assert code == 0, code
    return time.perf_counter() - start


def measure(folder: str, runs: int) -> dict[str, float]:
    path, results = grid_file(folder, runs), os.path.join(folder, f"results{runs}")
    times = {"command": command_seconds(path, results)}
    start = time.perf_counter()
    grid = load_grid(path)
    times["expand+validate"] = time.perf_counter() - start
    t = time.perf_counter()
    bounds.check_grid(grid)
    times["bounds"] = time.perf_counter() - t
    t = time.perf_counter()
    make_plan(Store(results), grid, selected_probes(None))
    times["plan"] = time.perf_counter() - t
    t = time.perf_counter()
    lines = describe(grid, Options(results=results))  # plans again, as --dry-run does, and makes the lines
    with open(os.devnull, "w") as sink:
        print("\n".join(lines), file=sink)
    times["dry-run"] = time.perf_counter() - t
    assert len(grid.runs) == runs
    return times


def plain_seconds(folder: str, runs: int) -> tuple[float, float]:
    """(seconds of the plain run-by-run plan and dry run, of make_plan + describe) for a `runs`-run grid."""
    grid, results = load_grid(grid_file(folder, runs)), os.path.join(folder, f"plain{runs}")
    start = time.perf_counter()
    plain_dry_run(Store(results), grid)
    plain = time.perf_counter() - start
    start = time.perf_counter()
    make_plan(Store(results), grid, selected_probes(None))
    describe(grid, Options(results=results))
    return plain, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--baseline-runs", type=int, default=2000, help="runs of the plain run-by-run baseline")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as folder:
        measure(folder, 40)  # warm: imports, the model parameter counts
        base = None
        for runs in sizes:
            times = measure(folder, runs)
            per_run = times["command"] / runs
            base = base or per_run
            stages = "  ".join(f"{k} {v:.2f} s" for k, v in times.items() if k != "command")
            print(f"{runs:>7} runs: --dry-run {times['command']:.2f} s  ({per_run * 1e6:.0f} us per run, "
                  f"{per_run / base:.2f}x the {sizes[0]}-run grid's per run; stages alone: {stages})", flush=True)
        plain, fast = plain_seconds(folder, args.baseline_runs)
        print(f"plan + dry-run lines of {args.baseline_runs} runs: run by run (plain, baseline) {plain:.2f} s, "
              f"make_plan + describe {fast:.2f} s: {plain / fast:.1f}x faster")
        print(f"{sizes[-1]}-run --dry-run: {times['command']:.2f} s (goal: under 10 s; "
              f"{times['command'] / 10:.2f}x the goal)")


if __name__ == "__main__":
    main()
