"""Every table's columns in one place: the Arrow schema each writer uses and the catalogue users read.

Each file of a table is written with its table's fixed schema (`Store.write_table`), never one inferred from
the rows at hand: a file whose every `units` list is empty, or whose `ray_node_id` is all null, would otherwise
get a `null` type that no other file of the folder has, and `pd.read_parquet("results/flips")` would fail.
The same declarations produce `results/README.md` (`catalogue()`), so the documentation cannot drift from
what is written: a test compares the two.

`LAYOUT` numbers this set of schemas. Done-records carry it, so files written under an older layout (renamed or
retyped columns) count as not done and are rewritten instead of being mixed with new ones in one folder.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import pyarrow as pa

LAYOUT = 3  # 1: before fixed schemas (retraining.epoch, flips units {group, layer, index}, first_learned -1, no
# aum / forgetting_events / cv columns); 2: before auxiliary tables (fold runs' rows in the main tables), training-
# pass AUM / forgetting, the paper's dropout places and sparse mask


@dataclass(frozen=True)
class Column:
    """One column: its Arrow type, its unit ("" when it has none) and what it means, special values included.
    `nullable_int` marks an integer column with missing values, read back by pandas as `Int64` (pd.NA)."""

    name: str
    type: pa.DataType
    unit: str
    meaning: str
    nullable_int: bool = False

    @property
    def pandas_dtype(self) -> str:
        if self.nullable_int:
            return "Int64"
        if pa.types.is_integer(self.type):
            return "int64"
        if pa.types.is_floating(self.type):
            return "float64"
        if pa.types.is_boolean(self.type):
            return "bool"
        return "object"


@dataclass(frozen=True)
class Table:
    """A table: what one row is, the columns that identify a row (beyond `run_id`), its own columns (after the
    run columns every row carries), and a pandas example answering a question a researcher asks of it."""

    name: str
    row: str
    keys: tuple[str, ...]
    columns: tuple[Column, ...]
    question: str
    example: str


STR, INT, FLOAT, BOOL = pa.string(), pa.int64(), pa.float64(), pa.bool_()
ACC = "fraction (0-1)"
UNIT_TYPE = pa.struct([("layer", INT), ("layer_name", STR), ("module", STR), ("unit", INT)])

RUN_COLUMNS = (
    Column("run_id", STR, "", "the run: `<dataset>-<arch>-<variant>-n<noise>-s<seed>-<digest of every field>`"),
    Column("dataset", STR, "", "digits, fashion-mnist, mnist, cifar10, svhn, or synthetic / synthetic-small "
           "(CIFAR-10-shaped, made on the fly)"),
    Column("arch", STR, "", "mlp, resnet9, resnet50, vit"),
    Column("variant", STR, "", "standard; tied (example-tied dropout); dropout (standard dropout); sparse"),
    Column("noise", FLOAT, ACC, "label-noise rate: round(noise * n_train) examples get another class"),
    Column("seed", INT, "", "initialisation and batch-order seed"),
    Column("width", FLOAT, "", "width multiplier of the architecture"),
    Column("epochs", INT, "epochs", "training length"),
    Column("lr", FLOAT, "", "peak learning rate of the triangular schedule"),
    Column("batch_size", INT, "examples", "training batch size"),
    Column("noise_seed", INT, "", "seed of the label-noise draw (which examples, which wrong labels)"),
    Column("p_gen", FLOAT, ACC, "example-tied dropout: fraction of generalization channels"),
    Column("p_mem", FLOAT, ACC, "example-tied dropout: fraction of memorization channels each example keeps"),
    Column("cv_folds", INT, "folds", "0: an ordinary run; K >= 2: an out-of-sample run for confident learning, "
           "trained without one of K folds (its rows are left out of the paper's figures)"),
    Column("cv_fold", INT, "", "the fold (0..cv_folds-1) such a run held out and predicts; 0 for ordinary runs"),
    Column("ssft_half", INT, "", "0: an ordinary run; 1 or 2: a second-split forgetting run, trained on that half "
           "of the training set and then fine-tuned on the other (an auxiliary training)"),
    Column("dropout_places", STR, "", "where ResNet-9 applies dropout (variants tied, dropout): paper = the paper "
           "code's 6 places (after conv1, conv2, the res1 sum, conv3, the res2 sum, conv4); blocks = after each of the "
           "8 conv blocks"),
    Column("sparse_mask", STR, "", "the sparse baseline's mask: paper = fixed element-wise, 40% dropped, rescaled by "
           "1/(1-p); channels = a fixed 40% of channels dropped, no rescaling"),
    Column("curvature_every", INT, "epochs", "loss curvature computed at the end of every k-th epoch and the last; "
           "0 = off"),
    Column("curvature_directions", INT, "", "Rademacher directions per example for the loss curvature"),
    Column("curvature_h", FLOAT, "", "finite-difference step of the loss curvature (input units)"),
    Column("config_id", STR, "", "the run without its seeds: runs sharing it are seeds of one experiment"),
)

ACCURACIES = (
    Column("clean_acc", FLOAT, ACC, "accuracy on the clean training examples (training label = true label)"),
    Column("noisy_acc", FLOAT, ACC, "accuracy on the mislabeled examples against their noisy training label: the "
                                "memorized fraction (NaN when the run has no noise)"),
    Column("test_acc", FLOAT, ACC, "accuracy on the test split"),
)


def _base(what: str) -> tuple[Column, ...]:
    return tuple(Column(f"{c.name}_base", FLOAT, ACC, f"`{c.name}` of the final model, before {what}, on the same "
                                                  "examples: the reference the edit is measured against")
                 for c in ACCURACIES)


LAYER = Column("layer", INT, "", "index of the layer group in forward order (0 = nearest the input)")
LAYER_NAME = Column("layer_name", STR, "", "the layer group's name, e.g. fc1, conv2, res1a, head")
EXAMPLE_ID = Column("example_id", INT, "", "index of the example in the training split (fixed per dataset)")
IS_NOISY = Column("is_noisy", BOOL, "", "true when the example's training label was changed by the label noise")

TABLES: dict[str, Table] = {t.name: t for t in (
    Table("runs", "finished training run", (), (
        Column("n_train", INT, "examples", "training examples"),
        Column("n_test", INT, "examples", "test examples"),
        Column("n_noisy", INT, "examples", "mislabeled training examples"),
        Column("status", STR, "", "complete (only finished runs are written)"),
        Column("seconds", FLOAT, "s", "training wall time, summed over resumed parts"),
        Column("device", STR, "", "torch device it trained on (cpu, cuda, cuda:0)"),
        Column("node", STR, "", "host name of the machine that trained it"),
        Column("ray_node_id", STR, "", "Ray's id of that node; null when trained by `python -m sweep.train`"),
        Column("versions", STR, "", "python and torch versions"),
        Column("checkpoint_dir", STR, "", "where its epoch checkpoints are"),
    ), "How long did each architecture train, and on which machines?",
        'runs = pd.read_parquet("results/runs")\n'
        'runs.groupby(["arch", "device"])["seconds"].describe()'),
    Table("examples", "training example of a run", ("example_id",), (
        EXAMPLE_ID,
        Column("label", INT, "class", "the training label (after label noise)"),
        Column("original_label", INT, "class", "the dataset's true label"),
        IS_NOISY,
        Column("final_loss", FLOAT, "nats", "cross-entropy under the training label at the final epoch (eval mode)"),
        Column("first_learned_epoch", INT, "epoch", "first epoch (1..epochs) at whose end the example was predicted "
               "as its training label; null (pd.NA) = never learned", nullable_int=True),
        Column("aum", FLOAT, "logit", "area under the margin (Pleiss et al., 2020): mean over epochs of the training "
               "label's logit minus the largest other logit, eval mode; low or negative = suspicious"),
        Column("forgetting_events", INT, "events", "times the example went from predicted as labelled to not, "
               "between consecutive epochs (Toneva et al., 2019); 0 also for never-learned examples"),
    ), "Are mislabeled examples learned later, and how many are never learned?",
        'ex = pd.read_parquet("results/examples")\n'
        'ex.groupby(["arch", "is_noisy"])["first_learned_epoch"].agg(["median", lambda s: s.isna().mean()])'),
    Table("epochs", "run x epoch", ("epoch",), (
        Column("epoch", INT, "epoch", "training epoch (1..epochs), metrics at its end, eval mode"),
        Column("train_loss", FLOAT, "nats", "mean training-batch loss over the epoch (train mode)"),
        *ACCURACIES,
        Column("noisy_true_acc", FLOAT, ACC, "accuracy on the mislabeled examples against their true label"),
        Column("epoch_lr", FLOAT, "", "learning rate at the epoch's last step"),
        Column("seconds", FLOAT, "s", "wall time of the epoch, evaluation included"),
    ), "When does memorization happen? (noisy-train accuracy per epoch, averaged over seeds)",
        'ep = pd.read_parquet("results/epochs")\n'
        'ep.pivot_table(index="epoch", columns=["arch", "variant"], values="noisy_acc")'),
    Table("gradients", "run x epoch x layer group", ("epoch", "layer"), (
        Column("epoch", INT, "epoch", "training epoch (1..epochs)"),
        LAYER, LAYER_NAME,
        Column("clean_norm", FLOAT, "gradient norm", "the clean examples' summed gradient over the epoch: sum over "
               "the group's tensors of ||G||_2 / sqrt(numel)"),
        Column("noisy_norm", FLOAT, "gradient norm", "the same for the mislabeled examples"),
        Column("cosine", FLOAT, "", "mean over the group's tensors of cos(G_clean, G_noisy); NaN when one is zero"),
    ), "Which layers get the largest share of the noisy examples' gradient?",
        'gr = pd.read_parquet("results/gradients")\n'
        'gr.assign(noisy_share=gr.noisy_norm / (gr.clean_norm + gr.noisy_norm))'
        '.groupby(["arch", "layer", "layer_name"])["noisy_share"].mean()'),
    Table("rewinding", "run x layer group x rewind epoch", ("layer", "rewind_epoch"), (
        LAYER, LAYER_NAME,
        Column("rewind_epoch", INT, "epoch", "the checkpoint the group's weights were taken from (0 = init)"),
        Column("rewind_buffers", BOOL, "", "false: parameters only, BatchNorm statistics kept from the final model "
               "(the paper's convention); true: statistics rewound too"),
        *ACCURACIES, *_base("rewinding"),
    ), "How much memorization does rewinding each layer undo, and at what cost on clean examples?",
        'rw = pd.read_parquet("results/rewinding")\n'
        'rw.assign(noisy_drop=rw.noisy_acc_base - rw.noisy_acc, clean_drop=rw.clean_acc_base - rw.clean_acc)'
        '.groupby(["arch", "layer_name", "rewind_epoch"])[["noisy_drop", "clean_drop"]].mean()'),
    Table("retraining", "run x layer group x retraining epoch", ("layer", "retrain_epoch"), (
        LAYER, LAYER_NAME,
        Column("retrain_epoch", INT, "epoch", "epoch of retraining the group from its initial weights on clean "
               "examples only (0 = right after the reset); a group stops early after `retrain_patience` epochs "
               "at 100% clean accuracy"),
        *ACCURACIES, *_base("the group was reset"),
    ), "Does retraining one layer on clean data alone bring the memorized examples back?",
        'rt = pd.read_parquet("results/retraining")\n'
        'last = rt[rt.retrain_epoch == rt.groupby(["run_id", "layer"]).retrain_epoch.transform("max")]\n'
        'last.groupby(["arch", "layer_name"])[["noisy_acc", "noisy_acc_base"]].mean()'),
    Table("flips", "run x analysed example", ("example_id",), (
        EXAMPLE_ID, IS_NOISY,
        Column("n_units", INT, "units", "units (neurons or channels) zeroed, greedily, until the prediction flipped "
               "(or the cap was reached)"),
        Column("flipped", BOOL, "", "true when the prediction left the training label within the cap"),
        Column("units", pa.list_(UNIT_TYPE), "", "the removed units in removal order, each {layer, layer_name, "
               "module (module path in the model), unit (index within the module)}; empty when none; the same "
               "rows, one per unit, are in `flip_units`"),
        *(Column(c.name, FLOAT, ACC, f"{c.meaning}, of the model with this example's units removed, on an "
                                 "evaluation sample (flip_eval_size)") for c in ACCURACIES),
        *_base("the edit"),
        Column("n_eligible_clean", INT, "examples", "clean examples the final model predicts as labelled (targets "
               "are drawn from them)"),
        Column("n_eligible_noisy", INT, "examples", "the same for mislabeled examples"),
    ), "How many units does it take to flip a mislabeled example versus a clean one?",
        'fl = pd.read_parquet("results/flips")\n'
        'fl[fl.flipped].groupby(["arch", "is_noisy"])["n_units"].median()'),
    Table("flip_units", "removed unit of an analysed example (long form of `flips.units`)",
          ("example_id", "step"), (
        EXAMPLE_ID, IS_NOISY,
        Column("step", INT, "", "removal order, from 0"),
        LAYER, LAYER_NAME,
        Column("module", STR, "", "module path inside the model, e.g. layers.0"),
        Column("unit", INT, "", "index of the neuron or channel within the module"),
    ), "In which layers sit the units removed to flip mislabeled examples?",
        'fu = pd.read_parquet("results/flip_units")\n'
        'fu.groupby(["arch", "is_noisy"])["layer_name"].value_counts(normalize=True)'),
    Table("oos_predictions", "held-out example of an out-of-sample run (cv_folds = K >= 2)", ("example_id",), (
        Column("of_run_id", STR, "", "the ordinary run (same config and seed, cv_folds 0) these predictions are "
               "for; its K fold runs predict each of its training examples exactly once"),
        EXAMPLE_ID,
        Column("label", INT, "class", "the training (noisy) label"),
        IS_NOISY,
        Column("probs", pa.list_(FLOAT), "probability", "softmax of the fold model's eval-mode logits, one entry "
               "per class: out-of-sample, since the model never trained on this example"),
    ), "How confident are out-of-sample models in the training label of mislabeled examples?",
        'oos = pd.read_parquet("results/oos_predictions")\n'
        'oos.assign(p_label=[p[y] for p, y in zip(oos.probs, oos.label)]).groupby("is_noisy")["p_label"].mean()'),
    Table("dropout", "run x evaluation mode", ("mode",), (
        Column("mode", STR, "", "example-tied runs: `tied` (each training example with its own mask; test as "
               "`all`), `all` (memorization channels x p_mem), `drop` (memorization channels zeroed, the paper's "
               "rescale), `drop-expected` (zeroed, rescaled by the training-time mean); other variants: `test` "
               "(their usual eval mode)"),
        *ACCURACIES,
        Column("scale", FLOAT, "", "factor the generalization channels are multiplied by"),
        Column("scale_rule", STR, "", "none, paper ((p_gen + p_mem) / p_gen) or expected"),
    ), "How much of the memorized data is forgotten when the memorization channels are dropped?",
        'do = pd.read_parquet("results/dropout")\n'
        'do.pivot_table(index=["arch", "variant"], columns="mode", values=["noisy_acc", "test_acc"])'),
    Table("dropout_examples", "training example of an example-tied run", ("example_id",), (
        EXAMPLE_ID, IS_NOISY,
        Column("correct_tied", BOOL, "", "predicted as its training label with its own mask (mode tied)"),
        Column("correct_drop", BOOL, "", "predicted as its training label with memorization channels dropped"),
    ), "How many clean and mislabeled examples stay right once the memorization channels are dropped?",
        'de = pd.read_parquet("results/dropout_examples")\n'
        'de.groupby(["run_id", "is_noisy"])[["correct_tied", "correct_drop"]].mean()'),
)}


def schema(table: str) -> pa.Schema:
    """The Arrow schema of every file of `table`: the run columns, then the table's own, with pandas metadata
    fixed from the declarations (so nullable integers read back as `Int64` and every file agrees)."""
    return _SCHEMAS[table]


def _build_schema(spec: Table) -> pa.Schema:
    columns = (*RUN_COLUMNS, *spec.columns)
    plain = pa.schema([pa.field(c.name, c.type) for c in columns])
    empty = pd.DataFrame({c.name: pd.Series(dtype=c.pandas_dtype) for c in columns})
    metadata = pa.Table.from_pandas(empty, schema=plain, preserve_index=False).schema.metadata
    return plain.with_metadata(metadata)


_SCHEMAS = {name: _build_schema(spec) for name, spec in TABLES.items()}


def rows_frame(table: str, rows: list[dict[str, object]]) -> pd.DataFrame:
    """A table's own columns (no run columns yet), in order and with their dtypes, from row dicts (none is
    fine: a zero-row frame still has every column typed)."""
    own = TABLES[table].columns
    return pd.DataFrame(rows, columns=[c.name for c in own]).astype({c.name: c.pandas_dtype for c in own})


def to_arrow(table: str, frame: pd.DataFrame) -> pa.Table:
    """`frame` as an Arrow table of `table`'s schema; a missing or extra column is a bug and is named."""
    target = schema(table)
    missing = [n for n in target.names if n not in frame.columns]
    extra = [c for c in frame.columns if c not in target.names]
    if missing or extra:
        raise ValueError(f"table {table}: columns missing {missing}, not in its schema {extra}")
    arrow = pa.Table.from_pandas(frame[target.names], schema=target.remove_metadata(), preserve_index=False)
    return arrow.replace_schema_metadata(target.metadata)


