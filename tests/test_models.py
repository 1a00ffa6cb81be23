"""Architecture tests: every registered model at every dataset shape, its groups, units and dropout hooks.

Built models and one traced forward pass are cached per (arch, shape), and the file runs torch on one thread:
these tensors are tiny, and on a shared 2-core machine a second OpenMP thread made ResNet-50 forwards ~10x
slower instead of faster. The previous thread count is restored afterwards.
"""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Iterator

import pytest
import torch
import torchvision
from torch import nn

from sweep.errors import UserError
from sweep.models import (
    MODELS,
    build_model,
    group_names,
    group_of,
    group_state_keys,
    register,
    unit_layers,
)

SHAPES = [(1, 8, 8), (1, 28, 28), (3, 32, 32)]
NUM_CLASSES = 7  # not 10, so a hard-coded class count would show
ARCHS = sorted(MODELS)


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


EXPECTED_GROUPS = {
    "mlp": ["fc1", "fc2", "fc3", "head"],
    "resnet9": ["conv1", "conv2", "res1a", "res1b", "conv3", "res2a", "res2b", "conv4", "head"],
    "resnet50": ["stem", *(f"layer{s}.{b}" for s, n in enumerate((3, 4, 6, 3), 1) for b in range(n)), "head"],
    "vit": ["patch_embed"] + [f"block{i}" for i in range(6)] + ["head"],
    "vit_plain": ["patch_embed"] + [f"block{i}" for i in range(6)] + ["head"],
}
VITS = ("vit", "vit_plain")


@functools.cache
def traced(arch: str, shape: tuple[int, int, int]) -> tuple[nn.Module, list[str], torch.Tensor, torch.Tensor]:
    """A model, its parameterised modules' names in the order the forward pass called them, input, logits."""
    torch.manual_seed(0)
    model = build_model(arch, shape, NUM_CLASSES).eval()
    calls: list[str] = []
    handles = [
        module.register_forward_pre_hook(lambda _m, _a, name=name: calls.append(name))
        for name, module in model.named_modules()
        if any(True for _ in module.parameters(recurse=False))
    ]
    x = torch.randn(2, *shape)
    with torch.no_grad():
        logits = model(x, torch.arange(2))
    for handle in handles:
        handle.remove()
    return model, calls, x, logits


def first_call(calls: list[str], prefix: str) -> int:
    """Index of the first forward call of a module at or under `prefix` (None-safe for parameter prefixes)."""
    hits = [i for i, name in enumerate(calls) if name == prefix or name.startswith(prefix + ".")]
    return min(hits) if hits else len(calls)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("arch", ARCHS)
def test_forward_gives_logits(arch: str, shape: tuple[int, int, int]) -> None:
    _, _, _, logits = traced(arch, shape)
    assert logits.shape == (2, NUM_CLASSES)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("arch", ARCHS)
def test_forward_in_train_mode_accepts_missing_ids(arch: str) -> None:
    """Training mode (BatchNorm batch statistics) on the smallest input, and ids left out."""
    torch.manual_seed(0)
    model = build_model(arch, (1, 8, 8), NUM_CLASSES, width=0.25).train()
    logits = model(torch.randn(3, 1, 8, 8))
    logits.sum().backward()
    assert logits.shape == (3, NUM_CLASSES)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("arch", ARCHS)
def test_groups_partition_state_in_forward_order(arch: str, shape: tuple[int, int, int]) -> None:
    model, calls, _, _ = traced(arch, shape)
    names = group_names(model)
    assert names == EXPECTED_GROUPS[arch]
    keys = list(model.state_dict())
    for key in keys:  # every parameter and buffer lies under exactly one group's prefixes
        owners = [g for g, prefs in model.groups if any(key == p or key.startswith(p + ".") for p in prefs)]
        assert owners == [group_of(model, key)], key
    per_group = [group_state_keys(model, g) for g in names]
    assert all(per_group), "every group owns state"
    assert sorted(k for ks in per_group for k in ks) == sorted(keys)
    assert any(k.endswith("running_var") for k in keys) == (arch not in VITS)  # buffers are covered too
    starts = [min(first_call(calls, p) for p in prefixes) for _, prefixes in model.groups]
    assert starts == sorted(starts) and len(set(starts)) == len(starts), "groups in forward order"
    assert group_of(model, f"{model.head}.weight") == "head" == names[-1]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("arch", ARCHS)
