"""Neuron flipping (DESIGN.md §4): how few units must be zeroed before an example's prediction flips.

For a target training example k (label = its training label, possibly noisy) and a fixed population sample
P of the training set, the objective is J = mean_P loss - loss_k. A unit has the attribution a_u = sum over
its weights of w * dJ/dw (the first-order change of J when they are zeroed). Greedy: remove the present unit
with the largest a_u (the largest first-order decrease of J), recompute, and stop once argmax(model(k))
differs from k's label or `cap` units are gone.

What a unit is (analysis setting `flip_units`, `sweep.models.groups.unit_layers`):
- "outputs" (default, DESIGN.md §4): an output channel of a conv layer or an output feature of a hidden
  linear layer (its filter and bias; never the classifier's logits); a_u = sum over positions of
  y_u * dJ/dy_u, y_u being the module's output for that unit.
- "paper": the candidates of the paper's code (`experiments/neuron_flipping/attribution_utils.py`): a conv
  filter (output channel; a_u summed over the filter), and one value at a time every other parameter - each
  BatchNorm scale and shift, bias, and weight of a linear layer, the classifier's included. On demo's
  width-0.25 ResNet-9 (digits) 48% of its picks are such values (36% BatchNorm, 12% classifier); issue 21's
  review found about 60% on a width-0.5 one. Kept from our rule, documented differences:
  the population P is a separate sample (the paper's code uses the target's own batch, target included,
  with its loss scaled by -batch); and when no unit has a positive attribution we still remove the largest
  (the paper's code only takes a positive maximum and otherwise loops without removing anything).
  Ties go to the lowest index in `named_parameters` order, the order its search visits tensors in.

Why the batched engine is exact. Everything runs in eval mode, so BatchNorm uses its running statistics and
every row of a batch is computed independently of the others. Zeroing a unit's filter and bias is the same as
zeroing that module's output channel, and zeroing a scale, shift or weight value is an exact edit of the
module's output too (see `_UnitHooks`), so a unit mask can be applied to module OUTPUTS by a forward hook, a
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

import functools
import hashlib
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from sweep import bounds, schemas
from sweep.config import AnalysisConfig, RunConfig
from sweep.errors import UserError
from sweep.models.groups import UnitLayer, group_names, unit_layers
from sweep.probes import Probe, RunData, register_probe

FLIP_COLUMNS = tuple(c.name for c in schemas.TABLES["flips"].columns)
UNITS_TYPE = schemas.TABLES["flips"].columns[FLIP_COLUMNS.index("units")].type
PARTS = ("clean", "noisy", "test")
CPU_BUDGET_BYTES = 256 << 20  # activations per CPU pass: large enough to amortise, small enough for cache
MAX_ROWS = 1 << 16
# Units per target the "paper" rule may give: the engine keeps (targets, units) masks and float64 sums, in
# as few targets at once as fit TABLE_BUDGET. ResNet-9 at width 1 has 5312 units, the digits MLP 43k at
# width 0.25 and 567k at width 1 (one per weight of its linear layers).
MAX_PAPER_UNITS = 1 << 22
TABLE_BUDGET = 1 << 30  # bytes of per-target unit tables one flip_batched call holds on the CPU


# Units ------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class UnitSpace:
    """The global unit numbering of a model under a unit rule (`sweep.models.groups.unit_layers`): unit tensors
    in order (forward order for "outputs", `named_parameters` order for "paper"), units in index order.

    A unit's global index is its tensor's offset plus its index there; both engines order ties by it.
    """

    layers: tuple[UnitLayer, ...]
    offsets: tuple[int, ...]
    total: int
    groups: tuple[str, ...]  # the model's layer groups in forward order: a unit's `layer` is its group's index
    rule: str = "outputs"

    @classmethod
    def of(cls, model: nn.Module, rule: str = "outputs") -> UnitSpace:
        layers = tuple(unit_layers(model, rule))
        if not layers:
            raise UserError(f"{type(model).__name__} has no hidden conv/linear units to flip")
        sizes = [layer.n_units for layer in layers]
        if rule == "paper" and sum(sizes) > MAX_PAPER_UNITS:
            raise UserError(f"flip_units='paper' gives {type(model).__name__} {sum(sizes)} units (one per weight "
                            f"of its linear layers), more than the {MAX_PAPER_UNITS} the batched engine holds "
                            "per target; use flip_units='outputs' or a narrower model")
        offsets = tuple(int(o) for o in np.cumsum([0, *sizes[:-1]]))
        return cls(layers, offsets, int(sum(sizes)), tuple(group_names(model)), rule)

    @property
    def has_values(self) -> bool:
        return any(layer.kind == "value" for layer in self.layers)

    @property
    def row_units(self) -> int:
        """Units whose attribution is held per row in a pass (all but weight values, summed per slot)."""
        return sum(layer.n_units for layer in self.layers if layer.kind != "value")

    def describe(self, unit: int) -> dict[str, object]:
        """{"layer", "layer_name", "module", "unit"} of a global unit index (an entry of the flips table's
        `units`): the group's index and name as every layer table has them, and where the unit sits inside."""
        i = int(np.searchsorted(self.offsets, unit, side="right")) - 1
        layer = self.layers[i]
        return {"layer": self.groups.index(layer.group), "layer_name": layer.group, "module": layer.name,
                "unit": int(unit - self.offsets[i])}


