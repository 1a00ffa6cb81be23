"""What loss curvature and the training-pass signals cost: one demo training with and without, in one run.

Trains the `demo` grid's standard MLP (digits, batch 256, 60 epochs) or ResNet-9 (width 0.25, batch 128,
20 epochs) through the engine's own path (sweep.train.execute_run, checkpoints included) twice: curvature off,
then with the grid's curvature settings (or those given). Prints both wall times, their ratio (goal: <= 1.10),
and the runs table's `curvature_seconds` and `dynamics_seconds`. Then times the batched curvature estimator
against a one-example-at-a-time loop over the same examples and directions (same values: tests/test_dynamics.py).

    python bench/curvature.py --arch mlp
    python bench/curvature.py --arch resnet9 --every 20 --directions 2
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runs from a fresh clone, from any directory

from sweep.curvature import model_curvature  # noqa: E402
from sweep.data import load_dataset  # noqa: E402
from sweep.grids import load_grid  # noqa: E402
from sweep.store import Store  # noqa: E402
from sweep.train import Trainer, execute_run, prepare  # noqa: E402


def demo_run(arch: str):  # noqa: ANN201 - a RunConfig
    """The demo grid's seed-0 standard run of `arch` (with the grid's curvature settings)."""
    return next(c for c in load_grid("demo").runs
                if c.arch == arch and c.variant == "standard" and c.seed == 0 and not c.auxiliary)


def train_seconds(cfg, device: torch.device, data) -> dict:  # noqa: ANN001 - RunConfig, Dataset
    with tempfile.TemporaryDirectory() as root:
        start = time.perf_counter()
        row = execute_run(cfg, Store(root), device, data=data)
        return {**row, "wall": time.perf_counter() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="mlp", choices=("mlp", "resnet9"))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--every", type=int, default=None, help="curvature_every (default: the demo grid's)")
    parser.add_argument("--directions", type=int, default=None, help="curvature_directions (default: the grid's)")
    parser.add_argument("--loop-examples", type=int, default=32, help="examples for the batched-vs-loop timing")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    on = demo_run(args.arch)
    on = replace(on, curvature_every=args.every or on.curvature_every,
                 curvature_directions=args.directions or on.curvature_directions).validate()
    off = replace(on, curvature_every=0).validate()
    data = load_dataset(on.dataset, "data")
    curved, plain = train_seconds(on, device, data), train_seconds(off, device, data)
    print(f"{on.arch} width {on.width} {on.epochs} epochs on {device}: curvature off {plain['wall']:.1f} s, on "
          f"(every {on.curvature_every}, {on.curvature_directions} directions, h {on.curvature_h:g}) "
          f"{curved['wall']:.1f} s: x{curved['wall'] / plain['wall']:.3f} (goal <= 1.10); curvature_seconds "
          f"{curved['curvature_seconds']:.2f} s, dynamics_seconds {plain['dynamics_seconds']:.3f} s of "
          f"{plain['seconds']:.1f} s")

    prep = prepare(on, device, data=data)
    model = Trainer(on, prep, device).model  # freshly initialised: the timing does not depend on the weights
    k = args.loop_examples
    x, y, ids = prep.data.train.x[:k], prep.labels[:k], torch.arange(k, device=device)

    def timed(fn) -> float:  # noqa: ANN001
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    def batched() -> None:
        model_curvature(model, x, y, ids, on.curvature_directions, on.curvature_h,
                        torch.Generator(device=device).manual_seed(0))

    def loop() -> None:
        for i in range(k):
            model_curvature(model, x[i:i + 1], y[i:i + 1], ids[i:i + 1], on.curvature_directions, on.curvature_h,
                            torch.Generator(device=device).manual_seed(i))

    batched()  # warm-up
    fast, slow = timed(batched), timed(loop)
    print(f"curvature of {k} examples: batched {fast * 1e3:.1f} ms, one example at a time {slow * 1e3:.1f} ms "
          f"(x{slow / fast:.1f})")


if __name__ == "__main__":
    main()
