"""Run a grid of trainings and every analysis of them on Ray; results land as Parquet tables.

examples:
  %(prog)s
      the `demo` grid on the embedded digits data (a laptop CPU)
  %(prog)s --grid full --address auto --gpus-per-trial 0.25 --results s3://bucket/memloc
      a cluster, results on storage every node reaches
  %(prog)s --where arch=mlp,seed=0,1 --set epochs=5 --dry-run
      what the demo grid's MLP runs of seeds 0 and 1, trained for 5 epochs, would launch
  %(prog)s --plugin examples/plugin_example.py --grid examples/plugin_example.toml
      your own dataset and model (a module that registers them; every Ray worker imports it too)
  %(prog)s --status
      where the sweep stands (works from a second terminal while a sweep runs)

Re-running the same command finishes an interrupted sweep: finished runs and analyses are skipped.

--where FIELD=V[,V...][,FIELD=V...] keeps the grid's runs whose FIELD is one of its values, for every FIELD given
(a term without '=' is one more value of the field before it; repeated --where flags count as one, joined by
commas). --set FIELD=V[,V...][,FIELD=V...] (repeatable) replaces a field on every run kept, which makes them other
runs, with other run ids; several values of a run field expand as a product (--set seed=0,1,2 --set noise=0.05,0.2:
every run kept six times). FIELD is any run field (dataset, arch, variant, noise, seed, noise_seed, width, epochs,
batch_size, lr, p_gen, p_mem, ...) or, for --set, any [analysis] setting (flip_clean=10, rewind_epochs=0,2,4:
one value each, a list for list settings; signed like a grid file's, so a folder made with another is refused);
values are read as the field's type (noise=0.1 matches 0.1).

Exit status: 0 when every run and analysis of the grid is done, 1 when something failed (each failure is listed),
2 for bad input (nothing is started), 130 / 143 when stopped by SIGINT (Ctrl-C) / SIGTERM; --status exits 0.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from contextlib import suppress
from typing import TYPE_CHECKING

from sweep import stopping
from sweep.errors import Interrupted, UserError

if TYPE_CHECKING:
    from sweep.data import Dataset
    from sweep.engine import Options
    from sweep.grids import Grid

PROG = "memloc-sweep"  # the command `pip install` makes; run_sweep.py passes its own name


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """The description as written; every option's help ends with its default, "(default: ...)", unless the
    help says it in its own words already."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "(default" in text or not action.option_strings or action.default is argparse.SUPPRESS:
            return text
        return f"{text} (default: {'off' if action.default is False else '%(default)s'})"


def parse_args(argv: list[str] | None, prog: str = PROG) -> argparse.Namespace:
    from sweep.grids import BUILTIN

    p = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=_HelpFormatter)
    p.add_argument("--grid", default="demo",
                   help=f"a built-in grid ({', '.join(BUILTIN)}) or a path to a TOML grid file")
    p.add_argument("--results", default="results",
                   help="results root: a local path or a URI pyarrow understands, e.g. s3://bucket/prefix "
                        "(on a cluster: storage every node reaches)")
    p.add_argument("--data-dir", default="data", help="where dataset files are looked for")
    p.add_argument("--download", action="store_true", help="download missing dataset files (cifar10, mnist, ...)")
    p.add_argument("--address", default=None,
                   help="join a running Ray cluster (e.g. 'auto' or 'HEAD_IP:6379') (default: start a private "
                        "local cluster sized to this machine, bound to 127.0.0.1, no dashboard)")
    p.add_argument("--cpus-per-trial", type=float, default=1.0, help="CPUs reserved per training")
    p.add_argument("--gpus-per-trial", type=float, default=0.0,
                   help="GPUs per training and per analysis task; fractions share a GPU (e.g. 0.25)")
    p.add_argument("--max-concurrent", type=int, default=0, help="cap on trainings at once; 0: no cap")
    p.add_argument("--only", default=None,
                   help="comma-separated analyses to run: flip, rewind, retrain, dropout, or the tables they write "
                        "(flips, rewinding, retraining, ...) (default: all registered)")
    p.add_argument("--where", action="append", default=[], metavar="FIELD=V[,V...][,FIELD=V...]",
                   help="keep only the grid's runs whose FIELD is one of its values, for every FIELD given, e.g. "
                        "--where arch=mlp,variant=tied or --where seed=0,1; repeatable (the flags count as one, "
                        "joined by commas) (default: every run)")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=V[,V...][,FIELD=V...]",
                   help="replace FIELD on every run chosen, e.g. --set epochs=5 (seed sets noise_seed too); several "
                        "values expand as a product (--set seed=0,1,2); also any [analysis] setting, e.g. --set "
                        "flip_clean=10; repeatable; the changed runs are validated and get other run ids (default: "
                        "no change)")
    p.add_argument("--compile", default="auto", choices=("auto", "on", "off"),
                   help="torch.compile each training's model: auto = on CUDA only; a compiler failure falls back to "
                        "eager with one line on stderr")
    p.add_argument("--verify", action="store_true",
                   help="check the SHA-256 of every finished file against its done-record before skipping work "
                        "(sizes are always checked; checkpoints always when a task reads them)")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--dry-run", action="store_true",
                      help="print the runs and tasks that would launch and the checkpoint storage, then exit")
    what.add_argument("--status", action="store_true",
                      help="print where the grid stands (each run: done, epoch k of E, failed or not started; "
                           "the analysis tasks done and left; whether a sweep holds the results folder), reading "
                           "the results folder only (no Ray, no lock), then exit")
    p.add_argument("--plugin", action="append", default=[], metavar="SPEC",
                   help="a module of yours that registers datasets, architectures, localizers or detection signals: "
                        "an importable module name or a path to a .py file; imported before the grid is read, and "
                        "by every Ray worker; repeatable. Installed packages' entry points in the groups "
                        "memloc_sweep.datasets, .models, .localizers, .signals are loaded too (default: none)")
    p.add_argument("--logger", action="append", default=[], choices=("tensorboard", "wandb", "mlflow", "csv"),
                   help="an experiment tracker for the trainings' epoch metrics (Tune's own logger callback, with "
                        "the run's fields as the trial's config) and each run's analysis metrics once its analyses "
                        "finish; repeatable. TensorBoard and CSV files go to each trial's folder under "
                        "<results>/_tune/ (Tune writes its own there in any case: tensorboard --logdir "
                        "results/_tune); wandb and mlflow need their packages (default: none)")
    p.add_argument("--no-report", action="store_true",
                   help="skip writing the HTML report (<results>/report/index.html; local results only) at the end")
    return p.parse_args(argv)


