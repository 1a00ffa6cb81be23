"""`vit_plain`: a plain Vision Transformer for 8x8 to 32x32 images: patch 2, dim 512, depth 6, 8 heads, MLP 512.

Our earlier `vit`, kept reachable under its own architecture name: the paper's sizes, but none of the paper's
small-dataset devices (shifted patch tokenization, locality self-attention, dropout); `vit` is now the paper's
model (sweep.models.vit). A plain conv patch embedding, standard scaled-dot-product attention, no dropout.

Written here rather than taken from a library so that every unit is the output of an `nn.Linear`: attention
uses separate q, k, v and output projections (`nn.MultiheadAttention` keeps its input projection as a raw
Parameter, which neuron flipping could not address as a module output). Pre-norm blocks, a class token read
out through a final LayerNorm and the classifier `fc`, a learnable position embedding sized to the input's
patch grid.
Width multiplies the model dim (rounded to a multiple of the 8 heads) and the MLP dim.

Layer groups: patch_embed (patch conv + class token + position embedding), block0..block5, head (norm + fc).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sweep.errors import UserError
from sweep.models.registry import DropoutFactory, refuse_dropout, register, scaled

PATCH = 2
DIM = 512
DEPTH = 6
HEADS = 8
MLP_DIM = 512


class Attention(nn.Module):
    """Multi-head self-attention with one nn.Linear per projection (each output feature is a unit)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, tokens, dim = x.shape

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(n, tokens, self.heads, dim // self.heads).transpose(1, 2)

        out = F.scaled_dot_product_attention(split(self.q(x)), split(self.k(x)), split(self.v(x)))
        return self.proj(out.transpose(1, 2).reshape(n, tokens, dim))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm1(x)), then x + fc2(gelu(fc1(norm2(x))))."""

    def __init__(self, dim: int, heads: int, mlp_dim: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, mlp_dim)
        self.fc2 = nn.Linear(mlp_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class PlainViT(nn.Module):
    """Class-token ViT; `head` is the classifier `fc` (read from the normalised class token)."""

    def __init__(self, in_shape: tuple[int, int, int], num_classes: int, width: float) -> None:
        super().__init__()
        channels, height, wide = in_shape
        if height < PATCH or wide < PATCH:
            raise UserError(f"vit_plain needs inputs of at least {PATCH}x{PATCH} pixels, got {height}x{wide}")
        dim = max(HEADS, round(DIM * width / HEADS) * HEADS)  # heads must divide the model dim
        tokens = (height // PATCH) * (wide // PATCH)
        self.patch_embed = nn.Conv2d(channels, dim, kernel_size=PATCH, stride=PATCH)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, tokens + 1, dim))
        self.blocks = nn.ModuleList(Block(dim, HEADS, scaled(MLP_DIM, width)) for _ in range(DEPTH))
        self.norm = nn.LayerNorm(dim)
        self.fc = nn.Linear(dim, num_classes)
        self.head = "fc"
        embed = ["patch_embed", "cls_token", "pos_embed"]
        self.groups: list[tuple[str, list[str]]] = [("patch_embed", embed)]
        self.groups += [(f"block{i}", [f"blocks.{i}"]) for i in range(DEPTH)]
        self.groups.append(("head", ["norm", "fc"]))
        self._init_weights()

    def _init_weights(self) -> None:
        """Small truncated-normal embeddings and linears (the common ViT recipe), zero biases."""
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor, ids: torch.Tensor | None = None) -> torch.Tensor:
        """`ids` is accepted for a uniform model interface; the ViT has no example-tied dropout."""
        h = self.patch_embed(x).flatten(2).transpose(1, 2)
        h = torch.cat([self.cls_token.expand(h.shape[0], -1, -1), h], dim=1) + self.pos_embed
        for block in self.blocks:
            h = block(h)
        return self.fc(self.norm(h[:, 0]))


@register("vit_plain")
def vit_plain(
    in_shape: tuple[int, int, int],
    num_classes: int,
    width: float,
    dropout: DropoutFactory | None,
    dropout_places: str = "paper",
) -> nn.Module:
    """Plain ViT (patch 2, dim 512*width, depth 6, 8 heads, MLP 512*width); no dropout variants."""
    refuse_dropout("vit_plain", dropout)
    return PlainViT(in_shape, num_classes, width)
