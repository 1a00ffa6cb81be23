"""One training run: SGD with a triangular schedule, per-epoch evaluation, and gradient accounting.

Reads top to bottom: schedule, data preparation, the Trainer (one epoch = index-slice batches of a
device-side permutation, two backward passes per batch for the clean/noisy split, evaluation), then the
persistence loop shared by the CLI and the engine, then the CLI.

Gradient accounting (DESIGN.md §3): the batch loss L = L_clean + L_noisy with both parts divided by the full
batch size. `L_clean.backward(retain_graph=True)` gives the clean gradient, which is added to an on-device
running sum; `L_noisy.backward()` then accumulates into the same .grad, leaving the total gradient that the
optimizer steps with. So one extra backward per batch and no per-batch host copy: G_noisy = G_total - G_clean
is formed once per epoch. BatchNorm couples the examples of a batch, so with BatchNorm the split needs that
second backward; a model without BatchNorm (our vit) could split per-example gradients from one backward.

Per-example detection signals (sweep/dynamics.py) come from the logits each step already has, kept in
on-device tensors; loss curvature (sweep/curvature.py) is the one signal that costs passes of its own, at the
end of the epochs `curvature_every` picks. The resume state carries all of them, so a resumed run's are equal.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import platform
import socket
import sys
import time
from collections.abc import Callable, Collection
from dataclasses import asdict, dataclass, replace

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from sweep import lock, records, schemas
from sweep.compiled import MODES, forward_of, wanted
from sweep.config import DROPOUT_PLACES, SPARSE_MASKS, RunConfig
from sweep.curvature import CurvatureSum, due, model_curvature
from sweep.data import Dataset, Split, load_dataset
from sweep.dynamics import EvalDynamics, Stopwatch, TrainingDynamics, margins
from sweep.errors import DamagedFile, UserError
from sweep.folds import fold_split
from sweep.models.for_run import build_model_for
from sweep.models.groups import group_of
from sweep.noise import add_label_noise
from sweep.ownership import check_results_folder
from sweep.paths import check_results_root, check_writable, resolve_location
from sweep.probes import RunData
from sweep.records import Record
from sweep.saver import Saver, cpu_copy
from sweep.schedule import MOMENTUM, WEIGHT_DECAY, lr_at
from sweep.ssft import SecondSplit, split_for, train_epochs
from sweep.store import FileEntry, Store, table_for, with_run_columns


@dataclass
class Prepared:
    """A run's data on its device, with the noisy labels it trains on and the truth kept beside them.

    `example_ids` are the dataset ids of the training rows (all of them, in order, for an ordinary run). An
    out-of-sample run trains on the rows outside its fold and keeps the fold aside (`held_out`)."""

    data: Dataset
    labels: torch.Tensor
    original: torch.Tensor
    is_noisy: torch.Tensor
    example_ids: torch.Tensor
    held_out: Prepared | None = None


def prepare(cfg: RunConfig, device: torch.device, data_dir: str = "data", download: bool = False,
            data: Dataset | None = None) -> Prepared:
    data = (data or load_dataset(cfg.dataset, data_dir, download)).to(device)
    noisy, mask = add_label_noise(data.train.y.cpu(), cfg.noise, cfg.noise_seed, data.num_classes, cfg.dataset)
    whole = Prepared(data, noisy.to(device), data.train.y, mask.to(device), torch.arange(len(noisy), device=device))
    if cfg.ssft_half:  # trained on one half first, then fine-tuned on the other (sweep.ssft)
        first, second = (ids.to(device) for ids in split_for(len(noisy), cfg.ssft_half, cfg.noise_seed))
        return replace(_rows(whole, first), held_out=_rows(whole, second))
    if not cfg.cv_folds:
        return whole
    train_ids, held_ids = (ids.to(device) for ids in fold_split(len(noisy), cfg.cv_folds, cfg.cv_fold,
                                                                cfg.noise_seed))
    return replace(_rows(whole, train_ids), held_out=_rows(whole, held_ids))


def _rows(prep: Prepared, ids: torch.Tensor) -> Prepared:
    """The same run's data restricted to training rows `ids` (the noise is drawn before, on the whole set)."""
    train = Split(prep.data.train.x[ids], prep.data.train.y[ids])
    return Prepared(replace(prep.data, train=train), prep.labels[ids], prep.original[ids], prep.is_noisy[ids],
                    prep.example_ids[ids])


