"""Benchmark: training throughput of ResNet-9 with example-tied dropout against the same model without it.

One SGD step = forward + backward + optimizer step on a batch of 512 random 3x32x32 images, as the trainer
does it (bf16 autocast and channels_last on CUDA, ids passed to the model). Both models are timed in the
same process: every round times both back to back, and the figure is the median over rounds of the
per-round ratio, which is robust to other work on a shared machine. Goal: example-tied at most 1.15x
slower. The per-batch masks are computed from the ids by a hash on the device, so the cost measured is
the whole cost: mask computation plus one extra multiply over each block's activations, forward and backward.

    python bench/dropout.py                    # CPU default: width 0.25, < 1 minute
    python bench/dropout.py --device cuda --width 1 --steps 50
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runs from a fresh clone, from any directory

from sweep.config import RunConfig  # noqa: E402
from sweep.dropout import make_dropout  # noqa: E402
from sweep.models import build_model  # noqa: E402


def build(width: float, tied: bool, device: torch.device) -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    factory = make_dropout(RunConfig(arch="resnet9", variant="tied")) if tied else None
    model = build_model("resnet9", (3, 32, 32), 10, width=width, dropout=factory).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    return model.train(), opt


def step_time(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
              ids: torch.Tensor, steps: int) -> float:
    """Mean seconds per training step over `steps` steps (row i of x is the example with id ids[i]),
    synchronised at the ends only, as the trainer's loop runs."""
    device = x.device
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    batch = len(ids) // steps
    sync()
    start = time.perf_counter()
    for s in range(steps):
        rows = slice(s * batch, (s + 1) * batch)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            logits = model(x[rows], ids=ids[rows])
        loss = F.cross_entropy(logits.float(), y[rows])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    sync()
    return (time.perf_counter() - start) / steps


def keep_freed_memory() -> bool:
    """Ask glibc (mallopt) to keep freed memory instead of returning it to the OS; False if not glibc.

    By default glibc serves every block above 32 MB-ish (the dynamic mmap threshold) with a fresh mmap and
    unmaps it on free, so each large activation costs page faults on the CPU. Those faults grow with the
    number of activation-sized tensors per step, which is what an extra elementwise layer adds; with the
    memory kept, the comparison shows the layer's own cost. Returns whether it applied.
    """
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3
        return all(libc.mallopt(option, value) == 1 for option, value in (
            (m_mmap_threshold, 32 * 2**20), (m_trim_threshold, 2**31 - 1), (m_top_pad, 2**30)))
    except (OSError, AttributeError):
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--width", type=float, default=None, help="ResNet-9 width (default 0.25 CPU, 1 CUDA)")
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--steps", type=int, default=None, help="steps per round (default 2 CPU, 20 CUDA)")
    parser.add_argument("--rounds", type=int, default=None, help="timed rounds (default 11 CPU, 5 CUDA)")
    parser.add_argument("--keep-freed-memory", action="store_true",
                        help="CPU: stop glibc from unmapping freed activations (see keep_freed_memory)")
    args = parser.parse_args(argv)
    kept = args.keep_freed_memory and keep_freed_memory()
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    width = args.width if args.width is not None else (1.0 if cuda else 0.25)
    steps = args.steps or (20 if cuda else 2)
    rounds = args.rounds or (5 if cuda else 11)

    n = args.batch * steps
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, 32, 32, generator=gen).to(device)
    if cuda:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (n,), generator=gen).to(device)
    # Ids of a large dataset (SVHN-sized), in shuffled order as a training epoch sees them.
    ids = torch.randperm(73_257, generator=gen)[:n].to(device)

    models = {"plain": build(width, False, device), "tied": build(width, True, device)}
    for name in models:  # warm-up (allocator, cudnn autotuning)
        step_time(*models[name], x, y, ids, steps)
    times: dict[str, list[float]] = {name: [] for name in models}
    ratios = []
    for r in range(rounds):
        # Each round times both models back to back, in alternating order, so a change in machine load
        # between rounds moves both times alike and cancels in that round's ratio.
        for name in (("plain", "tied") if r % 2 == 0 else ("tied", "plain")):
            times[name].append(step_time(*models[name], x, y, ids, steps))
        ratios.append(times["tied"][-1] / times["plain"][-1])

    print(f"device {device}, resnet9 width {width}, batch {args.batch}, {steps} steps x {rounds} rounds"
          f"{', glibc keeps freed memory' if kept else ''}")
    for name, label in (("plain", "without dropout:     "), ("tied", "example-tied dropout:")):
        median = statistics.median(times[name])
        print(f"{label} {args.batch / median:9.1f} images/s  (median {median * 1e3:.1f} ms/step, "
              f"best {min(times[name]) * 1e3:.1f})")
    print(f"slowdown: {statistics.median(ratios):.3f}x (median of per-round ratios; "
          f"range {min(ratios):.3f}-{max(ratios):.3f}; goal <= 1.15x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
