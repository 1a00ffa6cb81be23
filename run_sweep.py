"""Run a grid of trainings and every analysis of them on Ray; results land as Parquet tables.

    python run_sweep.py                      # the `demo` grid on the embedded digits data (a laptop CPU)
    python run_sweep.py --grid full --address auto --gpus-per-trial 0.25 --results s3://bucket/memloc
Re-running the same command finishes an interrupted sweep: finished runs and analyses are skipped.
"""

from __future__ import annotations

import argparse
import sys

from sweep.errors import UserError


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
    p.add_argument("--dry-run", action="store_true",
                   help="print the runs and tasks that would launch and the checkpoint storage, then exit")
    p.add_argument("--no-report", action="store_true",
                   help="skip writing the HTML report (<results>/report/index.html; local results only) at the end")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        from sweep.data import load_dataset
        from sweep.engine import Options, describe, run_grid
        from sweep.grids import load_grid
        from sweep.probes import PROBES

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
        opts = Options(results=args.results, data_dir=args.data_dir, download=args.download, address=args.address,
                       cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial,
                       max_concurrent=args.max_concurrent, only=only)
        if args.dry_run:
            print("\n".join(describe(grid, opts)))
            return 0
        for dataset in sorted({cfg.dataset for cfg in grid.runs}):
            load_dataset(dataset, args.data_dir, args.download)  # missing files fail here, before any work
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    print(f"grid {grid.name}: {len(grid.runs)} runs -> {opts.results}", flush=True)
    try:
        summary = run_grid(grid, opts, print_fn=lambda line: print(line, flush=True))
    except UserError as exc:  # raised before any work (results made under other settings)
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"trained {summary.trained} of {summary.runs} runs now; ran {summary.tasks_run} analysis tasks "
          f"({summary.tasks_skipped} already done)")
    for failure in summary.failures:
        print(f"FAILED {failure}", file=sys.stderr)
    if not args.no_report and "://" not in opts.results:
        from analyses.report import write_report

        page = write_report(opts.results, data_dir=args.data_dir)
        print(f"report: {page}")
    print(f"results: {opts.results}  (read with: import pandas as pd; pd.read_parquet('{opts.results}/epochs'))")
    return 1 if summary.failures else 0


if __name__ == "__main__":
    sys.exit(main())