def test_unit_layers_cover_every_hidden_conv_and_linear(arch: str, shape: tuple[int, int, int]) -> None:
    model, calls, _, _ = traced(arch, shape)
    layers = unit_layers(model)
    convs_and_linears = {n for n, m in model.named_modules() if isinstance(m, nn.Conv2d | nn.Linear)}
    assert isinstance(model.get_submodule(model.head), nn.Linear)
    expected = sorted(convs_and_linears - {model.head}, key=calls.index)
    assert [layer.name for layer in layers] == expected, "all but the head, in forward order"
    for layer in layers:
        weight = layer.module.weight
        assert layer.n_units == weight.shape[0] and layer.module is model.get_submodule(layer.name)
        assert layer.group == group_of(model, f"{layer.name}.weight")


@pytest.mark.parametrize("arch", VITS)
def test_vit_attention_projections_are_units(arch: str) -> None:
    model, _, _, _ = traced(arch, (1, 8, 8))
    names = [layer.name for layer in unit_layers(model) if layer.group == "block0"]
    assert names == [f"blocks.0.{n}" for n in ("attn.q", "attn.k", "attn.v", "attn.proj", "fc1", "fc2")]


@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 32, 32)])
@pytest.mark.parametrize("arch", ["mlp", "resnet9"])
def test_zeroing_unit_weights_equals_zeroing_its_output(arch: str, shape: tuple[int, int, int]) -> None:
    """Neuron flipping's premise: a unit's filter (and bias) at zero = its module's output channel at zero."""
    base, _, x, logits = traced(arch, shape)
    model = copy.deepcopy(base)
    gen = torch.Generator().manual_seed(1)
    for layer in unit_layers(model):
        units = torch.randint(layer.n_units, (2,), generator=gen).tolist()
        module = layer.module

        def zero_output(_m: nn.Module, _a: tuple, out: torch.Tensor, units: list = units) -> torch.Tensor:
            out = out.clone()
            out[:, units] = 0
            return out

        handle = module.register_forward_hook(zero_output)
        with torch.no_grad():
            hooked = model(x)
        handle.remove()
        saved = {k: v.clone() for k, v in module.state_dict().items()}
        with torch.no_grad():
            module.weight[units] = 0
            if module.bias is not None:
                module.bias[units] = 0
            edited = model(x)
        module.load_state_dict(saved)
        torch.testing.assert_close(edited, hooked, rtol=0, atol=1e-6)
        assert not torch.equal(edited, logits), f"zeroing units {units} of {layer.name} changed nothing"


@pytest.mark.parametrize("arch", ARCHS)
def test_width_multiplier_changes_parameter_count(arch: str) -> None:
    def count(width: float) -> int:
        return sum(p.numel() for p in build_model(arch, (1, 8, 8), NUM_CLASSES, width=width).parameters())

    assert count(0.125) < count(0.25)


@pytest.mark.parametrize("arch", ["mlp", "resnet9", *VITS])
def test_tiny_width_keeps_at_least_one_channel(arch: str) -> None:
    model = build_model(arch, (1, 8, 8), NUM_CLASSES, width=1e-3).eval()
    assert min(layer.n_units for layer in unit_layers(model)) >= 1
    assert model(torch.randn(2, 1, 8, 8)).shape == (2, NUM_CLASSES)


def test_resnet9_channels_follow_the_paper() -> None:
    model, _, _, _ = traced("resnet9", (3, 32, 32))
    assert [layer.n_units for layer in unit_layers(model)] == [64, 128, 128, 128, 256, 256, 256, 128]
    assert model.conv4.conv.padding == (0, 0)  # the paper's unpadded conv4 where the map allows it
    half = build_model("resnet9", (3, 32, 32), NUM_CLASSES, width=0.5)
    assert [layer.n_units for layer in unit_layers(half)] == [32, 64, 64, 64, 128, 128, 128, 64]


