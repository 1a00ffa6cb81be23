"""Beyond the paper: how well each memorization signal finds the mislabeled examples, beside the detectors
the label-noise literature already uses.

The signals are declared in analyses.signals (one registry entry each: its natural column, the direction in
which it is suspicious, and its cost): units to flip and forgotten under example-tied `drop` (the paper's
localization signals); last-epoch loss, first learned epoch, AUM (training pass) and AUM (eval), forgetting
events (training pass) and (eval), cumulative sample loss, learning time, in-confidence and loss curvature (the
examples table); SSFT (the `ssft` table of the second-split runs); cleanlab's label quality and its
find_label_issues flag (out-of-sample predictions, analyses.confident). Every table here shows each signal's
natural value and its direction (`suspicious`: high or low), never a negated score; the ranking key
(`score`, higher = more suspicious) stays inside the computation.

Every signal is compared on the same examples, in two sets per run:
- `flip subset`: the examples the flip analysis scored (about as many clean as noisy), for every signal that
  scores all of them; units to flip exists only here;
- `all training examples`: every training example of the run, for the signals that score all of them.
A signal that scores only part of a set is left out of that set (`coverage_gaps` names it), so within one
(run, set) every signal has the same examples and the same chance level; a signal the results folder cannot
give at all (a table or column missing) is named with the reason (`Collected.absent`).

Quality is AUROC (ties count half), average precision (scikit-learn's, on the scores' ranks so that an infinite
score is just first or last) and precision among the top round(rate * n) scored examples, where rate is the share
of noisy examples in the set: the noise rate for the whole training set, about one half for the flip subset.
Ties at the cut-off are shared fractionally, which is the expected precision under a random tie-break, so a
binary score is not flattered or punished by order. For the binary signals (a flag) the table also gives the
flag's own precision and recall. Chance is `rate` for both precision and average precision, 0.5 for AUROC.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from scipy.stats import rankdata
from sklearn.metrics import average_precision_score

from analyses.load import ordinary
from analyses.panels import paper_mark, share_axes
from analyses.plotting import (
    Output,
    config_label,
    config_title,
    configs,
    errorbars,
    legend_below,
    seeds,
    styled,
    wrap_grid,
)
from analyses.published import anchors_for
from analyses.signals import REGISTRY, SKIPPED_COLUMNS, Absent, Signal, Tables
from analyses.stats import across_seeds, group_columns

SIGNALS = REGISTRY  # name -> Signal, in the tables' order (plug-ins registered later are included)
FLIP_SET, ALL_SET = "flip subset", "all training examples"
SETS = (FLIP_SET, ALL_SET)
METRICS = ("auroc", "average_precision", "precision_at_rate")
METRIC_NAMES = {"auroc": "AUROC", "average_precision": "average precision",
                "precision_at_rate": "precision at the rate"}
# The suspects files are sorted by the first of these signals a run has: AUM, because it is cheap, scores every
# training example of every run, and choosing it does not look at the true flags (the best signal would).
SUSPECTS_ORDER = ("aum", "aum_eval", "csl", "cleanlab", "final_loss", "first_learned", "forgetting",
                  "forgetting_eval", "forgotten_drop", "cleanlab_issue", "units_to_flip")
SCORE_COLUMNS = ["run_id", "signal", "example_id", "is_noisy", "value", "score"]


def short(signal: str) -> str:
    """The signal's short name for figures and sentences (its id when it is not registered)."""
    return REGISTRY[signal].short if signal in REGISTRY else signal


def is_localization(signal: str) -> bool:
    return signal in REGISTRY and REGISTRY[signal].family == "localization"


def _trains(signal: str) -> bool:
    """True for a signal that needs trainings of its own beyond the run (cleanlab's folds, SSFT's halves)."""
    return signal in REGISTRY and REGISTRY[signal].trainings not in (0, "0")


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


