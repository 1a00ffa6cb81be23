"""The mislabel-detection signals, declared once each: where the natural quantity lives, which way is
suspicious, and what it costs.

Each signal is one `register(...)` entry on a small function that reads its natural column from the sweep's
tables. The comparison (analyses.detection) never sees a negated column: it ranks by the natural value in the
declared direction (`Signal.oriented`), and every published table shows the value itself beside the direction,
so minus-AUM or minus-units never reach a reader. A plug-in adds a signal the same way:

    from analyses.signals import register, column

    @register("my_signal", short="mine", source="examples.my_col", suspicious="high",
              meaning="my score (higher = more likely mislabeled)")
    def _mine(tables):
        return column(tables, "examples", "my_col")

An extractor returns rows (configuration columns, run_id, example_id, is_noisy, value) or raises `Absent` with
the reason (a table or column this results folder lacks), and the report names the signal and the reason
instead of failing. Special values are part of the natural quantity: an example that never flipped needs
infinitely many units (inf), one never learned or never forgotten has an infinite epoch (inf).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analyses.load import ordinary
from analyses.stats import group_columns

SUSPICIOUS = ("high", "low")
VALUE_COLUMNS = ["run_id", "example_id", "is_noisy", "value"]
SKIPPED_COLUMNS = ["signal", "of_run_id", "reason"]


class Absent(Exception):  # noqa: N818 - a reason, not an error: the signal is left out and named
    """The results folder cannot give this signal; the message says why (table or column missing)."""


@dataclass
class Tables:
    """The tables the signals read (None = missing), plus a memo so that one library call (cleanlab) serves the
    two signals it gives, and the runs whose auxiliary rows could not be used (`skipped`, per signal)."""

    examples: pd.DataFrame | None = None
    flips: pd.DataFrame | None = None
    dropout_examples: pd.DataFrame | None = None
    oos_predictions: pd.DataFrame | None = None
    runs: pd.DataFrame | None = None
    ssft: pd.DataFrame | None = None
    aux_runs: pd.DataFrame | None = None
    memorization: pd.DataFrame | None = None
    memo: dict[str, object] = field(default_factory=dict, repr=False)
    skipped: list[dict[str, object]] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        self.examples, self.flips = ordinary(self.examples), ordinary(self.flips)
        self.dropout_examples = ordinary(self.dropout_examples)
        self.memorization = ordinary(self.memorization)

    def get(self, name: str) -> pd.DataFrame | None:
        return getattr(self, name)


@dataclass(frozen=True)
class Signal:
    """One detection signal. `source` is where its natural value comes from (table.column), `suspicious` which
    end of it points at a mislabeled example; `trainings` the extra trainings it needs per run (an int, or
    "cv_folds": as many as the run's out-of-sample folds), `passes` what it adds to the training's own forward
    and backward passes, `seconds` which measurement times it (see analyses.detection_cost)."""

    name: str
    short: str
    meaning: str
    source: str
    suspicious: str
    extract: Callable[[Tables], pd.DataFrame]
    family: str = "training dynamics"
    binary: bool = False
    trainings: int | str = 0
    passes: str = "none: read from the training's own passes"
    seconds: str | None = None

    def oriented(self, value: np.ndarray) -> np.ndarray:
        """The value as a ranking key, higher = more suspicious (used for ranking only, never shown)."""
        value = np.asarray(value, dtype=float)
        return value if self.suspicious == "high" else -value

    def flagged(self, value: np.ndarray) -> np.ndarray:
        """For a binary signal (values 0/1): True where it points at a mislabeled example."""
        return np.asarray(value, dtype=float) == (1.0 if self.suspicious == "high" else 0.0)

    @property
    def direction(self) -> str:
        return "higher = more suspicious" if self.suspicious == "high" else "lower = more suspicious"


REGISTRY: dict[str, Signal] = {}


def register(name: str, *, short: str, meaning: str, source: str, suspicious: str, family: str = "training dynamics",
             binary: bool = False, trainings: int | str = 0, passes: str = "none: read from the training's own passes",
             seconds: str | None = None) -> Callable[[Callable[[Tables], pd.DataFrame]], Callable]:
    """Decorator: add the signal computed by the decorated function to REGISTRY (order = the tables' order).
    A name registered twice or a direction other than 'high' / 'low' is a programming error (ValueError)."""
    if suspicious not in SUSPICIOUS:
        raise ValueError(f"signal {name}: suspicious must be one of {SUSPICIOUS}, got {suspicious!r}")
    if name in REGISTRY:
        raise ValueError(f"signal {name} is registered already")

    def add(extract: Callable[[Tables], pd.DataFrame]) -> Callable[[Tables], pd.DataFrame]:
        REGISTRY[name] = Signal(name, short, meaning, source, suspicious, extract, family, binary, trainings, passes,
                                seconds)
        return extract

    return add


def unregister(name: str) -> None:
    """Remove a signal (for plug-in tests that register a temporary one)."""
    REGISTRY.pop(name, None)


def _rows(df: pd.DataFrame, value: np.ndarray) -> pd.DataFrame:
    out = df[group_columns(df) + ["run_id", "example_id", "is_noisy"]].copy()
    out["is_noisy"] = out["is_noisy"].astype(bool)
    out["value"] = np.asarray(value, dtype=float)
    return out


def table_of(tables: Tables, name: str) -> pd.DataFrame:
    df = tables.get(name)
    if df is None or df.empty:
        raise Absent(f"table '{name}' is missing or empty")
    return df


def column(tables: Tables, table: str, name: str, missing: float | None = None) -> pd.DataFrame:
    """The natural column `name` of `table` as signal rows. Null values mean `missing` when given (e.g. inf:
    never learned), else the example is not scored (a coverage gap if others are); a column that is absent or
    null throughout is `Absent`."""
    df = table_of(tables, table)
    if name not in df.columns:
        raise Absent(f"column '{name}' is not in table '{table}' (results written before it existed)")
    value = pd.to_numeric(df[name], errors="coerce").astype(float).to_numpy()
    if missing is None and np.isnan(value).all():
        raise Absent(f"column '{table}.{name}' is null on every row (not computed for these runs)")
    if missing is not None:
        value = np.where(np.isnan(value), missing, value)
    return _rows(df, value)


# --- the paper's localization signals -------------------------------------------------------------------------

@register("units_to_flip", short="units to flip", source="flips.n_units", suspicious="low", family="localization",
          meaning="units zeroed until the prediction flipped; inf = never flipped within the cap",
          passes="greedy flipping: per target, a forward pass of the target and the population per removed unit "
                 "(up to flip_cap)", seconds="flip")
def _units_to_flip(tables: Tables) -> pd.DataFrame:
    df = table_of(tables, "flips")
    units = df["n_units"].astype(float).to_numpy()
    return _rows(df, np.where(df["flipped"].astype(bool).to_numpy(), units, np.inf))


@register("forgotten_drop", short="tied drop", source="dropout_examples.correct_drop", suspicious="high",
          family="localization", binary=True,
          meaning="1 when wrong with the memorization channels dropped (example-tied runs), else 0",
          passes="one forward pass of the training set with the memorization channels dropped (the run itself "
                 "must be example-tied)", seconds="dropout")
def _forgotten_drop(tables: Tables) -> pd.DataFrame:
    df = table_of(tables, "dropout_examples")
    if "variant" in df.columns:
        df = df[df["variant"] == "tied"]
    if df.empty:
        raise Absent("no example-tied run in table 'dropout_examples'")
    return _rows(df, (~df["correct_drop"].astype(bool)).to_numpy(dtype=float))


# --- training dynamics: the examples table ------------------------------------------------------------------

_EVAL = "none extra: the evaluation of the training set after every epoch that each run does"
_TRAIN = "none: the logits of each minibatch's training forward pass"


@register("final_loss", short="final loss", source="examples.final_loss", suspicious="high",
          meaning="cross-entropy under the training label at the final epoch (eval mode)", passes=_EVAL)
def _final_loss(tables: Tables) -> pd.DataFrame:
    return column(tables, "examples", "final_loss")


@register("first_learned", short="first learned", source="examples.first_learned_epoch", suspicious="high",
          meaning="first epoch at whose end the example was predicted as labelled; inf = never learned",
          passes=_EVAL)
def _first_learned(tables: Tables) -> pd.DataFrame:
    rows = column(tables, "examples", "first_learned_epoch", missing=np.inf)
    rows.loc[rows["value"] < 0, "value"] = np.inf  # -1: never learned, in results written before nullable ints
    return rows


@register("aum", short="AUM", source="examples.aum", suspicious="low",
          meaning="area under the margin (Pleiss et al. 2020) from the training forward pass, mean over every "
                  "epoch's presentations", passes=_TRAIN, seconds="dynamics_seconds")
def _aum(tables: Tables) -> pd.DataFrame:
    return column(tables, "examples", "aum")


@register("aum_eval", short="AUM (eval)", source="examples.aum_eval", suspicious="low",
          meaning="area under the margin from the eval-mode pass after each epoch (our earlier rule)", passes=_EVAL)
def _aum_eval(tables: Tables) -> pd.DataFrame:
    return column(tables, "examples", "aum_eval")


@register("forgetting", short="forgetting", source="examples.forgetting_events", suspicious="high",
          meaning="forgetting events over minibatch presentations (Toneva et al. 2019); never learned = the "
                  "maximum", passes=_TRAIN, seconds="dynamics_seconds")
def _forgetting(tables: Tables) -> pd.DataFrame:
    return column(tables, "examples", "forgetting_events")


@register("forgetting_eval", short="forgetting (eval)", source="examples.forgetting_events_eval",
          suspicious="high", meaning="forgetting events between the evaluations after consecutive epochs (our "
                                     "earlier rule)", passes=_EVAL)
def _forgetting_eval(tables: Tables) -> pd.DataFrame:
    return column(tables, "examples", "forgetting_events_eval")


@register("csl", short="CSL", source="examples.csl", suspicious="high",
          meaning="cumulative sample loss: the example's training loss summed over its presentations",
          passes=_TRAIN, seconds="dynamics_seconds")
def _csl(tables: Tables) -> pd.DataFrame:
    return column(tables, "examples", "csl")


@register("learning_time", short="learning time", source="examples.learning_time", suspicious="high",
          meaning="threshold learning time: (first learned epoch - 1) / epochs, 1 = never learned",
          passes=_EVAL)
def _learning_time(tables: Tables) -> pd.DataFrame:
    return column(tables, "examples", "learning_time")


@register("in_confidence", short="in-confidence", source="examples.in_confidence", suspicious="high",
          meaning="in-confidence: 1 - the final model's largest softmax probability on the example (eval mode)",
          passes=_EVAL)
def _in_confidence(tables: Tables) -> pd.DataFrame:
    return column(tables, "examples", "in_confidence")


@register("loss_curvature", short="loss curvature", source="examples.loss_curvature", suspicious="high",
          meaning="input-space curvature of the loss (Garg, Ravikumar and Roy, ICML 2024), averaged over the curvature "
                  "epochs",
          passes="(curvature_directions + 1) forward and backward passes of the training set (input gradients at "
                 "x and at x + h v per Rademacher direction v) at every curvature_every-th epoch's end and the last",
          seconds="curvature_seconds")
def _loss_curvature(tables: Tables) -> pd.DataFrame:
    return column(tables, "examples", "loss_curvature")


# --- auxiliary trainings ------------------------------------------------------------------------------------

@register("ssft", short="SSFT", source="ssft.forget_epoch", suspicious="low", family="auxiliary training",
          trainings=2, meaning="second-split forgetting time (Maini et al. 2022): the fine-tuning epoch after which "
                               "the example stays forgotten; inf = never forgotten",
          passes="2 extra trainings (each half, then fine-tuned on the other), each evaluating its first half after "
                 "every fine-tuning epoch", seconds="ssft")
def _ssft(tables: Tables) -> pd.DataFrame:
    from analyses.confident import _ordinary_runs

    df = table_of(tables, "ssft")
    known = _ordinary_runs(tables.examples, tables.runs)
    parts = []
    for of_run, part in df.groupby("of_run_id", sort=True):
        run = known.get(str(of_run))
        if run is None:
            tables.skipped.append({"signal": "ssft", "of_run_id": of_run, "reason": "the run these SSFT rows are "
                                   "for is in neither the runs nor the examples table (not finished yet?)"})
            continue
        part = part.drop_duplicates("example_id")
        value = pd.to_numeric(part["forget_epoch"], errors="coerce").astype(float).to_numpy()
        rows = pd.DataFrame({"run_id": of_run, "example_id": part["example_id"].to_numpy(np.int64),
                             "is_noisy": part["is_noisy"].astype(bool).to_numpy(),
                             "value": np.where(np.isnan(value), np.inf, value)})
        for key, val in reversed(list(run["config"].items())):
            rows.insert(0, key, val)
        parts.append(rows)
    if not parts:
        raise Absent("no SSFT rows belong to a run of this results folder")
    return pd.concat(parts, ignore_index=True)


def _cleanlab(tables: Tables) -> pd.DataFrame:
    """Both cleanlab signals from one call of the library (analyses.confident), memoised on `tables`."""
    if "cleanlab" not in tables.memo:
        from analyses.confident import cleanlab_signal

        confident, skipped = cleanlab_signal(tables.oos_predictions, tables.examples, tables.runs)
        for row in skipped.to_dict("records"):
            tables.skipped.append({"signal": "cleanlab", "of_run_id": row["of_run_id"], "reason": row["reason"]})
        tables.memo["cleanlab"] = (confident, skipped)
    return tables.memo["cleanlab"][0]


_FOLDS = ("cv_folds extra trainings (each without one fold), each predicting its held-out fold once; cleanlab "
          "then runs on CPU")


@register("cleanlab", short="cleanlab", source="oos_predictions.probs (cleanlab label quality)", suspicious="low",
          family="auxiliary training", trainings="cv_folds", passes=_FOLDS, seconds="folds",
          meaning="confident learning's label quality (cleanlab, self-confidence) from out-of-sample probabilities")
def _cleanlab_quality(tables: Tables) -> pd.DataFrame:
    table_of(tables, "oos_predictions")
    confident = _cleanlab(tables)
    if confident.empty:
        raise Absent("no run's out-of-sample folds cover its training set exactly once")
    part = confident[confident["signal"] == "cleanlab"]
    return part.drop(columns=["signal", "score", "label_issue"]).rename(columns={"label_quality": "value"})


@register("cleanlab_issue", short="cleanlab flag", source="oos_predictions.probs (cleanlab find_label_issues)",
          suspicious="high", family="auxiliary training", binary=True, trainings="cv_folds", passes=_FOLDS,
          seconds="folds", meaning="cleanlab's find_label_issues flag: 1 when flagged, else 0")
def _cleanlab_issue(tables: Tables) -> pd.DataFrame:
    table_of(tables, "oos_predictions")
    confident = _cleanlab(tables)
    if confident.empty:
        raise Absent("no run's out-of-sample folds cover its training set exactly once")
    part = confident[confident["signal"] == "cleanlab_issue"]
    out = part.drop(columns=["signal", "score", "label_quality"]).rename(columns={"label_issue": "value"})
    return out.assign(value=out["value"].astype(float))


@register("mem_score", short="mem score", source="memorization.mem", suspicious="high",
          family="auxiliary training", trainings="subsets", seconds="packs",
          meaning="held-out memorization (Feldman and Zhang 2020): accuracy of the subset models that trained on "
                  "the example minus that of those that left it out; an example in every or no subset model has no "
                  "estimate and counts as 0 (no evidence)",
          passes="M extra trainings (the run's subset models, `subsets`, trained in packs), each predicting every "
                 "training example once after its last epoch")
def _mem_score(tables: Tables) -> pd.DataFrame:
    return column(tables, "memorization", "mem", missing=0.0)


def registry_table() -> pd.DataFrame:
    """One row per registered signal: name, what it is, where its value comes from, which way is suspicious,
    and its cost in words (for the report and notebooks)."""
    return pd.DataFrame([{"signal": s.name, "name": s.short, "source": s.source, "suspicious": s.suspicious,
                          "meaning": s.meaning, "family": s.family, "extra_trainings": str(s.trainings),
                          "extra_passes": s.passes} for s in REGISTRY.values()])