def test_resnet50_has_torchvision_layout() -> None:
    """At width 1 the rebuild holds torchvision's resnet50 tensors, only the small-image stem differs."""
    ours = traced("resnet50", (3, 32, 32))[0].state_dict()
    reference = torchvision.models.resnet50(weights=None, num_classes=NUM_CLASSES).state_dict()
    assert list(ours) == list(reference)
    differing = [k for k in ours if ours[k].shape != reference[k].shape]
    assert differing == ["conv1.weight"] and ours["conv1.weight"].shape == (64, 3, 3, 3)


class Recorder(nn.Module):
    """A dropout stand-in that logs its calls and scales by a non-negative factor (0.5, or 0 when told)."""

    def __init__(self, log: list, index: int, channels: int, factor: float) -> None:
        super().__init__()
        self.log, self.index, self.channels, self.factor = log, index, channels, factor

    def forward(self, h: torch.Tensor, ids: torch.Tensor | None) -> torch.Tensor:
        out = h * self.factor
        self.log.append((self.index, h, ids, out))
        return out


def recording_factory(log: list, created: list, zero_block: int | None = None, factor: float = 0.5):
    def factory(index: int, channels: int) -> nn.Module:
        created.append((index, channels))
        return Recorder(log, index, channels, 0.0 if index == zero_block else factor)

    return factory


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28)])
@pytest.mark.parametrize("arch,places", [("mlp", "paper"), ("mlp", "blocks"), ("resnet9", "blocks")])
def test_dropout_modules_follow_each_block_and_receive_ids(arch: str, places: str,
                                                          shape: tuple[int, int, int]) -> None:
    """One module after every block: the MLP's only placement, and ResNet-9's `blocks` (our earlier rule)."""
    log: list = []
    created: list = []
    torch.manual_seed(0)
    model = build_model(arch, shape, NUM_CLASSES, dropout=recording_factory(log, created),
                        dropout_places=places).eval()
    blocks = group_names(model)[:-1]
    channels = [layer.n_units for layer in unit_layers(model)]
    assert created == list(enumerate(channels)), "one module per block, on the block's output channels"
    inputs: dict[str, torch.Tensor] = {}
    for name in blocks:  # the input of each block's first parameterised layer
        first = next(layer.name for layer in unit_layers(model) if layer.group == name)
        hook = functools.partial(lambda name, _m, a: inputs.setdefault(name, a[0]), name)
        model.get_submodule(first).register_forward_pre_hook(hook)
    ids = torch.tensor([5, 9, 2])
    with torch.no_grad():
        logits = model(torch.randn(3, *shape), ids)
    assert [entry[0] for entry in log] == list(range(len(blocks))), "called once per block, in order"
    for (index, h, got_ids, _), count in zip(log, channels, strict=True):
        assert got_ids is ids and h.shape[:2] == (3, count) and (h >= 0).all(), index
    for (_, _, _, out), following in zip(log[:-1], blocks[1:], strict=True):
        assert torch.equal(inputs[following], out), following
    if arch == "resnet9":  # the closing block of a residual pair is masked after the residual sum
        captured: dict[str, torch.Tensor] = {}
        model.res1b.bn.register_forward_hook(lambda _m, _a, out: captured.setdefault("bn", out))
        log.clear()
        with torch.no_grad():
            model(torch.randn(3, *shape), ids)
        conv2_out, res1b_in = log[blocks.index("conv2")][3], log[blocks.index("res1b")][1]
        torch.testing.assert_close(res1b_in, torch.relu(captured["bn"]) + conv2_out)
    assert logits.shape == (3, NUM_CLASSES)


PAPER_PLACES = ("conv1", "conv2", "res1b", "conv3", "res2b", "conv4")


