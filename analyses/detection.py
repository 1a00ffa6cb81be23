"""Beyond the paper: how well each memorization signal finds the mislabeled examples, beside the detectors
the label-noise literature already uses.

Each signal gives every scored example a suspicion score (higher = more likely mislabeled):
- units to flip (flips): fewer units = more suspicious; an example that never flipped is least suspicious;
- forgotten under example-tied `drop` (dropout_examples): 1 when wrong after dropping, else 0;
- last-epoch training loss (examples): higher = more suspicious;
- first learned epoch (examples): later = more suspicious; never learned (null, pd.NA; -1 in results written
  before the column became nullable) = most suspicious;
- area under the margin (examples, Pleiss et al. 2020): lower = more suspicious (scored as -AUM);
- forgetting events (examples, Toneva et al. 2019): more = more suspicious;
- cleanlab label quality (oos_predictions, Northcutt et al. 2021, analyses.confident): confident learning's
  label-quality score from out-of-sample predicted probabilities; lower = more suspicious (scored as -quality);
- cleanlab's find_label_issues flag (same input): 1 when flagged, else 0.

Every signal is compared on the same examples, in two sets per run:
- `flip subset`: the examples the flip analysis scored (about as many clean as noisy), for every signal that
  scores all of them; units to flip exists only here;
- `all training examples`: every training example of the run, for the signals that score all of them (loss,
  first learned, AUM, forgetting, cleanlab, and example-tied drop on tied runs).
A signal that scores only part of a set is left out of that set (`coverage_gaps` names it), so within one
(run, set) every signal has the same examples and the same chance level.

Quality is AUROC (ties count half), average precision (scikit-learn's, on the scores' ranks so that an infinite
score is just first or last) and precision among the top round(rate * n) scored examples, where rate is the share
of noisy examples in the set: the noise rate for the whole training set, about one half for the flip subset.
Ties at the cut-off are shared fractionally, which is the expected precision under a random tie-break, so a
binary score is not flattered or punished by order. For the binary signals (a flag) the table also gives the
flag's own precision and recall. Chance is `rate` for both precision and average precision, 0.5 for AUROC.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import rankdata
from sklearn.metrics import average_precision_score

from analyses.load import ordinary
from analyses.plotting import (
    Output,
    config_label,
    config_title,
    configs,
    errorbars,
    legend_below,
    panel_grid,
    seeds,
    styled,
)
from analyses.stats import across_seeds, group_columns

SIGNALS = {
    "units_to_flip": "units to flip (fewer = suspicious)",
    "forgotten_drop": "wrong under example-tied drop",
    "final_loss": "last-epoch training loss",
    "first_learned": "first learned epoch (later = suspicious)",
    "aum": "area under the margin (lower = suspicious)",
    "forgetting": "forgetting events (more = suspicious)",
    "cleanlab": "cleanlab label quality, out-of-sample (lower = suspicious)",
    "cleanlab_issue": "cleanlab find_label_issues flag",
}
SHORT = {"units_to_flip": "units to flip", "forgotten_drop": "tied drop", "final_loss": "final loss",
         "first_learned": "first learned", "aum": "AUM", "forgetting": "forgetting", "cleanlab": "cleanlab",
         "cleanlab_issue": "cleanlab flag"}
LOCALIZATION = ("units_to_flip", "forgotten_drop")  # the paper's signals; the rest: training dynamics, literature
BINARY = ("forgotten_drop", "cleanlab_issue")  # flags: their own precision and recall are reported too
FLIP_SET, ALL_SET = "flip subset", "all training examples"
SETS = (FLIP_SET, ALL_SET)
METRICS = ("auroc", "average_precision", "precision_at_rate")
METRIC_NAMES = {"auroc": "AUROC", "average_precision": "average precision",
                "precision_at_rate": "precision at the rate"}
# The suspects files are sorted by the first of these signals a run has: AUM, because it is cheap, scores every
# training example of every run, and choosing it does not look at the true flags (the best signal would).
SUSPECTS_ORDER = ("aum", "cleanlab", "final_loss", "first_learned", "forgetting", "forgotten_drop", "cleanlab_issue",
                  "units_to_flip")


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


def average_precision(scores, positives) -> float:
    """Average precision (scikit-learn) of the scores' ranks, ties kept as ties; NaN if a class is empty."""
    s = np.asarray(scores, dtype=float)
    y = np.asarray(positives, dtype=bool)
    if y.all() or not y.any():
        return float("nan")
    return float(average_precision_score(y, rankdata(s, method="average")))