def _stop(signum: int, frame: object) -> None:
    """Outside the sweep's own handlers (before Ray, in the report): stop where the command is. Further signals
    are ignored from here on, so the clean-up (the lock's release, Ray's shutdown) runs whole."""
    stopping.note(signum)
    stopping.ignore_further()
    raise Interrupted(signum)


_CLOSED: list[int] = []  # the closing line of an interrupted command is printed (once: the first signal's)


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    """The command line: `memloc-sweep` (installed) and `python run_sweep.py` run this.

    A stop signal at any moment ends it with 128 + the signal's number and one closing line saying what the
    results folder holds, the first signal's, whatever came after it; also where a library caught the
    Interrupted it raised and went on or turned it into an error of its own (a plug-in's import, a dataset
    reader, a report section)."""
    # Until the sweep installs its own handlers, a stop signal ends the command at once with the same exit code.
    stopping.reset()
    _CLOSED.clear()
    for stop_signal in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop_signal, _stop)
    args = parse_args(argv, prog)
    try:
        code = _command(args)
        return code if stopping.first() is None else _interrupted(args, stopping.first())
    except Interrupted as stop:
        return _interrupted(args, stopping.first() or stop.signum)
    finally:
        if argv is None:  # the program itself: a signal while the interpreter winds down changes nothing now
            stopping.ignore_further()


