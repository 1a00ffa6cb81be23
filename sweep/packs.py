"""Packs of subset models for held-out memorization scores (Feldman and Zhang 2020), trained K at once.

A config with `subsets = M` is pack `pack_index` of the M subset models of its ordinary run (`cfg.base()`):
same architecture, schedule, seed and noisy labels (sweep.train.prepare), model j trained on the training
examples in its subset. The pack trains its models `cfg.models` together on one device and afterwards writes
each model's eval-mode prediction on every training and test example (`subset_predictions`), from which
mem(i) = P(correct on i | i in) - P(correct on i | i out) is estimated (sweep/probes/memorization.py).

Rules every model follows, whatever pack (or K) it is trained in, so a model's training is a function of
(config, j) alone and the plain loop in sweep/packs_reference.py reproduces it:
- membership: example i is in model j's subset iff a counter-based 32-bit hash of (noise_seed, j, i), read as
  a number in [0, 1), is below subset_fraction (`membership`): recomputable anywhere, never stored;
- initialisation: the global torch seed set to a hash of (seed, j) right before the model is built;
- batch order: each epoch, a permutation of the model's own subset drawn from a generator seeded by a hash of
  (seed, j, epoch) on the training device, cut into batches of batch_size in order; a last batch of a single
  example is left out for that epoch (BatchNorm cannot train on one example; the next epoch's permutation puts
  another example last). So model j has its own steps per epoch, S_j = ceil(n_j / B), less one when
  n_j % B == 1, and its own triangular schedule over epochs * S_j steps (sweep.schedule.lr_at);
- optimiser: SGD with sweep.schedule's momentum and weight decay, one momentum buffer per model.

How the K models run at once: their parameters and buffers are stacked (torch.func.stack_module_state) and one
step is torch.func.vmap over torch.func.functional_call of one model skeleton, every model on its own batch.
Batches of different sizes (short last batches, models with fewer steps than the pack's longest) are padded to
batch_size and carry a 0/1 row weight: the loss is the mean over the real rows, and every BatchNorm is replaced
in the skeleton by `MaskedBatchNorm`, which takes its batch statistics over the real rows only and updates its
running statistics from them (unbiased variance, as nn.BatchNorm does), in place on the stacked buffers; a step
whose batches are all full uses torch's BatchNorm kernel under vmap instead. A model whose epoch has ended (all
rows padding) takes no step: its parameters, momentum and running statistics stay as they are. Eval mode uses
the running statistics, as an ordinary model's eval does. The tests check the pack against the plain loop in
float64 (equal to 1e-10: float32's rounding, amplified by SGD, would hide a real difference) and in float32 (to
1e-4 after an epoch). On a CPU a pack is no faster than its models one by one (bench/packs.py: 0.6-0.7x on 2
shared cores; K models' weights outgrow the caches one model's fit in); packs are for GPUs, where one model
leaves the device mostly idle, and for cutting the number of Tune trials.

Resume and outputs (`execute_pack`, the contract of sweep.train.execute_run): after every epoch the resume
state (stacked parameters, running statistics, momentum buffers, epoch rows) is saved atomically to
checkpoints/<run_id>/state.pt; a restart continues after the last saved epoch. One `aux_epochs` row per epoch:
train_loss (mean over the models of each model's mean batch loss) and epoch_lr (mean over the models of the lr
at each model's last step) every epoch, the accuracy columns only for the last epoch (means over the models, on
the whole training set against the training labels, in- and out-of-subset examples alike), NaN before: an
evaluation every epoch would cost about half an epoch more. Then `subset_predictions`, the `aux_runs` row and
the done-record, written last. No weights are kept unless asked (`keep_weights`: the stacked final state as
checkpoints/<run_id>/models.pt, listed in the record).
"""

from __future__ import annotations

import copy
import math
import platform
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import asdict

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from sweep import records
from sweep.config import RunConfig
from sweep.data import SHAPES, Dataset
from sweep.dropout import _GOLDEN, _MASK32, _mix_, _salt
from sweep.errors import UserError
from sweep.models.for_run import build_model_for
from sweep.records import Record
from sweep.schedule import MOMENTUM, WEIGHT_DECAY, lr_at
from sweep.store import FileEntry, Store, table_for, with_run_columns
from sweep.train import Prepared, checkpoint_dir, prepare, saved_state, write_progress

