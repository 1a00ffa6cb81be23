"""Throughput of a ResNet-9 training step at 3x32x32: plain versus with gradient accounting, in one run.

Evidence for the claim in sweep/train.py that accounting costs one extra backward pass and nothing else (no
per-batch host copies): the ratio printed here. Goal: at most 1.7x a plain step. The paper's code used three
backward passes and copied every gradient to the host each batch.

    python bench/train.py                    # CPU here: width 0.25, a few steps
    python bench/train.py --device cuda --width 1 --steps 50
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runs from a fresh clone, from any directory

from sweep.config import RunConfig  # noqa: E402
from sweep.data import Dataset, Split  # noqa: E402
from sweep.train import Prepared, Trainer  # noqa: E402


def synthetic(n: int, device: torch.device) -> Prepared:
    """CIFAR-shaped random data with 10% of examples flagged noisy: timing does not depend on pixel values."""
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(n, 3, 32, 32, generator=gen), torch.randint(0, 10, (n,), generator=gen)
    data = Dataset("synthetic", Split(x, y), Split(x[:512], y[:512]), 10, (3, 32, 32)).to(device)
    is_noisy = torch.zeros(n, dtype=torch.bool)
    is_noisy[torch.randperm(n, generator=gen)[: n // 10]] = True
    return Prepared(data, data.train.y, data.train.y, is_noisy.to(device), torch.arange(n, device=device))


def images_per_second(trainer: Trainer, batch: int, steps: int, account: bool) -> float:
    n = len(trainer.prep.labels)
    sums = ([torch.zeros_like(p) for p in trainer.params], [torch.zeros_like(p) for p in trainer.params])
    order = torch.randperm(n, device=trainer.device)

    def run(k: int) -> None:
        for i in range(k):
            idx = order[(i * batch) % (n - batch):][:batch]
            trainer.step(idx, 0.01, sums if account else None)

    run(2)  # warm-up: allocator, kernels, autocast caches
    if trainer.cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    run(steps)
    if trainer.cuda:
        torch.cuda.synchronize()
    return steps * batch / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--width", type=float, default=None, help="default 1 on GPU, 0.25 on CPU")
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--steps", type=int, default=None, help="default 50 on GPU, 6 on CPU")
    parser.add_argument("--arch", default="resnet9")
    args = parser.parse_args()
    device = torch.device(args.device)
    gpu = device.type == "cuda"
    width = args.width or (1.0 if gpu else 0.25)
    steps = args.steps or (50 if gpu else 6)
    cfg = RunConfig(dataset="cifar10", arch=args.arch, width=width, batch_size=args.batch, epochs=1)
    trainer = Trainer(cfg, synthetic(args.batch * 8, device), device)
    plain, accounted = [], []
    for _ in range(3):  # interleave to share any drift in machine load between the two
        plain.append(images_per_second(trainer, args.batch, steps, account=False))
        accounted.append(images_per_second(trainer, args.batch, steps, account=True))
    p, a = max(plain), max(accounted)
    print(f"{args.arch} width {width} batch {args.batch} on {device}: plain {p:,.0f} img/s, "
          f"with gradient accounting {a:,.0f} img/s; accounting costs {p / a:.2f}x a plain step (goal <= 1.7x)")
    print("accounting = one extra backward per batch (needed: BatchNorm couples the batch's examples) plus two "
          "on-device gradient sums. Only vit here has no BatchNorm (its LayerNorm is per-example), so only it could "
          "take the clean part from the same backward via per-example weight gradients; this code does not.")


if __name__ == "__main__":
    main()