def _command(args: argparse.Namespace) -> int:
    """--status or the sweep, with bad input and a failed write of the driver's own as one line each."""
    try:
        from sweep.plugins import prepare

        args.plugin = prepare(args.plugin)  # before the grid is read: it may name what they register
        return _status(args) if args.status else _sweep(args)
    except UserError as exc:
        if stopping.first() is not None:  # the signal's Interrupted, caught and re-raised as bad input
            raise Interrupted(stopping.first()) from exc
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the driver's own writes (catalogue, records, report) on a full or read-only disk
        if stopping.first() is not None:
            raise Interrupted(stopping.first()) from exc
        from sweep.engine import first_line, shutdown_ray

        shutdown_ray()
        print(f"error: writing the results failed: {first_line(exc)}; free space or fix the folder, then rerun "
              "the same command", file=sys.stderr)
        return 1


def _interrupted(args: argparse.Namespace, signum: int) -> int:
    """Stop what still runs (a cluster started before the signal came stops, its session folder removed) and
    print the one closing line, unless the sweep printed it already; the exit status."""
    stopping.ignore_further()  # a second Ctrl-C while stopping changes nothing, the closing line included
    if args.status or _CLOSED:
        return 128 + signum
    engine = sys.modules.get("sweep.engine")  # not imported (or cut off while importing): no Ray was started
    if engine is not None:
        engine.shutdown_ray()
    _closing_line(signum, _finished(args))
    return 128 + signum


def _closing_line(signum: int, finished: str | None) -> None:
    name = signal.Signals(signum).name
    _CLOSED.append(signum)
    if finished is None:
        print(f"interrupted by {name} before the sweep started; rerun the same command to start it", file=sys.stderr)
    else:
        print(f"interrupted by {name}: {finished}; rerun the same command to resume", file=sys.stderr)


def _finished(args: argparse.Namespace) -> str | None:
    """What the results folder holds for the grid, counted from its files (None: no folder, or nothing of a sweep
    in it). A module that the signal cut off in the middle of its import (torch, pyarrow) cannot be imported
    again in this process; the folder's done-records are then counted without it."""
    results = os.path.abspath(os.path.expanduser(args.results))
    with suppress(Exception):
        from sweep.paths import resolve_location

        results = resolve_location(args.results)
    if "://" not in results and not os.path.isdir(results):
        return None
    try:
        return _tally(args, results)
    except Exception:  # noqa: BLE001 - whatever the half-imported module raises; the records are still there
        return _counted(results)


def _tally(args: argparse.Namespace, results: str) -> str:
    """The grid's tally from one plan of the folder, and the runs that have saved epochs but are not finished."""
    from sweep.plan import make_plan, selected_probes
    from sweep.store import Store
    from sweep.train import progress_path

    grid, _ = _grid(args)
    store = Store(results)
    plan = make_plan(store, grid, selected_probes(_only(args)))
    local = "://" not in results  # a look per run: cheap on a disk, a request each on an object store
    part = sum(os.path.isfile(store.path(progress_path(c.run_id))) for c in plan.pending) if local else 0
    return f"{plan.tally}" + (f", {part} more {'run' if part == 1 else 'runs'} part-trained" if part else "")


def _counted(results: str) -> str | None:
    """What a local results folder holds, from its done-records and saved epochs alone (no grid, no torch)."""
    if "://" in results:
        return None

    def names(folder: str, suffix: str) -> set[str]:
        with suppress(OSError):
            return {n.removesuffix(suffix) for n in os.listdir(os.path.join(results, folder)) if n.endswith(suffix)}
        return set()

    runs, tasks = names("_done/runs", ".json"), names("_done/tasks", ".json")
    part = {run_id for run_id in names("checkpoints", "") - runs
            if os.path.isfile(os.path.join(results, "checkpoints", run_id, "progress.json"))}
    if not (runs or tasks or part):
        return None
    def many(n: int, what: str) -> str:
        return f"{n} {what}{'' if n == 1 else 's'}"

    held = f"{many(len(runs), 'finished run')} and {many(len(tasks), 'finished analysis task')}"
    return (f"the results folder holds {held} (counted from their done-records)"
            + (f", {many(len(part), 'more run')} part-trained" if part else ""))


