"""`torch.compile` for the training step, with a clean way back to eager when compiling is not possible.

Compiling is a speed setting, never a science one: the compiled module computes the same function (up to
floating-point reassociation), the gradient accounting's second backward stays exact, and checkpoints hold the
same parameters. So a compiler that fails (no C++ toolchain, an unsupported op, an old GPU) must not fail the
run: the first failure is said once on stderr and the run continues eager.
"""

from __future__ import annotations

import sys

import torch
from torch import nn

MODES = ("auto", "on", "off")


def wanted(mode: str, device: torch.device) -> bool:
    """`auto` compiles on CUDA only: on a CPU the compile time outweighs the gain for this project's models."""
    if mode not in MODES:
        raise ValueError(f"compile mode {mode!r}; accepted: {', '.join(MODES)}")
    return mode == "on" or (mode == "auto" and device.type == "cuda")


class CompiledOrEager:
    """Call a module through `torch.compile`; after the first compiler failure, call it eager."""

    def __init__(self, module: nn.Module) -> None:
        # The gradient accounting backpropagates the clean part with retain_graph=True, then the noisy part:
        # a compiled backward that donates its buffers refuses the retained graph, so donation is off.
        torch._functorch.config.donated_buffer = False
        self.module = module
        self.compiled = torch.compile(module)
        self.failure: str | None = None

    def __call__(self, *args: object, **kwargs: object) -> torch.Tensor:
        if self.failure is None:
            try:
                return self.compiled(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - any compiler failure: eager computes the same function
                self.failure = f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]}"
                print(f"torch.compile failed ({self.failure}); training eager", file=sys.stderr)
        return self.module(*args, **kwargs)


def forward_of(module: nn.Module, compile: bool) -> nn.Module | CompiledOrEager:
    return CompiledOrEager(module) if compile else module