# Hash purposes: the third key part of each stream, so membership, initialisation and batch order never share one.
MEMBERSHIP, INIT, ORDER = 1, 2, 3
MAX_PACK = 64  # beyond this, one pack's step is already wide enough to fill a GPU; more only lengthens a trial
CPU_BUDGET = 2 * 2**30  # bytes a pack may take on a CPU node when no device memory is given
DEVICE_SHARE = 0.5  # fraction of a GPU's memory a pack may plan for (the rest: data, allocator slack, eval)
STATE_BYTES_PER_PARAM = 4 * 4  # float32 weight, gradient, momentum buffer, one temporary of the update
ACTIVATION_FACTOR = 3  # live float32 copies per leaf-module output element: saved for backward, masked-BN temporaries
EVAL_ROWS = 4096  # model x example rows per evaluation chunk
KEEP_WEIGHTS = False
STATE_VERSION = 1


# The rules: membership, initialisation, batch order -------------------------------------------------------

def membership(n: int, noise_seed: int, model: int, fraction: float) -> torch.Tensor:
    """Bool (n,) on the CPU: example i is in model `model`'s subset iff u(noise_seed, model, i) < fraction, where
    u = h / 2**32 and h = mix(mix(a_i ^ key) ^ key), a_i = (i * 0x9E3779B9) mod 2**32, key = salt(noise_seed,
    model, MEMBERSHIP), mix / salt being sweep.dropout's 32-bit integer hash (int64 arithmetic: the same bits on
    every device). Two rounds so that neighbouring ids and neighbouring models decorrelate fully."""
    key = _salt(noise_seed, model, MEMBERSHIP)
    ids = torch.arange(n, dtype=torch.int64)
    h = _mix_(((ids * _GOLDEN) & _MASK32) ^ key)
    h = _mix_(h ^ key)
    return h.double() / 2.0**32 < fraction


def init_seed(seed: int, model: int) -> int:
    """The torch seed model j is built under: independent of the pack it is in."""
    return _salt(seed, model, INIT)


def order_seed(seed: int, model: int, epoch: int) -> int:
    """The seed of model j's batch permutation in epoch `epoch` (0-based)."""
    return _salt(seed, model, epoch, ORDER)


def steps_per_epoch(n_subset: int, batch_size: int) -> int:
    """Batches of a model with n_subset examples: ceil(n / B), less one when the last would hold one example."""
    steps = math.ceil(n_subset / batch_size)
    return steps - 1 if steps > 1 and n_subset % batch_size == 1 else steps


def epoch_batches(subset: torch.Tensor, seed: int, model: int, epoch: int, batch_size: int) -> list[torch.Tensor]:
    """Model j's batches of one epoch: its subset's example ids (on their device) permuted and cut in order."""
    gen = torch.Generator(device=subset.device)
    gen.manual_seed(order_seed(seed, model, epoch))
    order = subset[torch.randperm(len(subset), generator=gen, device=subset.device)]
    return list(order.split(batch_size))[:steps_per_epoch(len(subset), batch_size)]


def subset_ids(cfg: RunConfig, n: int, model: int, device: torch.device) -> torch.Tensor:
    """Ascending example ids of model j's subset, on `device`; a subset too small to train on is a UserError."""
    ids = membership(n, cfg.noise_seed, model, cfg.subset_fraction).nonzero().squeeze(1)
    if len(ids) < 2:
        raise UserError(f"subset model {model} of {cfg.run_id} would train on {len(ids)} example(s): "
                        f"subset_fraction {cfg.subset_fraction} of {n} training examples is too few")
    return ids.to(device)


def build_subset_model(cfg: RunConfig, model: int) -> nn.Module:
    """Model j's initial network (the global torch generator is seeded for it first, as the Trainer does)."""
    torch.manual_seed(init_seed(cfg.seed, model))
    return build_model_for(cfg)