def pick_device(name: str | None) -> torch.device:
    """'auto' (or None) is CUDA when present, else CPU; an explicit device that is not there is a UserError."""
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device {name!r} requested but no CUDA device is available; accepted here: cpu, auto")
    try:
        return torch.device(name)
    except RuntimeError as exc:
        raise UserError(f"unknown device {name!r}; accepted: auto, cpu, cuda, cuda:N") from exc


CURVATURE_STREAM = 7_919_000  # offsets the curvature directions' seed from the batch order's (same seed, epoch)


class Trainer:
    """Owns the model, optimizer and per-example records of one run; `train_epoch` advances one epoch."""

    # 2: training-pass AUM / forgetting, CSL, curvature, detection rows; a state saved before is not resumed
    STATE_VERSION = 2

    def __init__(self, cfg: RunConfig, prep: Prepared, device: torch.device, compile: bool = False) -> None:
        self.cfg, self.prep, self.device = cfg, prep, device
        self.cuda = device.type == "cuda"
        torch.manual_seed(cfg.seed)
        self.model = build_model_for(cfg).to(device)
        if self.cuda:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        for p in self.params:
            p.grad = torch.zeros_like(p)
        self.opt = torch.optim.SGD(self.params, lr=0.0, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
        names = {id(p): n for n, p in self.model.named_parameters()}
        self.group_names = [g for g, _ in self.model.groups]
        self.param_group = [self.group_names.index(group_of(self.model, names[id(p)])) for p in self.params]
        n = len(prep.labels)
        self.steps_per_epoch = math.ceil(n / cfg.batch_size)
        self.epoch = 0
        self.first_learned = torch.full((n,), -1, dtype=torch.long, device=device)
        self.last_loss = torch.zeros(n, device=device)
        self.last_confidence = torch.zeros(n, device=device)  # max softmax of the last evaluation, per example
        self.dynamics = EvalDynamics(n, device)  # aum_eval, forgetting_events_eval
        self.training_dynamics = TrainingDynamics(n, device)  # aum, forgetting_events, csl (training passes)
        self.dynamics_watch = Stopwatch(device)  # what the training-pass signals add: dynamics_seconds
        self.curvature = CurvatureSum(n, device)
        self.detection_rows: list[dict[str, object]] = []  # detection_epochs, one row per epoch and signal
        self.forward = forward_of(self.model, compile)  # the model, or it through torch.compile

    def _autocast(self) -> torch.autocast:
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.cuda)

    def _inputs(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.cuda and x.dim() == 4 else x

    def step(self, idx: torch.Tensor, lr: float,
             sums: tuple[list[torch.Tensor], list[torch.Tensor]] | None) -> torch.Tensor:
        """One SGD step on the examples `idx`; returns the batch loss (on device, no sync).

        With `sums` = (clean, total) gradient accumulators, the clean part is backpropagated first and added to
        the clean sum, then the noisy part completes .grad to the total, which is added to the total sum. Without
        `sums` it is a plain step with one backward, the baseline the accounting overhead is measured against.
        Either way the batch's logits and losses also feed the per-example training-pass signals (`_present`).
        """
        prep = self.prep
        for group in self.opt.param_groups:
            group["lr"] = lr
        self.opt.zero_grad(set_to_none=False)
        with self._autocast():
            logits = self.forward(self._inputs(prep.data.train.x[idx]), ids=idx)
        labels = prep.labels[idx]
        losses = F.cross_entropy(logits.float(), labels, reduction="none")
        self._present(idx, logits, labels, losses)
        noisy = prep.is_noisy[idx].to(losses.dtype)
        l_noisy = (losses * noisy).sum() / len(idx)
        l_clean = (losses * (1 - noisy)).sum() / len(idx)
        if sums is None:
            (l_clean + l_noisy).backward()
        else:
            grads = [p.grad for p in self.params]
            l_clean.backward(retain_graph=True)
            torch._foreach_add_(sums[0], grads)
            l_noisy.backward()
            torch._foreach_add_(sums[1], grads)
        self.opt.step()
        return (l_clean + l_noisy).detach()

    def _present(self, idx: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor, losses: torch.Tensor) -> None:
        """The batch's training-pass signals from the logits the step already has: margin, correctness and loss
        per example into the on-device running tensors (timed for dynamics_seconds; no host sync)."""
        self.dynamics_watch.start()
        with torch.no_grad():
            logits = logits.detach().float()
            self.training_dynamics.present(idx, losses.detach(), margins(logits, labels), logits.argmax(1) == labels)
        self.dynamics_watch.stop()

    def train_epoch(self) -> tuple[dict[str, float], list[dict[str, object]]]:
        """One epoch; returns the epoch's metric row and one gradient-accounting row per layer group."""
        start = time.perf_counter()
        cfg, prep = self.cfg, self.prep
        n = len(prep.labels)
        gen = torch.Generator(device=self.device)
        gen.manual_seed(cfg.seed * 1_000_003 + self.epoch)
        order = torch.randperm(n, device=self.device, generator=gen)
        sums = ([torch.zeros_like(p) for p in self.params], [torch.zeros_like(p) for p in self.params])
        loss_sum = torch.zeros((), device=self.device)
        self.model.train()
        for b in range(self.steps_per_epoch):
            idx = order[b * cfg.batch_size:(b + 1) * cfg.batch_size]
            step = self.epoch * self.steps_per_epoch + b
            loss_sum += self.step(idx, lr_at(step, cfg.epochs * self.steps_per_epoch, cfg.lr), sums)
        self.epoch += 1
        grad_rows = self._gradient_rows(*sums)
        row = {"epoch": self.epoch, "train_loss": float(loss_sum) / self.steps_per_epoch, **self.evaluate(),
               "epoch_lr": lr_at(self.epoch * self.steps_per_epoch - 1, cfg.epochs * self.steps_per_epoch, cfg.lr)}
        self.dynamics_watch.start()
        self.detection_rows.extend(self.training_dynamics.epoch_rows(self.epoch, prep.is_noisy))
        self.dynamics_watch.stop()
        self.dynamics_watch.total()  # reads this epoch's section timings (the epoch has synchronised already)
        # An auxiliary training's examples are never scored, so it skips the curvature its config asks for.
        if due(self.epoch, cfg.epochs, cfg.curvature_every) and not cfg.auxiliary:
            self._add_curvature()
        row["seconds"] = time.perf_counter() - start
        return row, grad_rows

    def _add_curvature(self) -> None:
        """This epoch's loss curvature of every training example (sweep/curvature.py), added to the running sum.
        Its directions come from a generator seeded by (seed, epoch), so a resumed run draws the same ones."""
        cfg, prep = self.cfg, self.prep
        if self.cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        gen = torch.Generator(device=self.device)
        gen.manual_seed(cfg.seed * 1_000_003 + self.epoch + CURVATURE_STREAM)
        ids = torch.arange(len(prep.labels), device=self.device)
        values = model_curvature(self.model, prep.data.train.x, prep.labels, ids, cfg.curvature_directions,
                                 cfg.curvature_h, gen)
        if self.cuda:
            torch.cuda.synchronize()
        self.curvature.add(values, time.perf_counter() - start)

    @property
    def dynamics_seconds(self) -> float:
        """Seconds the per-example training-pass signals have cost so far (resumed parts included)."""
        return self.dynamics_watch.total()

    def _gradient_rows(self, g_clean: list[torch.Tensor], g_total: list[torch.Tensor]) -> list[dict[str, object]]:
        """Per group: sum of ||G||/sqrt(numel) for clean and noisy parts; two cosines between them.

        `cosine` is the mean over the group's tensors of each tensor's cosine (the paper's code); `cosine_flat`
        is the cosine of the group's gradients flattened into one vector, in which a large tensor weighs more.
        They differ when the group's tensors disagree (a conv filter against its BatchNorm scale), by up to 0.3
        on ResNet-9; both come from the same per-tensor dot products and squared norms.
        """
        g_noisy = torch._foreach_sub(g_total, g_clean)
        scale = torch.tensor([math.sqrt(g.numel()) for g in g_clean], device=self.device)
        raw_clean = torch.stack(torch._foreach_norm(g_clean)).float()
        raw_noisy = torch.stack(torch._foreach_norm(g_noisy)).float()
        clean, noisy = raw_clean / scale, raw_noisy / scale
        dots = torch.stack([(a.float() * b.float()).sum() for a, b in zip(g_clean, g_noisy, strict=True)])
        cos = dots / (raw_clean * raw_noisy).clamp_min(1e-30)
        cos = torch.where((clean > 0) & (noisy > 0), cos, torch.full_like(cos, float("nan")))
        host = torch.stack([clean, noisy, cos, dots, raw_clean, raw_noisy]).double().cpu().numpy()
        clean, noisy, cos, dots, raw_clean, raw_noisy = host
        which = np.array(self.param_group)
        rows = []
        for gi, name in enumerate(self.group_names):
            sel = which == gi
            norm_c = math.sqrt(float((raw_clean[sel] ** 2).sum()))
            norm_n = math.sqrt(float((raw_noisy[sel] ** 2).sum()))
            flat = float(dots[sel].sum()) / (norm_c * norm_n) if norm_c > 0 and norm_n > 0 else float("nan")
            rows.append({"epoch": self.epoch, "layer": gi, "layer_name": name, "clean_norm": float(clean[sel].sum()),
                         "noisy_norm": float(noisy[sel].sum()), "cosine": float(cos[sel].mean()),
                         "cosine_flat": flat})
        return rows

    @torch.no_grad()
    def evaluate(self, batch: int = 2048) -> dict[str, float]:
        """Eval-mode accuracies; also updates each example's first-learned epoch and last loss."""
        prep, model = self.prep, self.forward
        self.model.eval()
        train_x, test = prep.data.train.x, prep.data.test
        preds, losses, margin, confidence = [], [], [], []
        for s in range(0, len(train_x), batch):
            ids = torch.arange(s, min(s + batch, len(train_x)), device=self.device)
            with self._autocast():
                logits = model(self._inputs(train_x[ids]), ids=ids).float()
            preds.append(logits.argmax(1))
            losses.append(F.cross_entropy(logits, prep.labels[ids], reduction="none"))
            margin.append(margins(logits, prep.labels[ids]))
            confidence.append(torch.softmax(logits, 1).amax(1))
        pred, loss = torch.cat(preds), torch.cat(losses)
        self.last_confidence = torch.cat(confidence)
        test_correct = torch.zeros((), device=self.device)
        for s in range(0, len(test.x), batch):
            with self._autocast():
                test_correct += (model(self._inputs(test.x[s:s + batch])).argmax(1) == test.y[s:s + batch]).sum()
        correct = pred == prep.labels
        self.first_learned = torch.where(correct & (self.first_learned < 0), self.epoch, self.first_learned)
        self.dynamics.update(torch.cat(margin), correct)
        self.last_loss = loss
        clean, noisy = ~prep.is_noisy, prep.is_noisy
        stats = torch.stack([correct[clean].float().mean(), correct[noisy].float().mean(),
                             (pred == prep.original)[noisy].float().mean(), test_correct / len(test.x)])
        clean_acc, noisy_acc, noisy_true, test_acc = stats.cpu().tolist()
        return {"clean_acc": clean_acc, "noisy_acc": noisy_acc, "noisy_true_acc": noisy_true, "test_acc": test_acc}

    def state_dict(self) -> dict[str, object]:
        """Everything a resumed run needs to continue exactly where this one is, the random generators included:
        standard dropout draws from torch's global generators, so without them a resumed `dropout`-variant run
        would replay its masks from the start of the stream."""
        return {"version": self.STATE_VERSION, "model": self.model.state_dict(), "opt": self.opt.state_dict(),
                "epoch": self.epoch, "first_learned": self.first_learned.cpu(), "last_loss": self.last_loss.cpu(),
                "last_confidence": self.last_confidence.cpu(), "dynamics": self.dynamics.state_dict(),
                "training_dynamics": self.training_dynamics.state_dict(), "curvature": self.curvature.state_dict(),
                "detection_rows": list(self.detection_rows), "dynamics_seconds": self.dynamics_seconds,
                "rng_cpu": torch.get_rng_state(),
                "rng_cuda": torch.cuda.get_rng_state_all() if self.cuda else []}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["opt"])
        self.epoch = int(state["epoch"])
        self.first_learned = state["first_learned"].to(self.device)
        self.last_loss = state["last_loss"].to(self.device)
        self.last_confidence = state["last_confidence"].to(self.device)
        self.dynamics.load_state_dict(state["dynamics"], self.device)
        self.training_dynamics.load_state_dict(state["training_dynamics"], self.device)
        self.curvature.load_state_dict(state["curvature"], self.device)
        self.detection_rows = list(state["detection_rows"])
        self.dynamics_watch.seconds = float(state["dynamics_seconds"])
        if "rng_cpu" in state:  # absent in a state saved before generators were kept
            torch.set_rng_state(state["rng_cpu"])
        if self.cuda and state.get("rng_cuda"):
            torch.cuda.set_rng_state_all(state["rng_cuda"])

    def weights(self) -> dict[str, torch.Tensor]:
        """CPU copy of the model's state_dict, the unit a checkpoint stores."""
        return {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}

    def examples_frame(self) -> pd.DataFrame:
        """One row per training example with every per-example signal (sweep/schemas.py says what each means)."""
        prep, dyn = self.prep, self.training_dynamics
        first = self.first_learned.cpu().numpy()
        # learning time (Ravikumar et al. 2025's "Thr. LT"): the first epoch, counted from 0, at whose end the
        # example was predicted as labelled, over the epochs trained; 1 (the end) for one never learned
        learning_time = np.where(first >= 0, (first - 1) / self.cfg.epochs, 1.0)
        return pd.DataFrame({
            "example_id": prep.example_ids.cpu().numpy(), "label": prep.labels.cpu().numpy(),
            "original_label": prep.original.cpu().numpy(), "is_noisy": prep.is_noisy.cpu().numpy(),
            "final_loss": self.last_loss.float().cpu().numpy(),
            # -1 (never learned) is the trainer's own marker; the table says it with a null
            "first_learned_epoch": pd.array(np.where(first >= 0, first, None), dtype="Int64"),
            "aum": dyn.aum().cpu().numpy(), "aum_eval": self.dynamics.aum().cpu().numpy(),
            "forgetting_events": dyn.forgetting_events().cpu().numpy(),
            "forgetting_events_eval": self.dynamics.forgetting.cpu().numpy(),
            "csl": dyn.csl().cpu().numpy(), "learning_time": learning_time.astype(np.float64),
            "in_confidence": (1 - self.last_confidence.double()).cpu().numpy(),
            "loss_curvature": self.curvature.mean().cpu().numpy()})

    def detection_frame(self) -> pd.DataFrame:
        """The run's detection_epochs rows: per epoch and training-pass signal, AUROC and average precision."""
        return schemas.rows_frame("detection_epochs", self.detection_rows)


    @torch.no_grad()
    def held_out_frame(self, batch: int = 2048) -> pd.DataFrame:
        """An out-of-sample run's predictions for the fold it never saw: per held-out example its training
        (noisy) label and the final model's softmax, eval mode: the input confident learning needs."""
        held, model = self.prep.held_out, self.forward
        self.model.eval()
        probs = []
        for s in range(0, len(held.labels), batch):
            with self._autocast():
                logits = model(self._inputs(held.data.train.x[s:s + batch])).float()
            probs.append(torch.softmax(logits, 1).double().cpu())
        probs = torch.cat(probs).numpy() if probs else np.zeros((0, self.prep.data.num_classes))
        return pd.DataFrame({
            "of_run_id": replace(self.cfg, cv_folds=0, cv_fold=0).run_id,
            "example_id": held.example_ids.cpu().numpy(), "label": held.labels.cpu().numpy(),
            "is_noisy": held.is_noisy.cpu().numpy(), "probs": list(probs)})


