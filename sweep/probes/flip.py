"""Neuron flipping (DESIGN.md §4): how few units must be zeroed before an example's prediction flips.

For a target training example k (label = its training label, possibly noisy) and a fixed population sample
P of the training set, the objective is J = mean_P loss - loss_k. A unit (an output channel of a conv layer
or an output feature of a hidden linear layer; never the classifier's logits) has the attribution
a_u = sum over its weights and bias of w * dJ/dw = sum over positions of y_u * dJ/dy_u, y_u being the
module's output for that unit. Greedy: remove the present unit with the largest a_u (the largest first-order
decrease of J), recompute, and stop once argmax(model(k)) differs from k's label or `cap` units are gone.

Why the batched engine is exact. Everything runs in eval mode, so BatchNorm uses its running statistics and
every row of a batch is computed independently of the others. Zeroing a unit's filter and bias is the same as
zeroing that module's output channel, so a unit mask can be applied to module OUTPUTS by a forward hook, a
different mask per row. Many targets then advance together in one forward/backward: each row carries the
mask of the target it belongs to, the summed loss separates into independent per-row terms (a row's logits
depend on that row only), and y * dL/dy summed per row and channel gives every target's attribution from one
backward, with no parameter gradients and no model copies. Ties in the argmax go to the lowest global unit
index (layers in forward order, then channel index), here and in the plain reference
(`sweep.probes.flip_reference`), which zeroes weights one example at a time.

Cost. The population term must be evaluated under each target's own mask. Targets whose removed-unit SETS
are equal share one population pass (at the first step all targets share the unedited model, at the next
ones many have removed the same units), so a step costs (distinct masks x B + active targets) rows against
the plain loop's (active targets x (B + 1)). No exact engine can share more than equal sets allow: on digits
(ResNet-9 width 0.25, 1140 targets) the plain loop's 4688 steps start from 1353 distinct sets, a 3.46x bound
on the saving in population passes even with one cache across every chunk (bench/flip.py prints this bound).
The engine gets close to it by cutting chunks from the label-sorted selection (`chunk_order`) and adds a
per-row saving on top: no parameter gradients, channels_last convs, large passes; measured 4.9x overall.

The only host synchronisation per step is one small copy of (chosen units, flip flags): it decides which
targets stay active and how they group.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from sweep import schemas
from sweep.config import AnalysisConfig, RunConfig
from sweep.errors import UserError
from sweep.models.groups import UnitLayer, group_names, unit_layers
from sweep.probes import Probe, RunData, register_probe

FLIP_COLUMNS = tuple(c.name for c in schemas.TABLES["flips"].columns)
UNITS_TYPE = schemas.TABLES["flips"].columns[FLIP_COLUMNS.index("units")].type
PARTS = ("clean", "noisy", "test")
CPU_BUDGET_BYTES = 256 << 20  # activations per CPU pass: large enough to amortise, small enough for cache
MAX_ROWS = 1 << 16


# Units ------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class UnitSpace:
    """The global unit numbering of a model: unit layers in forward order, channels in index order.

    A unit's global index is its layer's offset plus its channel; both engines order ties by it.
    """

    layers: tuple[UnitLayer, ...]
    offsets: tuple[int, ...]
    total: int
    groups: tuple[str, ...]  # the model's layer groups in forward order: a unit's `layer` is its group's index

    @classmethod
    def of(cls, model: nn.Module) -> UnitSpace:
        layers = tuple(unit_layers(model))
        if not layers:
            raise UserError(f"{type(model).__name__} has no hidden conv/linear units to flip")
        sizes = [layer.n_units for layer in layers]
        offsets = tuple(int(o) for o in np.cumsum([0, *sizes[:-1]]))
        return cls(layers, offsets, int(sum(sizes)), tuple(group_names(model)))

    def describe(self, unit: int) -> dict[str, object]:
        """{"layer", "layer_name", "module", "unit"} of a global unit index (an entry of the flips table's
        `units`): the group's index and name as every layer table has them, and where the unit sits inside."""
        i = int(np.searchsorted(self.offsets, unit, side="right")) - 1
        layer = self.layers[i]
        return {"layer": self.groups.index(layer.group), "layer_name": layer.group, "module": layer.name,
                "unit": int(unit - self.offsets[i])}


