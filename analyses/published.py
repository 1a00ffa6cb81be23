"""Published AUROCs for finding mislabeled examples, shown beside ours only where the setting matches.

The anchors (AUROC on all training examples, CIFAR-10, uniform label noise):
- Ravikumar et al., ICML 2025, Table 2, 10% noise: learning time 0.495, in-confidence 0.653, confident learning
  0.855, SSFT 0.936, loss curvature 0.982, cumulative sample loss 0.987;
- cleanlab's own benchmark, 20% noise, cross-validated predicted probabilities: self-confidence 0.997.

"The setting matches" means: dataset CIFAR-10, the paper's ResNet-9 (arch resnet9, width 1, standard training:
no dropout variant, not an auxiliary run) and the same noise rate. Everything else (the authors' own training
recipe, epochs, augmentation) is theirs, so a match puts two numbers side by side, not a seed-matched
replication; every configuration without a match is named with what differs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from analyses.plotting import config_label

RAVIKUMAR = "Ravikumar et al., ICML 2025, Table 2"
CLEANLAB = "cleanlab benchmark (cross-validated probabilities, self-confidence)"


@dataclass(frozen=True)
class Anchor:
    """One published AUROC: the signal of ours it corresponds to, the value, and the setting it was measured in."""

    signal: str
    method: str
    auroc: float
    noise: float
    source: str
    dataset: str = "cifar10"


ANCHORS = (
    Anchor("learning_time", "learning time", 0.495, 0.1, RAVIKUMAR),
    Anchor("in_confidence", "in-confidence", 0.653, 0.1, RAVIKUMAR),
    Anchor("cleanlab", "confident learning", 0.855, 0.1, RAVIKUMAR),
    Anchor("ssft", "SSFT", 0.936, 0.1, RAVIKUMAR),
    Anchor("loss_curvature", "loss curvature", 0.982, 0.1, RAVIKUMAR),
    Anchor("csl", "cumulative sample loss", 0.987, 0.1, RAVIKUMAR),
    Anchor("cleanlab", "self-confidence", 0.997, 0.2, CLEANLAB),
)
ARCH, WIDTH, VARIANT = "resnet9", 1.0, "standard"
WHERE = ("published AUROCs exist for CIFAR-10 with the paper's ResNet-9 (width 1, standard training) at 10% noise "
         f"({RAVIKUMAR}) and 20% noise ({CLEANLAB})")


def _close(a: object, b: float) -> bool:
    try:
        return bool(np.isclose(float(a), b, rtol=0, atol=1e-9))
    except (TypeError, ValueError):
        return False


def mismatch(config: dict) -> list[str]:
    """What keeps a configuration from every anchor's setting (empty: dataset, arch, width, variant match and an
    anchor exists at its noise rate)."""
    out = []
    if config.get("dataset") != "cifar10":
        out.append(f"dataset {config.get('dataset')} (not cifar10)")
    if config.get("arch") != ARCH:
        out.append(f"arch {config.get('arch')} (not {ARCH})")
    if "width" in config and not _close(config["width"], WIDTH):
        out.append(f"width {float(config['width']):g} (not {WIDTH:g})")
    if config.get("variant", VARIANT) != VARIANT:
        out.append(f"variant {config.get('variant')} (not {VARIANT})")
    for aux in ("cv_folds", "ssft_half"):
        if aux in config and pd.notna(config[aux]) and float(config[aux]) > 0:
            out.append(f"an auxiliary run ({aux} {config[aux]})")
    rates = sorted({a.noise for a in ANCHORS})
    if not any(_close(config.get("noise"), r) for r in rates):
        out.append(f"noise {float(config.get('noise', np.nan)):g} (published: {', '.join(f'{r:g}' for r in rates)})")
    return out


def anchors_for(config: dict) -> list[Anchor]:
    """The anchors whose setting this configuration matches (none where `mismatch` names anything)."""
    if mismatch(config):
        return []
    return [a for a in ANCHORS if a.dataset == config.get("dataset") and _close(config.get("noise"), a.noise)]


def beside(summary: pd.DataFrame, keys: list[str], all_set: str) -> tuple[pd.DataFrame, list[str]]:
    """(table, sentences). The table: per matching configuration and anchor, our AUROC on all training examples
    (mean and interval across seeds, or why there is none) beside the published one. The sentences: one per
    configuration without a match, saying what differs."""
    rows, notes = [], []
    if summary.empty:
        return pd.DataFrame(columns=["configuration", "signal", "method", "noise", "ours", "n_seeds", "published",
                                     "difference", "source"]), notes
    whole = summary[summary["set"] == all_set]
    for key, _part in summary.groupby(keys, dropna=False, sort=True):
        config = dict(zip(keys, key if isinstance(key, tuple) else (key,), strict=True))
        label = config_label(config)
        found = anchors_for(config)
        if not found:
            notes.append(f"{label}: no published number to compare with ({'; '.join(mismatch(config))}); {WHERE}.")
            continue
        mine = whole.merge(pd.DataFrame([config]), on=keys, how="inner").set_index("signal")
        for anchor in found:
            row = {"configuration": label, "signal": anchor.signal, "method": anchor.method, "noise": anchor.noise,
                   "ours": "not computed for this configuration", "n_seeds": 0, "published": anchor.auroc,
                   "difference": np.nan, "source": anchor.source}
            if anchor.signal in mine.index and pd.notna(mine.at[anchor.signal, "auroc_mean"]):
                r = mine.loc[anchor.signal]
                m, lo, hi = float(r["auroc_mean"]), float(r["auroc_lo"]), float(r["auroc_hi"])
                row["ours"] = f"{m:.3f} [{lo:.3f}, {hi:.3f}]" if np.isfinite([lo, hi]).all() else f"{m:.3f}"
                row["n_seeds"] = int(r["n_seeds"])
                row["difference"] = m - anchor.auroc
            rows.append(row)
    return pd.DataFrame(rows, columns=["configuration", "signal", "method", "noise", "ours", "n_seeds", "published",
                                       "difference", "source"]), notes
