"""Rewound-model evaluations per second: the rewind probe's engine versus a plain one-model-at-a-time loop.

Engine (what `sweep.probes.rewind` does per Ray task): one model per layer group, that group's tensors copied
in place per rewind epoch, the device-resident splits evaluated in large index-slice batches.
Baseline (the usual way): per rewound model a fresh model, `load_state_dict` of the assembled state, and a
`DataLoader` over a CPU `TensorDataset` with batch size 128 for the training and the test split.

Both evaluate every (group, checkpoint epoch) of one run: a width-0.25 ResNet-9 trained on digits with 10%
label noise for a few epochs (real checkpoints, so the accuracies compared are not chance level). Both must
give the same accuracies; on CUDA the engine runs in bf16 and the baseline in fp32, so a few examples may
differ there. On a CPU both are mostly convolution arithmetic, so the gap is the per-model overhead (building,
loading, small batches); on a GPU, where a 128-example batch leaves the device idle, the gap is much larger.

    .venv/bin/python bench/rewind.py [--device cpu|cuda] [--epochs 3] [--threads N] [--dataset digits]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sweep.config import RunConfig  # noqa: E402
from sweep.models.groups import group_state_keys  # noqa: E402
from sweep.probes import RunData  # noqa: E402
from sweep.probes.rewind import group_names, rewind_group, rewound_state  # noqa: E402
from sweep.train import pick_device, train_in_memory  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def engine(run: RunData) -> tuple[float, dict[tuple[str, int], tuple[float, float, float]]]:
    """Seconds for every (group, epoch) through the probe itself, and its accuracies."""
    _sync(run.device)
    start = time.perf_counter()
    frames = [rewind_group(run, group, run.epochs) for group in group_names(run.cfg)]
    _sync(run.device)
    seconds = time.perf_counter() - start
    accs = {(r.layer_name, r.rewind_epoch): (r.clean_acc, r.noisy_acc, r.test_acc)
            for frame in frames for r in frame.itertuples()}
    return seconds, accs


def _correct(model: torch.nn.Module, loader: DataLoader, device: torch.device,
             with_ids: bool) -> torch.Tensor:
    flags = []
    with torch.no_grad():
        for x, y, ids in loader:
            logits = model(x.to(device), ids=ids.to(device) if with_ids else None)
            flags.append((logits.argmax(1) == y.to(device)).cpu())
    return torch.cat(flags)


def baseline(run: RunData) -> tuple[float, dict[tuple[str, int], tuple[float, float, float]]]:
    """Seconds for every (group, epoch) the plain way, and its accuracies."""
    data = run.data
    train = TensorDataset(data.train.x.cpu(), run.labels.cpu(), torch.arange(len(run.labels)))
    test = TensorDataset(data.test.x.cpu(), data.test.y.cpu(), torch.arange(len(data.test.y)))
    noisy = run.is_noisy.cpu()
    final = run.state(run.final_epoch)
    accs = {}
    _sync(run.device)
    start = time.perf_counter()
    for group in group_names(run.cfg):
        for epoch in run.epochs:
            model = run.build_model()
            model.load_state_dict(rewound_state(final, run.state(epoch), group_state_keys(model, group, buffers=False)))
            model.eval()
            train_ok = _correct(model, DataLoader(train, batch_size=128), run.device, with_ids=True)
            test_ok = _correct(model, DataLoader(test, batch_size=128), run.device, with_ids=False)
            accs[(group, epoch)] = (train_ok[~noisy].float().mean().item(),
                                    train_ok[noisy].float().mean().item(), test_ok.float().mean().item())
    _sync(run.device)
    return time.perf_counter() - start, accs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto (cuda when available, else cpu), cpu, cuda")
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--arch", default="resnet9")
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--epochs", type=int, default=3, help="training epochs (checkpoints 0..epochs)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's; 1 is faster on a shared, busy machine)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    batch = 128 if args.dataset == "digits" else 512
    cfg = RunConfig(dataset=args.dataset, arch=args.arch, width=args.width, noise=0.1, epochs=args.epochs,
                    batch_size=batch)
    start = time.perf_counter()
    run = train_in_memory(cfg, device)
    for epoch in run.epochs:
        run.state(epoch)  # both sides start with every checkpoint already on the device
    print(f"trained {cfg.arch} width {cfg.width} on {cfg.dataset} for {cfg.epochs} epochs on {device} "
          f"in {time.perf_counter() - start:.1f}s; n_train={len(run.labels)} n_test={len(run.data.test.y)}; "
          f"{torch.get_num_threads()} CPU threads")
    rewind_group(run, group_names(cfg)[0], run.epochs[:1])  # warm-up: first-call allocations, not measured
    t_engine, a_engine = engine(run)
    t_base, a_base = baseline(run)
    n = len(a_engine)
    assert a_engine.keys() == a_base.keys()
    diff = max(abs(x - y) for key in a_engine for x, y in zip(a_engine[key], a_base[key], strict=True))
    rate_engine, rate_base = n / t_engine, n / t_base
    print(f"rewound models: {n} ({len(group_names(cfg))} groups x {len(run.epochs)} checkpoints)")
    print(f"engine   (in-place group swap, batched eval): {rate_engine:8.1f} models/s  ({t_engine:.2f}s)")
    print(f"baseline (fresh model + DataLoader, bs 128)  : {rate_base:8.1f} models/s  ({t_base:.2f}s)")
    print(f"speed-up: {rate_engine / rate_base:.1f}x")
    print(f"max accuracy difference engine vs baseline: {diff:.6f}")
    tolerance = 0.01 if device.type == "cuda" else 1e-9
    if diff > tolerance:
        print(f"MISMATCH: accuracies differ by more than {tolerance}", file=sys.stderr)
        return 1
    print("accuracies agree" + (" (exactly)" if diff == 0 else f" (within {tolerance}, bf16 vs fp32)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