@dataclass
class FlipOutcome:
    """One target's result: global indices of the removed units in removal order, and whether it flipped."""

    units: list[int]
    flipped: bool


def check_cap(cap: object) -> int:
    if not isinstance(cap, int) or isinstance(cap, bool) or cap < 1:
        raise UserError(f"flip cap must be an integer >= 1, got {cap!r}")
    return cap


# Inputs -----------------------------------------------------------------------------------------------------

def _seed_of(seed: int, purpose: str) -> int:
    """A 63-bit seed from (seed, purpose), so each random draw of the probe has its own stream."""
    return int.from_bytes(hashlib.sha256(f"{purpose}:{seed}".encode()).digest()[:8], "little") >> 1


def _generator(seed: int, purpose: str) -> torch.Generator:
    return torch.Generator().manual_seed(_seed_of(seed, purpose))


def input_noise(x: torch.Tensor, ids: torch.Tensor, copies: int, scale: float,
                seed: int) -> torch.Tensor | None:
    """Gaussian offsets (len(x), copies, *x.shape[1:]) with L2 norm `scale * ||x_i||` per copy, or None.

    Drawn per (seed, example id) on the CPU, so an example gets the same noise whether it is a target or in
    the population, in any batch, in both engines and on any device.
    """
    if copies == 0:
        return None
    noise = torch.empty(len(x), copies, *x.shape[1:])
    for row, example in enumerate(ids.tolist()):
        noise[row] = torch.randn(copies, *x.shape[1:], generator=_generator(seed, f"flip-noise-{example}"))
    norm_x = x.detach().flatten(1).norm(dim=1).cpu().double()
    norm_e = noise.flatten(2).norm(dim=2).double()
    factor = (scale * norm_x[:, None] / norm_e).to(noise.dtype)
    return (noise * factor.view(len(x), copies, *[1] * (x.dim() - 1))).to(x.device, x.dtype)


