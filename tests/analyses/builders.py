"""Synthetic results folders shaped like the engine's output, for the analyses tests.

Every table is written as the engine writes it: <root>/<table>/<run_id>[-<probe>-<shard>].parquet, each row
carrying run_id and the config columns. Values are random but plausible (noisy examples memorized late,
fewer units to flip for noisy examples, example-tied drop forgetting them), so the figures look like figures.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from sweep.config import CONFIG_COLUMNS, RunConfig

RESNET9 = ["conv1", "conv2", "res1a", "res1b", "conv3", "res2a", "res2b", "conv4", "linear"]
MLP = ["fc1", "fc2", "head"]
N_TRAIN = 120
EPOCHS = 10


def write(root: Path, table: str, name: str, frame: pd.DataFrame) -> None:
    """One Parquet file of one table, as the engine's store writes it."""
    folder = root / table
    folder.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(folder / f"{name}.parquet", index=False)


PAPER_FIELDS = {"epochs": 50, "lr": 0.1, "batch_size": 512, "p_gen": 0.4, "p_mem": 0.2}


def run_config(dataset: str, arch: str, variant: str, noise: float, seed: int, width: float = 1.0,
               **fields: object) -> dict:
    """The config columns the engine writes for such a run: every defining field and its config_id (the other
    fields default to the paper's setting)."""
    return RunConfig(dataset=dataset, arch=arch, variant=variant, noise=noise, seed=seed, noise_seed=seed,
                     width=width, **{**PAPER_FIELDS, **fields}).columns()


def run_id(cfg: dict) -> str:
    suffix = cfg["config_id"][-10:] if "config_id" in cfg else "0123456789"
    return f"{cfg['dataset']}-{cfg['arch']}-{cfg['variant']}-n{cfg['noise']:g}-s{cfg['seed']}-{suffix}"


def with_config(frame: pd.DataFrame, cfg: dict) -> pd.DataFrame:
    """Add run_id and the config columns, as the engine does."""
    out = frame.copy()
    out.insert(0, "run_id", run_id(cfg))
    for i, (key, value) in enumerate(cfg.items()):
        out.insert(1 + i, key, value)
    return out