def _only(args: argparse.Namespace) -> tuple[str, ...] | None:
    """--only as analysis names, every one of them registered (UserError otherwise). A table's name stands for
    the analysis that writes it (`--only rewinding` is `--only rewind`), since users meet the tables first."""
    from sweep.probes import PROBES

    if not args.only:
        return None
    by_table = {table: name for name, probe in PROBES.items() for table in probe.tables}
    given = tuple(s.strip() for s in args.only.split(",") if s.strip())
    unknown = sorted(set(given) - set(PROBES) - set(by_table))
    if unknown or not given:
        raise UserError(f"unknown analysis {', '.join(unknown) or '(empty)'} in --only; accepted: "
                        f"{', '.join(PROBES)} (or a table they write: {', '.join(by_table)})")
    return tuple(dict.fromkeys(by_table.get(name, name) for name in given))


def _grid(args: argparse.Namespace) -> tuple[Grid, list[str]]:
    """The grid named by --grid with --where and --set applied, and the lines that say what they did."""
    from sweep.grids import load_grid, select_runs, selection_lines

    grid = load_grid(args.grid)
    selected = select_runs(grid, args.where, args.set)
    return selected, selection_lines(grid, selected, args.where, args.set)


def _status(args: argparse.Namespace) -> int:
    """Print where the grid stands, from the results folder alone: no Ray, no lock, nothing written."""
    from sweep.paths import resolve_location
    from sweep.plan import selected_probes
    from sweep.status import status_lines
    from sweep.store import Store

    grid, selection = _grid(args)
    probes = selected_probes(_only(args))
    results = resolve_location(args.results)
    if "://" not in results and os.path.exists(results) and not os.path.isdir(results):
        raise UserError(f"--results {results} is a file; give the results folder of a sweep")
    try:
        store = Store(results)
    except (ValueError, OSError) as exc:  # pyarrow's own errors derive from these
        raise UserError(f"--results {results!r} cannot be opened: {str(exc).strip().splitlines()[0]}") from exc
    print(f"grid {grid.name}: {len(grid.runs)} runs under {store.uri}")
    for line in [*selection, *status_lines(store, grid, probes)]:
        print(line)
    return 0


def _sweep(args: argparse.Namespace) -> int:
    """Validate everything (UserError: exit 2, nothing started), then run the grid and report what is done."""
    from sweep import bounds
    from sweep.data import load_dataset
    from sweep.dryrun import describe
    from sweep.engine import Options
    from sweep.grids import parse_assignments
    from sweep.ownership import check_results_folder
    from sweep.paths import check_results_root, check_writable

    grid, selection = _grid(args)
    only = _only(args)
    bounds.check_resources(args.cpus_per_trial, args.gpus_per_trial, args.max_concurrent)  # nan, inf too
    bounds.check_address(args.address)
    sets = parse_assignments(args.set, "--set")
    shortened = "epochs" in sets and "rewind_epochs" not in sets  # --set epochs=N: rewind reads the epochs there are
    bounds.check_grid(grid, rewind_epochs=not shortened)  # flip counts, rewind epochs within each run (--dry-run too)
    check_results_root(args.results)  # "", "/", a repository's top folder: never a results folder
    check_writable(args.results, "--results")  # a file, a read-only folder or an unknown URI scheme: exit 2 here
    from sweep.trackers import check_loggers

    check_loggers(args.logger)  # --logger wandb without wandb installed: the pip command, exit 2
    localizing = only is None or "localize" in only
    if localizing:  # unknown localizers, a cap above a model's units: refused before anything is built or loaded
        from sweep.probes.localize import check_localize_grid

        check_localize_grid(grid.runs, grid.analysis)
    # Paths are resolved here, against the directory the command runs in, before anything reaches Ray.
    opts = Options(results=args.results, data_dir=args.data_dir, download=args.download, address=args.address,
                   cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial,
                   max_concurrent=args.max_concurrent, only=only, verify=args.verify,
                   compile=args.compile, plugins=(*args.plugin, *grid.plugins),
                   loggers=tuple(dict.fromkeys(args.logger))).resolved()
    check_results_folder(opts.results)  # a file of the user's where a sweep writes: refused before anything
    if args.dry_run:  # each dataset's files looked for as loading looks (same order, same line), none read
        from sweep.data import check_dataset_files

        names = sorted({c.dataset for c in grid.runs})
        notes = [check_dataset_files(name, opts.data_dir, args.download) for name in names]
        print("\n".join([*selection, *filter(None, notes), *describe(grid, opts)]))
        return 0
    # missing files fail here, before any work; the engine then shares these copies instead of loading again
    loaded = {name: load_dataset(name, opts.data_dir, args.download) for name in sorted({c.dataset for c in grid.runs})}
    if localizing:  # injection targets against each dataset's clean examples, now that the sizes are known
        check_localize_grid(grid.runs, grid.analysis, {name: len(data.train) for name, data in loaded.items()})
    from sweep import lock
    from sweep.store import Store

    with lock.holding(Store(opts.results)):  # until the report is written: --status shows the sweep until it ends
        return _run_and_report(args, grid, opts, selection, loaded)


