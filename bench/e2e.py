"""End to end, no downloads: a paper-shaped grid on the synthetic CIFAR-10-shaped data through the real engine,
with the wall time of every stage and a plain hand-written training loop measured in the same run.

The grid is the `paper` grid's ResNet-9 block on one dataset: the four variants (standard, example-tied dropout,
standard dropout, sparse) at 10% label noise, seed 0, batch 512, with the paper's probe settings (AnalysisConfig's
defaults). Stages, each timed on its own: all trainings; then each probe over every run it applies to (rewind,
retrain, flip on the standard run, dropout on the other three); then the HTML report. With Ray (the default) the
stages are `sweep.engine.run_grid` calls on one private local cluster, one per stage (`only` = that probe);
with --no-ray they are the same functions the engine's trials and tasks call (`sweep.train.execute_run`, then
per task `load_run` and the probe's run function, tables and done-records written the same way), in this
process, one after another: the mode for a machine without Ray.

The baseline: the same architecture written out plainly (nn.Sequential blocks, no example ids, no gradient
accounting, no per-epoch evaluation, no checkpoints), trained eagerly by the loop everyone writes (forward, cross
entropy, backward, SGD step) over the same device-resident data and batch size, with the same numerics as the
engine's trainer (bf16 autocast and channels_last on CUDA, fp32 on a CPU). It runs in this process, before the
engine starts, with the threads an engine training gets (one per CPU of a trial with Ray). Beside it, the
engine's own Trainer on the same data, in parts: its steps without and with gradient accounting, and its
per-epoch evaluation, so the ratio of an engine epoch to the plain one is accounted for.

    python bench/e2e.py --device cuda --no-ray      # GPU: synthetic (50k), ResNet-9 width 1, 50 epochs, paper probes
    python bench/e2e.py --device cuda --no-ray --epochs 10 --variants standard,tied --probes small   # shorter
    python bench/e2e.py --quick                     # CPU, a couple of minutes: synthetic-small, MLP, tiny probes
    python bench/e2e.py --quick --no-ray
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import inspect
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sweep.config import VARIANTS, AnalysisConfig, RunConfig  # noqa: E402
from sweep.data import SHAPES, Dataset, load_dataset  # noqa: E402
from sweep.errors import UserError  # noqa: E402
from sweep.grids import Grid, expand  # noqa: E402
from sweep.models.registry import scaled  # noqa: E402
from sweep.plan import tasks_for  # noqa: E402
from sweep.probes import PROBES  # noqa: E402
from sweep.train import pick_device  # noqa: E402

PROBE_ORDER = ("rewind", "retrain", "flip", "dropout")
# Defaults: the GPU-sized run, and --quick (CPU, a couple of minutes on 2 cores). Flags override either.
PRESETS: dict[str, dict[str, object]] = {
    "paper": {"dataset": "synthetic", "arch": "resnet9", "width": 1.0, "epochs": 50, "batch_size": 512,
              "variants": "standard,tied,dropout,sparse", "probes": "paper"},
    "quick": {"dataset": "synthetic-small", "arch": "mlp", "width": 1.0, "epochs": 6, "batch_size": 256,
              "variants": "standard,tied", "probes": "tiny"},
}
# --probes: analysis settings. paper: AnalysisConfig's defaults (the paper's: rewind epochs 0..14, 20 retraining
# epochs per layer, 1000 + 1000 flip targets); small: fewer of each, for a short GPU lease; tiny: --quick's.
PROBE_SETTINGS: dict[str, dict[str, object]] = {
    "paper": {},
    "small": {"rewind_epochs": [0, 2, 4, 6, 8], "retrain_epochs": 3, "flip_clean": 200, "flip_noisy": 200,
              "flip_cap": 500, "flip_chunk": 200},
    "tiny": {"rewind_epochs": [0, 2, 4], "retrain_epochs": 2, "flip_clean": 16, "flip_noisy": 16, "flip_cap": 100,
             "flip_population": 128, "flip_eval_size": 200, "flip_chunk": 16},
}


# The plain baseline ------------------------------------------------------------------------------------------

def _block(c_in: int, c_out: int, kernel: int = 3, stride: int = 1, padding: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel, stride, padding, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU())


class PlainResNet9(nn.Module):
    """The paper's ResNet-9 (sweep/models/resnet9.py's layout, 32x32 inputs), written the usual way."""

    def __init__(self, width: float, in_channels: int = 3, classes: int = 10) -> None:
        super().__init__()
        c64, c128, c256 = (scaled(c, width) for c in (64, 128, 256))
        self.prep = nn.Sequential(_block(in_channels, c64), _block(c64, c128, 5, 2, 2))
        self.res1 = nn.Sequential(_block(c128, c128), _block(c128, c128))
        self.layer2 = nn.Sequential(_block(c128, c256), nn.MaxPool2d(2))
        self.res2 = nn.Sequential(_block(c256, c256), _block(c256, c256))
        self.layer3 = _block(c256, c128, padding=0)
        self.fc = nn.Linear(c128, classes, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.prep(x)
        h = h + self.res1(h)
        h = self.layer2(h)
        h = h + self.res2(h)
        h = self.layer3(h)
        return self.fc(torch.amax(h, dim=(2, 3))) * 0.2


def plain_mlp(width: float, features: int, classes: int = 10) -> nn.Module:
    """sweep/models/mlp.py's MLP (three Linear-BatchNorm-ReLU layers of 512*width), written the usual way."""
    h = scaled(512, width)
    return nn.Sequential(nn.Flatten(), nn.Linear(features, h), nn.BatchNorm1d(h), nn.ReLU(),
                         nn.Linear(h, h), nn.BatchNorm1d(h), nn.ReLU(), nn.Linear(h, h), nn.BatchNorm1d(h), nn.ReLU(),
                         nn.Linear(h, classes))