@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 32, 32)])
def test_resnet9_dropout_sits_at_the_paper_codes_six_places_by_default(shape: tuple[int, int, int]) -> None:
    """models.py ResNet9_dropout: after conv1, conv2, the res1 sum, conv3 (before its max-pool), the res2 sum
    and conv4; nothing after res1a or res2a. Each place's input and where its output goes, by hooks."""
    log: list = []
    created: list = []
    torch.manual_seed(0)
    model = build_model("resnet9", shape, NUM_CLASSES, dropout=recording_factory(log, created)).eval()
    channels = {layer.name.split(".")[0]: layer.n_units for layer in unit_layers(model)}
    assert created == [(k, channels[block]) for k, block in enumerate(PAPER_PLACES)]
    holders = [name for name, m in model.named_modules() if isinstance(m, Recorder)]
    assert holders == [f"{block}.drop" for block in PAPER_PLACES]
    acts: dict[str, torch.Tensor] = {}  # each block's conv -> BN -> ReLU output
    inputs: dict[str, torch.Tensor] = {}  # each block's conv input
    for block in channels:
        model.get_submodule(f"{block}.bn").register_forward_hook(
            lambda _m, _a, out, block=block: acts.setdefault(block, torch.relu(out)))
        model.get_submodule(f"{block}.conv").register_forward_pre_hook(
            lambda _m, a, block=block: inputs.setdefault(block, a[0]))
    ids = torch.tensor([5, 9, 2])
    with torch.no_grad():
        logits = model(torch.randn(3, *shape), ids)
    assert [entry[0] for entry in log] == list(range(6)) and all(entry[2] is ids for entry in log)
    seen = {PAPER_PLACES[index]: (h, out) for index, h, _, out in log}
    pool = nn.MaxPool2d(2)
    assert torch.equal(seen["conv1"][0], acts["conv1"]) and torch.equal(seen["conv2"][0], acts["conv2"])
    torch.testing.assert_close(seen["res1b"][0], acts["res1b"] + seen["conv2"][1])  # after the res1 sum
    assert torch.equal(seen["conv3"][0], acts["conv3"])  # before the pool: the full map
    assert seen["conv3"][0].shape[2:] == inputs["conv3"].shape[2:]
    torch.testing.assert_close(seen["res2b"][0], acts["res2b"] + pool(seen["conv3"][1]))  # after the res2 sum
    assert torch.equal(seen["conv4"][0], acts["conv4"])
    assert torch.equal(inputs["conv2"], seen["conv1"][1]) and torch.equal(inputs["res1a"], seen["conv2"][1])
    assert torch.equal(inputs["res1b"], acts["res1a"])  # no place after res1a (the recorder halves)
    assert torch.equal(inputs["conv3"], seen["res1b"][1])
    assert torch.equal(inputs["res2a"], pool(seen["conv3"][1])) and torch.equal(inputs["res2b"], acts["res2a"])
    assert torch.equal(inputs["conv4"], seen["res2b"][1])
    expected = model.fc(seen["conv4"][1].amax(dim=(2, 3))) * 0.2
    torch.testing.assert_close(logits, expected)


@pytest.mark.parametrize("arch,places", [("mlp", "paper"), ("resnet9", "paper"), ("resnet9", "blocks")])
def test_dropout_output_reaches_the_logits(arch: str, places: str) -> None:
    shape = (1, 8, 8)
    x = torch.randn(4, *shape)
    torch.manual_seed(0)
    plain = build_model(arch, shape, NUM_CLASSES).eval()
    torch.manual_seed(0)
    created: list = []
    identity = build_model(arch, shape, NUM_CLASSES, dropout=recording_factory([], created, factor=1.0),
                           dropout_places=places).eval()
    last = len(created) - 1  # the last place, right before the pooling and the head
    torch.manual_seed(0)
    silencing = recording_factory([], [], zero_block=last)
    silenced = build_model(arch, shape, NUM_CLASSES, dropout=silencing, dropout_places=places).eval()
    with torch.no_grad():
        torch.testing.assert_close(identity(x, torch.arange(4)), plain(x), rtol=0, atol=0)
        head = silenced.get_submodule(silenced.head)
        expected = torch.zeros(4, NUM_CLASSES) if head.bias is None else head.bias.expand(4, -1)
        torch.testing.assert_close(silenced(x, torch.arange(4)), expected, rtol=0, atol=0)