def train_in_memory(cfg: RunConfig, device: str | torch.device = "cpu", data: Dataset | None = None) -> RunData:
    """Train one run keeping every epoch's weights in memory: for tests, notebooks and benchmarks."""
    device = torch.device(device)
    prep = prepare(cfg.validate(), device, data=data)
    trainer = Trainer(cfg, prep, device)
    states = {0: trainer.weights()}
    while trainer.epoch < cfg.epochs:
        trainer.train_epoch()
        states[trainer.epoch] = trainer.weights()
    return RunData.from_states(cfg, prep.data, prep.labels, prep.original, prep.is_noisy, states, device)


# Persistence: checkpoints every epoch, resumable, tables at the end ---------------------------------------

def checkpoint_dir(cfg: RunConfig) -> str:
    return checkpoint_dir_of(cfg.run_id)


def checkpoint_dir_of(run_id: str) -> str:
    return f"checkpoints/{run_id}"


def run_record(store: Store, cfg: RunConfig, checksums: bool = False) -> tuple[Record | None, str | None]:
    """The run's done-record and the first problem with its files (None: the run is done and intact)."""
    record = records.read(store, records.run_record_path(cfg.run_id))
    if record is None:
        return None, None
    return record, records.problem(store, record, checksums)


def run_is_complete(store: Store, cfg: RunConfig) -> bool:
    """A run is done when its done-record (written after every other file) exists and its files match it."""
    record, problem = run_record(store, cfg)
    return record is not None and problem is None