@dataclass
class Collected:
    """Every signal's rows (`scores`: configuration columns, run_id, signal, example_id, is_noisy, the natural
    `value` and the ranking key `score`), the signals the tables cannot give (`absent`: signal, reason) and the
    runs whose auxiliary rows were unusable (`skipped`: signal, of_run_id, reason)."""

    scores: pd.DataFrame
    absent: pd.DataFrame
    skipped: pd.DataFrame
    tables: Tables


def collect(tables: Tables, signals: dict[str, Signal] | None = None) -> Collected:
    """Run every registered signal's extractor on `tables`; one that cannot be computed is named, not raised."""
    parts, absent = [], []
    for signal in (signals or REGISTRY).values():
        try:
            rows = signal.extract(tables)
        except Absent as why:
            absent.append({"signal": signal.name, "reason": str(why)})
            continue
        rows = rows.assign(signal=signal.name, score=signal.oriented(rows["value"].to_numpy(float)))
        parts.append(rows)
    skipped = pd.DataFrame(tables.skipped, columns=SKIPPED_COLUMNS)
    absent_frame = pd.DataFrame(absent, columns=["signal", "reason"])
    if not parts:
        return Collected(pd.DataFrame(columns=SCORE_COLUMNS), absent_frame, skipped, tables)
    scores = pd.concat([p for p in parts if len(p)] or parts, ignore_index=True)
    scores["is_noisy"] = scores["is_noisy"].astype(bool)
    cols = group_columns(scores) + SCORE_COLUMNS
    return Collected(scores[cols], absent_frame, skipped, tables)


def gather(
    examples: pd.DataFrame | None = None,
    flips: pd.DataFrame | None = None,
    dropout_examples: pd.DataFrame | None = None,
    oos_predictions: pd.DataFrame | None = None,
    runs: pd.DataFrame | None = None,
    ssft: pd.DataFrame | None = None,
    aux_runs: pd.DataFrame | None = None,
    memorization: pd.DataFrame | None = None,
) -> Collected:
    """`collect` on the tables given by name (None = missing)."""
    return collect(Tables(examples, flips, dropout_examples, oos_predictions, runs, ssft, aux_runs, memorization))


def signal_scores(examples=None, flips=None, dropout_examples=None, oos_predictions=None, runs=None, ssft=None,
                  aux_runs=None, memorization=None) -> pd.DataFrame:
    """Long table (config columns, run_id, signal, example_id, is_noisy, value, score) of every available
    signal: `value` is the natural quantity, `score` the ranking key (higher = more suspicious). Rows of fold
    runs are ignored; their predictions become the cleanlab signals of the ordinary run they are for (`runs` or
    `examples` must hold that run; see analyses.confident), as SSFT rows become the SSFT signal of theirs."""
    return gather(examples, flips, dropout_examples, oos_predictions, runs, ssft, aux_runs, memorization).scores


