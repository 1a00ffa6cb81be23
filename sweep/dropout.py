"""Example-tied dropout (Maini et al. 2023, DESIGN.md §4) and the two baselines it is compared with.

Example-tied dropout steers memorization into known channels: in a layer with C channels the first
floor(p_gen * C) channels ("generalization channels") are always on, and every training example owns a fixed
random subset of the remaining "memorization channels" (each on with probability p_mem). Dropping all
memorization channels at test time then removes what was memorized while keeping what generalizes.

The mask of example i is a pure function of (seed, layer, i, channel): a counter-based integer hash evaluated
on the device for the whole batch at once. So it is the same in every epoch, independent of which examples
share the batch, costs no per-example Python loop and no stored (examples x C x H x W) table, and works for
any number of examples.

What `seed` and `layer` are in a run (enough to recompute any example's mask without the model):
- seed = `mask_seed(cfg)`, a hash of the run's seed;
- layer = the index of the dropout place in forward order, the first argument the model gives the factory
  (`make_dropout(cfg)(layer, channels)`), and the module's `layer` attribute:
  - MLP: layer 0, 1, 2 = after fc1, fc2, fc3 (module `fcK.drop`, masking the features of `fcK.linear`);
  - ResNet-9, `dropout_places = "paper"` (default): layer 0..5 = after conv1, after conv2, after the res1 sum,
    after conv3 (before its max-pool), after the res2 sum, after conv4; modules conv1.drop, conv2.drop,
    res1b.drop, conv3.drop, res2b.drop, conv4.drop, each masking the output channels of `<block>.conv`;
  - ResNet-9, `dropout_places = "blocks"`: layer 0..7 = after each conv block in the order conv1, conv2,
    res1a, res1b, conv3, res2a, res2b, conv4 (module `<block>.drop`, channels of `<block>.conv`).
  `tied_modules(model)` lists them as (module name, module) in layer order; see sweep.models.resnet9 for why
  the places are where they are. Channel c of a layer is a generalization channel iff c < floor(p_gen * C).
  (The paper's code shares one module across its places and seeds an example's draw with its id alone, so an
  example's masks at every place come from the same random state, correlated across layers; here each layer
  draws its own, the layer being part of the hash.)

Usage in any model (the module is called with the activations and the batch's training-example ids)::

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(64, 256), nn.Linear(256, 10)
            self.drop = ExampleTiedDropout(256, p_gen=0.4, p_mem=0.2, seed=0, layer=0)

        def forward(self, x, ids=None):
            return self.fc2(self.drop(torch.relu(self.fc1(x)), ids))

    net = Net()
    net.train(); net(x, ids=batch_ids)           # training: each example's own mask, no rescaling
    net.eval(); net(x_train, ids=train_ids)      # mode "tied" (automatic when ids are given in eval)
    net(x_test)                                  # mode "all" (automatic without ids)
    set_dropout_mode(net, "drop"); net(x)        # memorization channels zeroed, the others rescaled
    set_dropout_mode(net, None)                  # back to the automatic choice
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from sweep.config import RunConfig
from sweep.models.registry import DropoutFactory

MODES = ("train", "tied", "all", "drop")
SCALE_RULES = ("paper", "expected")
BASELINE_P = 0.4  # the paper's standard-dropout rate and sparse-network drop fraction

_MASK32 = 0xFFFFFFFF
_HASH_MUL = 0x045D9F3B  # below 2**31, so (32-bit value) * _HASH_MUL never overflows int64
_GOLDEN = 0x9E3779B9


def _mix(h: int) -> int:
    """A 32-bit integer mixing function (bijective, good avalanche) on a Python int in [0, 2**32)."""
    for _ in range(2):
        h = ((h >> 16) ^ h) * _HASH_MUL & _MASK32
    return (h >> 16) ^ h


def _mix_(h: Tensor) -> Tensor:
    """`_mix` in place on an int64 tensor of values in [0, 2**32): the same function, bit for bit.

    Every intermediate stays below 2**63, so plain int64 arithmetic gives the same result on every device,
    with no reliance on unsigned or wrapping arithmetic. In place, because on the CPU these few passes
    over an (N, C) tensor are the whole cost of a mask.
    """
    for _ in range(2):
        h ^= h >> 16
        h *= _HASH_MUL
        h &= _MASK32
    h ^= h >> 16
    return h


def _salt(*parts: int) -> int:
    """Fold integers (seed, layer, purpose) into one 32-bit key, order-sensitive."""
    h = 0x2545F491
    for part in parts:
        h = _mix(h ^ ((int(part) * _GOLDEN) & _MASK32))
    return h


def _n_gen(channels: int, p_gen: float) -> int:
    """floor(p_gen * C), tolerant of float error (0.29 * 100 is 28.999... and means 29)."""
    return min(channels, math.floor(p_gen * channels + 1e-9))


def _broadcast(v: Tensor, h: Tensor) -> Tensor:
    """Shape a per-channel (C,) or per-example (N, C) factor to multiply activations (N, C) or (N, C, ...)."""
    v = v.to(h.dtype)
    if v.dim() == 1:
        v = v.unsqueeze(0)
    return v.reshape(v.shape + (1,) * (h.dim() - 2))


class ExampleTiedDropout(nn.Module):
    """Channel dropout with one fixed mask per training example; see the module docstring for the idea.

    Modes (attribute `mode`; None = automatic): `train` and `tied` apply each example's own mask with no
    rescaling (they differ only in intent: training vs evaluating training examples) and need `ids`; `all`
    keeps generalization channels and multiplies memorization channels by p_mem (their expected activity,
    for examples with no mask of their own); `drop` zeroes memorization channels and multiplies generalization
    channels by `drop_scale` (rule `scale_rule`: `paper` = (p_gen + p_mem) / p_gen, `expected` =
    (p_gen + (1 - p_gen) p_mem) / p_gen, the mean active fraction during training over the generalization
    fraction). Automatic: training -> train; eval with ids -> tied; eval without ids -> all. An explicit mode
    wins over the module's training flag.
    """

    def __init__(self, channels: int, p_gen: float = 0.4, p_mem: float = 0.2, seed: int = 0, layer: int = 0,
                 scale_rule: str = "paper") -> None:
        super().__init__()
        if not (0 < p_gen < 1 and 0 <= p_mem <= 1):
            raise ValueError(f"need 0 < p_gen < 1 and 0 <= p_mem <= 1, got p_gen={p_gen}, p_mem={p_mem}")
        self.channels, self.p_gen, self.p_mem = int(channels), float(p_gen), float(p_mem)
        self.seed, self.layer = int(seed), int(layer)
        self.n_gen = _n_gen(self.channels, self.p_gen)
        self.mode: str | None = None
        self.scale_rule = scale_rule
        # An example's memorization channel is on when its 32-bit hash is below p_mem * 2**32: an exact
        # integer comparison, equivalent to "uniform in [0, 1) < p_mem".
        self.threshold = min(round(self.p_mem * 2**32), 2**32)
        self._key = _salt(self.seed, self.layer, 0x7E1D)
        chan = torch.arange(self.n_gen, self.channels, dtype=torch.int64)
        # Per-channel hash constants and per-mode channel factors are derived, not learned: kept out of the
        # state_dict (persistent=False) so checkpoints stay plain model weights, but moved with .to(device).
        self.register_buffer("chan_key", _mix_((chan * _GOLDEN + self._key) & _MASK32), persistent=False)
        is_mem = torch.arange(self.channels) >= self.n_gen
        self.register_buffer("is_mem", is_mem, persistent=False)
        self.register_buffer("gen_on", torch.ones(1, self.n_gen, dtype=torch.bool), persistent=False)
        self.register_buffer("all_scale", torch.where(is_mem, self.p_mem, 1.0), persistent=False)

    @property
    def scale_rule(self) -> str:
        return self._scale_rule

    @scale_rule.setter
    def scale_rule(self, rule: str) -> None:
        if rule not in SCALE_RULES:
            raise ValueError(f"unknown scale_rule {rule!r}; accepted: {', '.join(SCALE_RULES)}")
        self._scale_rule = rule

    @property
    def drop_scale(self) -> float:
        """The factor generalization channels get in `drop` mode under the current `scale_rule`."""
        return drop_factor(self.p_gen, self.p_mem, self.scale_rule)

    def mask(self, ids: Tensor) -> Tensor:
        """Bool (N, C): the training mask of each example id, generalization channels always on.

        A pure function of (seed, layer, id, channel), computed on the module's device in a handful of
        elementwise int64 ops on (N,) and (N, C) tensors; nothing is stored per example.
        """
        mem = self.mem_mask(ids)
        return torch.cat([self.gen_on.expand(mem.shape[0], -1), mem], dim=1)

    def mem_mask(self, ids: Tensor) -> Tensor:
        """Bool (N, C - n_gen): which memorization channels are on for each example id.

        Only these channels are hashed (the int64 passes are the cost; the bool concatenation is cheap).
        """
        ids = ids.to(device=self.chan_key.device, dtype=torch.int64).reshape(-1, 1)
        per_example = _mix_((ids & _MASK32) ^ ((ids >> 32) * _GOLDEN & _MASK32) ^ self._key)
        return _mix_(per_example ^ self.chan_key) < self.threshold

    def current_mode(self, ids: Tensor | None) -> str:
        if self.mode is not None:
            return self.mode
        if self.training:
            return "train"
        return "tied" if ids is not None else "all"

    def forward(self, h: Tensor, ids: Tensor | None = None) -> Tensor:
        mode = self.current_mode(ids)
        if h.shape[1] != self.channels:
            raise ValueError(f"ExampleTiedDropout built for {self.channels} channels got input of shape "
                             f"{tuple(h.shape)}")
        if mode in ("train", "tied"):
            if ids is None:
                raise ValueError(f"example-tied dropout in mode {mode!r} needs the batch's example ids "
                                 "(call model(x, ids=...)), or set_dropout_mode(model, 'all'/'drop')")
            if ids.numel() != h.shape[0]:
                raise ValueError(f"got {ids.numel()} ids for a batch of {h.shape[0]}")
            # One multiply by the full (N, C) mask: a single pass over the activations (cheaper than
            # slicing out the memorization channels and concatenating).
            return h * _broadcast(self.mask(ids), h)
        if mode == "all":
            return h * _broadcast(self.all_scale, h)
        if mode == "drop":
            factors = torch.where(self.is_mem, 0.0, self.drop_scale)
            return h * _broadcast(factors, h)
        raise ValueError(f"unknown dropout mode {mode!r}; accepted: {', '.join(MODES)}")

    def extra_repr(self) -> str:
        return (f"channels={self.channels}, n_gen={self.n_gen}, p_gen={self.p_gen}, p_mem={self.p_mem}, "
                f"seed={self.seed}, layer={self.layer}, mode={self.mode}, scale_rule={self.scale_rule}")


def drop_factor(p_gen: float, p_mem: float, rule: str) -> float:
    """Rescaling of generalization channels when memorization channels are dropped (DESIGN.md §4)."""
    if rule == "paper":
        return (p_gen + p_mem) / p_gen
    if rule == "expected":
        return (p_gen + (1 - p_gen) * p_mem) / p_gen
    raise ValueError(f"unknown scale_rule {rule!r}; accepted: {', '.join(SCALE_RULES)}")


def set_dropout_mode(model: nn.Module, mode: str | None, scale_rule: str | None = None) -> int:
    """Set `mode` (None = automatic) and optionally `scale_rule` on every ExampleTiedDropout in `model`.

    Returns how many modules were set, so callers can tell a model without example-tied dropout.
    """
    if mode is not None and mode not in MODES:
        raise ValueError(f"unknown dropout mode {mode!r}; accepted: {', '.join(MODES)} or None")
    count = 0
    for module in model.modules():
        if isinstance(module, ExampleTiedDropout):
            module.mode = mode
            if scale_rule is not None:
                module.scale_rule = scale_rule
            count += 1
    return count


class StandardDropout(nn.Module):
    """Baseline: ordinary element-wise dropout (as torch.nn.Dropout: each activation dropped independently
    with probability p, survivors scaled by 1/(1-p), random every step, identity in eval). Accepts and
    ignores `ids` so it drops into the same slots as ExampleTiedDropout."""

    def __init__(self, p: float = BASELINE_P) -> None:
        super().__init__()
        self.p = float(p)

    def forward(self, h: Tensor, ids: Tensor | None = None) -> Tensor:
        return nn.functional.dropout(h, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class SparseElements(nn.Module):
    """Baseline: a sparse network as the paper's code builds it (`sparse_mask = "paper"`, the default): one fixed
    random element-wise mask over a layer's activations (C, or C x H x W for conv maps) drops each element with
    probability p, and the survivors are scaled by 1/(1-p), at train and test alike. Accepts and ignores `ids`.

    The mask is a pure function of (seed, layer, element index within one example's activation tensor), the
    same for every example, every call and every epoch, so the network is one fixed sub-network. The paper's
    `FixedDropout` (models/dropout.py) reseeds the global generator with 0 and draws `rand_like(x)` for the whole
    batch on every call: its mask is fixed per *row of the batch* (an example sees a different mask whenever it
    lands in another row, and every layer of the same shape gets the same mask). We take what its comment says
    it implements ("deterministically 0 out the same neurons at train and test time"): the same mask for all
    examples, different per layer. Placement: wherever the model puts its dropout modules, the paper code's 6
    places in ResNet-9 by default (the place after conv3 is before its max-pool, where an element-wise mask does
    not commute with the pool), after each hidden layer of the MLP.
    """

    def __init__(self, p: float = BASELINE_P, seed: int = 0, layer: int = 0) -> None:
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"need 0 <= p < 1, got p={p}")
        self.p, self.seed, self.layer = float(p), int(seed), int(layer)
        # An element is dropped when its 32-bit hash is below p * 2**32: "uniform in [0, 1) < p", exactly.
        self.threshold = round(self.p * 2**32)
        self._keys = (_salt(self.seed, self.layer, 0x5BA6), _salt(self.seed, self.layer, 0xE1E7))

    def keep(self, shape: tuple[int, ...], device: torch.device | str = "cpu") -> Tensor:
        """Bool mask of one example's activation `shape` (C, ...): True = kept. Computed, never stored, so it
        follows the activation's device and shape (the map size is only known at the first forward)."""
        index = torch.arange(math.prod(shape), dtype=torch.int64, device=device)
        first, second = self._keys
        return (_mix_(_mix_((index * _GOLDEN + first) & _MASK32) ^ second) >= self.threshold).reshape(shape)

    def forward(self, h: Tensor, ids: Tensor | None = None) -> Tensor:
        factor = torch.where(self.keep(tuple(h.shape[1:]), h.device), 1.0 / (1.0 - self.p), 0.0)
        return h * factor.to(h.dtype).unsqueeze(0)

    def extra_repr(self) -> str:
        return f"p={self.p}, seed={self.seed}, layer={self.layer}, element-wise, rescaled 1/(1-p)"


class SparseChannels(nn.Module):
    """Baseline: a sparse network by channels (`sparse_mask = "channels"`, our earlier rule). A fixed random set of
    round(p * C) channels, chosen from (seed, layer), is zeroed at train and test alike, with no rescaling.
    Accepts and ignores `ids`."""

    def __init__(self, channels: int, p: float = BASELINE_P, seed: int = 0, layer: int = 0) -> None:
        super().__init__()
        self.channels, self.p, self.seed, self.layer = int(channels), float(p), int(seed), int(layer)
        n_drop = round(self.p * self.channels)
        # Rank channels by a hash of (seed, layer, channel): an exact count, reproducible on any device.
        salt = _salt(self.seed, self.layer, 0x5BA5)
        keys = _mix_((torch.arange(self.channels, dtype=torch.int64) * _GOLDEN + salt) & _MASK32)
        keep = torch.ones(self.channels)
        keep[torch.argsort(keys)[:n_drop]] = 0.0
        self.register_buffer("keep", keep, persistent=False)

    def forward(self, h: Tensor, ids: Tensor | None = None) -> Tensor:
        return h * _broadcast(self.keep, h)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, p={self.p}, dropped={int((self.keep == 0).sum())}"


def mask_seed(cfg: RunConfig) -> int:
    """The mask seed of a run: derived from cfg.seed but decorrelated from the torch seed it also sets."""
    return _salt(cfg.seed, 0xD209)


def make_dropout(cfg: RunConfig) -> DropoutFactory:
    """The (layer, channels) -> module factory for a run's variant (tied, dropout or sparse; for sparse, by the
    run's `sparse_mask` rule). Where the modules go is the model's business (`cfg.dropout_places`)."""
    seed = mask_seed(cfg)
    if cfg.variant == "tied":
        p_gen, p_mem = cfg.p_gen, cfg.p_mem
        return lambda layer, channels: ExampleTiedDropout(channels, p_gen, p_mem, seed=seed, layer=layer)
    if cfg.variant == "dropout":
        return lambda layer, channels: StandardDropout(BASELINE_P)
    if cfg.variant == "sparse" and cfg.sparse_mask == "paper":
        return lambda layer, channels: SparseElements(BASELINE_P, seed=seed, layer=layer)
    if cfg.variant == "sparse" and cfg.sparse_mask == "channels":
        return lambda layer, channels: SparseChannels(channels, BASELINE_P, seed=seed, layer=layer)
    if cfg.variant == "sparse":
        raise ValueError(f"sparse_mask {cfg.sparse_mask!r}; accepted: paper, channels")
    raise ValueError(f"variant {cfg.variant!r} has no dropout module; accepted: tied, dropout, sparse")


def tied_modules(model: nn.Module) -> list[tuple[str, ExampleTiedDropout]]:
    """The model's example-tied dropout modules as (module name, module), in `layer` order (module docstring):
    what a ground truth of "which channels example i used" is recomputed from."""
    found = [(name, m) for name, m in model.named_modules() if isinstance(m, ExampleTiedDropout)]
    return sorted(found, key=lambda item: item[1].layer)