def signal_scores(
    examples: pd.DataFrame | None = None,
    flips: pd.DataFrame | None = None,
    dropout_examples: pd.DataFrame | None = None,
    oos_predictions: pd.DataFrame | None = None,
    runs: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Long table (config columns, run_id, signal, example_id, is_noisy, score) of every available signal.
    Rows of out-of-sample fold runs are ignored; their predictions become the cleanlab signals of the ordinary
    run they are for (`runs` or `examples` must hold that run; see analyses.confident)."""
    return scores_and_skipped(examples, flips, dropout_examples, oos_predictions, runs)[0]


def scores_and_skipped(
    examples: pd.DataFrame | None = None,
    flips: pd.DataFrame | None = None,
    dropout_examples: pd.DataFrame | None = None,
    oos_predictions: pd.DataFrame | None = None,
    runs: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`signal_scores` and the runs whose fold predictions could not be scored by cleanlab, with the reason."""
    from analyses.confident import cleanlab_signal

    examples, flips, dropout_examples = ordinary(examples), ordinary(flips), ordinary(dropout_examples)
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
    confident, skipped = cleanlab_signal(oos_predictions, examples, runs)
    if len(confident):
        parts.append(confident.drop(columns=["label_quality", "label_issue"]))
    if not parts:
        return pd.DataFrame(columns=["run_id", "signal", "example_id", "is_noisy", "score"]), skipped
    scores = pd.concat(parts, ignore_index=True)
    scores["is_noisy"] = scores["is_noisy"].astype(bool)
    return scores, skipped


def _sets(part: pd.DataFrame) -> dict[str, np.ndarray]:
    """One run's example sets: the flip subset (units to flip's examples) and all training examples (every
    example any other signal scores), each present when not empty."""
    flip = part["signal"].isin(["units_to_flip"])
    out = {FLIP_SET: np.unique(part.loc[flip, "example_id"].to_numpy(np.int64)),
           ALL_SET: np.unique(part.loc[~flip, "example_id"].to_numpy(np.int64))}
    return {name: ids for name, ids in out.items() if len(ids)}


def _per_set(scores: pd.DataFrame):
    """Yield (keys, set name, ids, signal, its rows on the set sorted by example, whether it scores all of them)
    for every run, set and signal, except units to flip on all training examples when it does not score them."""
    if scores.empty:
        return
    cols = group_columns(scores)
    order = {s: i for i, s in enumerate(SIGNALS)}
    for key, part in scores.groupby(cols + ["run_id"], dropna=False, sort=True):
        keys = dict(zip(cols + ["run_id"], key if isinstance(key, tuple) else (key,), strict=False))
        for name, ids in _sets(part).items():
            for signal in sorted(part["signal"].unique(), key=lambda s: (order.get(s, len(order)), s)):
                rows = part[(part["signal"] == signal) & part["score"].notna()].drop_duplicates("example_id")
                rows = rows[rows["example_id"].isin(ids)].sort_values("example_id")
                complete = len(rows) == len(ids)
                if complete or name == FLIP_SET or signal != "units_to_flip":
                    yield keys, name, ids, signal, rows, complete


def coverage_gaps(scores: pd.DataFrame) -> pd.DataFrame:
    """(run, set, signal, examples of the set it scores, examples in the set) for every signal left out of a
    set because it scores only part of it (units to flip on all training examples is not listed: it never
    covers them)."""
    rows = [{**keys, "set": name, "signal": signal, "scored": len(part), "of": len(ids)}
            for keys, name, ids, signal, part, complete in _per_set(scores) if not complete]
    return pd.DataFrame(rows, columns=group_columns(scores) + ["run_id", "set", "signal", "scored", "of"])


def evaluate(scores: pd.DataFrame) -> pd.DataFrame:
    """Per run, set and signal (the signals that score the whole set): examples, noisy among them, the rate,
    k = round(rate * n), AUROC, average precision, precision at the rate and its chance level (= rate); for
    flags (BINARY) also how many are flagged and the flag's precision and recall."""
    rows = []
    for keys, name, _ids, signal, part, complete in _per_set(scores):
        if not complete:
            continue
        y = part["is_noisy"].to_numpy(bool)
        s = part["score"].to_numpy(float)
        rate = float(y.mean())
        row = {**keys, "set": name, "signal": signal, "n": len(part), "n_noisy": int(y.sum()), "rate": rate,
               "k": int(round(rate * len(y))), "auroc": auroc(s, y), "average_precision": average_precision(s, y),
               "precision_at_rate": precision_at_rate(s, y), "chance": rate,
               "flagged": np.nan, "flag_precision": np.nan, "flag_recall": np.nan}
        if signal in BINARY:
            flag = s > 0
            row["flagged"] = int(flag.sum())
            row["flag_precision"] = float(y[flag].mean()) if flag.any() else np.nan
            row["flag_recall"] = float(flag[y].mean()) if y.any() else np.nan
        rows.append(row)
    cols = group_columns(scores) + ["run_id", "set", "signal", "n", "n_noisy", "rate", "k", *METRICS, "chance",
                                    "flagged", "flag_precision", "flag_recall"]
    return pd.DataFrame(rows, columns=cols)


def detection_per_run(
    examples: pd.DataFrame | None = None,
    flips: pd.DataFrame | None = None,
    dropout_examples: pd.DataFrame | None = None,
    oos_predictions: pd.DataFrame | None = None,
    runs: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """`evaluate` of every signal the tables give: one row per run, set and signal."""
    return evaluate(signal_scores(examples, flips, dropout_examples, oos_predictions, runs))


def headline(per_run: pd.DataFrame) -> pd.DataFrame:
    """Per run and signal, the row of its widest set (all training examples where it has them, else the flip
    subset): one AUROC per run and signal, as the figure against the noise rate draws it."""
    if per_run.empty:
        return per_run
    wide = per_run.assign(_wide=(per_run["set"] == ALL_SET).astype(int))
    wide = wide.sort_values("_wide", ascending=False, kind="stable").drop_duplicates(["run_id", "signal"])
    return wide.drop(columns="_wide").sort_index()


def summary_table(per_run: pd.DataFrame) -> pd.DataFrame:
    """Across seeds per configuration, set and signal: mean, 95% interval and n_seeds of every metric, in the
    order of SETS and SIGNALS."""
    values = ["n", *METRICS, "chance", "flag_precision", "flag_recall"]
    table = across_seeds(per_run, values, keys=["set", "signal"])
    if table.empty:
        table["signal_name"] = []
        return table
    table["signal_name"] = table["signal"].map(SIGNALS)
    cols = group_columns(table)
    order = table.assign(_set=table["set"].map({s: i for i, s in enumerate(SETS)}),
                         _signal=table["signal"].map({s: i for i, s in enumerate(SIGNALS)}))
    return order.sort_values(cols + ["_set", "_signal"]).drop(columns=["_set", "_signal"]).reset_index(drop=True)


@styled
def summarise(per_run: pd.DataFrame) -> Output:
    """The summary table and its figure: one row of panels per configuration, one panel per example set, a
    group of bars per signal (AUROC, average precision, precision at the rate, each a mean across seeds with its
    95% interval), chance as lines (AUROC 0.5; precision and average precision = the set's share of noisy)."""
    table = summary_table(per_run)
    if table.empty:
        return Output(table, None)
    groups = list(configs(table))
    sets = [s for s in SETS if s in set(table["set"])]
    n_signals = int(table.groupby(group_columns(table) + ["set"])["signal"].nunique().max())
    fig, axes = panel_grid(len(groups), len(sets), size=(max(4.2, 0.75 * n_signals + 1.4), 3.7))
    colours = {"auroc": "tab:blue", "average_precision": "tab:green", "precision_at_rate": "tab:orange"}
    used = []
    for i, (config, rows) in enumerate(groups):
        for j, name in enumerate(sets):
            ax = axes[i, j]
            part = rows[rows["set"] == name]
            if part.empty:
                ax.set_visible(False)
                continue
            used.append(ax)
            x = np.arange(len(part))
            for offset, metric in zip((-0.27, 0.0, 0.27), METRICS, strict=True):
                means = part[f"{metric}_mean"].to_numpy(float)
                err = errorbars(means, part[f"{metric}_lo"], part[f"{metric}_hi"])
                ax.bar(x + offset, np.nan_to_num(means), 0.27, yerr=err, capsize=2, color=colours[metric],
                       label=METRIC_NAMES[metric])
            ax.axhline(0.5, color="grey", lw=0.8, ls=":", label="chance AUROC (0.5)")
            ax.axhline(float(part["chance_mean"].mean()), color="black", lw=0.8, ls="--",
                       label="chance precision and AP (= share of noisy)")
            ax.set_xticks(x, [SHORT.get(s, s) for s in part["signal"]], rotation=30, ha="right",
                          rotation_mode="anchor")
            ax.set_ylim(0, 1.05)
            ax.set_xlabel("signal")
            ax.set_ylabel("AUROC or precision (0-1)")
            ax.set_title(config_title(config, int(part["n_seeds"].max())) + f"\n{name}")
    legend_below(fig, used)
    return Output(table, fig)


def detection(
    examples: pd.DataFrame | None = None,
    flips: pd.DataFrame | None = None,
    dropout_examples: pd.DataFrame | None = None,
    oos_predictions: pd.DataFrame | None = None,
    runs: pd.DataFrame | None = None,
) -> Output:
    """Per configuration, set and signal, AUROC, average precision and precision at the noise rate across seeds,
    with the figure of `summarise`."""
    return summarise(detection_per_run(examples, flips, dropout_examples, oos_predictions, runs))


def _value(row: pd.Series, metric: str = "auroc") -> str:
    m, lo, hi = row[f"{metric}_mean"], row[f"{metric}_lo"], row[f"{metric}_hi"]
    if np.isfinite(lo) and np.isfinite(hi):
        return f"{m:.3f} [{lo:.3f}, {hi:.3f}]"
    return f"{m:.3f}"


def verdicts(table: pd.DataFrame) -> list[str]:
    """One sentence per configuration and set: which signal has the highest mean AUROC, with its number, the
    runner-up's, whether their 95% intervals across seeds overlap, and the best localization signal against
    the best other detector where the set has both."""
    out = []
    if table.empty:
        return out
    for config, rows in configs(table):
        for name in SETS:
            part = rows[(rows["set"] == name) & rows["auroc_mean"].notna()]
            part = part.sort_values("auroc_mean", ascending=False, kind="stable")
            if part.empty:
                continue
            n = int(part["n_seeds"].max())
            n_ex = part["n_mean"].iloc[0]
            where = f"{config_label(config)} ({seeds(n)}), {name} ({n_ex:.0f} examples per run)"
            best = part.iloc[0]
            text = f"{where}: {SHORT.get(best['signal'], best['signal'])} wins with AUROC {_value(best)}"
            if len(part) == 1:
                out.append(text + "; it is the only signal that scores this set.")
                continue
            second = part.iloc[1]
            text += f", ahead of {SHORT.get(second['signal'], second['signal'])} ({_value(second)})"
            if best["auroc_mean"] == second["auroc_mean"]:
                text += ", a tie"
            elif n < 2 or not np.isfinite([best["auroc_lo"], second["auroc_hi"]]).all():
                text += "; one seed, so no intervals say whether the lead is more than seed-to-seed variation"
            elif best["auroc_lo"] <= second["auroc_hi"]:
                text += "; their 95% intervals overlap, so the lead is within seed-to-seed variation"
            else:
                text += "; their 95% intervals do not overlap"
            local = part[part["signal"].isin(LOCALIZATION)]
            other = part[~part["signal"].isin(LOCALIZATION)]
            if len(local) and len(other):
                a, b = local.iloc[0], other.iloc[0]
                better = "better than" if a["auroc_mean"] > b["auroc_mean"] else "no better than"
                text += (f". The best localization signal, {SHORT[a['signal']]} ({a['auroc_mean']:.3f}), is {better} "
                         f"the best other detector, {SHORT.get(b['signal'], b['signal'])} ({b['auroc_mean']:.3f})")
            out.append(text + ".")
    return out


def _ranks(scores: np.ndarray) -> np.ndarray:
    """1 = most suspicious: the position in a stable sort by descending score (ties keep example order)."""
    order = np.argsort(-scores, kind="stable")
    ranks = np.empty(len(scores), dtype=np.int64)
    ranks[order] = np.arange(1, len(scores) + 1)
    return ranks


def suspects(scores: pd.DataFrame, examples: pd.DataFrame | None = None) -> dict[str, pd.DataFrame]:
    """Per run, every example it has scores for (its training examples): example_id, label, original_label,
    is_noisy, then per signal `<signal>_score` and `<signal>_rank` (1 = most suspicious; ties in example order;
    empty where the signal does not score the example), sorted by the first SUSPECTS_ORDER signal's rank
    (AUM's where the run has it). The column `sorted_by` names that signal."""
    examples = ordinary(examples)
    out = {}
    if scores.empty:
        return out
    for run_id, part in scores.groupby("run_id", sort=True):
        ids = np.unique(part["example_id"].to_numpy(np.int64))
        table = pd.DataFrame({"example_id": ids})
        info = None
        if examples is not None and len(examples):
            info = examples.loc[examples["run_id"] == run_id]
            info = info[[c for c in ("example_id", "label", "original_label") if c in info.columns]]
            table = table.merge(info.drop_duplicates("example_id"), on="example_id", how="outer")
        for col in ("label", "original_label"):
            if col not in table.columns:
                table[col] = pd.array([pd.NA] * len(table), dtype="Int64")
        noisy = part.drop_duplicates("example_id").set_index("example_id")["is_noisy"]
        table["is_noisy"] = table["example_id"].map(noisy).astype("boolean")
        present = [s for s in SIGNALS if s in set(part["signal"])]
        for signal in present:
            sig = part[(part["signal"] == signal) & part["score"].notna()].drop_duplicates("example_id")
            sig = sig.sort_values("example_id")
            frame = pd.DataFrame({"example_id": sig["example_id"].to_numpy(np.int64),
                                  f"{signal}_score": sig["score"].to_numpy(float),
                                  f"{signal}_rank": _ranks(sig["score"].to_numpy(float))})
            table = table.merge(frame, on="example_id", how="left")
            table[f"{signal}_rank"] = table[f"{signal}_rank"].astype("Int64")
        by = next((s for s in SUSPECTS_ORDER if s in present), present[0] if present else None)
        table["sorted_by"] = by
        if by is not None:
            table = table.sort_values([f"{by}_rank", "example_id"], na_position="last", kind="stable")
        out[str(run_id)] = table.reset_index(drop=True)
    return out


def write_suspects(frames: dict[str, pd.DataFrame], folder: str | Path) -> dict[str, Path]:
    """Each run's suspects as <folder>/<run_id>.csv; returns the paths by run id."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for run_id, frame in frames.items():
        path = folder / f"{run_id}.csv"
        frame.to_csv(path, index=False, float_format="%.6g")
        paths[run_id] = path
    return paths
