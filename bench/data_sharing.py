"""Benchmark: analysis tasks per second with each dataset loaded once and shared through Ray's object store,
against every task loading (reading, normalising) it again, in one run.

    .venv/bin/python bench/data_sharing.py                  # the smoke grid (digits), a private local Ray
    .venv/bin/python bench/data_sharing.py --grid my.toml   # any grid, e.g. CIFAR-10 files under --data-dir

The grid is trained once into a temporary folder. Then, for each mode, its analysis results are deleted and the
sweep runs again, so that call runs every analysis task and nothing else; the figure is tasks / wall time of
that call (Ray's start included, the same in both modes). The modes alternate, `--repeats` times each.
"""

from __future__ import annotations

import argparse
import io
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sweep.engine import Options, run_grid, shutdown_ray  # noqa: E402
from sweep.grids import load_grid  # noqa: E402
from sweep.probes import PROBES  # noqa: E402
from sweep.progress import ProgressView  # noqa: E402


def analyses_only(grid, opts: Options) -> tuple[float, int]:
    """Delete every analysis result, rerun the sweep (only the analyses are left to do); (seconds, tasks)."""
    results = Path(opts.results)
    for table in {t for p in PROBES.values() for t in p.tables}:
        shutil.rmtree(results / table, ignore_errors=True)
    shutil.rmtree(results / "_done" / "tasks", ignore_errors=True)
    start = time.perf_counter()
    try:
        summary = run_grid(grid, opts, ProgressView(stream=io.StringIO()))
    finally:
        shutdown_ray(keep_logs=False)
    if summary.failures or not summary.tally.complete:
        sys.exit(f"the sweep failed: {summary.failures}")
    return time.perf_counter() - start, summary.tasks_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grid", default="smoke", help="built-in grid or TOML file (default: %(default)s)")
    parser.add_argument("--data-dir", default="data", help="dataset files (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=2, help="timed calls per mode (default: %(default)s)")
    args = parser.parse_args()
    grid = load_grid(args.grid)
    with tempfile.TemporaryDirectory() as tmp:
        base = Options(results=tmp, data_dir=args.data_dir).resolved()
        summary = run_grid(grid, base, ProgressView(stream=io.StringIO()))
        shutdown_ray(keep_logs=False)
        if not summary.tally.complete:
            sys.exit(f"training the grid failed: {summary.failures}")
        rates: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(args.repeats):
            for share in (False, True):
                seconds, tasks = analyses_only(grid, Options(**{**base.__dict__, "share_data": share}))
                rates[share].append(tasks / seconds)
                print(f"share_data={share!s:5}  {tasks} tasks in {seconds:6.1f} s  {tasks / seconds:.2f} tasks/s",
                      flush=True)
    before, after = statistics.median(rates[False]), statistics.median(rates[True])
    print(f"grid {grid.name}: {before:.2f} tasks/s loading the data in every task (baseline), {after:.2f} tasks/s "
          f"with one shared copy per node: {after / before:.2f}x (median of {args.repeats})")


if __name__ == "__main__":
    main()