def saved_state(store: Store, cfg: RunConfig, kind: str = "run") -> dict | None:
    """The training's saved resume state (checkpoints/<run_id>/state.pt), or None when there is none or it cannot
    be read (said on stderr: the training then starts over, which is always safe). Runs and packs share this."""
    rel = f"{checkpoint_dir(cfg)}/state.pt"
    if not store.exists(rel):
        return None
    try:
        return store.load_torch(rel)
    except DamagedFile as exc:
        print(f"{kind} {cfg.run_id}: {exc}; training it from the start", file=sys.stderr)
        return None


def _resume_state(store: Store, cfg: RunConfig) -> dict | None:
    """The saved state to continue from, or None to train from the start: when there is none, when it is
    unreadable, or when an epoch checkpoint it lists is missing or cut short (say, deleted by hand); resuming
    past such a hole would leave the run without that epoch for good."""
    state = saved_state(store, cfg)
    if state is None:
        return None
    if state.get("trainer", {}).get("version", 1) < Trainer.STATE_VERSION:  # before today's per-example signals
        print(f"run {cfg.run_id}: the saved state predates the training-pass signals; training it from the start",
              file=sys.stderr)
        return None
    files = {k: FileEntry(*v) for k, v in state.get("files", {}).items()}
    problem = records.problem(store, Record(cfg.run_id, {}, files)) if "files" in state else "it lists no files"
    if problem:
        print(f"run {cfg.run_id}: the saved state cannot be resumed ({problem}); training it from the start",
              file=sys.stderr)
        return None
    return state