def _type_name(column: Column) -> str:
    if column.nullable_int:
        return "Int64 (nullable)"
    if isinstance(column.type, pa.ListType):
        return "list of struct" if pa.types.is_struct(column.type.value_type) else "list of float64"
    return {"string": "string", "int64": "int64", "double": "float64", "bool": "bool"}[str(column.type)]


def catalogue() -> str:
    """The text of results/README.md: every table, every column with type, unit and meaning, and one pandas
    example per table."""
    lines = [
        "# results/",
        "",
        "What `python run_sweep.py` and `python -m sweep.train` write (ignored by git except this file, which",
        "`sweep/schemas.py` generates: `python -m sweep.schemas > results/README.md`). One folder per table, one",
        "Parquet file per run or analysis shard, every file with the table's fixed Arrow schema, so any folder",
        "reads whole: `pd.read_parquet(\"results/<table>\")`. Accuracies are fractions in [0, 1].",
        "",
        "Every row of every table starts with the run's columns, so tables filter and group without joins:",
        "",
        "| column | type | unit | meaning |",
        "|---|---|---|---|",
        *_rows(RUN_COLUMNS),
        "",
        "Runs with one `config_id` are seeds of one experiment; the report pools exactly those.",
        "",
    ]
    for spec in TABLES.values():
        key = ", ".join(("run_id", *spec.keys))
        lines += [f"## {spec.name}", "", f"One row per {spec.row} (unique key: {key}).", "",
                  "| column | type | unit | meaning |", "|---|---|---|---|", *_rows(spec.columns), "",
                  f"{spec.question}", "", "```python", "import pandas as pd", spec.example, "```", ""]
    lines += [
        "## Other files",
        "",
        "- `checkpoints/<run_id>/epoch_XXX.pt`: weights after each epoch (000 = initial), loaded with",
        "  `torch.load(..., weights_only=True)`; `state.pt`: the resume state (weights, optimizer, generators);",
        "  `progress.json`: the last finished epoch, for `run_sweep.py --status`.",
        "- `_done/runs/<run_id>.json`, `_done/tasks/<run_id>-<analysis>-<shard>.json`: done-records (each file a",
        "  unit made, with its size and SHA-256, and the settings that made it).",
        "- `_failed/`: one note per unit whose last attempt failed (its error's first line), for `--status`.",
        "- `_tune/sweep-<grid>/`: Ray Tune's own trial folders. `_lock.json`: the driver using this folder.",
        "- `report/index.html`: the HTML report, each figure as PNG and SVG, each table as CSV.",
        "",
    ]
    return "\n".join(lines)


def _rows(columns: tuple[Column, ...]) -> list[str]:
    return [f"| `{c.name}` | {_type_name(c)} | {c.unit} | {c.meaning} |" for c in columns]


if __name__ == "__main__":
    print(catalogue(), end="")
