"""Input-space loss curvature around each training example (Garg, Ravikumar and Roy, ICML 2024).

The authors' estimator (their code: purdue-nrl/Memorization-Curvature score_*_checkpoint.py, and the same
function in DeepakTatachar/CSL-Mem score_mislabelled.py, which produced Ravikumar et al. 2025's Table 2):
for n random Rademacher directions v (entries +-1), the finite difference of the input gradients

    curv(x) = (1/n) * sum_i || grad_x l(x + h v_i, y) - grad_x l(x, y) ||_2      (~ h * mean ||H v_i||),

with the model in eval mode, the example's training label y, cross-entropy l, n = 10 and h = 1e-3, computed on
the weights of each epoch and averaged over the training epochs (the paper: "averaged over training epochs").
It is the norm, not its square (the paper writes Tr(H^2) = E||Hv||^2; the code takes the norm), and not divided
by h; both leave the ranking unchanged. One difference, on purpose: the authors' loss is the batch mean, so each
example's value is also divided by the size of the batch it was scored in (a constant except for the last, smaller
batch); we use each example's own loss, so the value does not depend on how examples were batched.

Batched over examples: the unperturbed copy and the n perturbed copies of a chunk of examples go through the
model as one batch, and one backward of the summed loss gives every row's input gradient (in eval mode the rows
do not interact). It runs in float32 with TF32 off: a difference of two gradients that agree to ~1e-3 would be
lost in bf16 or TF32 rounding.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

ROWS_PER_PASS = 2048  # examples x (directions + 1) per forward/backward: memory, not speed, sets it

GradFn = Callable[[torch.Tensor, slice], torch.Tensor]


def finite_difference_curvature(grad_fn: GradFn, x: torch.Tensor, v: torch.Tensor, h: float,
                                rows: slice = slice(None)) -> torch.Tensor:
    """curv of each row of `x` (shape (m, ...)) along directions `v` (shape (n, m, ...)), with `grad_fn(z, rows)`
    returning the input gradient of each row's own loss for the stacked batch `z` of (n + 1) copies of the rows
    `rows` of the data (the unperturbed copy first)."""
    m, n = x.shape[0], v.shape[0]
    stacked = torch.cat([x, (x.unsqueeze(0) + h * v).flatten(0, 1)])
    grads = grad_fn(stacked, rows).flatten(1)
    base, moved = grads[:m], grads[m:].view(n, m, -1)
    return (moved - base.unsqueeze(0)).norm(dim=2).mean(0)


def rademacher(shape: tuple[int, ...], generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """Entries +1 or -1 with probability 1/2 each, drawn from `generator` (on `device`)."""
    return torch.randint(0, 2, shape, generator=generator, device=device).float().mul_(2).sub_(1)


@contextlib.contextmanager
def exact_float32(model: nn.Module, device: torch.device) -> Iterator[None]:
    """Eval mode, no autocast, no TF32 for the duration; the model's mode and the TF32 flags are restored."""
    was_training = model.training
    flags = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    model.eval()
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        with torch.autocast(device.type, enabled=False):
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = flags
        model.train(was_training)


def model_curvature(model: nn.Module, x: torch.Tensor, labels: torch.Tensor, ids: torch.Tensor | None,
                    directions: int, h: float, generator: torch.Generator,
                    rows_per_pass: int = ROWS_PER_PASS) -> torch.Tensor:
    """curv of every row of `x` under `model` in eval mode with training labels `labels`, on x's device, in
    float32 (float64 when the model and `x` are float64, as tests use to compare without rounding).

    `ids` are the rows' training-example ids, passed to the model as in its evaluation (example-tied dropout
    evaluates a training example with its own mask); every copy of an example carries its id and label."""
    chunk = max(1, rows_per_pass // (directions + 1))
    dtype = torch.promote_types(x.dtype, torch.float32)
    out = torch.empty(len(x), dtype=dtype, device=x.device)

    def grad_fn(z: torch.Tensor, rows: slice) -> torch.Tensor:
        copies = directions + 1
        y = labels[rows].repeat(copies)
        row_ids = None if ids is None else ids[rows].repeat(copies)
        z = z.detach().requires_grad_(True)
        logits = model(z, ids=row_ids)
        loss = F.cross_entropy(logits.to(torch.promote_types(logits.dtype, torch.float32)), y, reduction="sum")
        return torch.autograd.grad(loss, z)[0]

    with exact_float32(model, x.device):
        for s in range(0, len(x), chunk):
            rows = slice(s, min(s + chunk, len(x)))
            xs = x[rows].to(dtype)
            v = rademacher((directions, *xs.shape), generator, x.device).to(dtype)
            out[rows] = finite_difference_curvature(grad_fn, xs, v, h, rows).detach()
    return out


def due(epoch: int, epochs: int, every: int) -> bool:
    """Curvature is computed at the end of every `every`-th epoch and of the last one; never when every = 0."""
    return every > 0 and (epoch % every == 0 or epoch == epochs)


class CurvatureSum:
    """The running sum of each example's curvature over the epochs it was computed at, and the time it took."""

    def __init__(self, n: int, device: torch.device) -> None:
        self.total = torch.zeros(n, dtype=torch.float64, device=device)
        self.epochs = 0
        self.seconds = 0.0

    def add(self, values: torch.Tensor, seconds: float) -> None:
        self.total += values.double()
        self.epochs += 1
        self.seconds += seconds

    def mean(self) -> torch.Tensor:
        """Mean over the computed epochs; NaN everywhere when it was never computed (curvature_every = 0)."""
        return self.total / self.epochs if self.epochs else torch.full_like(self.total, float("nan"))

    def state_dict(self) -> dict[str, object]:
        return {"total": self.total.cpu(), "epochs": self.epochs, "seconds": self.seconds}

    def load_state_dict(self, state: dict, device: torch.device) -> None:
        self.total = state["total"].to(device)
        self.epochs, self.seconds = int(state["epochs"]), float(state["seconds"])