def progress_path(run_id: str) -> str:
    return f"checkpoints/{run_id}/progress.json"


def write_progress(store: Store, cfg: RunConfig, row: dict[str, float]) -> None:
    """A few bytes of JSON per epoch, so `run_sweep.py --status` in another terminal can say "epoch k of E"
    without loading a checkpoint or asking Ray."""
    note = {"epoch": int(row["epoch"]), "epochs": train_epochs(cfg), "noisy_acc": float(row["noisy_acc"]),
            "test_acc": float(row["test_acc"]), "host": socket.gethostname(), "time": time.time()}
    store.write_bytes(progress_path(cfg.run_id), json.dumps(note).encode())


def execute_run(cfg: RunConfig, store: Store, device: torch.device, data_dir: str = "data", download: bool = False,
                on_epoch: Callable[[dict[str, float]], None] | None = None,
                ray_node_id: str | None = None, keep: Collection[int] | None = None,
                compile: bool = False, data: Dataset | None = None,
                background_saves: bool | None = None) -> dict[str, object]:
    """Train `cfg` to completion, resuming from its last saved epoch, and write its four tables and its record.

    An auxiliary training (`cfg.auxiliary`) writes them to the `aux_*` twins (sweep.store.table_for), plus its
    own output: an out-of-sample run's `oos_predictions`, an SSFT run's `ssft` (sweep.ssft.SecondSplit stands in
    for the Trainer: 2 x epochs epochs, the second half fine-tuning on the other half of the training set).

    Each epoch saves the weights (epoch_XXX.pt, for the probes; with `keep`, only for those epochs and the
    last: the grid's keep_checkpoints = "probes") and then the resume state (state.pt), both atomically; the
    state lists every checkpoint written so far with its size and checksum. A restart continues after the last
    epoch whose state was saved, and its rows come back from that state, so no epoch is lost or recorded twice.
    Batch order depends on (seed, epoch) only, so a resumed run follows the same path as an uninterrupted one.
    The done-record is written last, listing every checkpoint and table file. `background_saves` (default:
    on CUDA) writes each epoch's files off the training thread, in the same order (see Saver).
    """
    start = time.perf_counter()
    prep = prepare(cfg, device, data_dir, download, data=data)  # `data`: the node's shared copy, if any
    trainer = (SecondSplit(cfg, prep, lambda p: Trainer(cfg, p, device, compile=compile)) if cfg.ssft_half
               else Trainer(cfg, prep, device, compile=compile))
    last = train_epochs(cfg)
    ckdir = checkpoint_dir(cfg)
    epoch_rows: list[dict] = []
    grad_rows: list[dict] = []
    files: dict[str, FileEntry] = {}
    seconds = 0.0
    state = _resume_state(store, cfg)
    if state is not None:
        trainer.load_state_dict(state["trainer"])
        epoch_rows, grad_rows, seconds = state["epoch_rows"], state["grad_rows"], float(state["seconds"])
        files = {k: FileEntry(*v) for k, v in state["files"].items()}
    elif keep is None or 0 in keep:
        files[f"{ckdir}/epoch_000.pt"] = store.save_torch(f"{ckdir}/epoch_000.pt", trainer.weights())
    saver = Saver(device.type == "cuda" if background_saves is None else background_saves)

    def save_epoch(epoch: int, weights: dict | None, resume: dict, row: dict) -> None:
        """The epoch's checkpoint (if kept), then the resume state listing it, then the progress note."""
        if weights is not None:
            rel = f"{ckdir}/epoch_{epoch:03d}.pt"
            files[rel] = store.save_torch(rel, weights)
        store.save_torch(f"{ckdir}/state.pt", {**resume, "files": {k: [e.size, e.sha256] for k, e in files.items()}})
        write_progress(store, cfg, row)

    try:
        while trainer.epoch < last:
            row, grads = trainer.train_epoch()
            epoch_rows.append(row)
            grad_rows.extend(grads)
            kept = keep is None or trainer.epoch in keep or trainer.epoch == last
            resume = {"trainer": trainer.state_dict(), "epoch_rows": list(epoch_rows), "grad_rows": list(grad_rows),
                      "seconds": seconds + time.perf_counter() - start}
            if saver.background:
                resume = cpu_copy(resume)
            saver.submit(functools.partial(save_epoch, trainer.epoch, trainer.weights() if kept else None, resume,
                                           row))
            if on_epoch is not None:
                on_epoch(row)
    finally:
        saver.drain()  # every epoch's files are written (or the first failure raised) before anything else
    signals = trainer.phase1 if isinstance(trainer, SecondSplit) else trainer  # an SSFT run's: its phase 1's
    tables = [("examples", trainer.examples_frame()), ("epochs", pd.DataFrame(epoch_rows)),
              ("gradients", pd.DataFrame(grad_rows)), ("detection_epochs", signals.detection_frame())]
    if cfg.cv_folds:
        tables.append(("oos_predictions", trainer.held_out_frame()))
    if cfg.ssft_half:
        tables.append(("ssft", trainer.ssft_frame()))
    for table, frame in tables:  # an auxiliary training's rows go to the aux_* tables (store.table_for)
        name = table_for(cfg, table)
        files[store.table_file(name, cfg.run_id)] = store.write_table(name, cfg.run_id, with_run_columns(frame, cfg))
    run_row = {"n_train": len(prep.labels), "n_test": len(prep.data.test.y),
               "n_noisy": int(prep.is_noisy.sum()), "status": "complete",
               "seconds": seconds + time.perf_counter() - start, "device": str(device),
               "node": socket.gethostname(), "ray_node_id": ray_node_id,
               "versions": f"python={platform.python_version()};torch={torch.__version__}",
               "checkpoint_dir": store.path(ckdir), "dynamics_seconds": signals.dynamics_seconds,
               "curvature_seconds": signals.curvature.seconds}
    runs = with_run_columns(pd.DataFrame([run_row]), cfg)
    runs_table = table_for(cfg, "runs")
    files[store.table_file(runs_table, cfg.run_id)] = store.write_table(runs_table, cfg.run_id, runs)
    records.write(store, records.run_record_path(cfg.run_id), Record(cfg.run_id, asdict(cfg), files))
    return runs.iloc[0].to_dict()


