"""Run a grid of trainings and every analysis of them on Ray; results land as Parquet tables.

    python run_sweep.py                      # the `demo` grid on the embedded digits data (a laptop CPU)
    python run_sweep.py --grid full --address auto --gpus-per-trial 0.25 --results s3://bucket/memloc
Re-running the same command finishes an interrupted sweep: finished runs and analyses are skipped.
Exit status: 0 when every run and analysis of the grid is done, 1 when something failed (each failure is listed),
2 for bad input (nothing is started), 130 / 143 when stopped by SIGINT (Ctrl-C) / SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import sys

from sweep.errors import Interrupted, UserError


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from sweep.grids import BUILTIN

    p = argparse.ArgumentParser(prog="python run_sweep.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--grid", default="demo",
                   help=f"a built-in grid ({', '.join(BUILTIN)}; default demo) or a path to a TOML grid file")
    p.add_argument("--results", default="results",
                   help="results root: a local path or a URI pyarrow understands, e.g. s3://bucket/prefix "
                        "(on a cluster: storage every node reaches); default results/")
    p.add_argument("--data-dir", default="data", help="where dataset files are looked for (default ./data)")
    p.add_argument("--download", action="store_true", help="download missing dataset files (cifar10, mnist, ...)")
    p.add_argument("--address", default=None,
                   help="join a running Ray cluster (e.g. 'auto' or 'HEAD_IP:6379'); default: start a private "
                        "local cluster sized to this machine, bound to 127.0.0.1, no dashboard")
    p.add_argument("--cpus-per-trial", type=float, default=1.0, help="CPUs reserved per training (default 1)")
    p.add_argument("--gpus-per-trial", type=float, default=0.0,
                   help="GPUs per training and per analysis task; fractions share a GPU (e.g. 0.25); default 0")
    p.add_argument("--max-concurrent", type=int, default=0, help="cap on trainings at once (default: no cap)")
    p.add_argument("--only", default=None,
                   help="comma-separated subset of analyses to run (default: all registered)")
    p.add_argument("--verify", action="store_true",
                   help="check the SHA-256 of every finished file against its done-record before skipping work "
                        "(sizes are always checked; checkpoints always when a task reads them)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the runs and tasks that would launch and the checkpoint storage, then exit")
    p.add_argument("--no-report", action="store_true",
                   help="skip writing the HTML report (<results>/report/index.html; local results only) at the end")
    return p.parse_args(argv)


def _stop(signum: int, frame: object) -> None:
    raise Interrupted(signum)


def main(argv: list[str] | None = None) -> int:
    # Until the sweep installs its own handlers, a stop signal ends the command at once with the same exit code.
    for stop_signal in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop_signal, _stop)
    args = parse_args(argv)
    try:
        return _sweep(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Interrupted as stop:
        print(f"interrupted by {stop} before the sweep started; rerun the same command to start it",
              file=sys.stderr)
        return stop.exit_code


def _sweep(args: argparse.Namespace) -> int:
    """Validate everything (UserError: exit 2, nothing started), then run the grid and report what is done."""
    from sweep.data import load_dataset
    from sweep.engine import Options, describe, run_grid, shutdown_ray
    from sweep.grids import load_grid
    from sweep.paths import check_writable
    from sweep.probes import PROBES
    from sweep.progress import ProgressView

    grid = load_grid(args.grid)
    only = None
    if args.only:
        only = tuple(s.strip() for s in args.only.split(",") if s.strip())
        unknown = sorted(set(only) - set(PROBES))
        if unknown or not only:
            raise UserError(f"unknown analysis {', '.join(unknown) or '(empty)'} in --only; "
                            f"accepted: {', '.join(PROBES)}")
    if args.cpus_per_trial <= 0 or args.gpus_per_trial < 0 or args.max_concurrent < 0:
        raise UserError("--cpus-per-trial must be > 0, --gpus-per-trial >= 0 and --max-concurrent >= 0")
    check_writable(args.results, "--results")  # a file, a read-only folder or an unknown URI scheme: exit 2 here
    # Paths are resolved here, against the directory the command runs in, before anything reaches Ray.
    opts = Options(results=args.results, data_dir=args.data_dir, download=args.download, address=args.address,
                   cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial,
                   max_concurrent=args.max_concurrent, only=only, verify=args.verify).resolved()
    if args.dry_run:
        print("\n".join(describe(grid, opts)))
        return 0
    for dataset in sorted({cfg.dataset for cfg in grid.runs}):
        load_dataset(dataset, opts.data_dir, args.download)  # missing files fail here, before any work

    print(f"grid {grid.name}: {len(grid.runs)} runs -> {opts.results}", flush=True)
    summary = None
    try:
        summary = run_grid(grid, opts, ProgressView())
    finally:
        logs = shutdown_ray(keep_logs=summary is not None and bool(summary.failures))
    if summary.interrupted is not None:
        name = signal.Signals(summary.interrupted).name
        print(f"interrupted by {name}: {summary.tally}; rerun the same command to resume", file=sys.stderr)
        return 128 + summary.interrupted
    print(f"{summary.tally} (this call trained {summary.trained} runs and ran {summary.tasks_run} analysis tasks)")
    if summary.failures or not summary.tally.complete:
        for failure in summary.failures:
            print(f"FAILED {failure}", file=sys.stderr)
        if logs:
            print(f"worker logs (tracebacks): {logs}/logs", file=sys.stderr)
        print(f"error: the sweep is not complete ({summary.tally}); rerun the same command to retry what failed",
              file=sys.stderr)
        return 1
    if not args.no_report and "://" not in opts.results:
        from analyses.report import write_report

        problems: list[str] = []
        page = write_report(opts.results, data_dir=opts.data_dir, problems=problems)
        print(f"report: {page}")
        for problem in problems:
            print(f"error: unreadable, left out of the report: {problem}", file=sys.stderr)
        if problems:
            return 1
    print(f"results: {opts.results}  (read with: import pandas as pd; pd.read_parquet('{opts.results}/epochs'))")
    return 0


if __name__ == "__main__":
    sys.exit(main())
