"""Synthetic results folders shaped like the engine's output, for the analyses tests.

Every table is written as the engine writes it: <root>/<table>/<run_id>[-<probe>-<shard>].parquet, each row
carrying run_id and the config columns. Values are random but plausible (noisy examples memorized late,
fewer units to flip for noisy examples, example-tied drop forgetting them), so the figures look like figures.
Out-of-sample fold runs (cv_folds = K) share their ordinary run's noisy labels, write runs / examples (the
examples they trained on) / epochs / gradients to the aux_* tables, as the engine does (sweep.store.table_for),
and predict their held-out fold in oos_predictions. Second-split forgetting runs (ssft_half = 1, 2) likewise
write the aux_* tables, and score the examples of their first half in `ssft`.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from sweep.config import CONFIG_COLUMNS, RunConfig
from sweep.schemas import rows_frame

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
    fold = f"-cv{cfg['cv_fold']}of{cfg['cv_folds']}" if cfg.get("cv_folds") else ""
    fold += f"-ssft{cfg['ssft_half']}" if cfg.get("ssft_half") else ""
    return f"{cfg['dataset']}-{cfg['arch']}-{cfg['variant']}-n{cfg['noise']:g}-s{cfg['seed']}{fold}-{suffix}"


def fold_config(cfg: dict, folds: int, fold: int) -> dict:
    """The config columns of fold run `fold` of `folds` of the ordinary run `cfg` (folds 0: `cfg` itself)."""
    fields = {k: cfg[k] for k in CONFIG_COLUMNS if k in cfg}
    return RunConfig(**{**fields, "cv_folds": folds, "cv_fold": fold if folds else 0}).columns()


def ssft_config(cfg: dict, half: int) -> dict:
    """The config columns of the SSFT run of half `half` of the ordinary run `cfg` (half 0: `cfg` itself)."""
    fields = {k: cfg[k] for k in CONFIG_COLUMNS if k in cfg}
    return RunConfig(**{**fields, "ssft_half": half}).columns()


def first_half(n: int, half: int, seed: int) -> np.ndarray:
    """Whether each of n examples is in the half an SSFT run of half `half` trains on first (a seeded split)."""
    ones = np.zeros(n, bool)
    ones[np.random.default_rng(seed + 17).permutation(n)[: (n + 1) // 2]] = True
    return ones if half == 1 else ~ones


def fold_of(n: int, folds: int, seed: int) -> np.ndarray:
    """Each example's fold: a seeded permutation dealt round-robin, as sweep/folds.py does."""
    assignment = np.empty(n, dtype=np.int64)
    assignment[np.random.default_rng(seed).permutation(n)] = np.arange(n) % folds
    return assignment


def oos_frame(cfg: dict, folds: int, example_id, label, is_noisy, probs, fold=None) -> pd.DataFrame:
    """oos_predictions rows of the ordinary run `cfg`, as its `folds` fold runs write them: example i is held out
    (predicted) by fold `fold[i]` (default i % folds); `probs` is an (n, classes) array."""
    from sweep.schemas import rows_frame

    example_id = np.asarray(example_id, dtype=np.int64)
    fold = np.arange(len(example_id)) % folds if fold is None else np.asarray(fold)
    parts = []
    for k in sorted(set(fold.tolist())):
        at = np.flatnonzero(fold == k)
        rows = [{"of_run_id": run_id(cfg), "example_id": int(example_id[i]), "label": int(label[i]),
                 "is_noisy": bool(is_noisy[i]), "probs": [float(v) for v in probs[i]]} for i in at]
        parts.append(with_config(rows_frame("oos_predictions", rows), fold_config(cfg, folds, k)))
    return pd.concat(parts, ignore_index=True)


def with_config(frame: pd.DataFrame, cfg: dict) -> pd.DataFrame:
    """Add run_id and the config columns, as the engine does."""
    out = frame.copy()
    out.insert(0, "run_id", run_id(cfg))
    for i, (key, value) in enumerate(cfg.items()):
        out.insert(1 + i, key, value)
    return out