def record_epochs(record: Record) -> list[int]:
    """The epochs whose weights a run's done-record lists (checkpoints/<run_id>/epoch_XXX.pt)."""
    prefix = f"{checkpoint_dir_of(record.unit)}/epoch_"
    return sorted(int(rel[len(prefix):].split(".")[0]) for rel in record.files if rel.startswith(prefix))


def load_run(store: Store, cfg: RunConfig, device: torch.device, data_dir: str = "data",
             download: bool = False, data: Dataset | None = None) -> RunData:
    """A finished run as probes see it: data on `device`, checkpoints read lazily from the store and checked
    against the run's done-record as they are read (a damaged one raises DamagedFile).

    The epochs are those the record lists, not those a listing finds, so a checkpoint deleted since is an
    error, never a silently shorter run.
    """
    record = records.read(store, records.run_record_path(cfg.run_id))
    if record is None:
        raise DamagedFile(records.run_record_path(cfg.run_id), f"run {cfg.run_id} has no done-record")
    prep = prepare(cfg, device, data_dir, download, data=data)
    ckdir = checkpoint_dir(cfg)
    epochs = record_epochs(record)

    def load_state(epoch: int) -> dict[str, torch.Tensor]:
        rel = f"{ckdir}/epoch_{epoch:03d}.pt"
        return store.load_torch(rel, expect=record.files[rel])

    return RunData(cfg=cfg, data=prep.data, labels=prep.labels, original=prep.original, is_noisy=prep.is_noisy,
                  epochs=epochs, device=device, load_state=load_state, record_id=record.record_id, store=store)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sweep.train", description=(
        "Train one run with label noise, checkpoints every epoch and gradient accounting; write Parquet tables."))
    defaults = RunConfig()
    parser.add_argument("--dataset", default=defaults.dataset,
                        help="digits, fashion-mnist, mnist, cifar10, svhn, synthetic, synthetic-small "
                             "(default: %(default)s)")
    parser.add_argument("--arch", default=defaults.arch, help="mlp, resnet9, resnet50, vit (default: %(default)s)")
    parser.add_argument("--variant", default=defaults.variant,
                        help="standard, tied, dropout, sparse (default: %(default)s)")
    parser.add_argument("--noise", type=float, default=defaults.noise,
                        help="label-noise rate in [0, 1) (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=defaults.seed,
                        help="initialisation and batch-order seed (default: %(default)s)")
    parser.add_argument("--noise-seed", type=int, default=None, help="label-noise seed (default: --seed)")
    parser.add_argument("--epochs", type=int, default=defaults.epochs, help="training epochs (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="examples per batch (default: 512; 128 for digits)")
    parser.add_argument("--lr", type=float, default=defaults.lr, help="peak learning rate (default: %(default)s)")
    parser.add_argument("--width", type=float, default=defaults.width,
                        help="channel/width multiplier (default: %(default)s)")
    parser.add_argument("--dropout-places", default=defaults.dropout_places, choices=DROPOUT_PLACES,
                        help="where ResNet-9 applies dropout: the paper code's 6 places or after each of the 8 "
                             "blocks (default: %(default)s)")
    parser.add_argument("--sparse-mask", default=defaults.sparse_mask, choices=SPARSE_MASKS,
                        help="the sparse baseline's fixed mask: element-wise rescaled (paper) or 40%% of channels "
                             "(default: %(default)s)")
    parser.add_argument("--curvature-every", type=int, default=defaults.curvature_every,
                        help="loss curvature at the end of every k-th epoch and the last; 0 = off "
                             "(default: %(default)s)")
    parser.add_argument("--curvature-directions", type=int, default=defaults.curvature_directions,
                        help="Rademacher directions per example for the curvature (default: %(default)s)")
    parser.add_argument("--curvature-h", type=float, default=defaults.curvature_h,
                        help="finite-difference step of the curvature (default: %(default)s)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N (default: %(default)s)")
    parser.add_argument("--compile", default="auto", choices=MODES,
                        help="torch.compile the model: auto = on CUDA only (default: %(default)s)")
    parser.add_argument("--data-dir", default="data", help="where dataset files are looked for (default: %(default)s)")
    parser.add_argument("--download", action="store_true", help="download missing dataset files (default: off)")
    parser.add_argument("--results", default="results",
                        help="results root (path or pyarrow URI) (default: %(default)s)")
    args = parser.parse_args(argv)

    try:
        # Only a missing --batch-size takes the default: 0 or a negative size goes on to validate(), which refuses it.
        batch = (128 if args.dataset == "digits" else 512) if args.batch_size is None else args.batch_size
        cfg = RunConfig(dataset=args.dataset, arch=args.arch, variant=args.variant, noise=args.noise,
                        seed=args.seed, noise_seed=args.seed if args.noise_seed is None else args.noise_seed,
                        epochs=args.epochs, batch_size=batch, lr=args.lr, width=args.width,
                        dropout_places=args.dropout_places, sparse_mask=args.sparse_mask,
                        curvature_every=args.curvature_every, curvature_directions=args.curvature_directions,
                        curvature_h=args.curvature_h).validate()
        device = pick_device(args.device)
        check_results_root(args.results)  # "", "/", a repository's top folder: never a results folder
        check_writable(args.results, "--results")  # before loading data or writing anything
        check_results_folder(resolve_location(args.results))  # no file of the user's where we write
        args.data_dir = resolve_location(args.data_dir)
        load_dataset(cfg.dataset, args.data_dir, args.download)  # fail on missing files before writing
        store = Store(resolve_location(args.results))
        if run_is_complete(store, cfg):  # training it again would void the analyses made of it
            print(f"run {cfg.run_id} is already done under {store.uri}")
            return 0
        print(f"run {cfg.run_id} on {device}")

        def progress(row: dict[str, float]) -> None:
            print(f"epoch {row['epoch']:3d}/{cfg.epochs}  loss {row['train_loss']:.3f}  clean {row['clean_acc']:.3f}"
                  f"  noisy {row['noisy_acc']:.3f}  test {row['test_acc']:.3f}  {row['seconds']:.1f}s", flush=True)

        with lock.holding(store):  # the same lock as a sweep's: one writer per results folder
            row = execute_run(cfg, store, device, args.data_dir, args.download, on_epoch=progress,
                              compile=wanted(args.compile, device))
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"done in {row['seconds']:.1f}s; tables under {store.uri}: "
          f"pd.read_parquet('{store.uri}/epochs')")
    return 0



if __name__ == "__main__":
    sys.exit(main())
