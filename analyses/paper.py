"""The paper's numbers (DESIGN.md §9) as data, and the rule for when they apply to one of our settings.

Maini et al. 2023 report these for ResNet-9 at 10% label noise. A number is shown beside ours only when
dataset, architecture and noise rate all match; otherwise the report says there is no paper number, so a
digits/MLP result is never read against a CIFAR-10/ResNet-9 figure by accident.
"""

from __future__ import annotations

import math

import pandas as pd

NO_PAPER = "no paper number for this setting"

PAPER_ARCH = "resnet9"
PAPER_NOISE = 0.1

# Table 1, example-tied dropout (p_gen 0.4, p_mem 0.2): percent, (clean, noisy, test).
TABLE1 = {
    "cifar10": {"before": (99.9, 99.3, 79.3), "after": (90.8, 3.1, 82.7)},
    "mnist": {"before": (100.0, 100.0, 99.0), "after": (99.2, 0.1, 99.3)},
    "svhn": {"before": (99.9, 99.6, 89.5), "after": (95.8, 1.4, 89.6)},
}

# Table 3 (CIFAR-10): percent (clean, noisy) training accuracy after dropping, keyed by our variant name.
TABLE3_DATASET = "cifar10"
TABLE3 = {
    "dropout": ("standard dropout p = 0.4", 100.0, 99.5),
    "sparse": ("sparse network s = 0.4", 100.0, 99.8),
    "tied": ("example-tied, p_gen = 0.4, p_mem = 0.2", 90.8, 3.1),
}

# Figure 5a: the text's "about 5" units to flip a memorized (noisy) example; an approximate reading.
FLIP_NOISY_UNITS = {"cifar10": 5.0}

# The paper's claims in shape (DESIGN.md §9), printed under the matching section of the report.
CLAIMS = {
    "curves": "Noisy examples are memorized (noisy training accuracy vs their noisy label rises to ~100%) "
    "mostly between epochs ~10 and ~30 of 50.",
    "figure1": "Noisy examples contribute a gradient norm comparable to the clean ones despite being 10% of "
    "the data (paper Figure 1, epochs 15-20 of 50, ResNet-9 / CIFAR-10).",
    "figure2": "The clean/noisy gradient cosine is low while memorization happens (epochs ~10-30 of 50).",
    "figure3": "Rewinding a single layer rarely removes memorization; the layers that matter most are not "
    "the last ones.",
    "figure4": "Retraining one layer on clean examples only rarely removes memorization (the noisy examples "
    "come back), so the rest of the network holds it.",
    "figure5a": "Noisy (memorized) examples flip after far fewer removed units than clean ones (about 5).",
    "figure5b": "Flipping a noisy example costs the edited model less accuracy elsewhere than flipping a "
    "clean one.",
    "figure5c": "The removed units spread over layers alike for clean and noisy examples.",
    "table1": "Dropping the memorization channels removes memorization (CIFAR-10 noisy 99.3% -> 3.1%) while "
    "test accuracy holds or rises.",
    "table3": "Standard dropout and a sparse network keep the noisy examples memorized; only example-tied "
    "dropout forgets them.",
    "figure7": "Most clean examples forgotten under drop are mislabeled-looking, ambiguous or unusual.",
}


def matches(dataset: str, arch: str, noise: float, want_dataset: str | None = None) -> bool:
    """True when (dataset, arch, noise) is a setting the paper reports (ResNet-9, 10% noise)."""
    if want_dataset is not None and dataset != want_dataset:
        return False
    return arch == PAPER_ARCH and noise is not None and math.isclose(float(noise), PAPER_NOISE, abs_tol=1e-9)


def table1_numbers(dataset: str, arch: str, noise: float, phase: str) -> tuple[float, float, float] | None:
    """Paper Table 1 (clean, noisy, test) as fractions for `phase` 'before'/'after', or None if no match."""
    if dataset not in TABLE1 or not matches(dataset, arch, noise):
        return None
    return tuple(x / 100.0 for x in TABLE1[dataset][phase])  # type: ignore[return-value]


def table3_numbers(dataset: str, arch: str, noise: float, variant: str) -> tuple[float, float] | None:
    """Paper Table 3 (clean, noisy) as fractions for one method, or None if the setting does not match."""
    if variant not in TABLE3 or not matches(dataset, arch, noise, TABLE3_DATASET):
        return None
    _, clean, noisy = TABLE3[variant]
    return clean / 100.0, noisy / 100.0


def flip_units_noisy(dataset: str, arch: str, noise: float) -> float | None:
    """The paper's approximate units-to-flip for noisy examples, or None if the setting does not match."""
    if dataset not in FLIP_NOISY_UNITS or not matches(dataset, arch, noise):
        return None
    return FLIP_NOISY_UNITS[dataset]


def paper_table1() -> pd.DataFrame:
    """Table 1 as a tidy frame (fractions) for notebooks."""
    rows = []
    for dataset, phases in TABLE1.items():
        for phase, (clean, noisy, test) in phases.items():
            rows.append(
                {
                    "dataset": dataset,
                    "arch": PAPER_ARCH,
                    "noise": PAPER_NOISE,
                    "phase": phase,
                    "clean_acc": clean / 100,
                    "noisy_acc": noisy / 100,
                    "test_acc": test / 100,
                }
            )
    return pd.DataFrame(rows)


def paper_table3() -> pd.DataFrame:
    """Table 3 as a tidy frame (fractions) for notebooks."""
    rows = [
        {
            "dataset": TABLE3_DATASET,
            "arch": PAPER_ARCH,
            "noise": PAPER_NOISE,
            "variant": variant,
            "method": name,
            "clean_acc": clean / 100,
            "noisy_acc": noisy / 100,
        }
        for variant, (name, clean, noisy) in TABLE3.items()
    ]
    return pd.DataFrame(rows)