@dataclass
class FlipOutcome:
    """One target's result: global indices of the removed units in removal order, and whether it flipped.

    `scores`: each removed unit's attribution at the step it was chosen (filled by `flip_batched`); `flip_k`:
    units removed when the target first flipped (0 = mispredicted before any removal), None if it never did.
    """

    units: list[int]
    flipped: bool
    scores: list[float] = field(default_factory=list)
    flip_k: int | None = None


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
    """Forward hooks that apply each row's keep mask (1 present, 0 removed) to the unit modules' outputs.

    Row r uses mask `table[index[r]]`; the gather happens per unit tensor, so a pass never holds a full
    (rows, units) mask copy. One hook per module applies all of its unit tensors (a BatchNorm's scale and
    shift, a linear layer's weights and bias) to its output `out`, each as an exact edit:

    - "output": out * mask on the unit dimension (zeroing a filter and bias = zeroing that output channel);
    - "scale": out + term * (mask - 1), term = out minus the module's shift (the BatchNorm scale term, or the
      conv's filter term): a removed channel keeps only its shift, as zeroing the weight gives;
    - "shift": out + shift * (mask - 1);
    - "value": out - sum over the row's removed elements (c, f) of W[c, f] * h[f] into output c, h the
      module's (2-D) input: the removed elements of each distinct mask are listed once per table (`start`),
      so no (rows, out, in) mask is ever formed.
    A present unit adds exactly zero, so an unmasked pass computes what the unedited model computes.

    With `capture`, the edited output z gets a tensor hook that, during the one backward, stores every unit's
    first-order attribution w * dJ/dw per row: sum over positions of z * dJ/dz ("output"), term * dJ/dz
    ("scale"), shift * dJ/dz ("shift"). For "value" units, w * dJ/dw = W * (g h^T) per row, g = dJ/dz: it
    keeps (g, h) in `outer` and `_attribution` sums g h^T over each slot's rows with one matmul, rather than
    forming a (rows, out, in) tensor. Removed units get values the engine never reads (it excludes them
    before the argmax).
    """

    def __init__(self, space: UnitSpace) -> None:
        self.space = space
        self.table: torch.Tensor | None = None
        self.index: torch.Tensor | None = None
        self.capture = False
        self.attr: list[torch.Tensor | None] = [None] * len(space.layers)
        self.outer: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * len(space.layers)
        self._removed: dict[int, tuple[torch.Tensor, torch.Tensor] | None] = {}
        self._removed_of: tuple[torch.Tensor, int] | None = None  # the table `_removed` lists, and its version
        owners: dict[int, list[int]] = {}
        for i, layer in enumerate(space.layers):
            owners.setdefault(id(layer.module), []).append(i)
        self.owners = list(owners.values())  # per unit module, its unit tensors' indices
        self._saved: list[tuple[tuple[torch.Tensor, ...], tuple[int, ...]] | None] = [None] * len(self.owners)
        self.calls = [0] * len(self.owners)
        self._handles = [space.layers[ids[0]].module.register_forward_hook(self._make_hook(m, ids))
                         for m, ids in enumerate(self.owners)]

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._removed_of, self._removed = None, {}

    def _make_hook(self, m: int, ids: list[int]):  # noqa: ANN202 - a torch forward hook
        module = self.space.layers[ids[0]].module
        spans = [(i, self.space.layers[i].kind, self.space.offsets[i],
                  self.space.offsets[i] + self.space.layers[i].n_units) for i in ids]
        unit_dim_of = 1 if isinstance(module, nn.modules.conv._ConvNd | nn.modules.batchnorm._BatchNorm) else -1

        def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> torch.Tensor | None:
            self.calls[m] += 1
            if self.table is None:
                return None
            unit_dim = unit_dim_of % out.dim()
            shape = [len(out)] + [1] * (out.dim() - 1)
            shape[unit_dim] = -1
            view = [1] * out.dim()
            view[unit_dim] = -1
            shift = None if getattr(module, "bias", None) is None else module.bias.reshape(view)
            z = out
            saved: list[torch.Tensor] = []
            for i, kind, lo, hi in spans:
                mask = self.table[:, lo:hi][self.index] if kind != "value" else None
                if kind == "output":
                    z = z * mask.reshape(shape)
                elif kind == "scale":
                    term = out if shift is None else out - shift
                    z = z + term * (mask - 1).reshape(shape)
                    saved.append(term)
                elif kind == "shift":
                    z = z + shift * (mask - 1).reshape(shape)
                else:  # "value": one weight element of a linear layer
                    h = inputs[0]
                    if h.dim() != 2:
                        raise RuntimeError(f"weight-value units need 2-D inputs to {self.space.layers[i].name}")
                    z = self._drop_values(i, module, h, z)
                    saved.append(h)
            if self.capture:
                if not z.requires_grad:
                    z.requires_grad_()
                tensors = (z, *saved)
                self._saved[m] = (tensors, tuple(t._version for t in tensors))
                dims = [d for d in range(1, out.dim()) if d != unit_dim]
                z.register_hook(lambda g: self._on_grad(m, spans, shift, g, dims))
            return z

        return hook

    def _on_grad(self, m: int, spans: list[tuple[int, str, int, int]], shift: torch.Tensor | None,
                 grad: torch.Tensor, dims: list[int]) -> None:
        tensors, versions = self._saved[m]
        if any(t._version != v for t, v in zip(tensors, versions, strict=True)):
            name = self.space.layers[spans[0][0]].name
            raise RuntimeError(f"unit layer {name!r} has its output or input modified in place; the flip "
                               "attribution needs them intact (use non-inplace activations)")
        z, saved = tensors[0], list(tensors[1:])

        def per_unit(prod: torch.Tensor) -> torch.Tensor:
            return prod.sum(dims) if dims else prod

        for i, kind, _, _ in spans:
            if kind == "output":
                self.attr[i] = per_unit(z * grad)
            elif kind == "scale":
                self.attr[i] = per_unit(saved.pop(0) * grad)
            elif kind == "shift":
                self.attr[i] = per_unit(grad * shift)
            else:
                self.outer[i] = (grad.detach(), saved.pop(0).detach())
        self._saved[m] = None

    def _drop_values(self, i: int, module: nn.Module, h: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """z minus, per row, the removed weight elements' terms W[c, f] * h[f] (added into output c)."""
        listed = self._removed[i]
        if listed is None:
            return z
        where, valid = listed[0][self.index], listed[1][self.index]  # (rows, K): flat (c, f) indices
        features = module.weight.shape[1]
        terms = module.weight.flatten()[where] * h.gather(1, where % features) * valid
        return z - torch.zeros_like(z).scatter_add(1, where // features, terms)

    def _list_removed(self, table: torch.Tensor) -> None:
        """Per value layer, the removed elements of each table row, padded to the most any row has: (indices,
        validity) of shape (rows of table, K), or None where no row removed any. One host sync per table."""
        self._removed = {}
        for i, layer in enumerate(self.space.layers):
            if layer.kind != "value":
                continue
            lo = self.space.offsets[i]
            gone = (table[:, lo:lo + layer.n_units] == 0).nonzero()
            if len(gone) == 0:
                self._removed[i] = None
                continue
            counts = torch.bincount(gone[:, 0], minlength=len(table))
            width = int(counts.max())
            first = torch.cumsum(counts, 0) - counts
            slot = torch.arange(len(gone), device=table.device) - first[gone[:, 0]]
            where = torch.zeros(len(table), width, dtype=torch.long, device=table.device)
            valid = torch.zeros(len(table), width, dtype=table.dtype, device=table.device)
            where[gone[:, 0], slot] = gone[:, 1]
            valid[gone[:, 0], slot] = 1
            self._removed[i] = (where, valid)
        self._removed_of = (table, table._version)

    def start(self, table: torch.Tensor, index: torch.Tensor, capture: bool) -> None:
        self.table, self.index, self.capture = table, index, capture
        self.calls = [0] * len(self.calls)
        self.attr = [None] * len(self.attr)
        self.outer = [None] * len(self.outer)
        if self.space.has_values and (self._removed_of is None or self._removed_of[0] is not table
                                      or self._removed_of[1] != table._version):
            self._list_removed(table)

    def finish(self) -> None:
        """Check every unit module ran exactly once (a module used functionally would escape its mask)."""
        bad = [self.space.layers[ids[0]].name for ids, n in zip(self.owners, self.calls, strict=True) if n != 1]
        self.table, self.index, self._saved = None, None, [None] * len(self._saved)
        if bad:
            raise RuntimeError(f"unit layers {bad} did not run exactly once per forward; masks cannot apply")


@contextmanager
def _masked(model: nn.Module, rule: str = "outputs") -> Iterator[_UnitHooks]:
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
    hooks = _UnitHooks(UnitSpace.of(model, rule))
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


def auto_rows(model: nn.Module, x: torch.Tensor, backward: bool = True, units: int = 0) -> int:
    """Rows per forward(/backward) pass that fill the device without running out of memory.

    `units`: the unit count, for the per-row tensors of that size a pass holds (gathered masks, per-row
    attributions and their float64 copy; the "paper" rule's weight-value units make these the larger part).
    """
    if x.is_cuda:
        free, _ = torch.cuda.mem_get_info(x.device)
        budget = int(free * 0.6)
    else:
        budget = CPU_BUDGET_BYTES
    per_row = _row_bytes(model, x) * (3 if backward else 1) + units * (20 if backward else 4)
    return int(min(MAX_ROWS, max(16, budget // per_row)))


# The batched engine -----------------------------------------------------------------------------------------

def _predict(model: nn.Module, hooks: _UnitHooks, x: torch.Tensor, masks: torch.Tensor, index: torch.Tensor,
             rows: int, ids: torch.Tensor | None = None) -> torch.Tensor:
    """argmax of model(x[i]) under unit mask masks[index[i]], in passes of `rows` rows, without gradients.

    `ids`: each row's example id, passed to the model (example-tied dropout's "tied" mode); None = plain."""
    out = torch.empty(len(x), dtype=torch.long, device=x.device)
    with torch.no_grad():
        for s in range(0, len(x), rows):
            hooks.start(masks, index[s:s + rows], capture=False)
            inputs = _prepare_inputs(x[s:s + rows])
            logits = model(inputs) if ids is None else model(inputs, ids=ids[s:s + rows])
            out[s:s + rows] = logits.argmax(1)
            hooks.finish()
    return out


@dataclass
class _Items:
    """The rows of one attribution step: which input, which mask, loss weight, and where the result goes."""

    example: torch.Tensor  # index into the combined (population, targets) input table
    mask: torch.Tensor     # index into the step's distinct masks
    weight: torch.Tensor   # +1/B for population rows, -1 for target rows: J = mean_P loss - loss_k
    slot: torch.Tensor     # accumulator row: the mask's population slot, or the target's own slot
    n_pop: int = 0         # the layout, known on the host: mask m's population rows are items
    n_masks: int = 0       # [m * n_pop, (m + 1) * n_pop), then one row per target (slots n_masks, ...)


def _attribution(model: nn.Module, hooks: _UnitHooks, x: torch.Tensor, y: torch.Tensor,
                 noise: torch.Tensor | None, masks: torch.Tensor, items: _Items, n_slots: int,
                 rows: int, ids: torch.Tensor | None = None) -> torch.Tensor:
    """Sum over each slot's rows of (per-row, per-unit) y * dJ/dy; one backward per pass of `rows` rows.

    `ids`: the example id of each entry of the input table x, passed to the model (tied mode); None = plain."""
    copies = 1 if noise is None else noise.shape[1]
    per_pass = max(1, rows // copies)
    # float64 sums: CUDA's index_add_ adds in no fixed order; at this precision the order cannot decide a tie
    acc = torch.zeros(n_slots, hooks.space.total, dtype=torch.float64, device=masks.device)
    for s in range(0, len(items.example), per_pass):
        ex = items.example[s:s + per_pass]
        index = items.mask[s:s + per_pass]
        row_ids = None if ids is None else ids[ex]
        if noise is None:
            inputs = x[ex]
        else:
            inputs = (x[ex].unsqueeze(1) + noise[ex]).flatten(0, 1)
            index = index.repeat_interleave(copies, 0)
            row_ids = None if row_ids is None else row_ids.repeat_interleave(copies, 0)
        hooks.start(masks, index, capture=True)
        logits = model(_prepare_inputs(inputs)) if row_ids is None else model(_prepare_inputs(inputs), ids=row_ids)
        if noise is not None:
            logits = logits.view(len(ex), copies, -1).mean(1)
        loss = (F.cross_entropy(logits, y[ex], reduction="none") * items.weight[s:s + per_pass]).sum()
        loss.backward()
        hooks.finish()
        if not hooks.space.has_values:
            per_row = torch.cat(hooks.attr, dim=1)
            if noise is not None:
                per_row = per_row.view(len(ex), copies, -1).sum(1)
            acc.index_add_(0, items.slot[s:s + per_pass], per_row.double())
            continue
        for i, layer in enumerate(hooks.space.layers):
            lo = hooks.space.offsets[i]
            cols = acc[:, lo:lo + layer.n_units]
            if layer.kind == "value":
                _add_value_attribution(cols, layer.module.weight, *hooks.outer[i], items, s, len(ex), copies)
                continue
            per_row = hooks.attr[i]
            if noise is not None:
                per_row = per_row.view(len(ex), copies, -1).sum(1)
            cols.index_add_(0, items.slot[s:s + per_pass], per_row.double())
    return acc


def _targets_at_once(units: int, device: torch.device) -> int:
    """Targets one call holds: its (targets, units) tables (keep masks, step masks, float64 sums and scores,
    about 28 bytes a unit per target) within TABLE_BUDGET (a quarter of the free memory on a GPU). Only the
    "paper" rule on wide linear layers (a unit per weight) comes near it."""
    budget = int(torch.cuda.mem_get_info(device)[0] * 0.25) if device.type == "cuda" else TABLE_BUDGET
    return max(1, budget // (28 * units))


OUTER_BUDGET = 64 << 20  # bytes of per-target (out, in) products formed at once for weight-value units


def _add_value_attribution(cols: torch.Tensor, weight: torch.Tensor, grad: torch.Tensor, h: torch.Tensor,
                           items: _Items, start: int, n_items: int, copies: int) -> None:
    """Add W * sum over each slot's rows of g h^T to the slots' columns of one weight's value units.

    Items [start, start + n_items) of the pass: a population slot's rows (one mask) are contiguous, so each
    takes one (out x rows) @ (rows x in) product; target rows are one slot each and take g h^T per target, in
    blocks of OUTER_BUDGET bytes. float64, as the per-row sums.
    """
    g, hh = grad.double(), h.double()
    w = weight.double()
    end, pop_end = start + n_items, items.n_pop * items.n_masks
    if start < pop_end:
        for m in range(start // items.n_pop, (min(end, pop_end) - 1) // items.n_pop + 1):
            a, b = max(start, m * items.n_pop) - start, min(end, (m + 1) * items.n_pop) - start
            cols[m] += (w * (g[a * copies:b * copies].T @ hh[a * copies:b * copies])).flatten()
    first = max(start, pop_end)
    if first >= end:
        return
    n_t = end - first
    gt = g[(first - start) * copies:].view(n_t, copies, -1)
    ht = hh[(first - start) * copies:].view(n_t, copies, -1)
    block = max(1, OUTER_BUDGET // (weight.numel() * 8))
    slots = items.slot[first:end]
    for b in range(0, n_t, block):
        outer = torch.einsum("tkc,tkf->tcf", gt[b:b + block], ht[b:b + block]) * w
        cols.index_add_(0, slots[b:b + block], outer.flatten(1))


def flip_batched(model: nn.Module, x: torch.Tensor, y: torch.Tensor, pop_x: torch.Tensor, pop_y: torch.Tensor,
                 cap: int, noise: torch.Tensor | None = None, pop_noise: torch.Tensor | None = None,
                 rows: int | None = None, rule: str = "outputs", *, until: int | None = None,
                 ids: torch.Tensor | None = None, pop_ids: torch.Tensor | None = None,
                 live: torch.Tensor | None = None) -> list[FlipOutcome]:
    """Greedy unit removal for every target (x[i], y[i]) at once; see the module docstring.

    pop_x/pop_y: the population sample; noise/pop_noise: `input_noise` offsets (both or neither); rows: rows
    per forward/backward pass (None: sized to the device); rule: the unit rule ("outputs" or "paper", see
    `UnitSpace`). The model is used in eval mode, unchanged.

    Keyword-only, for the localizers (`sweep.localizers.greedy`); their defaults are the flip probe's search:
    - `until`: remove exactly this many units (fewer only where fewer are live), flipped or not; the outcome's
      `flip_k` records when the target first flipped and `flipped` whether it did. `cap` is then unused.
    - `ids`/`pop_ids`: the targets' and population's example ids, passed to the model with every row
      (`model(x, ids=...)`, example-tied dropout's "tied" mode); both or neither.
    - `live`: (targets, units) bool, the units each target may have removed (the others score -inf).
    """
    check_cap(cap)
    if until is not None:
        check_cap(until)
    if len(pop_x) == 0:
        raise UserError("the flip population sample is empty")
    if (noise is None) != (pop_noise is None):
        raise ValueError("give noise for both targets and population, or for neither")
    if (ids is None) != (pop_ids is None):
        raise ValueError("give example ids for both targets and population, or for neither")
    n_targets, n_pop = len(x), len(pop_x)
    if n_targets == 0:
        return []
    at_once = _targets_at_once(UnitSpace.of(model, rule).total, x.device)
    if n_targets > at_once:  # targets are independent: splitting changes no choice, only what passes share
        def part(t: torch.Tensor | None, s: int) -> torch.Tensor | None:
            return None if t is None else t[s:s + at_once]

        return [o for s in range(0, n_targets, at_once)
                for o in flip_batched(model, x[s:s + at_once], y[s:s + at_once], pop_x, pop_y, cap,
                                      part(noise, s), pop_noise, rows, rule, until=until, ids=part(ids, s),
                                      pop_ids=pop_ids, live=part(live, s))]
    device = x.device
    table_x, table_y = torch.cat([pop_x, x]), torch.cat([pop_y, y])
    table_noise = None if noise is None else torch.cat([pop_noise, noise])
    table_ids = None if ids is None else torch.cat([pop_ids, ids]).to(device)
    with _masked(model, rule) as hooks:
        space = hooks.space
        cap = min(until if until is not None else cap, space.total)
        dtype = next(model.parameters()).dtype
        rows = rows or auto_rows(model, x, units=space.row_units)
        keep = torch.ones(n_targets, space.total, dtype=dtype, device=device)
        dead = None if live is None else ~live.to(device=device, dtype=torch.bool)
        limit = [cap] * n_targets if dead is None else [min(cap, int(n)) for n in (~dead).sum(1).cpu().tolist()]
        everyone = torch.arange(n_targets, device=device)
        flipped = (_predict(model, hooks, x, keep, everyone, rows * 2, ids) != y).cpu().tolist()
        removed: list[list[int]] = [[] for _ in range(n_targets)]
        scores: list[list[float]] = [[] for _ in range(n_targets)]
        flip_k: list[int | None] = [0 if f else None for f in flipped]
        keys: list[frozenset[int]] = [frozenset()] * n_targets
        outcomes: list[FlipOutcome | None] = [None] * n_targets
        for t in range(n_targets):
            if (flipped[t] and until is None) or limit[t] == 0:
                outcomes[t] = FlipOutcome([], bool(flipped[t]), [], flip_k[t])
        active = [t for t in range(n_targets) if outcomes[t] is None]
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
                slot=torch.cat([pop_mask, n_masks + torch.arange(len(active), device=device)]),
                n_pop=n_pop, n_masks=n_masks)
            acc = _attribution(model, hooks, table_x, table_y, table_noise, masks, items,
                               n_masks + len(active), rows, table_ids)
            score = acc[gid] + acc[n_masks:]
            current = keep[act]
            score.masked_fill_(current == 0, -math.inf)
            if dead is not None:
                score.masked_fill_(dead[act], -math.inf)
            choice = score.argmax(1)  # first maximum = lowest global index on ties
            chosen = score.gather(1, choice[:, None])[:, 0]
            current[torch.arange(len(active), device=device), choice] = 0
            keep[act] = current
            act_ids = None if ids is None else table_ids[n_pop + act]
            now = _predict(model, hooks, x[act], current, everyone[:len(active)], rows * 2, act_ids) != y[act]
            # one host copy per step; float64 holds every unit index (< 2**53) exactly
            host = torch.stack([choice.double(), now.double(), chosen]).cpu().tolist()
            still = []
            for t, unit, did_flip, value in zip(active, host[0], host[1], host[2], strict=True):
                removed[t].append(int(unit))
                scores[t].append(value)
                keys[t] = keys[t] | {int(unit)}
                if did_flip and flip_k[t] is None:
                    flip_k[t] = len(removed[t])
                if (did_flip and until is None) or len(removed[t]) >= limit[t]:
                    outcomes[t] = FlipOutcome(removed[t], bool(did_flip) if until is None else flip_k[t] is not None,
                                              scores[t], flip_k[t])
                else:
                    still.append(t)
            active = still
    return [o for o in outcomes if o is not None]


def edited_accuracies(model: nn.Module, removals: Sequence[Sequence[int]],
                      parts: Sequence[tuple[torch.Tensor, torch.Tensor]],
                      rows: int | None = None, rule: str = "outputs") -> np.ndarray:
    """Accuracy (n_edits, n_parts) of the model with each edit's units zeroed, on each (x, y) part.

    Units are global indices under `rule`. Edits with the same unit set are evaluated once; an empty part
    gives NaN.
    """
    distinct: dict[frozenset[int], int] = {}
    which = [distinct.setdefault(frozenset(r), len(distinct)) for r in removals]
    x = torch.cat([p[0] for p in parts])
    y = torch.cat([p[1] for p in parts])
    sizes = [len(p[1]) for p in parts]
    part_of = torch.repeat_interleave(torch.arange(len(parts), device=x.device),
                                      torch.tensor(sizes, device=x.device))
    with _masked(model, rule) as hooks:
        dtype = next(model.parameters()).dtype
        masks = torch.ones(len(distinct), hooks.space.total, dtype=dtype, device=x.device)
        for key, m in distinct.items():
            if key:
                masks[m, list(key)] = 0
        rows = (rows or auto_rows(model, x, backward=False, units=hooks.space.row_units)) if len(x) else 1
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


def eval_picks(run: RunData, size: int | None, seed: int) -> list[tuple[str, torch.Tensor]]:
    """The fixed evaluation sample's ids, (part, sorted ids on the run's device) for part clean and noisy (training
    ids) and test (test ids): up to `size` of each, drawn by seed. Every analysis that reports collateral damage
    measures it on these same examples."""
    noisy = run.is_noisy.cpu()
    picks = []
    for part, pool in (("clean", torch.nonzero(~noisy).flatten()), ("noisy", torch.nonzero(noisy).flatten()),
                       ("test", torch.arange(len(run.data.test)))):
        pick = pool[torch.randperm(len(pool), generator=_generator(seed, f"flip-eval-{part}"))[:size]]
        picks.append((part, pick.sort().values.to(run.device)))
    return picks


def eval_parts(run: RunData, size: int | None, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The fixed evaluation sample: (x, y) for clean train, noisy train (noisy labels) and test."""
    train, test = run.data.train, run.data.test
    return [(test.x[pick], test.y[pick]) if part == "test" else (train.x[pick], run.labels[pick])
            for part, pick in eval_picks(run, size, seed)]


def empty_flips() -> pd.DataFrame:
    """A zero-row flips frame with the table's column types."""
    return schemas.rows_frame("flips", [])


def flip_units(flips: pd.DataFrame) -> pd.DataFrame:
    """The long form of `flips.units`: one row per removed unit, numbered by removal order (`step`), so "in
    which layers are the removed units" is a groupby rather than a loop over nested lists."""
    rows = [{"example_id": example, "is_noisy": noisy, "step": step, **unit, "flip_units": rule}
            for example, noisy, units, rule in zip(flips["example_id"], flips["is_noisy"], flips["units"],
                                                   flips["flip_units"], strict=True)
            for step, unit in enumerate(units)]
    return schemas.rows_frame("flip_units", rows)


# Everything that decides which targets a chunk holds and what its rows say. A chunk's file name carries its
# digest, so results made under other settings (or the older selection-order chunking) are never mistaken for
# a finished chunk: the engine refuses to mix them (see sweep.engine.stale_files).
CHUNK_SETTINGS = ("flip_clean", "flip_noisy", "flip_chunk", "flip_cap", "flip_population", "flip_noise_copies",
                  "flip_noise_scale", "flip_eval_size", "flip_units")
CHUNK_LAYOUT = "label-sorted"
# Settings added after chunk names existed: left out of the digest at their default, so chunks made before
# them (which used that default) keep their names; any other value names new chunks.
LATE_CHUNK_SETTINGS = {"flip_units": "outputs"}


_last_signature: tuple[AnalysisConfig, str] | None = None  # (settings, signature) asked last


def flip_signature(analysis: AnalysisConfig) -> str:
    """The digest of the settings a flip chunk's rows depend on (its shard names end with it). Planning asks once
    per run with one AnalysisConfig: the last answer is kept by its identity, since hashing its 35 fields per run
    (the cache below) was a good part of planning a 100,000-run grid."""
    global _last_signature
    last = _last_signature
    if last is not None and last[0] is analysis:
        return last[1]
    signature = _flip_signature(analysis)
    _last_signature = (analysis, signature)
    return signature


@functools.lru_cache(maxsize=16)  # a pure function of the settings
def _flip_signature(analysis: AnalysisConfig) -> str:
    settings = {name: getattr(analysis, name) for name in CHUNK_SETTINGS
                if LATE_CHUNK_SETTINGS.get(name, object()) != getattr(analysis, name)}
    blob = f"{CHUNK_LAYOUT}:{sorted(settings.items())!r}"
    return hashlib.sha256(blob.encode()).hexdigest()[:8]


def flip_shards(cfg: RunConfig, analysis: AnalysisConfig) -> list[str]:
    """Chunks "0-<sig>".."K-1-<sig>", K = ceil((flip_clean + flip_noisy) / flip_chunk), known before any data;
    <sig> is `flip_signature(analysis)`. A count of "all" counts the run's clean or noisy examples (the most
    that can be eligible: sweep.bounds.flip_counts)."""
    n_chunks = math.ceil(sum(bounds.flip_counts(cfg, analysis)) / analysis.flip_chunk)
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
        UnitSpace.of(run.model_at(run.final_epoch), analysis.flip_units)  # refuse a rule the model cannot take
        return {"flips": empty_flips(), "flip_units": flip_units(empty_flips())}
    train = run.data.train
    pop = population_ids(len(train), analysis.flip_population, seed).to(run.device)
    ids_dev = ids.to(run.device)
    x, y = train.x[ids_dev], run.labels[ids_dev]
    pop_x, pop_y = train.x[pop], run.labels[pop]
    copies, scale = analysis.flip_noise_copies, analysis.flip_noise_scale
    outcomes = flip_batched(model, x, y, pop_x, pop_y, analysis.flip_cap,
                            noise=input_noise(x, ids, copies, scale, seed),
                            pop_noise=input_noise(pop_x, pop.cpu(), copies, scale, seed), rows=rows,
                            rule=analysis.flip_units)
    parts = eval_parts(run, analysis.flip_eval_size, seed)
    edited = edited_accuracies(model, [o.units for o in outcomes], parts, rule=analysis.flip_units)
    base = edited_accuracies(model, [[]], parts)[0]
    space = UnitSpace.of(model, analysis.flip_units)
    units = [[space.describe(u) for u in o.units] for o in outcomes]
    frame = pd.DataFrame({
        "example_id": ids.numpy().astype(np.int64),
        "is_noisy": selection.is_noisy[lo:lo + len(ids)].numpy().astype(bool),
        "n_units": np.array([len(o.units) for o in outcomes], dtype=np.int64),
        "flipped": np.array([o.flipped for o in outcomes], dtype=bool),
        "units": pd.Series(units, dtype=object),
        "flip_units": np.full(len(ids), analysis.flip_units, dtype=object),
        **{f"{p}_acc": edited[:, i] for i, p in enumerate(PARTS)},
        **{f"{p}_acc_base": np.full(len(ids), base[i]) for i, p in enumerate(PARTS)},
        "n_eligible_clean": np.full(len(ids), selection.n_eligible_clean, dtype=np.int64),
        "n_eligible_noisy": np.full(len(ids), selection.n_eligible_noisy, dtype=np.int64),
    })
    return {"flips": frame[list(FLIP_COLUMNS)], "flip_units": flip_units(frame)}


register_probe(Probe(name="flip", tables=("flips", "flip_units"), shards=flip_shards, run=run_flip,
                     applies=lambda cfg: cfg.variant == "standard", settings=CHUNK_SETTINGS))