def write_run(root: Path, cfg: dict, tables: set[str]) -> None:
    """Write the tables in `tables` for one run."""
    rng = np.random.default_rng(zlib.crc32(run_id(cfg).encode()))
    rid = run_id(cfg)
    groups = RESNET9 if cfg["arch"] == "resnet9" else MLP
    n_noisy = round(cfg["noise"] * N_TRAIN)
    is_noisy = np.zeros(N_TRAIN, bool)
    is_noisy[rng.choice(N_TRAIN, n_noisy, replace=False)] = True
    original = rng.integers(0, 10, N_TRAIN)
    label = np.where(is_noisy, (original + rng.integers(1, 10, N_TRAIN)) % 10, original)
    if "runs" in tables:
        runs = pd.DataFrame(
            [
                {
                    "n_train": N_TRAIN,
                    "n_test": 50,
                    "n_noisy": n_noisy,
                    "status": "done",
                    "seconds": 12.5,
                    "device": "cpu",
                    "node": "testhost",
                    "ray_node_id": None,
                    "versions": "{}",
                    "checkpoint_dir": f"checkpoints/{rid}",
                }
            ]
        )
        write(root, "runs", rid, with_config(runs, cfg))
    if "examples" in tables:
        loss = np.where(is_noisy, rng.gamma(3.0, 0.5, N_TRAIN), rng.gamma(1.0, 0.3, N_TRAIN))
        learned = pd.array(
            np.where(is_noisy, rng.integers(4, EPOCHS + 1, N_TRAIN), rng.integers(1, 6, N_TRAIN)), dtype="Int64"
        )
        learned[np.flatnonzero(is_noisy)[:1]] = pd.NA  # never learned
        examples = pd.DataFrame(
            {
                "example_id": np.arange(N_TRAIN),
                "label": label,
                "original_label": original,
                "is_noisy": is_noisy,
                "final_loss": loss,
                "first_learned_epoch": learned,
                "aum": np.where(is_noisy, rng.normal(-1.0, 1.0, N_TRAIN), rng.normal(2.0, 1.0, N_TRAIN)),
                "forgetting_events": np.where(is_noisy, rng.integers(0, 4, N_TRAIN), rng.integers(0, 2, N_TRAIN)),
            }
        )
        write(root, "examples", rid, with_config(examples, cfg))
    if "epochs" in tables:
        e = np.arange(EPOCHS + 1)
        memo = 1 / (1 + np.exp(-(e - 0.5 * EPOCHS)))
        epochs = pd.DataFrame(
            {
                "epoch": e,
                "train_loss": 2.3 * np.exp(-e / 3) + rng.normal(0, 0.01, e.size),
                "clean_acc": np.minimum(1, 0.1 + 0.9 * (1 - np.exp(-e / 2))),
                "noisy_acc": memo * (0.99 - cfg["noise"]) + rng.uniform(0, 0.02),
                "noisy_true_acc": (1 - memo) * 0.6,
                "test_acc": 0.1 + 0.7 * (1 - np.exp(-e / 2)),
                "epoch_lr": np.interp(e, [0, 2, EPOCHS], [0, 0.1, 0]),
                "seconds": 1.0,
            }
        )
        write(root, "epochs", rid, with_config(epochs, cfg))
    if "gradients" in tables:
        rows = []
        for epoch in range(1, EPOCHS + 1):
            for layer, name in enumerate(groups):
                clean = rng.uniform(0.5, 1.0) / epoch
                rows.append(
                    {
                        "epoch": epoch,
                        "layer": layer,
                        "layer_name": name,
                        "clean_norm": clean,
                        "noisy_norm": clean * rng.uniform(0.6, 1.1),
                        "cosine": rng.uniform(-0.1, 0.5),
                    }
                )
        write(root, "gradients", rid, with_config(pd.DataFrame(rows), cfg))
    # the final model's accuracies, on every rewinding/retraining row of the run
    base = {"clean_acc_base": 0.99, "noisy_acc_base": 0.99 - cfg["noise"], "test_acc_base": 0.8 - cfg["noise"] / 2}
    if "rewinding" in tables:
        rows = [
            {
                "layer": layer,
                "layer_name": name,
                "rewind_epoch": r,
                "rewind_buffers": False,
                "clean_acc": rng.uniform(0.8, 1.0),
                "noisy_acc": min(1.0, rng.uniform(0.1, 1.0) * r / EPOCHS + 0.3),
                "test_acc": rng.uniform(0.6, 0.8),
                **base,
            }
            for layer, name in enumerate(groups)
            for r in range(0, EPOCHS, 2)
        ]
        write(root, "rewinding", f"{rid}-rewind-0", with_config(pd.DataFrame(rows), cfg))
    if "retraining" in tables:
        rows = [
            {
                "layer": layer,
                "layer_name": name,
                "retrain_epoch": ep,
                "clean_acc": min(1.0, 0.7 + 0.1 * ep),
                "noisy_acc": rng.uniform(0.2, 0.9),
                "test_acc": rng.uniform(0.6, 0.8),
                **base,
            }
            for layer, name in enumerate(groups)
            for ep in range(1, 3 + layer % 3 + 1)
        ]
        write(root, "retraining", f"{rid}-retrain-0", with_config(pd.DataFrame(rows), cfg))
    if "flips" in tables:
        chosen = np.concatenate([np.flatnonzero(~is_noisy)[:10], np.flatnonzero(is_noisy)[:10]])
        rows = []
        for ex in chosen:
            noisy = bool(is_noisy[ex])
            n_units = int(rng.integers(1, 6) if noisy else rng.integers(4, 30))
            flipped = bool(rng.uniform() > 0.1)
            units = []
            for _ in range(n_units):
                layer = int(rng.integers(0, len(groups) - 1))
                units.append(
                    {"layer": layer, "layer_name": groups[layer], "module": f"layers.{layer}",
                     "unit": int(rng.integers(0, 64))}
                )
            base = (0.95, 0.9, 0.75)
            cost = 0.02 if noisy else 0.1
            rows.append(
                {
                    "example_id": int(ex),
                    "is_noisy": noisy,
                    "n_units": n_units,
                    "flipped": flipped,
                    "units": units,
                    "clean_acc": base[0] - cost,
                    "noisy_acc": base[1] - cost,
                    "test_acc": base[2] - cost,
                    "clean_acc_base": base[0],
                    "noisy_acc_base": base[1],
                    "test_acc_base": base[2],
                    "n_eligible_clean": 100,
                    "n_eligible_noisy": n_noisy,
                }
            )
        frame = with_config(pd.DataFrame(rows), cfg)
        write(root, "flips", f"{rid}-flip-0", frame.iloc[: len(frame) // 2])
        write(root, "flips", f"{rid}-flip-1", frame.iloc[len(frame) // 2 :])
        long = [
            {"example_id": row["example_id"], "is_noisy": row["is_noisy"], "step": step, **unit}
            for row in rows
            for step, unit in enumerate(row["units"])
        ]
        write(root, "flip_units", f"{rid}-flip-0", with_config(pd.DataFrame(long), cfg))
    if "dropout" in tables:
        if cfg["variant"] == "tied":
            modes = [
                ("tied", 0.999, 0.99, 0.8, 1.0, "none"),
                ("all", 0.9, 0.03, 0.79, 1.0, "none"),
                ("drop", 0.91, 0.03, 0.82, 1.5, "paper"),
                ("drop-expected", 0.93, 0.05, 0.83, 1.3, "expected"),
            ]
        else:
            modes = [("test", 1.0, 0.995, 0.78, 1.0, "none")]
        rows = [
            {
                "mode": m,
                "clean_acc": c + rng.uniform(-0.005, 0.0),
                "noisy_acc": n,
                "test_acc": t,
                "scale": s,
                "scale_rule": rule,
            }
            for m, c, n, t, s, rule in modes
        ]
        write(root, "dropout", f"{rid}-dropout-0", with_config(pd.DataFrame(rows), cfg))
    if "dropout_examples" in tables:
        correct_tied = rng.uniform(size=N_TRAIN) > 0.02
        correct_drop = np.where(is_noisy, rng.uniform(size=N_TRAIN) > 0.95, rng.uniform(size=N_TRAIN) > 0.1)
        frame = pd.DataFrame(
            {
                "example_id": np.arange(N_TRAIN),
                "is_noisy": is_noisy,
                "correct_tied": correct_tied,
                "correct_drop": correct_drop,
            }
        )
        write(root, "dropout_examples", f"{rid}-dropout-0", with_config(frame, cfg))


STANDARD = {"runs", "examples", "epochs", "gradients", "rewinding", "retraining", "flips"}
TIED = {"runs", "examples", "epochs", "dropout", "dropout_examples"}
BASELINE = {"runs", "examples", "dropout"}


def make_results(root: Path) -> Path:
    """A small sweep: ResNet-9/CIFAR-10 at 10% noise (the paper's setting; several seeds) with every
    variant, and an MLP on digits with one seed (no paper number, no interval), the standard one at 10% and
    20% noise, the example-tied one at 20%."""
    for seed in (0, 1, 2):
        write_run(root, run_config("cifar10", "resnet9", "standard", 0.1, seed), STANDARD)
    for seed in (0, 1):
        write_run(root, run_config("cifar10", "resnet9", "tied", 0.1, seed), TIED)
    write_run(root, run_config("cifar10", "resnet9", "dropout", 0.1, 0), BASELINE)
    write_run(root, run_config("cifar10", "resnet9", "sparse", 0.1, 0), BASELINE)
    for noise in (0.1, 0.2):  # two noise rates: the report's figure against the noise rate
        write_run(root, run_config("digits", "mlp", "standard", noise, 0), STANDARD)
    write_run(root, run_config("digits", "mlp", "tied", 0.2, 0), TIED)
    return root


def frame(rows: list[dict], **config) -> pd.DataFrame:
    """Hand-made rows for known-value tests: each row gets the config columns (defaults: the paper's
    CIFAR-10 / ResNet-9 / 10% setting, seed 0; config_id follows the fields) and a run_id derived from its config
    unless it has one."""
    base = run_config("cifar10", "resnet9", "standard", 0.1, 0)
    out = []
    for row in rows:
        full = {**base, **config, **row}
        if "config_id" not in config and "config_id" not in row:
            full["config_id"] = RunConfig(**{k: full[k] for k in CONFIG_COLUMNS}).config_id
        full.setdefault("run_id", run_id(full))
        out.append(full)
    return pd.DataFrame(out)