def _wide(x: torch.Tensor) -> torch.Tensor:
    """x in float32 when it is in a half type (autocast), else unchanged (float64 stays float64)."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


# Masked BatchNorm ------------------------------------------------------------------------------------------

class MaskedBatchNorm(nn.Module):
    """BatchNorm (1d or 2d) whose training-mode statistics cover only the rows with weight 1 in `row_weight`
    (set by the pack's step right before each forward; inside vmap, the model's own slice; None when every row of
    every model is real, which takes torch's own kernel, as most steps do). Same parameter and buffer names as
    nn.BatchNorm, so the stacked state of ordinary models plugs in unchanged. A half-precision input (autocast)
    is normalised in float32, as cuDNN's BatchNorm does."""

    def __init__(self, like: nn.modules.batchnorm._BatchNorm) -> None:
        super().__init__()
        self.eps, self.momentum = like.eps, like.momentum
        for name, value in [*like.named_parameters(recurse=False), *like.named_buffers(recurse=False)]:
            empty = torch.empty_like(value, device="meta")
            if isinstance(value, nn.Parameter):
                self.register_parameter(name, nn.Parameter(empty))
            else:
                self.register_buffer(name, empty)
        self.row_weight: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = (1, -1) + (1,) * (x.dim() - 2)
        if not self.training:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)
        if self.row_weight is None:  # every row of every model's batch is real: the native kernel
            self.num_batches_tracked.add_(1)
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, True, self.momentum,
                                self.eps)
        h = _wide(x)
        w = self.row_weight.to(h.dtype).reshape((-1,) + (1,) * (x.dim() - 1))
        dims = [0, *range(2, x.dim())]
        count = self.row_weight.sum() * math.prod(x.shape[2:])
        mean = (h * w).sum(dims) / count.clamp_min(1)
        centred = h - mean.reshape(shape)
        var = (centred.square() * w).sum(dims) / count.clamp_min(1)
        y = centred * torch.rsqrt(var + self.eps).reshape(shape) * self.weight.reshape(shape) + self.bias.reshape(shape)
        with torch.no_grad():
            active = count > 0
            m = self.momentum
            unbiased = var * count / (count - 1).clamp_min(1)
            self.running_mean.copy_(torch.where(active, (1 - m) * self.running_mean + m * mean, self.running_mean))
            self.running_var.copy_(torch.where(active, (1 - m) * self.running_var + m * unbiased, self.running_var))
            self.num_batches_tracked.add_(active.long())
        return y.to(x.dtype)


def masked_skeleton(model: nn.Module) -> tuple[nn.Module, list[MaskedBatchNorm]]:
    """A meta-device copy of `model` with every BatchNorm replaced by MaskedBatchNorm: the module functional_call
    runs with the stacked state. Returns it and its masked BatchNorms (whose row weights the step sets)."""
    skeleton = copy.deepcopy(model).to("meta")
    masked = []
    for parent in list(skeleton.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.modules.batchnorm._BatchNorm):
                if child.momentum is None or not child.track_running_stats:
                    raise ValueError("packs need BatchNorm with running statistics and a fixed momentum")
                replacement = MaskedBatchNorm(child)
                setattr(parent, name, replacement)
                masked.append(replacement)
    return skeleton, masked


# The pack trainer ------------------------------------------------------------------------------------------

