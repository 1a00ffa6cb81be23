"""How long a huge grid takes to expand, validate, plan and dry-run print, against its size (issue 26, item 6).

A grid of N seeds x 4 variants of the digits MLP (N/4 seeds), written as a TOML file, goes through the command
line's own path: load_grid (expand + validate every run), the grid-level bounds, make_plan against an empty
results folder, and the dry run's lines (engine.describe), in this process. Printed per size: the seconds of each
stage and in all, and the time per run relative to the 1,000-run grid's (1.0 = linear; the goal: 100,000 runs in
under 10 s in all).

    python bench/grid_plan.py [--sizes 1000,10000,100000]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sweep import bounds  # noqa: E402
from sweep.engine import Options, describe  # noqa: E402
from sweep.grids import load_grid  # noqa: E402
from sweep.plan import make_plan, selected_probes  # noqa: E402
from sweep.store import Store  # noqa: E402


def grid_file(folder: str, runs: int) -> str:
    seeds = ", ".join(map(str, range(runs // 4)))
    path = os.path.join(folder, f"grid{runs}.toml")
    Path(path).write_text(f'[[runs]]\ndataset = "digits"\narch = "mlp"\nvariant = ["standard", "tied", "dropout", '
                          f'"sparse"]\nnoise = 0.1\nseed = [{seeds}]\nepochs = 3\nbatch_size = 128\n\n'
                          "[analysis]\nrewind_epochs = [0, 2]\n")
    return path


def measure(folder: str, runs: int) -> dict[str, float]:
    path, results = grid_file(folder, runs), os.path.join(folder, f"results{runs}")
    times = {}
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
    times["total"] = time.perf_counter() - start
    assert len(grid.runs) == runs
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000,100000")
    sizes = [int(s) for s in parser.parse_args().sizes.split(",")]
    with tempfile.TemporaryDirectory() as folder:
        measure(folder, 40)  # warm: imports, the model parameter counts
        base = None
        for runs in sizes:
            times = measure(folder, runs)
            per_run = times["total"] / runs
            base = base or per_run
            stages = "  ".join(f"{k} {v:.2f} s" for k, v in times.items())
            print(f"{runs:>7} runs: {stages}  ({per_run * 1e6:.0f} us per run, {per_run / base:.2f}x the "
                  f"{sizes[0]}-run grid's per run)")


if __name__ == "__main__":
    main()