def signal_columns(rid: str, is_noisy: np.ndarray, learned: pd.api.extensions.ExtensionArray,
                   auxiliary: bool) -> dict[str, object]:
    """The examples table's other detection signals, plausible for each example (mislabeled: low margins,
    more forgetting, high cumulative loss, learned late, low confidence, high curvature), from a generator of
    their own so the older columns keep their values; loss curvature is NaN in auxiliary runs, as the engine
    writes it."""
    rng = np.random.default_rng(zlib.crc32(f"{rid}-signals".encode()))
    n = len(is_noisy)
    first = pd.to_numeric(pd.Series(learned), errors="coerce").to_numpy(float)
    return {
        "aum_eval": np.where(is_noisy, rng.normal(-0.5, 1.0, n), rng.normal(2.5, 1.0, n)),
        "forgetting_events_eval": np.where(is_noisy, rng.integers(0, 3, n), rng.integers(0, 2, n)),
        "csl": np.where(is_noisy, rng.gamma(6.0, 2.0, n), rng.gamma(2.0, 1.5, n)),
        "learning_time": np.where(np.isnan(first), 1.0, (first - 1) / EPOCHS),
        "in_confidence": np.where(is_noisy, rng.uniform(0.2, 0.7, n), rng.uniform(0.0, 0.4, n)),
        "loss_curvature": (np.full(n, np.nan) if auxiliary
                           else np.where(is_noisy, rng.gamma(4.0, 1.0, n), rng.gamma(1.5, 1.0, n))),
    }


def detection_epochs(rid: str) -> pd.DataFrame:
    """Per epoch and training-pass signal, a detection AUROC and average precision that rise early and decay
    late in training, as memorization sets in."""
    rng = np.random.default_rng(zlib.crc32(f"{rid}-epochs".encode()))
    rows = []
    for epoch in range(1, EPOCHS + 1):
        late = epoch / EPOCHS
        for signal, top in (("loss", 0.97), ("margin", 0.95), ("correct", 0.9)):
            auroc = float(np.clip(top - 0.45 * late**2 + rng.normal(0, 0.01), 0.0, 1.0))
            rows.append({"epoch": epoch, "signal": signal, "auroc": auroc, "average_precision": auroc * 0.8})
    return pd.DataFrame(rows)