class PackTrainer:
    """The K models of a pack: stacked state, one vmapped step for all, `train_epoch`, predictions at the end."""

    def __init__(self, cfg: RunConfig, prep: Prepared, device: torch.device) -> None:
        self.cfg, self.prep, self.device = cfg, prep, device
        self.cuda = device.type == "cuda"
        self.models = list(cfg.models)
        n = len(prep.labels)
        self.subsets = [subset_ids(cfg, n, j, device) for j in self.models]
        self.steps = [steps_per_epoch(len(s), cfg.batch_size) for s in self.subsets]
        nets = [build_subset_model(cfg, j).to(device) for j in self.models]
        self.skeleton, self.masked = masked_skeleton(nets[0])
        params, buffers = stack_module_state(nets)
        self.params = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
        self.buffers = {k: v.detach().clone() for k, v in buffers.items()}
        self.momentum = {k: torch.zeros_like(v) for k, v in self.params.items()}
        self.epoch = 0
        self._full = False  # the current step's batches are all full (set by `step`)
        self.final: tuple[torch.Tensor, ...] | None = None  # (train correct, train p, test correct, test p)

    def _autocast(self) -> torch.autocast:
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.cuda)

    def _model_loss(self, params: dict, buffers: dict, x: torch.Tensor, y: torch.Tensor,
                    w: torch.Tensor) -> torch.Tensor:
        """One model's batch loss (inside vmap): mean cross-entropy over its real rows (weight 1)."""
        for bn in self.masked:
            bn.row_weight = None if self._full else w
        with self._autocast():
            logits = functional_call(self.skeleton, (params, buffers), (x,))
        losses = F.cross_entropy(_wide(logits), y, reduction="none")
        return (losses * w).sum() / w.sum().clamp_min(1)

    def step(self, idx: torch.Tensor, w: torch.Tensor, lr: torch.Tensor, full: bool = False,
             all_active: bool = False) -> torch.Tensor:
        """One SGD step of every model: idx (K, B) example ids, w (K, B) row weights, lr (K,); returns the (K,)
        batch losses. A model with no real row takes no step (lr and momentum gated by its activity). `full` (every
        row real) and `all_active` (every model has a row) are known on the host from the epoch's plan; they pick
        the native BatchNorm and the in-place update that torch.optim.SGD does, without a device sync."""
        x, y = self.prep.data.train.x[idx], self.prep.labels[idx]
        names = list(self.params)
        self._full = full
        losses = vmap(self._model_loss)(self.params, self.buffers, x, y, w)
        grads = torch.autograd.grad(losses.sum(), [self.params[k] for k in names])
        active = w.sum(1) > 0
        with torch.no_grad():
            for name, grad in zip(names, grads, strict=True):
                p, buf = self.params[name], self.momentum[name]
                shape = (-1,) + (1,) * (p.dim() - 1)
                grad.add_(p, alpha=WEIGHT_DECAY)
                if all_active:
                    buf.mul_(MOMENTUM).add_(grad)
                    p.addcmul_(buf, lr.reshape(shape), value=-1)
                else:
                    on = active.reshape(shape)
                    buf.copy_(torch.where(on, buf * MOMENTUM + grad, buf))
                    p.addcmul_(buf, torch.where(on, lr.reshape(shape), 0.0), value=-1)
        return losses.detach()

    def _epoch_plan(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[int]]:
        """This epoch's padded batches: ids (S, K, B), row weights (S, K, B), lrs (S, K), S = the longest model's;
        and each step's fewest real rows over the models (on the host)."""
        cfg, k, b = self.cfg, len(self.models), self.cfg.batch_size
        batches = [epoch_batches(s, cfg.seed, j, self.epoch, b) for s, j in zip(self.subsets, self.models,
                                                                                    strict=True)]
        s_max = max(len(bl) for bl in batches)
        idx = torch.zeros(s_max, k, b, dtype=torch.long, device=self.device)
        w = torch.zeros(s_max, k, b, device=self.device)
        lrs = torch.zeros(s_max, k, dtype=self.params[next(iter(self.params))].dtype)
        fewest = [b] * s_max
        for m, (bl, steps) in enumerate(zip(batches, self.steps, strict=True)):
            for s in range(s_max):
                ids = bl[s] if s < len(bl) else bl[0][:0]
                idx[s, m, :len(ids)] = ids
                w[s, m, :len(ids)] = 1
                fewest[s] = min(fewest[s], len(ids))
                if len(ids):
                    lrs[s, m] = lr_at(self.epoch * steps + s, cfg.epochs * steps, cfg.lr)
        return idx, w, lrs.to(self.device), fewest

    def train_epoch(self) -> dict[str, float]:
        """One epoch of every model; the epoch's aux_epochs row (accuracies at the last epoch only)."""
        start = time.perf_counter()
        cfg = self.cfg
        idx, w, lrs, fewest = self._epoch_plan()
        loss_sum = torch.zeros(len(self.models), device=self.device)
        self.skeleton.train()
        for s in range(idx.shape[0]):
            loss_sum += self.step(idx[s], w[s], lrs[s], full=fewest[s] == cfg.batch_size, all_active=fewest[s] > 0)
        self.epoch += 1
        steps = torch.tensor(self.steps, dtype=torch.float32)
        last_lr = [lr_at(self.epoch * st - 1, cfg.epochs * st, cfg.lr) for st in self.steps]
        row = {"epoch": self.epoch, "train_loss": float((loss_sum.cpu() / steps).mean()),
               "clean_acc": math.nan, "noisy_acc": math.nan, "noisy_true_acc": math.nan, "test_acc": math.nan,
               "epoch_lr": float(np.mean(last_lr))}
        if self.epoch == cfg.epochs:
            row.update(self.accuracies())
        row["seconds"] = time.perf_counter() - start
        return row

    @torch.no_grad()
    def predict(self, x: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Eval-mode (correct, p_label) of every model on every row of x: two (K, N) CPU tensors."""
        self.skeleton.eval()
        k = len(self.models)
        chunk = max(1, EVAL_ROWS // k)

        def logits_of(params: dict, buffers: dict, xs: torch.Tensor) -> torch.Tensor:
            with self._autocast():
                return functional_call(self.skeleton, (params, buffers), (xs,)).float()

        correct, p_label = [], []
        for s in range(0, len(labels), chunk):
            y = labels[s:s + chunk]
            logits = vmap(logits_of, in_dims=(0, 0, None))(self.params, self.buffers, x[s:s + chunk])
            probs = torch.softmax(logits, -1)
            correct.append((logits.argmax(-1) == y).cpu())
            p_label.append(probs.gather(-1, y.expand(k, -1).unsqueeze(-1)).squeeze(-1).double().cpu())
        self.skeleton.train()
        if not correct:
            return torch.zeros(k, 0, dtype=torch.bool), torch.zeros(k, 0, dtype=torch.float64)
        return torch.cat(correct, 1), torch.cat(p_label, 1)

    def final_predictions(self) -> tuple[torch.Tensor, ...]:
        """(train correct, train p_label, test correct, test p_label) of the trained models, computed once."""
        if self.final is None:
            data = self.prep.data
            self.final = (*self.predict(data.train.x, self.prep.labels), *self.predict(data.test.x, data.test.y))
        return self.final

    def accuracies(self) -> dict[str, float]:
        """The accuracy columns of the last epoch's row: means over the models (whole training set, eval mode)."""
        train_correct, _, test_correct, _ = self.final_predictions()
        noisy = self.prep.is_noisy.cpu()
        pred_true = self._predicted_true(noisy)
        acc = train_correct.float()
        return {"clean_acc": float(acc[:, ~noisy].mean()) if (~noisy).any() else math.nan,
                "noisy_acc": float(acc[:, noisy].mean()) if noisy.any() else math.nan,
                "noisy_true_acc": pred_true, "test_acc": float(test_correct.float().mean())}

    @torch.no_grad()
    def _predicted_true(self, noisy: torch.Tensor) -> float:
        """Mean over models of the accuracy on the mislabeled examples against their true label."""
        if not noisy.any():
            return math.nan
        ids = noisy.nonzero().squeeze(1).to(self.device)
        correct, _ = self.predict(self.prep.data.train.x[ids], self.prep.original.to(self.device)[ids])
        return float(correct.float().mean())

    def predictions_frame(self) -> pd.DataFrame:
        """The subset_predictions rows: per model, every training example then every test example."""
        train_correct, train_p, test_correct, test_p = self.final_predictions()
        prep = self.prep
        n, t, k = len(prep.labels), len(prep.data.test.y), len(self.models)
        inside = torch.zeros(k, n, dtype=torch.bool)
        for m, ids in enumerate(self.subsets):
            inside[m, ids.cpu()] = True
        per_model = n + t
        return pd.DataFrame({
            "model": np.repeat(np.asarray(self.models, dtype=np.int64), per_model),
            "split": np.tile(np.array(["train"] * n + ["test"] * t, dtype=object), k),
            "example_id": np.tile(np.concatenate([prep.example_ids.cpu().numpy(), np.arange(t)]), k),
            "in_subset": torch.cat([inside, torch.zeros(k, t, dtype=torch.bool)], 1).reshape(-1).numpy(),
            "correct": torch.cat([train_correct, test_correct], 1).reshape(-1).numpy(),
            "p_label": torch.cat([train_p, test_p], 1).reshape(-1).numpy(),
            "label": np.tile(np.concatenate([prep.labels.cpu().numpy(), prep.data.test.y.cpu().numpy()]), k)})

    def state_dict(self) -> dict[str, object]:
        """Everything a resumed pack needs (no random generator state: every draw is seeded by (seed, j, epoch))."""
        cpu = {name: {k: v.detach().cpu().clone() for k, v in part.items()}
               for name, part in (("params", self.params), ("buffers", self.buffers), ("momentum", self.momentum))}
        return {"version": STATE_VERSION, "models": list(self.models), "epoch": self.epoch, **cpu}

    def load_state_dict(self, state: dict) -> None:
        if list(state["models"]) != self.models:
            raise ValueError(f"state of models {state['models']} loaded into a pack of {self.models}")
        with torch.no_grad():
            for name, part in (("params", self.params), ("buffers", self.buffers), ("momentum", self.momentum)):
                for k, v in part.items():
                    v.copy_(state[name][k].to(self.device))
        self.epoch = int(state["epoch"])
        self.final = None

    def weights(self) -> dict[str, torch.Tensor]:
        """The stacked state dict (every tensor with a leading model axis, in `models` order), on the CPU."""
        return {k: v.detach().cpu().clone() for k, v in {**self.params, **self.buffers}.items()}

    def model_state(self, m: int) -> dict[str, torch.Tensor]:
        """The m-th model's (position in the pack, not j) state dict, loadable into build_model_for(cfg)."""
        return {k: v[m].detach().cpu().clone() for k, v in {**self.params, **self.buffers}.items()}


# Persistence -------------------------------------------------------------------------------------------------

def _resume_state(store: Store, cfg: RunConfig) -> dict | None:
    """The saved state to continue from, or None (none, unreadable, another version: train from the start)."""
    state = saved_state(store, cfg, "pack")
    if state is None:
        return None
    if state.get("trainer", {}).get("version") != STATE_VERSION:
        print(f"pack {cfg.run_id}: the saved state is of another version; training it from the start",
              file=sys.stderr)
        return None
    return state


def execute_pack(cfg: RunConfig, store: Store, device: torch.device, data_dir: str = "data", download: bool = False,
                 on_epoch: Callable[[dict[str, float]], None] | None = None, ray_node_id: str | None = None,
                 data: Dataset | None = None, compile: bool = False,
                 keep_weights: bool = KEEP_WEIGHTS) -> dict[str, object]:
    """Train pack `cfg` to completion, resuming from its last saved epoch; write `aux_epochs`,
    `subset_predictions`, `aux_runs` and, last, its done-record (listing every file it wrote).

    `compile` is accepted for the same call as sweep.train.execute_run and not used: the pack's vmapped
    functional step runs eager. `keep_weights` also saves the stacked final state (models.pt)."""
    if not cfg.subsets:
        raise ValueError(f"{cfg.run_id} is not a pack of subset models (subsets = 0)")
    start = time.perf_counter()
    prep = prepare(cfg.base(), device, data_dir, download, data=data)
    trainer = PackTrainer(cfg, prep, device)
    ckdir = checkpoint_dir(cfg)
    epoch_rows: list[dict] = []
    seconds = 0.0
    state = _resume_state(store, cfg)
    if state is not None:
        trainer.load_state_dict(state["trainer"])
        epoch_rows, seconds = list(state["epoch_rows"]), float(state["seconds"])
    while trainer.epoch < cfg.epochs:
        row = trainer.train_epoch()
        epoch_rows.append(row)
        store.save_torch(f"{ckdir}/state.pt", {"trainer": trainer.state_dict(), "epoch_rows": list(epoch_rows),
                                               "seconds": seconds + time.perf_counter() - start, "files": {}})
        write_progress(store, cfg, row)
        if on_epoch is not None:
            on_epoch(row)
    files: dict[str, FileEntry] = {}
    if keep_weights:
        files[f"{ckdir}/models.pt"] = store.save_torch(f"{ckdir}/models.pt", trainer.weights())
    tables = [("subset_predictions", trainer.predictions_frame()), ("epochs", pd.DataFrame(epoch_rows))]
    for table, frame in tables:
        name = table_for(cfg, table)
        files[store.table_file(name, cfg.run_id)] = store.write_table(name, cfg.run_id, with_run_columns(frame, cfg))
    run_row = {"n_train": len(prep.labels), "n_test": len(prep.data.test.y), "n_noisy": int(prep.is_noisy.sum()),
               "status": "complete", "seconds": seconds + time.perf_counter() - start, "device": str(device),
               "node": socket.gethostname(), "ray_node_id": ray_node_id,
               "versions": f"python={platform.python_version()};torch={torch.__version__}",
               "checkpoint_dir": store.path(ckdir), "dynamics_seconds": 0.0, "curvature_seconds": 0.0}
    runs = with_run_columns(pd.DataFrame([run_row]), cfg)
    runs_table = table_for(cfg, "runs")
    files[store.table_file(runs_table, cfg.run_id)] = store.write_table(runs_table, cfg.run_id, runs)
    records.write(store, records.run_record_path(cfg.run_id), Record(cfg.run_id, asdict(cfg), files))
    # Done: the record lists every file a later sweep checks, and a finished pack is never resumed, so its resume
    # state (K models' weights and momenta, 0.6 GB for 12 width-1 ResNet-9s) would only fill the disk: M = 2,000
    # subset models per run keep none of it.
    store.delete(f"{ckdir}/state.pt")
    return runs.iloc[0].to_dict()


def train_pack_in_memory(cfg: RunConfig, data: Dataset | None = None,
                         device: str | torch.device = "cpu") -> pd.DataFrame:
    """Train one pack without a store; its subset_predictions frame (run columns in front): for tests, notebooks."""
    device = torch.device(device)
    cfg = cfg.validate()
    if not cfg.subsets:
        raise ValueError(f"{cfg.run_id} is not a pack of subset models (subsets = 0)")
    trainer = PackTrainer(cfg, prepare(cfg.base(), device, data=data), device)
    while trainer.epoch < cfg.epochs:
        trainer.train_epoch()
    return with_run_columns(trainer.predictions_frame(), cfg)


# Pack size ---------------------------------------------------------------------------------------------------

def model_bytes(cfg: RunConfig) -> int:
    """Planned bytes of one model in a pack: STATE_BYTES_PER_PARAM x parameters + ACTIVATION_FACTOR x 4 bytes x
    batch_size x (output elements of every leaf module for one example). The element count comes from a forward
    pass on the meta device (no memory, no data), so it is exact for the architecture and deterministic."""
    with torch.device("meta"):
        model = build_model_for(cfg)
    shape, _ = SHAPES[cfg.dataset]
    elements = [0]

    def count(_module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
        elements[0] += output.numel()

    hooks = [m.register_forward_hook(count) for m in model.modules() if not list(m.children())]
    model(torch.empty(2, *shape, device="meta"))  # 2: BatchNorm refuses a batch of one
    for hook in hooks:
        hook.remove()
    params = sum(p.numel() for p in model.parameters())
    return STATE_BYTES_PER_PARAM * params + ACTIVATION_FACTOR * 4 * cfg.batch_size * (elements[0] // 2)


def auto_pack(cfg: RunConfig, subsets: int, device_memory: int | None = None) -> int:
    """K, the models per pack: floor(budget / model_bytes(cfg)), at least 1, at most `subsets` and MAX_PACK.
    budget = DEVICE_SHARE x device_memory (bytes) for a GPU, CPU_BUDGET when none is given. A function of the
    config's architecture, width, dataset and batch size only, so a grid's run ids are stable."""
    budget = CPU_BUDGET if device_memory is None else int(DEVICE_SHARE * device_memory)
    return max(1, min(int(subsets), MAX_PACK, budget // model_bytes(cfg)))