@pytest.mark.parametrize("arch", ["resnet50", *VITS])
def test_dropout_refused_where_it_has_no_placement(arch: str) -> None:
    with pytest.raises(UserError, match="mlp, resnet9"):
        build_model(arch, (1, 8, 8), NUM_CLASSES, dropout=recording_factory([], []))


def test_bad_inputs_raise_user_error() -> None:
    with pytest.raises(UserError, match="accepted: mlp, resnet50, resnet9, vit, vit_plain"):
        build_model("resnet18", (1, 8, 8), NUM_CLASSES)
    for width in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(UserError, match="width"):
            build_model("mlp", (1, 8, 8), NUM_CLASSES, width=width)
    with pytest.raises(UserError, match="shape"):
        build_model("mlp", (8, 8), NUM_CLASSES)
    with pytest.raises(UserError, match="num_classes"):
        build_model("mlp", (1, 8, 8), 1)
    with pytest.raises(UserError, match="3x3"):
        build_model("resnet9", (1, 2, 2), NUM_CLASSES)
    with pytest.raises(UserError, match="dropout_places must be one of paper, blocks"):
        build_model("resnet9", (1, 8, 8), NUM_CLASSES, dropout_places="everywhere")
    with pytest.raises(UserError, match="multiples of its patch size 2"):
        build_model("vit", (1, 9, 8), NUM_CLASSES)


def test_group_lookups_reject_unknown_names() -> None:
    model, _, _, _ = traced("mlp", (1, 8, 8))
    with pytest.raises(KeyError, match="no layer group"):
        group_state_keys(model, "conv1")
    with pytest.raises(KeyError, match="no layer group"):
        group_of(model, "fc10.weight")  # a name component, not a string prefix of fc1


def test_register_adds_an_architecture_and_refuses_duplicates() -> None:
    @register("_tiny")
    def tiny(in_shape: tuple[int, int, int], num_classes: int, width: float, dropout: object,
             dropout_places: str) -> nn.Module:
        model = nn.Sequential(nn.Flatten(), nn.Linear(in_shape[0] * in_shape[1] * in_shape[2], num_classes))
        model.groups, model.head = [("head", ["1"])], "1"
        return model

    try:
        assert build_model("_tiny", (1, 8, 8), NUM_CLASSES)(torch.randn(2, 1, 8, 8)).shape == (2, NUM_CLASSES)
        with pytest.raises(ValueError, match="twice"):
            register("_tiny")(tiny)
    finally:
        MODELS.pop("_tiny")


# The paper's ViT (sweep/models/vit.py) -------------------------------------------------------------------------

