"""Scaling across Ray nodes: one grid of equal small trainings through `run_sweep.py --address`, on clusters of
1, 2 and 4 nodes started on this machine (one CPU each, all on 127.0.0.1), wall time and speed-up per node count.

The grid: `--runs` digits MLP runs that differ only in their seed (same size, same epochs, 10% label noise), so
every trial is the same work. `--only dropout` keeps the sweep to trainings: that analysis applies only to the
dropout variants, so standard runs have no analysis task, and what is timed is trainings spread over nodes
(Tune's scheduling, one trial per node CPU, each run's checkpoints and tables), not probes. Each node count gets
a fresh cluster (`tests/ray_cluster.py`, as the cluster tests start them) and a fresh results folder; the clock
runs from the driver's start to its exit (imports, connecting, Tune and the trainings: what a user waits for),
while the cluster's own start is left out.

The nodes are processes on one machine: with more nodes than cores they share cores, and the speed-up stops at
the core count (this project's CI machine has 2). Run it where the cores are idle; the load average is printed.

    python bench/scaling.py                         # 1, 2, 4 nodes; 8 runs of 60 epochs
    python bench/scaling.py --nodes 1,2 --runs 8 --epochs 20
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402

from tests import ray_cluster  # noqa: E402


def grid_text(runs: int, epochs: int, arch: str, width: float, batch: int) -> str:
    seeds = ", ".join(str(s) for s in range(runs))
    return (f"[[runs]]\ndataset = 'digits'\narch = '{arch}'\nwidth = {width}\nnoise = 0.1\nseed = [{seeds}]\n"
            f"epochs = {epochs}\nbatch_size = {batch}\n")


def one_cluster(nodes: int, grid: Path, work: Path) -> tuple[float, pd.DataFrame, str]:
    """Start `nodes` one-CPU nodes, run the grid's trainings through run_sweep.py, stop the cluster; returns the
    driver's wall time, the runs table and the driver's last line."""
    temp = tempfile.mkdtemp(prefix=f"rayscale{nodes}-", dir="/tmp")  # short: Ray's socket paths have a limit
    results = work / f"results-{nodes}"
    try:
        address = ray_cluster.start([1] * nodes, temp)
        env = ray_cluster.env(loopback=nodes == 1)
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, str(ROOT / "run_sweep.py"), "--grid", str(grid), "--address", address,
                               "--results", str(results), "--only", "dropout", "--no-report"],
                              cwd=work, capture_output=True, text=True, env=env, timeout=3600)
        seconds = time.perf_counter() - start
    finally:
        ray_cluster.stop(temp)
    if proc.returncode != 0:
        raise SystemExit(f"bench/scaling.py: the sweep on {nodes} node(s) failed (exit {proc.returncode}):\n"
                         f"{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    last = next((line for line in reversed(proc.stdout.splitlines()) if "runs and" in line), "")
    return seconds, pd.read_parquet(results / "runs"), last


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    parser.add_argument("--nodes", default="1,2,4", help="node counts, one CPU each (default: 1,2,4)")
    parser.add_argument("--runs", type=int, default=8, help="equal runs in the grid (default: 8)")
    parser.add_argument("--epochs", type=int, default=60, help="epochs per run (default: 60)")
    parser.add_argument("--arch", default="mlp", help="mlp or resnet9 (default: mlp)")
    parser.add_argument("--width", type=float, default=1.0, help="width multiplier (default: 1)")
    parser.add_argument("--batch-size", type=int, default=128, help="batch size (default: 128)")
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.nodes.split(",") if n.strip()]
    if not counts or min(counts) < 1 or args.runs < 1:
        raise SystemExit("bench/scaling.py: --nodes needs positive counts and --runs at least 1")
    cores = os.cpu_count() or 1
    load = os.getloadavg()[0]
    print(f"scaling: {args.runs} equal runs (digits, {args.arch} width {args.width:g}, {args.epochs} epochs, batch "
          f"{args.batch_size}, 10% noise, seeds 0..{args.runs - 1}), trainings only; nodes "
          f"{', '.join(map(str, counts))} (one CPU each, 127.0.0.1); this machine: {cores} cores, load average "
          f"{load:.2f} at start", flush=True)
    if max(counts) > cores:
        print(f"note: {max(counts)} one-CPU nodes on {cores} cores oversubscribe the machine: nodes beyond {cores} "
              "share cores, so they cannot add speed here", flush=True)
    work = Path(tempfile.mkdtemp(prefix="memloc-scaling-"))
    try:
        grid = work / "scaling.toml"
        grid.write_text(grid_text(args.runs, args.epochs, args.arch, args.width, args.batch_size))
        base = None
        print(f"{'nodes':>5} {'wall s':>8} {'speed-up':>9} {'run s (mean)':>13} {'runs per node':>16}", flush=True)
        for nodes in counts:
            seconds, runs, last = one_cluster(nodes, grid, work)
            if len(runs) != args.runs:
                raise SystemExit(f"bench/scaling.py: {len(runs)} runs finished on {nodes} node(s), not {args.runs}")
            base = seconds if base is None else base
            per_node = "/".join(str(c) for c in sorted(runs["ray_node_id"].value_counts().tolist(), reverse=True))
            print(f"{nodes:>5} {seconds:8.1f} {base / seconds:8.2f}x {runs['seconds'].mean():13.1f} {per_node:>16}",
                  flush=True)
        print(f"speed-up: wall time on {counts[0]} node(s) / wall time on N; run s: a run's own training time (its "
              "runs row), which grows when nodes share cores; load average now "
              f"{os.getloadavg()[0]:.2f}; last driver line: {last.strip()}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
