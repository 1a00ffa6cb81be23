"""Beyond the paper: how well each memorization signal finds the mislabeled examples.

Each signal gives every scored example a suspicion score (higher = more likely mislabeled):
- units to flip (flips): fewer units = more suspicious; an example that never flipped is least suspicious;
- forgotten under example-tied `drop` (dropout_examples): 1 when wrong after dropping, else 0;
- last-epoch training loss (examples): higher = more suspicious;
- first learned epoch (examples): later = more suspicious; never learned (null, pd.NA; -1 in results written
  before the column became nullable) = most suspicious;
- area under the margin (examples, Pleiss et al. 2020): lower = more suspicious (scored as -AUM);
- forgetting events (examples, Toneva et al. 2019): more = more suspicious.
Quality is AUROC (ties count half) and precision among the top round(rate * n) scored examples, where rate
is the share of noisy examples among those scored: the noise rate for the whole training set, about one
half for the flip subset (1000 clean + 1000 noisy). Ties at the cut-off are shared fractionally, which is
the expected precision under a random tie-break, so a binary score is not flattered or punished by order.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from analyses.plotting import Output, config_title, configs, errorbars, legend_below, styled, wrap_grid
from analyses.stats import across_seeds, group_columns

SIGNALS = {
    "units_to_flip": "units to flip (fewer = suspicious)",
    "forgotten_drop": "wrong under example-tied drop",
    "final_loss": "last-epoch training loss",
    "first_learned": "first learned epoch (later = suspicious)",
    "aum": "area under the margin (lower = suspicious)",
    "forgetting": "forgetting events (more = suspicious)",
}


def auroc(scores, positives) -> float:
    """Area under the ROC curve from ranks (Mann-Whitney U), ties averaged; NaN if a class is empty."""
    s = np.asarray(scores, dtype=float)
    y = np.asarray(positives, dtype=bool)
    n_pos = int(y.sum())
    n_neg = int(y.size - n_pos)
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(s, method="average")
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def precision_at_rate(scores, positives, rate: float | None = None) -> float:
    """Share of positives among the top k = round(rate * n) scores (rate defaults to the positives' share),
    with examples tied at the cut-off counted fractionally; NaN when k is 0."""
    s = np.asarray(scores, dtype=float)
    y = np.asarray(positives, dtype=bool)
    n = s.size
    if n == 0:
        return float("nan")
    k = int(round((y.mean() if rate is None else rate) * n))
    if k <= 0:
        return float("nan")
    k = min(k, n)
    threshold = np.sort(s)[::-1][k - 1]
    above = s > threshold
    at = s == threshold
    take = k - int(above.sum())
    hits = y[above].sum() + take * y[at].sum() / at.sum()
    return float(hits / k)


def signal_scores(
    examples: pd.DataFrame | None = None,
    flips: pd.DataFrame | None = None,
    dropout_examples: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Long table (config columns, run_id, signal, example_id, is_noisy, score) of every available signal."""
    parts = []

    def take(df: pd.DataFrame, signal: str, score: np.ndarray) -> None:
        cols = group_columns(df) + ["run_id", "example_id", "is_noisy"]
        part = df[cols].copy()
        part["is_noisy"] = part["is_noisy"].astype(bool)
        part["signal"] = signal
        part["score"] = score
        parts.append(part)

    if flips is not None and len(flips):
        units = flips["n_units"].astype(float).to_numpy()
        take(flips, "units_to_flip", np.where(flips["flipped"].astype(bool).to_numpy(), -units, -np.inf))
    if dropout_examples is not None and len(dropout_examples):
        df = dropout_examples
        if "variant" in df.columns:
            df = df[df["variant"] == "tied"]
        if len(df):
            take(df, "forgotten_drop", (~df["correct_drop"].astype(bool)).to_numpy(dtype=float))
    if examples is not None and len(examples):
        if "final_loss" in examples.columns:
            take(examples, "final_loss", examples["final_loss"].astype(float).to_numpy())
        if "first_learned_epoch" in examples.columns:
            epoch = pd.to_numeric(examples["first_learned_epoch"], errors="coerce").astype(float).to_numpy()
            never = np.isnan(epoch) | (epoch < 0)
            take(examples, "first_learned", np.where(never, np.inf, epoch))
        if "aum" in examples.columns:
            take(examples, "aum", -examples["aum"].astype(float).to_numpy())
        if "forgetting_events" in examples.columns:
            take(examples, "forgetting", examples["forgetting_events"].astype(float).to_numpy())
    if not parts:
        return pd.DataFrame(columns=["run_id", "signal", "example_id", "is_noisy", "score"])
    return pd.concat(parts, ignore_index=True)


def detection_per_run(
    examples: pd.DataFrame | None = None,
    flips: pd.DataFrame | None = None,
    dropout_examples: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Per run and signal: examples scored, noisy among them, the rate used, AUROC, precision at that rate,
    and the chance level of that precision (= rate). Examples with a missing score are left out."""
    scores = signal_scores(examples, flips, dropout_examples)
    cols = group_columns(scores)
    rows = []
    for key, part in scores.groupby(cols + ["run_id", "signal"], dropna=False, sort=True):
        part = part[~part["score"].isna()]
        y = part["is_noisy"].to_numpy(bool)
        s = part["score"].to_numpy(float)
        rate = float(y.mean()) if len(y) else float("nan")
        rows.append(
            {
                **dict(zip(cols + ["run_id", "signal"], key, strict=False)),
                "n": len(part),
                "n_noisy": int(y.sum()),
                "rate": rate,
                "k": int(round(rate * len(y))) if len(y) else 0,
                "auroc": auroc(s, y),
                "precision_at_rate": precision_at_rate(s, y),
                "chance": rate,
            }
        )
    columns = cols + ["run_id", "signal", "n", "n_noisy", "rate", "k", "auroc", "precision_at_rate", "chance"]
    return pd.DataFrame(rows, columns=columns)


@styled
def detection(
    examples: pd.DataFrame | None = None,
    flips: pd.DataFrame | None = None,
    dropout_examples: pd.DataFrame | None = None,
) -> Output:
    """Per configuration and signal, AUROC and precision at the noise rate across seeds, with bars per
    signal (AUROC against 0.5, precision against chance), both on their natural 0-1 scale."""
    per_run = detection_per_run(examples, flips, dropout_examples)
    table = across_seeds(per_run, ["auroc", "precision_at_rate", "chance"], keys=["signal"])
    table["signal_name"] = table["signal"].map(SIGNALS)
    if table.empty:
        return Output(table, None)
    groups = list(configs(table))
    fig, axes = wrap_grid(len(groups), max_cols=3, size=(4.2, 3.3))
    for ax, (config, rows) in zip(axes, groups, strict=False):
        x = np.arange(len(rows))
        for offset, metric, name in ((-0.2, "auroc", "AUROC"), (0.2, "precision_at_rate", "precision at the rate")):
            means = rows[f"{metric}_mean"].to_numpy(float)
            err = errorbars(means, rows[f"{metric}_lo"], rows[f"{metric}_hi"])
            ax.bar(x + offset, np.nan_to_num(means), 0.4, yerr=err, capsize=2, label=name)
        ax.scatter(x + 0.2, rows["chance_mean"], marker="_", s=300, color="black",
                   label="chance precision (= rate)")
        ax.axhline(0.5, color="grey", lw=0.8, ls=":", label="chance AUROC (0.5)")
        ax.set_xticks(x, [SIGNALS.get(s, s).split(" (")[0] for s in rows["signal"]], rotation=25, ha="right",
                      rotation_mode="anchor")
        ax.set_ylim(0, 1.05)
        ax.set_xlabel("signal")
        ax.set_ylabel("AUROC or precision (0-1)")
        ax.set_title(config_title(config, int(rows["n_seeds"].max())))
    legend_below(fig, axes)
    return Output(table, fig)
