"""Benchmark: the localization probe on one in-memory digits run, against the flip probe on the same targets.

    .venv/bin/python bench/localize_probe.py                         # demo's tied MLP (60 epochs) and settings
    .venv/bin/python bench/localize_probe.py --arch resnet9 --width 0.25 --variant standard --epochs 20
    .venv/bin/python bench/localize_probe.py --grid smoke --epochs 20

Trains the run in memory (10% label noise, seed 0), runs every shard of the `localize` probe under the grid's
[analysis] settings, and the `flip` probe on the same clean + noisy targets (flip_clean/noisy = localize_clean/
noisy, flip_cap = localize_cap): the ratio is what the whole benchmark costs against greedy flipping alone.
Then per truth, mode and localizer: precision@5 against chance, median units to flip, the share of targets
flipped within the cap, and the localizer's seconds per target.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sweep.config import RunConfig  # noqa: E402
from sweep.grids import load_grid  # noqa: E402
from sweep.probes.flip import flip_shards, run_flip  # noqa: E402
from sweep.probes.localize import localize_shards, run_localize  # noqa: E402
from sweep.train import train_in_memory  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--grid", default="demo", help="built-in grid whose [analysis] settings to use")
    p.add_argument("--arch", default="mlp")
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--variant", default="tied", choices=("tied", "standard"))
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--batch-size", type=int, default=256)
    args = p.parse_args()

    analysis = load_grid(args.grid).analysis
    cfg = RunConfig(dataset="digits", arch=args.arch, width=args.width, variant=args.variant, noise=0.1, seed=0,
                    epochs=args.epochs, batch_size=args.batch_size, lr=0.1).validate()
    start = time.perf_counter()
    run = train_in_memory(cfg)
    print(f"trained {cfg.arch} width {cfg.width} {cfg.variant} in {time.perf_counter() - start:.1f} s")

    start = time.perf_counter()
    tables = [run_localize(run, shard, analysis) for shard in localize_shards(cfg, analysis)]
    probe_s = time.perf_counter() - start
    flip_analysis = dataclasses.replace(analysis, flip_clean=analysis.localize_clean,
                                        flip_noisy=analysis.localize_noisy, flip_cap=analysis.localize_cap,
                                        flip_chunk=analysis.localize_chunk)
    start = time.perf_counter()
    # the flip probe (registered for standard runs) runs on a tied model too, in its plain forward (mode all)
    for shard in flip_shards(cfg, flip_analysis):
        run_flip(run, shard, flip_analysis)
    flip_s = time.perf_counter() - start
    targets = analysis.localize_clean + analysis.localize_noisy
    print(f"localize probe: {probe_s:.1f} s for {targets} targets x {len(analysis.localizers)} localizers "
          f"(+ {analysis.inject_targets} injected on standard runs)")
    print(f"flip probe on as many targets (same cap): {flip_s:.1f} s; ratio localize / flip = "
          f"{probe_s / flip_s:.1f}x")
    lo = pd.concat([t["localize"] for t in tables])
    pd.set_option("display.width", 200)
    summary = lo.groupby(["truth", "mode", "localizer"]).agg(
        precision_at_5=("precision_at_5", "mean"), chance=("chance", "mean"), k_flip=("k_flip", "median"),
        flipped=("k_flip", lambda s: s.notna().mean()), seconds=("seconds", "mean"))
    print(summary.round(3).to_string())


if __name__ == "__main__":
    main()
