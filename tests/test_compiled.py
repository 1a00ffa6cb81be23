"""torch.compile for trainings: same numbers as eager, and a compiler failure falls back to eager."""

from __future__ import annotations

import shutil

import pytest
import torch

from sweep import compiled
from sweep.config import RunConfig
from sweep.train import Trainer, prepare

CFG = RunConfig(dataset="digits", arch="mlp", noise=0.1, epochs=2, batch_size=256, width=0.5).validate()


def two_epochs(compile: bool, digits) -> tuple[Trainer, list[dict]]:
    trainer = Trainer(CFG, prepare(CFG, torch.device("cpu"), data=digits), torch.device("cpu"), compile=compile)
    rows = [trainer.train_epoch() for _ in range(2)]
    return trainer, rows


def test_auto_compiles_on_cuda_only():
    assert compiled.wanted("auto", torch.device("cuda")) and not compiled.wanted("auto", torch.device("cpu"))
    assert compiled.wanted("on", torch.device("cpu")) and not compiled.wanted("off", torch.device("cuda"))
    with pytest.raises(ValueError, match="accepted: auto, on, off"):
        compiled.wanted("yes", torch.device("cpu"))


def test_a_compiler_failure_falls_back_to_eager_with_one_line(monkeypatch, capsys, digits):
    """A compiled module that cannot compile (simulated: it raises as inductor does without a toolchain) leaves
    the run eager after one line on stderr, with exactly the eager run's numbers."""
    def broken(module):
        def call(*args, **kwargs):
            raise RuntimeError("Compiler: cc not found\nmore detail")
        return call

    monkeypatch.setattr(torch, "compile", broken)
    fallback, rows = two_epochs(True, digits)
    err = capsys.readouterr().err
    assert err.count("torch.compile failed (RuntimeError: Compiler: cc not found); training eager") == 1
    eager, eager_rows = two_epochs(False, digits)
    assert [r[0]["train_loss"] for r in rows] == [r[0]["train_loss"] for r in eager_rows]
    for key, value in eager.model.state_dict().items():
        assert torch.equal(value, fallback.model.state_dict()[key])


@pytest.mark.slow
def test_a_compiled_training_matches_eager(digits):
    """Really compiled (inductor on this CPU): the same losses, accuracies and gradient accounting up to
    floating-point reassociation. Only a machine without a C++ compiler may fall back to eager."""
    fast, fast_rows = two_epochs(True, digits)
    assert fast.forward.failure is None or shutil.which("g++") is None, fast.forward.failure
    eager, eager_rows = two_epochs(False, digits)
    for (row, grads), (row0, grads0) in zip(fast_rows, eager_rows, strict=True):
        assert row["train_loss"] == pytest.approx(row0["train_loss"], rel=1e-4)
        assert row["clean_acc"] == pytest.approx(row0["clean_acc"], abs=2e-3)
        for g, g0 in zip(grads, grads0, strict=True):
            assert g["clean_norm"] == pytest.approx(g0["clean_norm"], rel=1e-3)
            assert g["noisy_norm"] == pytest.approx(g0["noisy_norm"], rel=1e-3)
    for key, value in eager.model.state_dict().items():
        torch.testing.assert_close(fast.model.state_dict()[key], value, rtol=1e-3, atol=1e-4)
