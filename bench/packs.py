"""Throughput of a pack of subset models (sweep/packs.py) against the same models trained one after another.

For each K: the K subset models of one config trained at once as one vmapped pack, then the same K models
trained one by one with the plain loop (sweep/packs_reference.py: one nn.Module, torch.optim.SGD), on the
same data, epochs and device. Printed: models per second of each and their ratio (pack / one by one). Only
training steps are timed (the pack's final evaluation is left out, as the plain loop has none). The issue's
baseline is one model per process; one model after another in one process is that without the start-up.

    python bench/packs.py                                        # digits MLP on the CPU, K = 1, 8, 32
    python bench/packs.py --arch resnet9 --width 0.25 --dataset synthetic --k 1,8
    python bench/packs.py --device cuda --arch resnet9 --width 1 --dataset synthetic --train-size 10000
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runs from a fresh clone, from any directory

from sweep.config import RunConfig  # noqa: E402
from sweep.data import load_dataset, make_synthetic  # noqa: E402
from sweep.packs import PackTrainer  # noqa: E402
from sweep.packs_reference import train_one  # noqa: E402
from sweep.train import Prepared, prepare  # noqa: E402


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def pack_seconds(cfg: RunConfig, prep: Prepared, device: torch.device) -> float:
    """Seconds to build and train the pack for cfg.epochs epochs (its schedule is one epoch longer, so the
    evaluation the pack runs after its last epoch is not timed)."""
    sync(device)
    start = time.perf_counter()
    trainer = PackTrainer(replace(cfg, epochs=cfg.epochs + 1), prep, device)
    while trainer.epoch < cfg.epochs:
        trainer.train_epoch()
    sync(device)
    return time.perf_counter() - start


def one_by_one_seconds(cfg: RunConfig, prep: Prepared, device: torch.device) -> float:
    sync(device)
    start = time.perf_counter()
    for j in cfg.models:
        train_one(cfg, prep, j, device)
    sync(device)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--arch", default="mlp", choices=("mlp", "resnet9"))
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--dataset", default="digits", choices=("digits", "synthetic"))
    parser.add_argument("--k", default="1,8,32", help="pack sizes, comma-separated (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch", type=int, default=None, help="default 128 for digits, 512 for synthetic")
    parser.add_argument("--train-size", type=int, default=2048, help="synthetic training images (default: %(default)s)")
    args = parser.parse_args()
    device = torch.device(args.device)
    ks = [int(k) for k in args.k.split(",")]
    if min(ks) < 1:
        parser.error("--k takes positive pack sizes, e.g. 1,8,32")
    data = load_dataset("digits") if args.dataset == "digits" else make_synthetic(args.train_size, 256)
    batch = args.batch or (128 if args.dataset == "digits" else 512)
    base = RunConfig(dataset=args.dataset, arch=args.arch, width=args.width, epochs=args.epochs, batch_size=batch)
    prep = prepare(base, device, data=data)
    warm = replace(base, epochs=1, subsets=2, pack=1).validate()
    pack_seconds(warm, prep, device)  # warm-up: kernels, allocator, vmap's first trace
    one_by_one_seconds(warm, prep, device)
    print(f"{args.arch} width {args.width} on {args.dataset} ({len(prep.labels)} training examples, subsets of "
          f"{base.subset_fraction:g}), batch {batch}, {args.epochs} epochs, {device}:")
    for k in ks:
        cfg = replace(base, subsets=max(k, 2), pack=k).validate()
        packed = pack_seconds(cfg, prep, device)
        plain = one_by_one_seconds(cfg, prep, device)
        print(f"K={k:3d}: pack {k / packed:7.2f} models/s ({packed:.1f} s), one after another {k / plain:7.2f} "
              f"models/s ({plain:.1f} s); ratio {plain / packed:.2f}x", flush=True)


if __name__ == "__main__":
    main()