def _run_and_report(args: argparse.Namespace, grid: Grid, opts: Options, selection: list[str],
                    loaded: dict[str, Dataset]) -> int:
    """Run the grid (the caller holds the results folder's lock), then write the report; the exit status."""
    from sweep.engine import run_grid, shutdown_ray
    from sweep.progress import ProgressView

    print(f"grid {grid.name}: {len(grid.runs)} runs -> {opts.results}", flush=True)
    for line in selection:
        print(line, flush=True)
    summary, view = None, ProgressView()
    try:
        summary = run_grid(grid, opts, view, loaded)
    finally:
        if summary is None or summary.interrupted is not None:
            stopping.ignore_further()  # stopping already: Ray shuts down whole and the closing line says what is done
        view.close()  # the terminal back as it was (cursor, stdout), also when the sweep raised
        logs = shutdown_ray(keep_logs=summary is not None and bool(summary.failures))
    if summary.interrupted is not None:
        _closing_line(summary.interrupted, str(summary.tally))
        return 128 + summary.interrupted
    print(f"{summary.tally} (this call trained {summary.trained} runs and ran {summary.tasks_run} analysis tasks)")
    if summary.failures or not summary.tally.complete:
        for failure in summary.failures:
            print(f"FAILED {failure}", file=sys.stderr)
        if summary.failures:
            print(f"whole tracebacks: {opts.results}/_failed/runs/<run_id>.txt and _failed/tasks/<task>.txt "
                  "(--status names each)", file=sys.stderr)
        if logs:
            print(f"worker logs (tracebacks): {logs}/logs", file=sys.stderr)
        print(f"error: the sweep is not complete ({summary.tally}); rerun the same command to retry what failed",
              file=sys.stderr)
        return 1
    if not args.no_report and "://" not in opts.results:
        from analyses.report import write_report

        problems: list[str] = []
        page = write_report(opts.results, data_dir=opts.data_dir, problems=problems)
        if stopping.first() is not None:  # a section caught the signal's Interrupted and went on: a page with holes
            page.unlink(missing_ok=True)
            raise Interrupted(stopping.first())
        print(f"report: {page}")
        for problem in problems:
            print(f"error: unreadable, left out of the report: {problem}", file=sys.stderr)
        if problems:
            return 1
    print(f"results: {opts.results}  (read with: import pandas as pd; pd.read_parquet('{opts.results}/epochs'))")
    return 0


if __name__ == "__main__":
    sys.exit(main(prog="python -m sweep.cli"))