def noisy_logits(model: nn.Module, x: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
    """Logits of x, or their mean over the noisy copies x + noise[:, c] when noise averaging is on."""
    if noise is None:
        return model(x)
    copies = noise.shape[1]
    logits = model((x.unsqueeze(1) + noise).flatten(0, 1))
    return logits.view(len(x), copies, -1).mean(1)


def _prepare_inputs(x: torch.Tensor) -> torch.Tensor:
    """Images in channels_last, the layout `_masked` gives the conv weights (faster convs on CPU and GPU)."""
    return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x


# Per-row unit masks on module outputs -----------------------------------------------------------------------

class _UnitHooks:
    """Forward hooks that multiply each unit layer's output by its rows' keep masks (1 present, 0 removed).

    Row r uses mask `table[index[r]]`; the gather happens per layer, so a pass never holds a full
    (rows, units) mask copy.

    With `capture`, each masked output z gets a tensor hook that stores (z * dJ/dz) summed over every
    dimension but rows and units: the per-row, per-unit attribution, taken during the one backward. Equal to
    y * dJ/dy for present units, zero for removed ones.
    """

    def __init__(self, space: UnitSpace) -> None:
        self.space = space
        self.table: torch.Tensor | None = None
        self.index: torch.Tensor | None = None
        self.capture = False
        self.attr: list[torch.Tensor | None] = [None] * len(space.layers)
        self._saved: list[torch.Tensor | None] = [None] * len(space.layers)
        self._versions = [0] * len(space.layers)
        self.calls = [0] * len(space.layers)
        self._handles = [layer.module.register_forward_hook(self._make_hook(i))
                         for i, layer in enumerate(space.layers)]

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()

    def _make_hook(self, i: int):  # noqa: ANN202 - a torch forward hook
        lo = self.space.offsets[i]
        hi = lo + self.space.layers[i].n_units
        unit_dim_of = 1 if isinstance(self.space.layers[i].module, nn.modules.conv._ConvNd) else -1

        def hook(module: nn.Module, inputs: object, out: torch.Tensor) -> torch.Tensor | None:
            self.calls[i] += 1
            if self.table is None:
                return None
            unit_dim = unit_dim_of % out.dim()
            shape = [len(out)] + [1] * (out.dim() - 1)
            shape[unit_dim] = hi - lo
            z = out * self.table[:, lo:hi][self.index].reshape(shape)
            if self.capture:
                if not z.requires_grad:
                    z.requires_grad_()
                self._saved[i], self._versions[i] = z, z._version
                dims = [d for d in range(1, out.dim()) if d != unit_dim]
                z.register_hook(lambda g: self._on_grad(i, g, dims))
            return z

        return hook

    def _on_grad(self, i: int, grad: torch.Tensor, dims: list[int]) -> None:
        z = self._saved[i]
        if z._version != self._versions[i]:
            raise RuntimeError(f"unit layer {self.space.layers[i].name!r} has its output modified in place; "
                               "the flip attribution needs it intact (use non-inplace activations)")
        prod = z * grad
        self.attr[i] = prod.sum(dims) if dims else prod
        self._saved[i] = None

    def start(self, table: torch.Tensor, index: torch.Tensor, capture: bool) -> None:
        self.table, self.index, self.capture = table, index, capture
        self.calls = [0] * len(self.calls)
        self.attr = [None] * len(self.attr)

    def finish(self) -> None:
        """Check every unit layer ran exactly once (a module used functionally would escape its mask)."""
        bad = [layer.name for layer, n in zip(self.space.layers, self.calls, strict=True) if n != 1]
        self.table, self.index, self._saved = None, None, [None] * len(self._saved)
        if bad:
            raise RuntimeError(f"unit layers {bad} did not run exactly once per forward; masks cannot apply")


@contextmanager
def _masked(model: nn.Module) -> Iterator[_UnitHooks]:
    """Eval mode, parameters frozen (attribution needs activation gradients only), hooks installed.

    Conv weights are switched to channels_last for the duration (1.2-1.3x faster passes on CPU, measured on
    ResNet-9 at 8x8 and 28x28) and get their own tensors back on exit, so the caller's model is unchanged.
    """
    flags = [(m, m.training) for m in model.modules()]
    grads = [(p, p.requires_grad) for p in model.parameters()]
    layouts = [(p, p.data) for p in model.parameters() if p.dim() == 4]
    model.eval()
    for p, _ in grads:
        p.requires_grad_(False)
    for p, data in layouts:
        p.data = data.contiguous(memory_format=torch.channels_last)
    hooks = _UnitHooks(UnitSpace.of(model))
    try:
        yield hooks
    finally:
        hooks.close()
        for m, flag in flags:
            m.training = flag
        for p, flag in grads:
            p.requires_grad_(flag)
        for p, data in layouts:
            p.data = data


def _row_bytes(model: nn.Module, x: torch.Tensor) -> int:
    """Bytes of every module output for one input row: the activation footprint that sizes a pass."""
    total = [0]

    def count(module: nn.Module, inputs: object, out: object) -> None:
        if isinstance(out, torch.Tensor):
            total[0] += out.numel() * out.element_size()

    handles = [m.register_forward_hook(count) for m in model.modules() if not list(m.children())]
    try:
        with torch.no_grad():
            model(x[:2])
    finally:
        for handle in handles:
            handle.remove()
    return max(1, total[0] // 2)


def auto_rows(model: nn.Module, x: torch.Tensor, backward: bool = True) -> int:
    """Rows per forward(/backward) pass that fill the device without running out of memory."""
    if x.is_cuda:
        free, _ = torch.cuda.mem_get_info(x.device)
        budget = int(free * 0.6)
    else:
        budget = CPU_BUDGET_BYTES
    per_row = _row_bytes(model, x) * (3 if backward else 1)
    return int(min(MAX_ROWS, max(16, budget // per_row)))


# The batched engine -----------------------------------------------------------------------------------------

def _predict(model: nn.Module, hooks: _UnitHooks, x: torch.Tensor, masks: torch.Tensor, index: torch.Tensor,
             rows: int) -> torch.Tensor:
    """argmax of model(x[i]) under unit mask masks[index[i]], in passes of `rows` rows, without gradients."""
    out = torch.empty(len(x), dtype=torch.long, device=x.device)
    with torch.no_grad():
        for s in range(0, len(x), rows):
            hooks.start(masks, index[s:s + rows], capture=False)
            out[s:s + rows] = model(_prepare_inputs(x[s:s + rows])).argmax(1)
            hooks.finish()
    return out


@dataclass
class _Items:
    """The rows of one attribution step: which input, which mask, loss weight, and where the result goes."""

    example: torch.Tensor  # index into the combined (population, targets) input table
    mask: torch.Tensor     # index into the step's distinct masks
    weight: torch.Tensor   # +1/B for population rows, -1 for target rows: J = mean_P loss - loss_k
    slot: torch.Tensor     # accumulator row: the mask's population slot, or the target's own slot


def _attribution(model: nn.Module, hooks: _UnitHooks, x: torch.Tensor, y: torch.Tensor,
                 noise: torch.Tensor | None, masks: torch.Tensor, items: _Items, n_slots: int,
                 rows: int) -> torch.Tensor:
    """Sum over each slot's rows of (per-row, per-unit) y * dJ/dy; one backward per pass of `rows` rows."""
    copies = 1 if noise is None else noise.shape[1]
    per_pass = max(1, rows // copies)
    # float64 sums: CUDA's index_add_ adds in no fixed order; at this precision the order cannot decide a tie
    acc = torch.zeros(n_slots, hooks.space.total, dtype=torch.float64, device=masks.device)
    for s in range(0, len(items.example), per_pass):
        ex = items.example[s:s + per_pass]
        index = items.mask[s:s + per_pass]
        if noise is None:
            inputs = x[ex]
        else:
            inputs = (x[ex].unsqueeze(1) + noise[ex]).flatten(0, 1)
            index = index.repeat_interleave(copies, 0)
        hooks.start(masks, index, capture=True)
        logits = model(_prepare_inputs(inputs))
        if noise is not None:
            logits = logits.view(len(ex), copies, -1).mean(1)
        loss = (F.cross_entropy(logits, y[ex], reduction="none") * items.weight[s:s + per_pass]).sum()
        loss.backward()
        hooks.finish()
        per_row = torch.cat(hooks.attr, dim=1)
        if noise is not None:
            per_row = per_row.view(len(ex), copies, -1).sum(1)
        acc.index_add_(0, items.slot[s:s + per_pass], per_row.double())
    return acc


def flip_batched(model: nn.Module, x: torch.Tensor, y: torch.Tensor, pop_x: torch.Tensor, pop_y: torch.Tensor,
                 cap: int, noise: torch.Tensor | None = None, pop_noise: torch.Tensor | None = None,
                 rows: int | None = None) -> list[FlipOutcome]:
    """Greedy unit removal for every target (x[i], y[i]) at once; see the module docstring.

    pop_x/pop_y: the population sample; noise/pop_noise: `input_noise` offsets (both or neither); rows: rows
    per forward/backward pass (None: sized to the device). The model is used in eval mode, unchanged.
    """
    check_cap(cap)
    if len(pop_x) == 0:
        raise UserError("the flip population sample is empty")
    if (noise is None) != (pop_noise is None):
        raise ValueError("give noise for both targets and population, or for neither")
    n_targets, n_pop = len(x), len(pop_x)
    if n_targets == 0:
        return []
    device = x.device
    table_x, table_y = torch.cat([pop_x, x]), torch.cat([pop_y, y])
    table_noise = None if noise is None else torch.cat([pop_noise, noise])
    with _masked(model) as hooks:
        space = hooks.space
        cap = min(cap, space.total)
        dtype = next(model.parameters()).dtype
        rows = rows or auto_rows(model, x)
        keep = torch.ones(n_targets, space.total, dtype=dtype, device=device)
        everyone = torch.arange(n_targets, device=device)
        flipped = (_predict(model, hooks, x, keep, everyone, rows * 2) != y).cpu().tolist()
        removed: list[list[int]] = [[] for _ in range(n_targets)]
        keys: list[frozenset[int]] = [frozenset()] * n_targets
        outcomes: list[FlipOutcome | None] = [FlipOutcome([], True) if f else None for f in flipped]
        active = [t for t in range(n_targets) if not flipped[t]]
        while active:
            distinct: dict[frozenset[int], int] = {}
            group = [distinct.setdefault(keys[t], len(distinct)) for t in active]
            first = {g: t for t, g in zip(reversed(active), reversed(group), strict=True)}
            n_masks = len(distinct)
            act = torch.tensor(active, device=device)
            gid = torch.tensor(group, device=device)
            masks = keep[torch.tensor([first[g] for g in range(n_masks)], device=device)]
            pop_rows = torch.arange(n_pop, device=device).repeat(n_masks)
            pop_mask = torch.arange(n_masks, device=device).repeat_interleave(n_pop)
            items = _Items(
                example=torch.cat([pop_rows, n_pop + act]),
                mask=torch.cat([pop_mask, gid]),
                weight=torch.cat([torch.full((n_pop * n_masks,), 1.0 / n_pop, dtype=dtype, device=device),
                                  torch.full((len(active),), -1.0, dtype=dtype, device=device)]),
                slot=torch.cat([pop_mask, n_masks + torch.arange(len(active), device=device)]))
            acc = _attribution(model, hooks, table_x, table_y, table_noise, masks, items,
                               n_masks + len(active), rows)
            score = acc[gid] + acc[n_masks:]
            current = keep[act]
            score.masked_fill_(current == 0, -math.inf)
            choice = score.argmax(1)  # first maximum = lowest global index on ties
            current[torch.arange(len(active), device=device), choice] = 0
            keep[act] = current
            now = _predict(model, hooks, x[act], current, everyone[:len(active)], rows * 2) != y[act]
            host = torch.stack([choice, now.long()]).cpu().tolist()
            still = []
            for t, unit, did_flip in zip(active, host[0], host[1], strict=True):
                removed[t].append(unit)
                keys[t] = keys[t] | {unit}
                if did_flip or len(removed[t]) >= cap:
                    outcomes[t] = FlipOutcome(removed[t], bool(did_flip))
                else:
                    still.append(t)
            active = still
    return [o for o in outcomes if o is not None]


def edited_accuracies(model: nn.Module, removals: Sequence[Sequence[int]],
                      parts: Sequence[tuple[torch.Tensor, torch.Tensor]],
                      rows: int | None = None) -> np.ndarray:
    """Accuracy (n_edits, n_parts) of the model with each edit's units zeroed, on each (x, y) part.

    Edits with the same unit set are evaluated once; an empty part gives NaN.
    """
    distinct: dict[frozenset[int], int] = {}
    which = [distinct.setdefault(frozenset(r), len(distinct)) for r in removals]
    x = torch.cat([p[0] for p in parts])
    y = torch.cat([p[1] for p in parts])
    sizes = [len(p[1]) for p in parts]
    part_of = torch.repeat_interleave(torch.arange(len(parts), device=x.device),
                                      torch.tensor(sizes, device=x.device))
    with _masked(model) as hooks:
        dtype = next(model.parameters()).dtype
        masks = torch.ones(len(distinct), hooks.space.total, dtype=dtype, device=x.device)
        for key, m in distinct.items():
            if key:
                masks[m, list(key)] = 0
        rows = (rows or auto_rows(model, x, backward=False)) if len(x) else 1
        correct = torch.zeros(len(distinct) * len(parts), dtype=torch.long, device=x.device)
        total = len(distinct) * len(x)
        for s in range(0, total, rows):
            flat = torch.arange(s, min(s + rows, total), device=x.device)
            m, r = flat // len(x), flat % len(x)
            pred = _predict(model, hooks, x[r], masks, m, rows)
            correct.index_add_(0, m * len(parts) + part_of[r], (pred == y[r]).long())
    counts = correct.view(len(distinct), len(parts)).cpu().numpy().astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = counts / np.array(sizes, dtype=np.float64)
    return acc[which]


# The probe: selection, samples, one chunk of targets --------------------------------------------------------

@dataclass
class Selection:
    """The analysed examples of a run (clean ones first, then noisy), and how many were eligible."""

    ids: torch.Tensor
    is_noisy: torch.Tensor
    n_eligible_clean: int
    n_eligible_noisy: int


def predict_plain(model: nn.Module, x: torch.Tensor, rows: int = 4096) -> torch.Tensor:
    """fp32 argmax in eval mode with no masks: the same arithmetic as the engine's flip check."""
    with _masked(model) as hooks:
        keep = torch.ones(1, hooks.space.total, dtype=next(model.parameters()).dtype, device=x.device)
        return _predict(model, hooks, x, keep, torch.zeros(len(x), dtype=torch.long, device=x.device), rows)


def select_targets(model: nn.Module, run: RunData, n_clean: int, n_noisy: int, seed: int) -> Selection:
    """n_clean clean and n_noisy noisy training examples, chosen by seed among those the model predicts as
    their training label (an example already mispredicted needs no removal and says nothing)."""
    eligible = (predict_plain(model, run.data.train.x) == run.labels).cpu()
    noisy = run.is_noisy.cpu()
    chosen = []
    counts = []
    for part, wanted, flag in (("clean", n_clean, ~noisy), ("noisy", n_noisy, noisy)):
        pool = torch.nonzero(eligible & flag).flatten()
        counts.append(len(pool))
        order = torch.randperm(len(pool), generator=_generator(seed, f"flip-select-{part}"))
        chosen.append(pool[order[:wanted]])
    ids = torch.cat(chosen)
    return Selection(ids, noisy[ids], counts[0], counts[1])


def chunk_order(selection: Selection, labels: torch.Tensor) -> Selection:
    """The selection sorted by training label (stable), the order in which it is cut into chunks.

    Same-label targets tend to remove the same first units, and targets with equal removed sets share their
    population passes, so label-sorted chunks share more: on digits (ResNet-9 width 0.25, 1000 targets,
    chunks of 250) 3.05x fewer rows than the plain loop instead of 2.5x in selection order.
    """
    order = torch.sort(labels[selection.ids.to(labels.device)].cpu(), stable=True).indices
    return Selection(selection.ids[order], selection.is_noisy[order], selection.n_eligible_clean,
                     selection.n_eligible_noisy)


def population_ids(n_train: int, size: int, seed: int) -> torch.Tensor:
    """The run's population sample: `size` distinct training ids (all when fewer), fixed by seed."""
    return torch.randperm(n_train, generator=_generator(seed, "flip-population"))[:size]


def eval_parts(run: RunData, size: int | None, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The fixed evaluation sample: (x, y) for clean train, noisy train (noisy labels) and test."""
    train, test = run.data.train, run.data.test
    noisy = run.is_noisy.cpu()
    parts = []
    for part, pool in (("clean", torch.nonzero(~noisy).flatten()), ("noisy", torch.nonzero(noisy).flatten()),
                       ("test", torch.arange(len(test)))):
        pick = pool[torch.randperm(len(pool), generator=_generator(seed, f"flip-eval-{part}"))[:size]]
        pick = pick.sort().values.to(run.device)
        parts.append((test.x[pick], test.y[pick]) if part == "test" else (train.x[pick], run.labels[pick]))
    return parts


def empty_flips() -> pd.DataFrame:
    """A zero-row flips frame with the table's column types."""
    return schemas.rows_frame("flips", [])


def flip_units(flips: pd.DataFrame) -> pd.DataFrame:
    """The long form of `flips.units`: one row per removed unit, numbered by removal order (`step`), so "in
    which layers are the removed units" is a groupby rather than a loop over nested lists."""
    rows = [{"example_id": example, "is_noisy": noisy, "step": step, **unit}
            for example, noisy, units in zip(flips["example_id"], flips["is_noisy"], flips["units"], strict=True)
            for step, unit in enumerate(units)]
    return schemas.rows_frame("flip_units", rows)


# Everything that decides which targets a chunk holds and what its rows say. A chunk's file name carries its
# digest, so results made under other settings (or the older selection-order chunking) are never mistaken for
# a finished chunk: the engine refuses to mix them (see sweep.engine.stale_files).
CHUNK_SETTINGS = ("flip_clean", "flip_noisy", "flip_chunk", "flip_cap", "flip_population", "flip_noise_copies",
                  "flip_noise_scale", "flip_eval_size")
CHUNK_LAYOUT = "label-sorted"


def flip_signature(analysis: AnalysisConfig) -> str:
    settings = {name: getattr(analysis, name) for name in CHUNK_SETTINGS}
    blob = f"{CHUNK_LAYOUT}:{sorted(settings.items())!r}"
    return hashlib.sha256(blob.encode()).hexdigest()[:8]


def flip_shards(cfg: RunConfig, analysis: AnalysisConfig) -> list[str]:
    """Chunks "0-<sig>".."K-1-<sig>", K = ceil((flip_clean + flip_noisy) / flip_chunk), known before any data;
    <sig> is `flip_signature(analysis)`."""
    n_chunks = math.ceil((analysis.flip_clean + analysis.flip_noisy) / analysis.flip_chunk)
    signature = flip_signature(analysis)
    return [f"{i}-{signature}" for i in range(n_chunks)]


def run_flip(run: RunData, shard: str, analysis: AnalysisConfig,
             rows: int | None = None) -> dict[str, pd.DataFrame]:
    """One chunk of a run's flip analysis: recompute the deterministic selection, take chunk `shard`."""
    analysis.validate()
    index, _, signature = shard.partition("-")
    if signature != flip_signature(analysis):
        raise ValueError(f"flip shard {shard!r} was made for other flip settings than these")
    chunk = int(index)
    seed = run.cfg.seed
    model = run.model_at(run.final_epoch)
    selection = chunk_order(select_targets(model, run, analysis.flip_clean, analysis.flip_noisy, seed), run.labels)
    lo = chunk * analysis.flip_chunk
    ids = selection.ids[lo:lo + analysis.flip_chunk]
    if len(ids) == 0:
        return {"flips": empty_flips(), "flip_units": flip_units(empty_flips())}
    train = run.data.train
    pop = population_ids(len(train), analysis.flip_population, seed).to(run.device)
    ids_dev = ids.to(run.device)
    x, y = train.x[ids_dev], run.labels[ids_dev]
    pop_x, pop_y = train.x[pop], run.labels[pop]
    copies, scale = analysis.flip_noise_copies, analysis.flip_noise_scale
    outcomes = flip_batched(model, x, y, pop_x, pop_y, analysis.flip_cap,
                            noise=input_noise(x, ids, copies, scale, seed),
                            pop_noise=input_noise(pop_x, pop.cpu(), copies, scale, seed), rows=rows)
    parts = eval_parts(run, analysis.flip_eval_size, seed)
    edited = edited_accuracies(model, [o.units for o in outcomes], parts)
    base = edited_accuracies(model, [[]], parts)[0]
    space = UnitSpace.of(model)
    units = [[space.describe(u) for u in o.units] for o in outcomes]
    frame = pd.DataFrame({
        "example_id": ids.numpy().astype(np.int64),
        "is_noisy": selection.is_noisy[lo:lo + len(ids)].numpy().astype(bool),
        "n_units": np.array([len(o.units) for o in outcomes], dtype=np.int64),
        "flipped": np.array([o.flipped for o in outcomes], dtype=bool),
        "units": pd.Series(units, dtype=object),
        **{f"{p}_acc": edited[:, i] for i, p in enumerate(PARTS)},
        **{f"{p}_acc_base": np.full(len(ids), base[i]) for i, p in enumerate(PARTS)},
        "n_eligible_clean": np.full(len(ids), selection.n_eligible_clean, dtype=np.int64),
        "n_eligible_noisy": np.full(len(ids), selection.n_eligible_noisy, dtype=np.int64),
    })
    return {"flips": frame[list(FLIP_COLUMNS)], "flip_units": flip_units(frame)}


register_probe(Probe(name="flip", tables=("flips", "flip_units"), shards=flip_shards, run=run_flip,
                     applies=lambda cfg: cfg.variant == "standard", settings=CHUNK_SETTINGS))