def scores_and_skipped(examples=None, flips=None, dropout_examples=None, oos_predictions=None, runs=None, ssft=None,
                       aux_runs=None, memorization=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`signal_scores` and the runs whose auxiliary rows (fold predictions, SSFT rows) could not be scored."""
    got = gather(examples, flips, dropout_examples, oos_predictions, runs, ssft, aux_runs, memorization)
    return got.scores, got.skipped


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
    order = {s: i for i, s in enumerate(REGISTRY)}
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


PER_RUN = ["set", "signal", "suspicious", "n", "n_noisy", "rate", "k", *METRICS, "chance", "flagged", "flag_precision",
           "flag_recall"]


def evaluate(scores: pd.DataFrame) -> pd.DataFrame:
    """Per run, set and signal (the signals that score the whole set): the direction in which the signal is
    suspicious, examples, noisy among them, the rate, k = round(rate * n), AUROC, average precision, precision at
    the rate and its chance level (= rate); for flags (binary signals) also how many are flagged and the flag's
    precision and recall."""
    rows = []
    for keys, name, _ids, signal, part, complete in _per_set(scores):
        if not complete:
            continue
        spec = REGISTRY.get(signal)
        y = part["is_noisy"].to_numpy(bool)
        s = part["score"].to_numpy(float)
        rate = float(y.mean())
        row = {**keys, "set": name, "signal": signal, "suspicious": spec.suspicious if spec else "high",
               "n": len(part), "n_noisy": int(y.sum()), "rate": rate, "k": int(round(rate * len(y))),
               "auroc": auroc(s, y), "average_precision": average_precision(s, y),
               "precision_at_rate": precision_at_rate(s, y), "chance": rate,
               "flagged": np.nan, "flag_precision": np.nan, "flag_recall": np.nan}
        if spec is not None and spec.binary:
            flag = spec.flagged(part["value"].to_numpy(float))
            row["flagged"] = int(flag.sum())
            row["flag_precision"] = float(y[flag].mean()) if flag.any() else np.nan
            row["flag_recall"] = float(flag[y].mean()) if y.any() else np.nan
        rows.append(row)
    return pd.DataFrame(rows, columns=group_columns(scores) + ["run_id", *PER_RUN])


def detection_per_run(examples=None, flips=None, dropout_examples=None, oos_predictions=None, runs=None, ssft=None,
                      aux_runs=None, memorization=None) -> pd.DataFrame:
    """`evaluate` of every signal the tables give, with each signal's cost (analyses.detection_cost): one row
    per run, set and signal."""
    from analyses.detection_cost import with_costs

    got = gather(examples, flips, dropout_examples, oos_predictions, runs, ssft, aux_runs, memorization)
    return with_costs(evaluate(got.scores), got.tables)


def headline(per_run: pd.DataFrame) -> pd.DataFrame:
    """Per run and signal, the row of its widest set (all training examples where it has them, else the flip
    subset): one AUROC per run and signal, as the figure against the noise rate draws it."""
    if per_run.empty:
        return per_run
    wide = per_run.assign(_wide=(per_run["set"] == ALL_SET).astype(int))
    wide = wide.sort_values("_wide", ascending=False, kind="stable").drop_duplicates(["run_id", "signal"])
    return wide.drop(columns="_wide").sort_index()


COST_TEXT = ("suspicious", "extra_trainings", "extra_passes", "seconds_source")


def summary_table(per_run: pd.DataFrame) -> pd.DataFrame:
    """Across seeds per configuration, set and signal: mean, seeds, 95% interval and n_seeds of every metric, of
    the set's size (`n_examples`) and of the measured seconds where the rows have them; the signal's direction
    and cost in words; in the order of SETS and the registry."""
    # `n` is summarised as `n_examples`: across_seeds names a value's seeds `<v>_seeds`, and `n_seeds` is the count
    values = ["n_examples", *METRICS, "chance", "flag_precision", "flag_recall"]
    if "seconds" in per_run.columns:
        values.append("seconds")
    table = across_seeds(per_run.rename(columns={"n": "n_examples"}), values, keys=["set", "signal"],
                         units={"n_examples": "examples"})
    if table.empty:
        table["signal_name"] = []
        return table
    table.insert(table.columns.get_loc("signal") + 1, "signal_name", table["signal"].map(short))
    cols = group_columns(table)
    words = [c for c in COST_TEXT if c in per_run.columns]
    if words:
        first = per_run.groupby(cols + ["set", "signal"], dropna=False)[words].first().reset_index()
        table = table.merge(first, on=cols + ["set", "signal"], how="left")
    order = table.assign(_set=table["set"].map({s: i for i, s in enumerate(SETS)}),
                         _signal=table["signal"].map({s: i for i, s in enumerate(REGISTRY)}).fillna(len(REGISTRY)))
    return order.sort_values(cols + ["_set", "_signal"]).drop(columns=["_set", "_signal"]).reset_index(drop=True)


@styled
def summarise(per_run: pd.DataFrame) -> Output:
    """The summary table and its figure: one panel per configuration and example set that has rows (rows of at
    most one panel per set, so a configuration without a flip subset leaves no empty slot), one y range for all,
    a group of bars per signal (AUROC, average precision, precision at the rate, each a mean across seeds with its
    95% interval), chance as lines (AUROC 0.5; precision and average precision = the set's share of noisy), and
    the published AUROCs of a matching setting as labelled dashes over our AUROC bars."""
    table = summary_table(per_run)
    if table.empty:
        return Output(table, None)
    sets = [s for s in SETS if s in set(table["set"])]
    # Only the (configuration, set) pairs with rows, so no panel is empty: configurations with every set first
    # (one row each, their sets side by side), then those with fewer packed into the rows after them.
    present = [(config, [(name, rows[rows["set"] == name]) for name in sets if (rows["set"] == name).any()])
               for config, rows in configs(table)]
    present.sort(key=lambda item: len(item[1]) < len(sets))
    panels = [(config, name, part) for config, parts in present for name, part in parts]
    n_signals = int(table.groupby(group_columns(table) + ["set"])["signal"].nunique().max())
    fig, used = wrap_grid(len(panels), max_cols=len(sets), size=(max(4.2, 0.62 * n_signals + 1.4), 3.9))
    colours = {"auroc": "tab:blue", "average_precision": "tab:green", "precision_at_rate": "tab:orange"}
    marked = 0
    for ax, (config, name, part) in zip(used, panels, strict=True):
        x = np.arange(len(part))
        for offset, metric in zip((-0.27, 0.0, 0.27), METRICS, strict=True):
            means = part[f"{metric}_mean"].to_numpy(float)
            err = errorbars(means, part[f"{metric}_lo"], part[f"{metric}_hi"])
            ax.bar(x + offset, np.nan_to_num(means), 0.27, yerr=err, capsize=2, color=colours[metric],
                   label=METRIC_NAMES[metric])
        ax.axhline(0.5, color="grey", lw=0.8, ls=":", label="chance AUROC (0.5)")
        ax.axhline(float(part["chance_mean"].mean()), color="black", lw=0.8, ls="--",
                   label="chance precision and AP (= share of noisy)")
        ax.set_xticks(x, [short(s) for s in part["signal"]], rotation=35, ha="right", rotation_mode="anchor")
        ax.set_ylim(0, 1.05)
        ax.set_xlabel("signal")
        ax.set_ylabel("AUROC or precision (0-1)")
        ax.set_title(config_title(config, int(part["n_seeds"].max())) + f"\n{name}")
        if name == ALL_SET:
            marked += _published_marks(ax, config, list(part["signal"]), offset=-0.27, width=0.27)
    for ax in used if marked else []:
        ax.set_ylim(0, 1.25)  # room above an AUROC near 1 for the published value standing over its mark
        ax.set_yticks(np.linspace(0, 1, 6))
    share_axes(used)
    legend_below(fig, used)
    return Output(table, fig)


def _published_marks(ax: Axes, config: dict, signals: list[str], offset: float, width: float) -> int:
    """Each published AUROC of this configuration's setting (analyses.published: CIFAR-10, the paper's ResNet-9,
    the same noise rate) as a dash over our AUROC bar of that signal, its value above; nothing where no
    published number matches. Returns the marks drawn."""
    drawn = 0
    for anchor in anchors_for(config):
        if anchor.signal in signals:
            paper_mark(ax, anchor.auroc, f"{anchor.auroc:.3f}", at=signals.index(anchor.signal) + offset,
                       width=width, legend="published AUROC, same setting (dashes)")
            drawn += 1
    return drawn


def detection(examples=None, flips=None, dropout_examples=None, oos_predictions=None, runs=None, ssft=None,
              aux_runs=None, memorization=None) -> Output:
    """Per configuration, set and signal, AUROC, average precision and precision at the noise rate across seeds,
    with each signal's cost and the figure of `summarise`."""
    return summarise(detection_per_run(examples, flips, dropout_examples, oos_predictions, runs, ssft, aux_runs,
                                       memorization))


def _value(row: pd.Series, metric: str = "auroc") -> str:
    m, lo, hi = row[f"{metric}_mean"], row[f"{metric}_lo"], row[f"{metric}_hi"]
    if np.isfinite(lo) and np.isfinite(hi):
        return f"{m:.3f} [{lo:.3f}, {hi:.3f}]"
    return f"{m:.3f}"


def _trainings_text(row: pd.Series) -> str:
    n = pd.to_numeric(pd.Series([row.get("extra_trainings")]), errors="coerce").iloc[0]
    if pd.notna(n) and n > 0:
        return f"{n:.0f} extra training{'s' if n != 1 else ''} per run"
    return "extra trainings of its own"


def verdicts(table: pd.DataFrame) -> list[str]:
    """One sentence per configuration and set: which signal has the highest mean AUROC, with its number, the
    runner-up's, whether their 95% intervals across seeds overlap; where the winner needs trainings of its own
    (cleanlab's folds, SSFT's halves), the best signal that needs none; the best localization signal against
    the best other detector where the set has both; and the weakest signal."""
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
            n_ex = part["n_examples_mean"].iloc[0]
            where = f"{config_label(config)} ({seeds(n)}), {name} ({n_ex:.0f} examples per run)"
            best = part.iloc[0]
            text = f"{where}: {short(best['signal'])} wins with AUROC {_value(best)}"
            if len(part) == 1:
                out.append(text + "; it is the only signal that scores this set.")
                continue
            second = part.iloc[1]
            text += f", ahead of {short(second['signal'])} ({_value(second)})"
            if best["auroc_mean"] == second["auroc_mean"]:
                text += ", a tie"
            elif n < 2:
                text += "; one seed, so no intervals say whether the lead is more than seed-to-seed variation"
            elif not np.isfinite([best["auroc_lo"], second["auroc_hi"]]).all():
                text += (f"; {n} seeds, too few for an interval, so nothing says whether the lead is more than "
                         "seed-to-seed variation")
            elif best["auroc_lo"] <= second["auroc_hi"]:
                text += "; their 95% intervals overlap, so the lead is within seed-to-seed variation"
            else:
                text += "; their 95% intervals do not overlap"
            free = part[~part["signal"].map(_trains)]
            if _trains(best["signal"]) and len(free):
                f = free.iloc[0]
                text += (f". {short(best['signal'])} needs {_trainings_text(best)}; the best signal that needs none, "
                         f"{short(f['signal'])}, reaches {f['auroc_mean']:.3f}")
            local = part[part["signal"].map(is_localization)]
            other = part[~part["signal"].map(is_localization)]
            if len(local) and len(other):
                a, b = local.iloc[0], other.iloc[0]
                better = "better than" if a["auroc_mean"] > b["auroc_mean"] else "no better than"
                text += (f". The best localization signal, {short(a['signal'])} ({a['auroc_mean']:.3f}), is {better} "
                         f"the best other detector, {short(b['signal'])} ({b['auroc_mean']:.3f})")
            if len(part) >= 3:
                worst = part.iloc[-1]
                text += f". The weakest is {short(worst['signal'])} ({worst['auroc_mean']:.3f})"
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
    is_noisy, then per signal its natural value (column `<signal>`, e.g. `aum` = the AUM itself, `units_to_flip`
    = the units, inf when it never flipped) and `<signal>_rank` (1 = most suspicious in the signal's direction;
    ties in example order; empty where the signal does not score the example), sorted by the first
    SUSPECTS_ORDER signal's rank (AUM's where the run has it). The column `sorted_by` names that signal."""
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
        present = [s for s in REGISTRY if s in set(part["signal"])]
        present += sorted(set(part["signal"]) - set(present))
        for signal in present:
            sig = part[(part["signal"] == signal) & part["score"].notna()].drop_duplicates("example_id")
            sig = sig.sort_values("example_id")
            frame = pd.DataFrame({"example_id": sig["example_id"].to_numpy(np.int64),
                                  signal: sig["value"].to_numpy(float),
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