def write_run(root: Path, cfg: dict, tables: set[str]) -> None:
    """Write the tables in `tables` for one run."""
    folds, half = int(cfg.get("cv_folds") or 0), int(cfg.get("ssft_half") or 0)
    # the ordinary run: its noise draw is shared by its folds and SSFT runs
    base_cfg = fold_config(cfg, 0, 0) if folds else ssft_config(cfg, 0) if half else cfg

    def main(table: str) -> str:  # where the engine writes an auxiliary training's rows (sweep.store.table_for)
        return f"aux_{table}" if folds or half else table

    rng = np.random.default_rng(zlib.crc32(run_id(base_cfg).encode()))
    rid = run_id(cfg)
    groups = RESNET9 if cfg["arch"] == "resnet9" else MLP
    n_noisy = round(cfg["noise"] * N_TRAIN)
    is_noisy = np.zeros(N_TRAIN, bool)
    is_noisy[rng.choice(N_TRAIN, n_noisy, replace=False)] = True
    original = rng.integers(0, 10, N_TRAIN)
    label = np.where(is_noisy, (original + rng.integers(1, 10, N_TRAIN)) % 10, original)
    ids = np.arange(N_TRAIN)
    if folds:  # a fold run trains without its fold and predicts it
        assignment = fold_of(N_TRAIN, folds, cfg["noise_seed"])
        held = ids[assignment == cfg["cv_fold"]]
        if "oos_predictions" in tables:
            # an out-of-sample model mostly predicts the true class, now and then another one
            guess = np.where(rng.uniform(size=len(held)) < 0.1, rng.integers(0, 10, len(held)), original[held])
            probs = rng.dirichlet(np.full(10, 0.3), len(held)) * 0.3
            probs[np.arange(len(held)), guess] += 0.7
            frame = oos_frame(base_cfg, folds, held, label[held], is_noisy[held], probs,
                              np.full(len(held), cfg["cv_fold"]))
            write(root, "oos_predictions", rid, frame)
        keep = assignment != cfg["cv_fold"]
        ids, is_noisy, original, label = ids[keep], is_noisy[keep], original[keep], label[keep]
    if half:  # an SSFT run trains on its first half, is fine-tuned on the other, and scores the first
        keep = first_half(N_TRAIN, half, cfg["noise_seed"])
        ids, is_noisy, original, label = ids[keep], is_noisy[keep], original[keep], label[keep]
        if "ssft" in tables:  # mislabeled examples forgotten within a few epochs, clean ones late or never
            forget = np.where(is_noisy, rng.integers(1, 4, len(ids)), rng.integers(3, EPOCHS + 2, len(ids)))
            frame = pd.DataFrame({
                "of_run_id": run_id(base_cfg), "example_id": ids, "label": label, "is_noisy": is_noisy,
                "forget_epoch": pd.array(np.where(forget > EPOCHS, None, forget), dtype="Int64"),
                "learned_at_phase1_end": rng.uniform(size=len(ids)) < np.where(is_noisy, 0.7, 0.98),
                "correct_epochs": np.minimum(forget - 1, EPOCHS)})
            write(root, "ssft", rid, with_config(frame, cfg))
    n_train = len(ids)
    if "runs" in tables:
        runs = pd.DataFrame(
            [
                {
                    "n_train": n_train,
                    "n_test": 50,
                    "n_noisy": int(is_noisy.sum()),
                    "status": "done",
                    "seconds": 12.5,
                    "device": "cpu",
                    "node": "testhost",
                    "ray_node_id": None,
                    "versions": "{}",
                    "checkpoint_dir": f"checkpoints/{rid}",
                    "dynamics_seconds": 0.4,
                    "curvature_seconds": 0.0 if folds or half else 1.5,  # curvature: ordinary runs only
                }
            ]
        )
        write(root, main("runs"), rid, with_config(runs, cfg))
    if "examples" in tables:
        loss = np.where(is_noisy, rng.gamma(3.0, 0.5, n_train), rng.gamma(1.0, 0.3, n_train))
        learned = pd.array(
            np.where(is_noisy, rng.integers(4, EPOCHS + 1, n_train), rng.integers(1, 6, n_train)), dtype="Int64"
        )
        learned[np.flatnonzero(is_noisy)[:1]] = pd.NA  # never learned
        examples = pd.DataFrame(
            {
                "example_id": ids,
                "label": label,
                "original_label": original,
                "is_noisy": is_noisy,
                "final_loss": loss,
                "first_learned_epoch": learned,
                "aum": np.where(is_noisy, rng.normal(-1.0, 1.0, n_train), rng.normal(2.0, 1.0, n_train)),
                "forgetting_events": np.where(is_noisy, rng.integers(0, 4, n_train), rng.integers(0, 2, n_train)),
            }
        )
        examples = examples.assign(**signal_columns(rid, is_noisy, learned, auxiliary=bool(folds or half)))
        write(root, main("examples"), rid, with_config(examples, cfg))
    if "detection_epochs" in tables:
        write(root, main("detection_epochs"), rid, with_config(detection_epochs(rid), cfg))
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
        write(root, main("epochs"), rid, with_config(epochs, cfg))
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
                        "cosine_flat": rng.uniform(-0.1, 0.5),
                    }
                )
        write(root, main("gradients"), rid, with_config(pd.DataFrame(rows), cfg))
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
                "retrain_peak": 0.5,
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
                    "flip_units": "paper",  # the unit rule (AnalysisConfig.flip_units): the paper's, for its number
                }
            )
        frame = with_config(pd.DataFrame(rows), cfg)
        write(root, "flips", f"{rid}-flip-0", frame.iloc[: len(frame) // 2])
        write(root, "flips", f"{rid}-flip-1", frame.iloc[len(frame) // 2 :])
        long = [
            {"example_id": row["example_id"], "is_noisy": row["is_noisy"], "step": step, **unit,
             "flip_units": row["flip_units"]}
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


STANDARD = {"runs", "examples", "epochs", "gradients", "detection_epochs", "rewinding", "retraining", "flips"}
FOLD = {"runs", "examples", "epochs", "gradients", "detection_epochs", "oos_predictions"}  # a fold run's (no probes)
TIED = {"runs", "examples", "epochs", "detection_epochs", "dropout", "dropout_examples"}
BASELINE = {"runs", "examples", "dropout"}


SSFT = {"runs", "examples", "epochs", "gradients", "detection_epochs", "ssft"}  # what an SSFT run writes (no probes)


LOCALIZERS = ("greedy", "zero_out", "activation")


def write_localize(root: Path, cfg: dict) -> None:
    """The localization probe's `localize` and `localize_ladder` rows of one run: an example-tied run scored
    against its tied truth in modes tied and all, a standard one against an injected truth (one injection that
    did not take) and without truth; greedy a little ahead of zero_out, activation near chance."""
    rng = np.random.default_rng(zlib.crc32(f"localize-{run_id(cfg)}".encode()))
    truths = [("tied", "tied"), ("tied", "all")] if cfg["variant"] == "tied" else [("injected", "all"), ("none", "all")]
    rows, ladder = [], []
    for truth, mode in truths:
        for skill, localizer in zip((0.7, 0.5, 0.1), LOCALIZERS, strict=True):
            for example in range(6):
                scored = truth != "none"
                fitted = not (truth == "injected" and example == 5)
                noisy = truth != "injected" and example % 2 == 1
                k_flip = None if example == 4 and localizer == "activation" else int(rng.integers(1, 12))
                precisions = {f"{what}_at_{k}": float(np.clip(skill / (1 + k / 20) + rng.normal(0, 0.05), 0, 1))
                              if scored and fitted else np.nan
                              for k in (1, 5, 10, 20) for what in ("precision", "recall")}
                rows.append({"truth": truth, "mode": mode, "localizer": localizer, "example_id": example,
                             "is_noisy": noisy, "label": 1, "n_units": 200,
                             "n_candidates": 120 if mode == "tied" else 200,
                             "n_truth": 10 if scored else 0, "chance": 0.05 if scored else np.nan, **precisions,
                             "k_flip": k_flip, "precision_at_flip": np.nan, "recall_at_flip": np.nan,
                             "outside_at_5": 0, "seconds": 0.02, "fitted": fitted})
                for k in (1, 2, 3, 5, 8, 13):
                    ladder.append({"truth": truth, "mode": mode, "localizer": localizer, "example_id": example,
                                   "is_noisy": noisy, "k": k, "flipped": bool(rng.uniform() < min(1.0, skill * k / 5)),
                                   "target_loss": float(k / 5), "precision": np.nan, "recall": np.nan,
                                   "clean_acc": 0.99 - k * 0.002, "noisy_acc": 0.9 - k * 0.01,
                                   "test_acc": 0.8 - k * (0.004 if localizer == "greedy" else 0.002),
                                   "clean_acc_base": 0.99, "noisy_acc_base": 0.9, "test_acc_base": 0.8})
    units = [{"truth": r["truth"], "mode": r["mode"], "localizer": r["localizer"], "example_id": r["example_id"],
              "is_noisy": r["is_noisy"], "rank": rank, "layer": rank % 3, "layer_name": f"fc{rank % 3 + 1}",
              "module": f"fc{rank % 3 + 1}.linear", "unit": rank, "global_unit": rank, "score": 1.0 / (1 + rank),
              "in_truth": pd.NA if r["truth"] == "none" else int(rank < 2), "outside": False}
             for r in rows for rank in range(3)]
    injected = [] if cfg["variant"] == "tied" else [
        {"example_id": example, "original_label": 1, "new_label": 2, "fitted": example != 5, "steps": 20,
         "n_units_injected": 10, "injected_units": [{"layer": 0, "layer_name": "fc1", "module": "fc1.linear",
                                                     "unit": u} for u in range(10)],
         "clean_acc": 0.98, "noisy_acc": 0.9, "test_acc": 0.79, "clean_acc_base": 0.99, "noisy_acc_base": 0.9,
         "test_acc_base": 0.8} for example in range(6)]
    for name, data in (("localize", rows), ("localize_ladder", ladder), ("localize_units", units),
                       ("injections", injected)):
        if not data:
            continue
        frame = rows_frame(name, data)
        write(root, name, f"{run_id(cfg)}-localize-0", with_config(frame, cfg))


def write_ssft(root: Path, cfg: dict, tables: set[str] = SSFT) -> None:
    """Write the two second-split forgetting runs of the ordinary run `cfg`."""
    for half in (1, 2):
        write_run(root, ssft_config(cfg, half), tables)


def write_folds(root: Path, cfg: dict, folds: int, tables: set[str] = FOLD, only=None) -> None:
    """Write the `folds` out-of-sample fold runs of the ordinary run `cfg` (`only`: just those folds)."""
    for k in range(folds) if only is None else only:
        write_run(root, fold_config(cfg, folds, k), tables)


def write_memorization(root: Path, cfg: dict, models: int = 8) -> None:
    """The memorization probe's tables for a standard run already written (its examples give the noisy flags):
    mislabeled examples of high mem, clean ones near 0 with a few atypical ones high; five influence pairs; two
    localizers' units to flip on the three target sets (noisy and atypical few, typical many or never)."""
    rid = run_id(cfg)
    examples = pd.read_parquet(root / "examples" / f"{rid}.parquet")
    rng = np.random.default_rng(zlib.crc32(f"mem-{rid}".encode()))
    noisy = examples["is_noisy"].to_numpy(bool)
    n_in = rng.binomial(models, 0.7, len(noisy))
    mem = np.where(noisy, rng.uniform(0.5, 1.0, len(noisy)), np.abs(rng.normal(0, 0.08, len(noisy))))
    mem[::17] = rng.uniform(0.4, 0.9, len(mem[::17]))  # atypical clean examples
    mem = np.where((n_in == 0) | (n_in == models), np.nan, np.clip(mem, -1, 1))
    write(root, "memorization", f"{rid}-memorization-all", with_config(pd.DataFrame({
        "example_id": examples["example_id"].to_numpy(np.int64), "is_noisy": noisy, "mem": mem,
        "in_acc": np.clip(0.2 + mem, 0, 1), "out_acc": np.clip(0.2 + mem, 0, 1) - mem, "n_in": n_in,
        "n_out": models - n_in, "mem_se": np.full(len(noisy), 0.1), "mem_prob": mem * 0.9,
        "n_models": models, "fraction": 0.7}), cfg))
    write(root, "mem_influence", f"{rid}-memorization-all", with_config(pd.DataFrame({
        "example_id": np.arange(5, dtype=np.int64), "test_id": np.arange(5, dtype=np.int64),
        "influence": np.linspace(0.9, 0.5, 5), "in_acc": np.full(5, 0.95), "out_acc": np.linspace(0.05, 0.45, 5),
        "n_in": np.full(5, 5, dtype=np.int64), "n_out": np.full(5, 3, dtype=np.int64)}), cfg))
    rows = []
    for name, scale in (("noisy", 3), ("atypical", 5), ("typical", 40)):
        for localizer in ("greedy", "zero_out"):
            for example in range(4):
                k = int(rng.integers(1, 2 * scale))
                flipped = k <= 50
                rows.append({"set": name, "localizer": localizer, "example_id": example, "is_noisy": name == "noisy",
                             "mem": 0.5, "units_to_flip": k if flipped else None, "flipped": flipped, "cap": 50})
    write(root, "mem_flips", f"{rid}-memorization-all",
          with_config(pd.DataFrame(rows).astype({"units_to_flip": "Int64"}), cfg))
    pack = {**cfg, "subsets": models, "subset_fraction": 0.7, "pack": models, "pack_index": 0}
    ids = examples["example_id"].to_numpy(np.int64)
    inside = rng.uniform(size=(models, len(ids))) < 0.7
    write(root, "subset_predictions", f"{rid}-pack0x{models}of{models}", with_config(pd.DataFrame({
        "model": np.repeat(np.arange(models, dtype=np.int64), len(ids)), "split": "train",
        "example_id": np.tile(ids, models), "in_subset": inside.ravel(),
        "correct": inside.ravel() | ~np.tile(noisy, models), "p_label": np.where(inside.ravel(), 0.9, 0.4),
        "label": np.zeros(models * len(ids), dtype=np.int64)}), pack))


def make_results(root: Path) -> Path:
    """A small sweep: ResNet-9/CIFAR-10 at 10% noise (the paper's setting; several seeds, each with three
    out-of-sample fold runs for confident learning) with every variant, and an MLP on digits with one seed (no
    paper number, no interval), the standard one at 10% and 20% noise (at 10% with its two SSFT runs), the
    example-tied one at 20%."""
    for seed in (0, 1, 2):
        write_run(root, run_config("cifar10", "resnet9", "standard", 0.1, seed), STANDARD)
        write_folds(root, run_config("cifar10", "resnet9", "standard", 0.1, seed), 3)
        write_memorization(root, run_config("cifar10", "resnet9", "standard", 0.1, seed))
    for seed in (0, 1):
        write_run(root, run_config("cifar10", "resnet9", "tied", 0.1, seed), TIED)
    write_run(root, run_config("cifar10", "resnet9", "dropout", 0.1, 0), BASELINE)
    write_run(root, run_config("cifar10", "resnet9", "sparse", 0.1, 0), BASELINE)
    for noise in (0.1, 0.2):  # two noise rates: the report's figure against the noise rate
        write_run(root, run_config("digits", "mlp", "standard", noise, 0), STANDARD)
    write_ssft(root, run_config("digits", "mlp", "standard", 0.1, 0))
    write_run(root, run_config("digits", "mlp", "tied", 0.2, 0), TIED)
    for seed in (0, 1):
        write_localize(root, run_config("cifar10", "resnet9", "tied", 0.1, seed))
    write_localize(root, run_config("digits", "mlp", "standard", 0.1, 0))
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