def plain_model(arch: str, width: float, shape: tuple[int, int, int]) -> nn.Module:
    if arch == "resnet9":
        return PlainResNet9(width, shape[0])
    if arch == "mlp":
        return plain_mlp(width, shape[0] * shape[1] * shape[2])
    raise SystemExit(f"bench/e2e.py: the plain baseline is written for resnet9 and mlp, not {arch!r}")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclasses.dataclass
class Plain:
    seconds_per_epoch: float
    steps_per_epoch: int
    epochs: int
    params: int
    test_acc: float


def plain_training(arch: str, width: float, dataset: str, batch: int, device: torch.device, epochs: int) -> Plain:
    """Train the plain model on the clean labels for `epochs` timed epochs (after a few warm-up steps)."""
    data = load_dataset(dataset).to(device)
    x, y = data.train.x, data.train.y
    cuda = device.type == "cuda"
    torch.manual_seed(0)
    model = plain_model(arch, width, data.shape).to(device)
    if cuda:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    n = len(y)

    def step(idx: torch.Tensor) -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
            logits = model(x[idx])
        loss = F.cross_entropy(logits.float(), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    model.train()
    for _ in range(3):  # warm-up: allocator, kernel selection
        step(torch.randperm(n, device=device)[:batch])
    _sync(device)
    start = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(n, device=device)
        for s in range(0, n, batch):
            step(order[s:s + batch])
    _sync(device)
    seconds = (time.perf_counter() - start) / epochs
    model.eval()
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
        test_x = data.test.x.contiguous(memory_format=torch.channels_last) if cuda else data.test.x
        correct = sum(int((model(test_x[s:s + 2048]).argmax(1) == data.test.y[s:s + 2048]).sum())
                      for s in range(0, len(data.test.y), 2048))
    return Plain(seconds, -(-n // batch), epochs, sum(p.numel() for p in model.parameters()),
                 correct / len(data.test.y))


def engine_epoch_parts(cfg: RunConfig, device: torch.device, compile_mode: str, epochs: int) -> dict[str, float]:
    """Seconds per epoch of the engine's own Trainer, in parts: its steps without and with gradient accounting,
    and its per-epoch evaluation (every training and test example), on the same data in this process."""
    from sweep.train import Trainer, prepare

    trainer = Trainer(cfg, prepare(cfg, device), device, **_compile_flag(compile_mode, device, Trainer))
    n = len(trainer.prep.labels)

    def steps(account: bool) -> None:
        sums = ([torch.zeros_like(p) for p in trainer.params], [torch.zeros_like(p) for p in trainer.params])
        order = torch.randperm(n, device=device)
        for s in range(0, n, cfg.batch_size):
            trainer.step(order[s:s + cfg.batch_size], 0.01, sums if account else None)

    parts = {}
    for name, work in (("steps", lambda: steps(False)), ("steps with accounting", lambda: steps(True)),
                       ("evaluation", trainer.evaluate)):
        if device.type == "cuda":
            work()  # warm-up: kernel selection, and compilation (train and eval mode differ) when compiled
        else:
            for s in range(0, 3 * cfg.batch_size, cfg.batch_size):  # warm-up: the allocator
                trainer.step(torch.arange(s, s + cfg.batch_size, device=device) % n, 0.01, None)
        _sync(device)
        start = time.perf_counter()
        for _ in range(epochs):
            work()
        _sync(device)
        parts[name] = (time.perf_counter() - start) / epochs
    return parts


# The engine's stages --------------------------------------------------------------------------------------

@dataclasses.dataclass
class Stage:
    name: str
    seconds: float
    units: str = "-"  # what the stage did: runs or tasks


@contextlib.contextmanager
def timed(stages: list[Stage], name: str, device: torch.device) -> Iterator[Stage]:
    stage = Stage(name, 0.0)
    _sync(device)
    start = time.perf_counter()
    yield stage
    _sync(device)
    stage.seconds = time.perf_counter() - start
    stages.append(stage)


def _accepts(fn: Callable[..., object], name: str) -> bool:
    return name in inspect.signature(fn).parameters


def _compile_flag(mode: str, device: torch.device, fn: Callable[..., object] | None = None) -> dict[str, bool]:
    """`fn`'s (default execute_run's) `compile` argument as the engine passes it, where this version has it."""
    from sweep.train import execute_run

    try:
        from sweep.compiled import wanted
    except ImportError:
        return {}
    return {"compile": wanted(mode, device)} if _accepts(fn or execute_run, "compile") else {}


def stages_in_process(grid: Grid, results: str, device: torch.device, compile_mode: str) -> list[Stage]:
    """Every training, then every probe task, in this process: what the engine's trial and task functions do."""
    from sweep import records
    from sweep.plan import checkpoint_epochs, task_record
    from sweep.store import Store, with_run_columns
    from sweep.train import execute_run, load_run

    store, stages = Store(results), []
    extra = _compile_flag(compile_mode, device)

    datasets: dict[str, Dataset] = {}

    def shared(fn: Callable[..., object], cfg: RunConfig) -> dict[str, Dataset]:
        """The engine loads each dataset once and hands it to every trial and task (where it takes it)."""
        if not _accepts(fn, "data"):
            return {}
        if cfg.dataset not in datasets:
            datasets[cfg.dataset] = load_dataset(cfg.dataset)
        return {"data": datasets[cfg.dataset]}

    with timed(stages, "trainings", device) as stage:
        for cfg in grid.runs:
            keep = checkpoint_epochs(cfg, grid.analysis) if _accepts(execute_run, "keep") else None
            execute_run(cfg, store, device, keep=None if keep is None else set(keep), **extra,
                        **shared(execute_run, cfg))
        stage.units = f"{len(grid.runs)} runs"
    for name in PROBE_ORDER:
        probe = PROBES[name]
        tasks = [t for cfg in grid.runs for t in tasks_for(cfg, {name: probe}, grid.analysis)]
        with timed(stages, f"probe {name}", device) as stage:
            for task in tasks:  # as sweep.engine._probe_task: load the run, probe one shard, write, record
                run = load_run(store, task.cfg, device, **shared(load_run, task.cfg))
                frames = probe.run(run, task.shard, grid.analysis)
                files = {store.table_file(table, task.file_name): store.write_table(
                    table, task.file_name, with_run_columns(frames[table], task.cfg)) for table in probe.tables}
                records.write(store, records.task_record_path(task.file_name),
                              task_record(task, run.record_id, grid.analysis, files))
            stage.units = f"{len(tasks)} tasks"
    return stages


def stages_with_ray(grid: Grid, results: str, args: argparse.Namespace, device: torch.device) -> list[Stage]:
    """The same stages through `sweep.engine.run_grid` on one private local Ray cluster (started first, timed)."""
    from sweep.engine import Options, init_ray, run_grid, shutdown_ray
    from sweep.progress import ProgressView

    gpus = args.gpus_per_trial if args.gpus_per_trial is not None else (1.0 if device.type == "cuda" else 0.0)
    fields = {f.name for f in dataclasses.fields(Options)}
    extra = {"compile": args.compile} if "compile" in fields else {}
    opts = Options(results=results, cpus_per_trial=args.cpus_per_trial, gpus_per_trial=gpus, **extra)
    stages: list[Stage] = []
    failed = True
    try:
        with timed(stages, "ray start", device):
            init_ray(opts)
        for name, only in (("trainings", ()), *((f"probe {p}", (p,)) for p in PROBE_ORDER)):
            view = ProgressView(stream=sys.stderr)
            with timed(stages, name, device) as stage:
                summary = run_grid(grid, dataclasses.replace(opts, only=only), view)
            if summary.failures or summary.interrupted is not None:
                for failure in summary.failures:
                    print(f"FAILED {failure}", file=sys.stderr)
                raise SystemExit(f"bench/e2e.py: stage {name} did not finish; results in {results}")
            stage.units = f"{summary.trained} runs" if not only else f"{summary.tasks_run} tasks"
        failed = False
    finally:
        logs = shutdown_ray(keep_logs=failed)
        if logs:
            print(f"worker logs: {logs}/logs", file=sys.stderr)
    return stages


def report_stage(stages: list[Stage], results: str, device: torch.device) -> None:
    try:
        from analyses.report import write_report
    except ImportError as exc:  # a machine without the report's libraries: say so, keep the other figures
        print(f"report skipped: {exc}", file=sys.stderr)
        return
    problems: list[str] = []
    with timed(stages, "report", device):
        write_report(results, problems=problems)
    for problem in problems:
        print(f"report: unreadable, left out: {problem}", file=sys.stderr)


# Driver -----------------------------------------------------------------------------------------------------

def build_grid(args: argparse.Namespace, analysis: dict[str, object]) -> Grid:
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown or not variants:
        raise SystemExit(f"bench/e2e.py: unknown variant(s) {', '.join(unknown) or '(none)'}; "
                         f"accepted: {', '.join(VARIANTS)}")
    block = {"dataset": args.dataset, "arch": args.arch, "width": args.width, "variant": variants,
             "noise": args.noise, "seed": 0, "epochs": args.epochs, "batch_size": args.batch_size}
    return Grid("e2e", expand([block]), AnalysisConfig.from_dict(analysis))


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, dict[str, object]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    parser.add_argument("--quick", action="store_true",
                        help="CPU preset: synthetic-small, MLP, 6 epochs, batch 256, standard and tied, tiny probes")
    parser.add_argument("--no-ray", action="store_true",
                        help="run the engine's training and probe functions in this process (no Ray needed)")
    parser.add_argument("--device", default="auto", help="auto (cuda when available), cpu, cuda")
    parser.add_argument("--dataset", default=None, help="synthetic (50k/10k) or synthetic-small (5k/1k), or any "
                        "registered dataset on disk (default: synthetic; --quick: synthetic-small)")
    parser.add_argument("--arch", default=None, help="resnet9 or mlp (default: resnet9; --quick: mlp)")
    parser.add_argument("--width", type=float, default=None, help="width multiplier (default: 1)")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default: 50; --quick: 6)")
    parser.add_argument("--batch-size", type=int, default=None, help="batch size (default: 512; --quick: 256)")
    parser.add_argument("--variants", default=None,
                        help="comma-separated variants (default: standard,tied,dropout,sparse; --quick: "
                             "standard,tied)")
    parser.add_argument("--probes", default=None, choices=tuple(PROBE_SETTINGS),
                        help="analysis settings: paper (AnalysisConfig's defaults), small or tiny (default: paper; "
                             "--quick: tiny)")
    parser.add_argument("--noise", type=float, default=0.1, help="label-noise rate (default: 0.1)")
    parser.add_argument("--baseline-epochs", type=int, default=1, help="timed epochs of the plain loop (default: 1)")
    parser.add_argument("--compile", default="auto", choices=("auto", "on", "off"),
                        help="torch.compile in the engine's trainings, where the engine has it (default: auto = "
                             "on CUDA)")
    parser.add_argument("--cpus-per-trial", type=float, default=1.0, help="with Ray (default: 1)")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU only: torch threads for the baseline and --no-ray (default: --cpus-per-trial, "
                             "the threads a Ray trial gets)")
    parser.add_argument("--gpus-per-trial", type=float, default=None, help="with Ray (default: 1 on CUDA, else 0)")
    parser.add_argument("--results", default=None,
                        help="an empty or new folder to keep the results in (default: a temporary folder, removed)")
    args = parser.parse_args(argv)
    preset = PRESETS["quick" if args.quick else "paper"]
    for key in ("dataset", "arch", "width", "epochs", "batch_size", "variants", "probes"):
        if getattr(args, key) is None:
            setattr(args, key, preset[key])
    return args, dict(PROBE_SETTINGS[args.probes])


def main(argv: list[str] | None = None) -> int:
    args, analysis = parse_args(argv)
    try:
        device = pick_device(args.device)
        grid = build_grid(args, analysis)
    except UserError as exc:
        raise SystemExit(f"bench/e2e.py: {exc}") from None
    if args.dataset not in SHAPES:
        raise SystemExit(f"bench/e2e.py: unknown dataset {args.dataset!r}")
    ray_mode = not args.no_ray
    if device.type == "cpu":  # as a Ray trial gets (OMP_NUM_THREADS = its CPUs); oversubscribed threads thrash
        torch.set_num_threads(args.threads if args.threads else max(1, int(args.cpus_per_trial)))
    n_tasks = sum(len(tasks_for(cfg, PROBES, grid.analysis)) for cfg in grid.runs)
    variants = ", ".join(dict.fromkeys(c.variant for c in grid.runs))
    engine = "Ray (private local cluster)" if ray_mode else "in process, no Ray"
    print(f"e2e: {len(grid.runs)} runs ({args.dataset}, {args.arch} width {args.width:g}, variants {variants}; "
          f"noise {args.noise:g}, {args.epochs} epochs, batch {args.batch_size}) and {n_tasks} analysis tasks "
          f"({args.probes} probe settings); "
          f"engine {engine}; device {device}; torch threads here {torch.get_num_threads()}; compile {args.compile}",
          flush=True)

    start = time.perf_counter()
    load_dataset(args.dataset)
    print(f"data: {args.dataset} loaded in {time.perf_counter() - start:.1f}s (synthetic data: made on the fly, "
          "kept per process)", flush=True)
    plain = plain_training(args.arch, args.width, args.dataset, args.batch_size, device, args.baseline_epochs)
    parts = engine_epoch_parts(grid.runs[0], device, args.compile, args.baseline_epochs)
    if device.type == "cuda":
        torch.cuda.empty_cache()  # the engine's trials and tasks get the whole GPU

    if args.results is not None:
        results = str(Path(args.results).resolve())
        if Path(results).exists() and any(Path(results).iterdir()):
            raise SystemExit(f"bench/e2e.py: --results {results} is not empty; the stages must start from nothing")
    else:
        results = tempfile.mkdtemp(prefix="memloc-e2e-")
    try:
        total = time.perf_counter()
        stages = stages_with_ray(grid, results, args, device) if ray_mode else \
            stages_in_process(grid, results, device, args.compile)
        report_stage(stages, results, device)
        total = time.perf_counter() - total
        print_figures(grid, stages, total, plain, parts, results, args)
    finally:
        if args.results is None:
            shutil.rmtree(results, ignore_errors=True)
    return 0


def print_figures(grid: Grid, stages: list[Stage], total: float, plain: Plain, parts: dict[str, float],
                  results: str, args: argparse.Namespace) -> None:
    import pandas as pd

    print(f"{'stage':<16} {'did':>10} {'wall s':>9}")
    for stage in stages:
        print(f"{stage.name:<16} {stage.units:>10} {stage.seconds:9.1f}")
    print(f"{'total':<16} {'':>10} {total:9.1f}")
    print(f"plain hand-written {args.arch} loop ({plain.params:,} parameters, eager): "
          f"{plain.seconds_per_epoch / plain.steps_per_epoch * 1e3:.1f} ms/step at batch {args.batch_size}, "
          f"{plain.seconds_per_epoch:.2f} s/epoch ({plain.steps_per_epoch} steps; mean of {plain.epochs} timed "
          f"epoch(s)); test accuracy after them {plain.test_acc:.3f}")
    base = plain.seconds_per_epoch
    print(f"engine Trainer, {grid.runs[0].variant} run, in this process: " + ", ".join(
        f"{name} {sec:.2f} s/epoch ({sec / base:.2f}x)" for name, sec in parts.items())
        + " (x: the plain epoch)")
    epochs = pd.read_parquet(f"{results}/epochs")
    runs = pd.read_parquet(f"{results}/runs")
    for variant in dict.fromkeys(c.variant for c in grid.runs):
        mine = epochs[epochs["variant"] == variant]
        per_epoch = float(mine["seconds"].median())
        run = runs[runs["variant"] == variant]
        whole = float((run["seconds"] / run["epochs"]).mean())
        print(f"engine training, {variant:>8}: {per_epoch:.2f} s/epoch (median; steps with gradient accounting + "
              f"evaluation) = {per_epoch / plain.seconds_per_epoch:.2f}x the plain epoch; whole run {whole:.2f} "
              f"s/epoch (data, checkpoints, tables too) = {whole / plain.seconds_per_epoch:.2f}x")
    trainings = next(s for s in stages if s.name == "trainings")
    n_epochs = sum(cfg.epochs for cfg in grid.runs)
    print(f"trainings stage: {trainings.seconds:.1f}s for {n_epochs} epochs = "
          f"{trainings.seconds / (n_epochs * plain.seconds_per_epoch):.2f}x the plain loop running the same epochs "
          f"one after another")
    last = epochs.sort_values("epoch").groupby("run_id").tail(1)
    for row in last.itertuples():
        print(f"  {row.variant:>8} final epoch: clean {row.clean_acc:.3f}  noisy (memorized) {row.noisy_acc:.3f}  "
              f"test {row.test_acc:.3f}")
    if args.results is not None:
        print(f"results kept in {results}")


if __name__ == "__main__":
    sys.exit(main())
