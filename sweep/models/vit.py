"""`vit`: the paper's ViT, a Vision Transformer for small datasets (Lee, Lee and Song 2021, "Vision Transformer
for Small-Size Datasets"), built as the paper's code builds it (models.py `get_vit` -> models/vit_small.py).

Sizes, the paper's: patch 2, dim 512, depth 6, 8 heads of dim 64 (attention inner dim 512), MLP dim 512,
dropout 0.1 inside every block and embedding dropout 0.1, class-token pooling. The pieces:
- Shifted Patch Tokenization (`patch_embed`): the image and four copies of it shifted by one pixel (right, left,
  down, up; the uncovered border zero) are stacked on the channel axis (5C channels), cut into 2x2 patches,
  each flattened in (patch row, patch column, channel) order, LayerNorm over the flattened patch (20C values),
  then a Linear to dim. So each token also sees the pixels just outside its patch.
- A class token and a learned position embedding, both drawn N(0, 1) at initialisation as in that code, then
  embedding dropout.
- 6 pre-norm blocks: h + Dropout(proj(LSA(LayerNorm(h)))), then h + Dropout(fc2(Dropout(GELU(fc1(LN(h)))))).
- Locality Self-Attention (`Attention`): the attention logits q.k are multiplied by a learned temperature
  exp(t), t starting at log(dim_head ** -0.5) (standard attention at initialisation), and each token's logit
  for itself (the diagonal) is masked out before the softmax, so attention must look at other tokens. q, k, v
  have no bias; no dropout on the attention weights (that code has none).
- Head: LayerNorm then the classifier `fc`, on the class token (no other final norm, as in that code).

Our construction, not the paper code's: q, k and v are three bias-free nn.Linear instead of one fused `to_qkv`
(exactly the same parameter count and function; each projection's output features are then units that neuron
flipping addresses by module name), and the attention runs through `F.scaled_dot_product_attention` with q
pre-multiplied by exp(t) and a boolean mask for the diagonal (tests check it against the plain masked-softmax
formula). The classifier has the dataset's class count (that code hard-codes 10). Linears and LayerNorms keep
PyTorch's default initialisation, as in that code. Width multiplies dim, the head dim and the MLP dim (each
rounded, at least 1); there are always 8 heads. Image sides must be multiples of the patch size.

The plain ViT this project had before (no SPT, no LSA, no dropout) stays available as `vit_plain`.

Layer groups: patch_embed (SPT norm and projection, class token, position embedding), block0..block5, head
(norm + fc), as the paper code's `vit_groups` (which leaves class token and position embedding in no group).
Units (sweep.models.groups.unit_layers): the SPT projection, then per block attn.q, attn.k, attn.v, attn.proj,
fc1, fc2. The model's own dropout is ordinary nn.Dropout: off in eval mode (every probe's evaluation), on in
training and layer retraining, as in the paper.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from sweep.errors import UserError
from sweep.models.registry import DropoutFactory, refuse_dropout, register, scaled

PATCH = 2
DIM = 512
DEPTH = 6
HEADS = 8
DIM_HEAD = 64
MLP_DIM = 512
DROPOUT = 0.1
EMB_DROPOUT = 0.1
SHIFTS = ((1, -1, 0, 0), (-1, 1, 0, 0), (0, 0, 1, -1), (0, 0, -1, 1))
"""F.pad amounts (left, right, top, bottom) of the four one-pixel shifts: right, left, down, up."""


class ShiftedPatchTokens(nn.Module):
    """Shifted Patch Tokenization: (N, C, H, W) images -> (N, H/p * W/p, dim) tokens (row-major patches)."""

    def __init__(self, channels: int, dim: int, patch: int) -> None:
        super().__init__()
        self.patch = patch
        features = patch * patch * channels * (1 + len(SHIFTS))
        self.norm = nn.LayerNorm(features)
        self.proj = nn.Linear(features, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # A negative pad crops: (1, -1) moves the content one pixel right and zero-fills the left column.
        x = torch.cat([x, *(F.pad(x, shift) for shift in SHIFTS)], dim=1)
        n, c, h, w = x.shape
        p = self.patch
        patches = x.reshape(n, c, h // p, p, w // p, p).permute(0, 2, 4, 3, 5, 1)
        return self.proj(self.norm(patches.reshape(n, (h // p) * (w // p), p * p * c)))


class Attention(nn.Module):
    """Locality Self-Attention with one bias-free nn.Linear per projection (each output feature is a unit)."""

    def __init__(self, dim: int, heads: int, dim_head: int, dropout: float) -> None:
        super().__init__()
        inner = heads * dim_head
        self.heads, self.dim_head = heads, dim_head
        self.q = nn.Linear(dim, inner, bias=False)
        self.k = nn.Linear(dim, inner, bias=False)
        self.v = nn.Linear(dim, inner, bias=False)
        self.temperature = nn.Parameter(torch.tensor(math.log(dim_head**-0.5)))
        self.proj = nn.Linear(inner, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, tokens, _ = x.shape

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(n, tokens, self.heads, self.dim_head).transpose(1, 2)

        # True = may attend: every other token, never itself (the masked diagonal of LSA).
        others = ~torch.eye(tokens, dtype=torch.bool, device=x.device)
        q = split(self.q(x)) * self.temperature.exp()
        out = F.scaled_dot_product_attention(q, split(self.k(x)), split(self.v(x)), attn_mask=others, scale=1.0)
        return self.drop(self.proj(out.transpose(1, 2).reshape(n, tokens, self.heads * self.dim_head)))


class Block(nn.Module):
    """Pre-norm transformer block: h + attn(norm1(h)), then h + drop(fc2(drop(gelu(fc1(norm2(h))))))."""

    def __init__(self, dim: int, heads: int, dim_head: int, mlp_dim: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, dim_head, dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, mlp_dim)
        self.fc2 = nn.Linear(mlp_dim, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        h = h + self.attn(self.norm1(h))
        return h + self.drop(self.fc2(self.drop(F.gelu(self.fc1(self.norm2(h))))))


class ViT(nn.Module):
    """The paper's small-dataset ViT; `head` is the classifier `fc` (read from the normalised class token)."""

    def __init__(self, in_shape: tuple[int, int, int], num_classes: int, width: float) -> None:
        super().__init__()
        channels, height, wide = in_shape
        if height % PATCH or wide % PATCH:
            raise UserError(f"vit needs image sides that are multiples of its patch size {PATCH}, "
                            f"got {height}x{wide}")
        dim, dim_head, mlp_dim = scaled(DIM, width), scaled(DIM_HEAD, width), scaled(MLP_DIM, width)
        tokens = (height // PATCH) * (wide // PATCH)
        self.patch_embed = ShiftedPatchTokens(channels, dim, PATCH)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, tokens + 1, dim))
        self.emb_drop = nn.Dropout(EMB_DROPOUT)
        self.blocks = nn.ModuleList(Block(dim, HEADS, dim_head, mlp_dim, DROPOUT) for _ in range(DEPTH))
        self.norm = nn.LayerNorm(dim)
        self.fc = nn.Linear(dim, num_classes)
        self.head = "fc"
        self.groups: list[tuple[str, list[str]]] = [("patch_embed", ["patch_embed", "cls_token", "pos_embed"])]
        self.groups += [(f"block{i}", [f"blocks.{i}"]) for i in range(DEPTH)]
        self.groups.append(("head", ["norm", "fc"]))

    def forward(self, x: torch.Tensor, ids: torch.Tensor | None = None) -> torch.Tensor:
        """`ids` is accepted for a uniform model interface; the ViT has no example-tied dropout."""
        h = self.patch_embed(x)
        h = torch.cat([self.cls_token.expand(h.shape[0], -1, -1), h], dim=1) + self.pos_embed
        h = self.emb_drop(h)
        for block in self.blocks:
            h = block(h)
        return self.fc(self.norm(h[:, 0]))


@register("vit")
def vit(
    in_shape: tuple[int, int, int],
    num_classes: int,
    width: float,
    dropout: DropoutFactory | None,
    dropout_places: str = "paper",
) -> nn.Module:
    """The paper's ViT (SPT + LSA, patch 2, dim 512*width, depth 6, 8 heads, MLP 512*width, dropout 0.1);
    its own dropout is part of the architecture, so it takes no dropout variant."""
    refuse_dropout("vit", dropout)
    return ViT(in_shape, num_classes, width)
