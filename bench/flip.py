"""Benchmark: neuron flipping, batched engine vs the plain one-example-at-a-time loop, in one run.

    .venv/bin/python bench/flip.py                      # width-0.25 ResNet-9 on digits, CPU
    .venv/bin/python bench/flip.py --device cuda --dataset-shape 3x32x32 --width 1 --examples 2000
    .venv/bin/python bench/flip.py --units paper --examples 200   # the paper code's units (flip_units)

`digits` trains the model briefly (10% label noise) and flips clean and noisy examples the model predicts as
their training label, exactly as the probe selects them; both engines run on all of them. A `CxHxW` shape
instead trains on a synthetic dataset of that shape (random class prototypes plus noise, 10% label noise),
so a full-width CIFAR-shaped ResNet-9 can be timed without the dataset on disk; there the plain loop runs on
a small subset (--plain-examples) and its time for all examples is an extrapolation, printed as such.
Units chosen by both engines are compared on the examples both ran.
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
from sweep.data import Dataset, Split  # noqa: E402
from sweep.probes.evaluate import prepare_model  # noqa: E402
from sweep.probes.flip import (  # noqa: E402
    FlipOutcome,
    chunk_order,
    flip_batched,
    population_ids,
    select_targets,
)
from sweep.probes.flip_reference import flip_plain  # noqa: E402
from sweep.train import train_in_memory  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device: torch.device) -> tuple[object, float]:  # noqa: ANN001 - any zero-argument callable
    _sync(device)
    start = time.perf_counter()
    out = fn()
    _sync(device)
    return out, time.perf_counter() - start


def synthetic_dataset(shape: tuple[int, int, int], n_train: int, seed: int) -> Dataset:
    """Random class prototypes plus unit Gaussian noise, `shape`-sized: learnable classes, memorisable noise.

    (A random-initialised network is no stand-in: it predicts one class for every input, so the objective
    mean_P loss - loss_k is degenerate and flips take anywhere from 2 to hundreds of units.)
    """
    gen = torch.Generator().manual_seed(seed)
    protos = torch.randn(10, *shape, generator=gen)

    def split(n: int) -> Split:
        y = torch.randint(0, 10, (n,), generator=gen)
        return Split(0.5 * protos[y] + torch.randn(n, *shape, generator=gen), y)

    return Dataset("cifar10", split(n_train), split(n_train // 5), 10, shape)


def trained_problem(args: argparse.Namespace, device: torch.device):  # noqa: ANN201 - (model, x, y, pop_x, pop_y)
    """Train briefly (10% label noise) and select clean and noisy targets exactly as the probe does."""
    digits = args.dataset_shape == "digits"
    if digits:
        cfg_data, data = "digits", None
    else:
        shape = tuple(int(v) for v in args.dataset_shape.split("x"))
        if len(shape) != 3:
            raise SystemExit(f"--dataset-shape must be digits or CxHxW, got {args.dataset_shape!r}")
        cfg_data, data = "cifar10", synthetic_dataset(shape, args.train_size, args.seed)
    cfg = RunConfig(dataset=cfg_data, arch="resnet9", width=args.width, noise=0.1, epochs=args.epochs,
                    batch_size=256 if digits else 512, seed=args.seed)
    (run, seconds) = _timed(lambda: train_in_memory(cfg, device, data=data), device)
    model = prepare_model(run.model_at(run.final_epoch))
    half = args.examples // 2
    sel = chunk_order(select_targets(model, run, args.examples - half, half, args.seed), run.labels)
    where = "digits" if digits else f"synthetic {args.dataset_shape}"
    print(f"trained resnet9 width {cfg.width} on {where} ({len(run.labels)} examples) for {cfg.epochs} "
          f"epochs in {seconds:.1f}s; eligible clean {sel.n_eligible_clean}, noisy {sel.n_eligible_noisy}; "
          f"flipping {int((~sel.is_noisy).sum())} clean + {int(sel.is_noisy.sum())} noisy")
    ids = sel.ids.to(device)
    pop = population_ids(len(run.labels), args.population, args.seed).to(device)
    train = run.data.train
    return model, train.x[ids], run.labels[ids], train.x[pop], run.labels[pop]


def attribution_steps(outcomes: list[FlipOutcome]) -> tuple[int, int]:
    """(attribution steps the plain loop takes, distinct removed-unit sets those steps start from).

    Each step needs the population term under the target's current edit, and two targets can share it only
    when their removed sets are equal: the ratio bounds, in population passes, what any exact engine can
    save over the plain loop on these targets, even with one cache across every chunk.
    """
    sets = {frozenset(o.units[:k]) for o in outcomes for k in range(len(o.units))}
    return sum(len(o.units) for o in outcomes), len(sets)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--examples", type=int, default=2000,
                        help="targets, half clean, half noisy (fewer when fewer are eligible)")
    parser.add_argument("--dataset-shape", default="digits", help="digits, or CxHxW for synthetic data")
    parser.add_argument("--epochs", type=int, default=20, help="training epochs")
    parser.add_argument("--train-size", type=int, default=10_000, help="training examples (synthetic shapes)")
    parser.add_argument("--population", type=int, default=512)
    parser.add_argument("--cap", type=int, default=1000)
    parser.add_argument("--chunk", type=int, default=AnalysisConfig.flip_chunk,
                        help="targets per batched call (the probe's flip_chunk)")
    parser.add_argument("--plain-examples", type=int, default=None,
                        help="examples for the plain loop (default: all on digits, 10 otherwise)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--units", choices=("outputs", "paper"), default="outputs",
                        help="the unit rule (the probe's flip_units)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    digits = args.dataset_shape == "digits"
    model, x, y, pop_x, pop_y = trained_problem(args, device)
    n = len(x)
    n_plain = min(n, args.plain_examples if args.plain_examples is not None else (n if digits else 10))

    def batched() -> list[FlipOutcome]:
        out: list[FlipOutcome] = []
        for s in range(0, n, args.chunk):
            out += flip_batched(model, x[s:s + args.chunk], y[s:s + args.chunk], pop_x, pop_y, args.cap,
                                rule=args.units)
        return out

    fast, t_fast = _timed(batched, device)
    pick = torch.arange(n)[::max(1, n // n_plain)][:n_plain]  # spread over labels: the targets are label-sorted
    plain, t_plain = _timed(lambda: flip_plain(model, x[pick], y[pick], pop_x, pop_y, args.cap, rule=args.units),
                            device)
    rate_fast, rate_plain = n / t_fast, n_plain / t_plain
    same = sum(fast[i].units == b.units and fast[i].flipped == b.flipped
               for i, b in zip(pick.tolist(), plain, strict=True))
    units = [len(o.units) for o in fast]
    steps, nodes = attribution_steps(fast)
    print(f"device {device}, units {args.units}, population {len(pop_x)}, cap {args.cap}, chunk {args.chunk}")
    print(f"units to flip: median {statistics.median(units):g}, max {max(units)}, "
          f"not flipped {sum(not o.flipped for o in fast)}")
    print(f"batched: {n} examples in {t_fast:.2f}s = {rate_fast:.1f} examples/s")
    label = "" if n_plain == n else f" (time for all {n} extrapolated: {n / rate_plain:.1f}s)"
    print(f"plain:   {n_plain} examples in {t_plain:.2f}s = {rate_plain:.2f} examples/s{label}")
    print(f"speed-up: {rate_fast / rate_plain:.1f}x")
    print(f"sharing bound: {steps} attribution steps over {nodes} distinct removed-unit sets = "
          f"{steps / nodes:.2f}x fewer population passes than the plain loop, at most, for any exact engine")
    print(f"identical units on the {n_plain} examples both ran: {same}/{n_plain} "
          f"{'OK' if same == n_plain else 'MISMATCH'}")
    return 0 if same == n_plain else 1


if __name__ == "__main__":
    raise SystemExit(main())