def paper_vit_parameter_count(channels: int, side: int, classes: int, patch: int = 2, dim: int = 512,
                              depth: int = 6, heads: int = 8, dim_head: int = 64, mlp: int = 512) -> int:
    """The parameters of the paper code's construction (models/vit_small.py), from its layer formulas."""
    patch_dim = patch * patch * 5 * channels  # the image and its 4 shifted copies, one patch flattened
    spt = 2 * patch_dim + (patch_dim * dim + dim)  # LayerNorm(patch_dim), Linear(patch_dim, dim)
    embeddings = ((side // patch) ** 2 + 1) * dim + dim  # position embedding (patches + class token), class token
    inner = heads * dim_head
    lsa = 2 * dim + 1 + dim * 3 * inner + (inner * dim + dim)  # PreNorm, temperature, to_qkv (no bias), to_out
    feed_forward = 2 * dim + (dim * mlp + mlp) + (mlp * dim + dim)  # PreNorm, two Linears
    head = 2 * dim + (dim * classes + classes)  # LayerNorm, Linear
    return spt + embeddings + depth * (lsa + feed_forward) + head


def test_vit_parameter_count_is_the_paper_constructions() -> None:
    model = build_model("vit", (3, 32, 32), 10)
    ours = sum(p.numel() for p in model.parameters())
    assert ours == paper_vit_parameter_count(3, 32, 10) == 9_628_296
    assert build_model("vit_plain", (3, 32, 32), 10) is not None  # the earlier ViT stays reachable
    plain = sum(p.numel() for p in build_model("vit_plain", (3, 32, 32), 10).parameters())
    assert plain != ours


def test_vit_sizes_and_dropout_are_the_papers() -> None:
    model = build_model("vit", (3, 32, 32), 10)
    block = model.blocks[0]
    assert len(model.blocks) == 6 and model.patch_embed.proj.in_features == 60
    assert (block.attn.heads, block.attn.dim_head, block.attn.q.out_features) == (8, 64, 512)
    assert block.attn.q.bias is None and block.fc1.out_features == 512 and model.pos_embed.shape == (1, 257, 512)
    torch.testing.assert_close(block.attn.temperature.exp(), torch.tensor(64**-0.5))
    drops = [m.p for m in model.modules() if isinstance(m, nn.Dropout)]
    assert drops == [0.1] * 13  # embedding dropout + (attention output, block MLP) per block
    small = build_model("vit", (1, 8, 8), NUM_CLASSES, width=0.0625)
    x = torch.randn(4, 1, 8, 8)
    with torch.no_grad():
        small.train()
        assert not torch.equal(small(x), small(x))  # dropout is on while training
        small.eval()
        assert torch.equal(small(x), small(x))


def test_shifted_patch_tokens_match_a_plain_loop() -> None:
    torch.manual_seed(0)
    model = build_model("vit", (2, 4, 6), NUM_CLASSES, width=0.0625).eval()
    spt = model.patch_embed
    x = torch.randn(3, 2, 4, 6)

    def shifted(img: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
        """out[:, i, j] = img[:, i - dy, j - dx], zero where that falls outside."""
        out = torch.zeros_like(img)
        for i in range(img.shape[1]):
            for j in range(img.shape[2]):
                if 0 <= i - dy < img.shape[1] and 0 <= j - dx < img.shape[2]:
                    out[:, i, j] = img[:, i - dy, j - dx]
        return out

    tokens = []
    for img in x:
        stack = torch.cat([img, shifted(img, 0, 1), shifted(img, 0, -1), shifted(img, 1, 0), shifted(img, -1, 0)])
        rows = []
        for pi in range(2):
            for pj in range(3):
                rows.append(torch.stack([stack[:, 2 * pi + a, 2 * pj + b] for a in range(2) for b in range(2)])
                            .flatten())  # (patch row, patch column, channel), channel fastest
        tokens.append(torch.stack(rows))
    expected = spt.proj(spt.norm(torch.stack(tokens)))
    with torch.no_grad():
        torch.testing.assert_close(spt(x), expected)


def test_locality_self_attention_matches_the_plain_masked_softmax() -> None:
    torch.manual_seed(0)
    attn = build_model("vit", (1, 8, 8), NUM_CLASSES, width=0.0625).blocks[1].attn.eval()
    with torch.no_grad():
        attn.temperature.fill_(0.7)  # a learned temperature away from its initial value
    x = torch.randn(3, 17, attn.q.in_features)
    heads, d = attn.heads, attn.dim_head

    def split(t: torch.Tensor) -> torch.Tensor:
        return t.view(3, 17, heads, d).transpose(1, 2)

    q, k, v = split(attn.q(x)), split(attn.k(x)), split(attn.v(x))
    logits = (q @ k.transpose(-1, -2)) * math.exp(0.7)
    logits = logits.masked_fill(torch.eye(17, dtype=torch.bool), -torch.finfo(logits.dtype).max)
    out = (logits.softmax(-1) @ v).transpose(1, 2).reshape(3, 17, heads * d)
    with torch.no_grad():
        torch.testing.assert_close(attn(x), attn.proj(out))
        weights = logits.softmax(-1)
    assert torch.all(weights.diagonal(dim1=-2, dim2=-1) == 0)  # a token never attends to itself
