"""The paper's numbers (DESIGN.md §9) as data, and the rule for when they apply to one of our settings.

Maini et al. 2023 report these for full-width ResNet-9 at 10% label noise, trained 50 epochs at batch 512 with
a peak learning rate of 0.1 (its code's `lr1` default, triangular schedule), an ordinary training (not an
out-of-sample fold or a second-split run), with example-tied dropout at p_gen 0.4 / p_mem 0.2 at the paper code's
places, the sparse network as its fixed element-wise mask, and neuron flipping by the paper's unit rule. A number
is shown beside ours only when every one of those fields matches (a field the row lacks counts as a mismatch);
otherwise the report says there is no paper number, so a digits/MLP result, a narrow network, another learning
rate or another p_mem is never read against the paper's figure by accident.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import pandas as pd

NO_PAPER = "no paper number for this setting"

PAPER_ARCH = "resnet9"
PAPER_NOISE = 0.1
# The setting every paper number belongs to; then what each variant, and the flip analysis, adds to it.
PAPER_SETTING = {"arch": PAPER_ARCH, "noise": PAPER_NOISE, "width": 1.0, "epochs": 50, "batch_size": 512, "lr": 0.1,
                 "cv_folds": 0, "ssft_half": 0}
PAPER_VARIANT = {
    "tied": {"p_gen": 0.4, "p_mem": 0.2, "dropout_places": "paper"},
    "dropout": {"dropout_places": "paper"},
    "sparse": {"sparse_mask": "paper"},
    "standard": {},
}
PAPER_TIED = PAPER_VARIANT["tied"]
# The row column that records neuron flipping's unit rule (AnalysisConfig.flip_units), and the paper's rule.
FLIP_RULE = {"flip_units": "paper"}

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


def _same(value: object, wanted: object) -> bool:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return False
    if isinstance(wanted, str):
        return value == wanted
    try:
        return math.isclose(float(value), float(wanted), abs_tol=1e-9)
    except (TypeError, ValueError):
        return False


def setting(config: Mapping[str, object]) -> dict[str, object]:
    """Every field the paper's setting fixes for a row of this variant, with the paper's value (an unknown
    variant has no paper setting: None, which nothing matches)."""
    variant = config.get("variant")
    extra = PAPER_VARIANT.get(variant) if isinstance(variant, str) else None
    return {**PAPER_SETTING, **(extra if extra is not None else {"variant": None})}


def mismatches(config: Mapping[str, object], want_dataset: str | None = None) -> list[str]:
    """The fields of `config` (a row's configuration columns) that differ from the paper's setting, or that the
    row lacks; empty when it is the paper's own."""
    wanted = setting(config)
    if want_dataset is not None:
        wanted = {"dataset": want_dataset, **wanted}
    return [key for key, value in wanted.items() if not _same(config.get(key), value)]


def matches(config: Mapping[str, object], want_dataset: str | None = None) -> bool:
    """True when `config` is the paper's own setting (`mismatches` is empty): ResNet-9 at full width, 10% noise,
    50 epochs at batch 512 and lr 0.1, an ordinary run, and the variant's own fields (p_gen 0.4 / p_mem 0.2 and the
    paper's dropout places for example-tied dropout, the paper's places for standard dropout, the paper's mask
    for the sparse network)."""
    return not mismatches(config, want_dataset)


def table1_numbers(config: Mapping[str, object], phase: str) -> tuple[float, float, float] | None:
    """Paper Table 1 (clean, noisy, test) as fractions for `phase` 'before'/'after', or None if no match."""
    dataset = config.get("dataset")
    if dataset not in TABLE1 or not matches(config):
        return None
    return tuple(x / 100.0 for x in TABLE1[dataset][phase])  # type: ignore[return-value]


def table3_numbers(config: Mapping[str, object]) -> tuple[float, float] | None:
    """Paper Table 3 (clean, noisy) as fractions for the row's method (its variant), or None if no match."""
    variant = config.get("variant")
    if variant not in TABLE3 or not matches(config, TABLE3_DATASET):
        return None
    _, clean, noisy = TABLE3[variant]
    return clean / 100.0, noisy / 100.0


def flip_units_noisy(config: Mapping[str, object]) -> float | None:
    """The paper's approximate units-to-flip for noisy examples, or None unless the training setting matches and
    the row's flips were counted by the paper's unit rule (`FLIP_RULE`)."""
    dataset = config.get("dataset")
    if dataset not in FLIP_NOISY_UNITS or not matches(config):
        return None
    if not all(_same(config.get(key), value) for key, value in FLIP_RULE.items()):
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
