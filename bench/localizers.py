"""Benchmark: cost per target of every localizer against `greedy`, measured in the same run.

    .venv/bin/python bench/localizers.py                          # digits MLP + width-0.125 ResNet-9, CPU
    .venv/bin/python bench/localizers.py --device cuda --targets 200 --arch resnet9 --width 0.5
    .venv/bin/python bench/localizers.py --quick                  # a few targets, 2 epochs: a smoke run

Each model is trained briefly on `digits` (10% label noise); targets are clean and noisy examples it predicts as
their training label, half and half, chosen as the flip probe chooses them, with the probe's population sample.
Every localizer ranks the same targets to `--k` units under the default [analysis] settings (ig_steps,
slimming_*, hard_concrete_*), in one call for all targets (the batched path the localization probe uses).
Printed per model: seconds per target of each localizer and its ratio to greedy's seconds per target in this
run; greedy's median flip point on these targets says how far its search went before k.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sweep.config import AnalysisConfig, RunConfig  # noqa: E402
from sweep.localizers import LOCALIZERS, Problem, localize  # noqa: E402
from sweep.probes.evaluate import prepare_model  # noqa: E402
from sweep.probes.flip import population_ids, select_targets  # noqa: E402
from sweep.train import train_in_memory  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def problem_for(arch: str, width: float, args: argparse.Namespace, device: torch.device) -> Problem:
    cfg = RunConfig(dataset="digits", arch=arch, width=width, noise=0.1, epochs=args.epochs, batch_size=256,
                    seed=args.seed)
    start = time.perf_counter()
    run = train_in_memory(cfg, device)
    model = prepare_model(run.model_at(run.final_epoch))
    half = args.targets // 2
    sel = select_targets(model, run, args.targets - half, half, args.seed)
    pop = population_ids(len(run.labels), args.population, args.seed).to(device)
    ids = sel.ids.to(device)
    x = run.data.train.x
    print(f"\n{arch} width {width}: trained {cfg.epochs} epochs in {time.perf_counter() - start:.1f}s; "
          f"{len(ids)} targets ({int(sel.is_noisy.sum())} noisy), population {len(pop)}, k {args.k}")
    return Problem(model=model, x=x[ids], y=run.labels[ids], ids=ids, pop_x=x[pop], pop_y=run.labels[pop],
                   pop_ids=pop, k_max=args.k, seed=args.seed)


def bench(problem: Problem, analysis: AnalysisConfig, device: torch.device) -> None:
    seconds: dict[str, float] = {}
    flips: list[int] = []
    for name in ("greedy", *sorted(set(LOCALIZERS) - {"greedy"})):
        _sync(device)
        start = time.perf_counter()
        rankings = localize(name, problem, analysis)
        _sync(device)
        seconds[name] = (time.perf_counter() - start) / len(problem.x)
        if name == "greedy":
            flips = [r.flip_k for r in rankings if r.flip_k is not None]
    median = statistics.median(flips) if flips else float("nan")
    print(f"greedy flipped {len(flips)}/{len(problem.x)} targets within k, median flip point {median:g} units")
    print(f"{'localizer':22s} {'s/target':>10s} {'x greedy':>9s}")
    for name, value in seconds.items():
        print(f"{name:22s} {value:10.4f} {value / seconds['greedy']:9.3f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--arch", choices=("both", "mlp", "resnet9"), default="both")
    parser.add_argument("--width", type=float, default=None,
                        help="model width (default: 0.25 for the MLP, 0.125 for ResNet-9)")
    parser.add_argument("--targets", type=int, default=40, help="targets, half clean, half noisy")
    parser.add_argument("--population", type=int, default=AnalysisConfig.flip_population)
    parser.add_argument("--k", type=int, default=20, help="ranking length (units)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="4 targets, 2 epochs, k 5, short optimisations")
    args = parser.parse_args(argv)
    analysis = AnalysisConfig()
    if args.quick:
        args.targets, args.epochs, args.k = 4, 2, 5
        analysis = AnalysisConfig(ig_steps=4, slimming_steps=5, hard_concrete_steps=5)
    device = torch.device(args.device)
    print(f"device {device}; ig_steps {analysis.ig_steps}, slimming {analysis.slimming_steps} steps, "
          f"hard_concrete {analysis.hard_concrete_steps} steps")
    archs = ("mlp", "resnet9") if args.arch == "both" else (args.arch,)
    for arch in archs:
        width = args.width if args.width is not None else (0.25 if arch == "mlp" else 0.125)
        bench(problem_for(arch, width, args, device), analysis, device)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
