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

LAYOUT = 4  # 1: before fixed schemas (retraining.epoch, flips units {group, layer, index}, first_learned -1, no
# aum / forgetting_events / cv columns); 2: before auxiliary tables (fold runs' rows in the main tables), training-
# pass AUM / forgetting, the paper's dropout places and sparse mask; 3: before the subset-model (memorization
# score) run columns


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
    twin_of: str = ""  # an `aux_*` table: the table whose columns it has (its rows: auxiliary trainings)


STR, INT, FLOAT, BOOL = pa.string(), pa.int64(), pa.float64(), pa.bool_()
ACC = "fraction (0-1)"
COSINE = "cosine (-1 to 1)"
DIFFERENCE = "difference of fractions (-1 to 1)"
COUNTS = ("examples", "units", "events", "epoch", "epochs", "folds", "models")
# Every unit a column may declare, with the range its values live in: the across-seed intervals of the report are
# kept inside it (analyses.stats), so a range comes from what a column is, never from how it is named. None: not a
# quantity (identifiers, labels, text, settings), never averaged. Counts live on [0, inf).
UNIT_RANGES: dict[str, tuple[float, float] | None] = {
    ACC: (0.0, 1.0),
    "probability": (0.0, 1.0),
    COSINE: (-1.0, 1.0),
    DIFFERENCE: (-1.0, 1.0),
    **{count: (0.0, float("inf")) for count in COUNTS},
    "s": (0.0, float("inf")),
    "nats": (0.0, float("inf")),
    "gradient norm": (0.0, float("inf")),
    "factor": (0.0, float("inf")),
    "learning rate": (0.0, float("inf")),
    "logit": (float("-inf"), float("inf")),
    "score": (float("-inf"), float("inf")),  # a method's own scale (a localizer's unit scores)
    "class": None,
    "": None,
}
UNIT_TYPE = pa.struct([("layer", INT), ("layer_name", STR), ("module", STR), ("unit", INT)])

FLIP_RULE = Column("flip_units", STR, "", "the unit rule (analysis setting `flip_units`): `outputs` = output "
                   "channels of conv layers and output features of hidden linear layers; `paper` = the paper's "
                   "code: each conv filter (output channel), and one value at a time every BatchNorm scale and "
                   "shift, bias and linear weight, the classifier's included")

# Where a unit sits (flip_units, localize_units): its module and its index there.
UNIT_MODULE = Column("module", STR, "", "rule `outputs`: module path inside the model (e.g. `conv1.conv`); rule "
                     "`paper`: parameter path (e.g. `conv1.conv.weight`, `conv1.bn.bias`, `fc.weight`)")
UNIT_INDEX = Column("unit", INT, "", "rule `outputs`: the output channel/feature of the module; rule `paper`: the "
                    "output channel for a conv weight, else the value's index in the flattened (row-major) tensor: "
                    "a BatchNorm channel, or class * in_features + feature for a linear weight such as `fc.weight`")

RUN_COLUMNS = (
    Column("run_id", STR, "", "the run: `<dataset>-<arch>-<variant>-n<noise>-s<seed>-<digest of every field>`"),
    Column("dataset", STR, "", "digits, fashion-mnist, mnist, cifar10, svhn, or synthetic / synthetic-small "
           "(CIFAR-10-shaped, made on the fly)"),
    Column("arch", STR, "", "mlp, resnet9, resnet50, vit (the paper's small-dataset ViT: shifted patch tokens, "
           "locality self-attention, dropout 0.1), vit_plain (a plain ViT of the same sizes, our earlier `vit`)"),
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
           "trained without one of K folds (an auxiliary training: its training rows are in the aux_* tables)"),
    Column("cv_fold", INT, "", "the fold (0..cv_folds-1) such a run held out and predicts; 0 for ordinary runs"),
    Column("ssft_half", INT, "", "0: an ordinary run; 1 or 2: a second-split forgetting run, trained on that half "
           "of the training set and then fine-tuned on the other (an auxiliary training: its training rows are in the "
           "aux_* tables, its scores in `ssft`)"),
    Column("dropout_places", STR, "", "where ResNet-9 applies dropout (variants tied, dropout, sparse): paper = the "
           "paper code's 6 places (after conv1, conv2, the res1 sum, conv3 before its pool, the res2 sum, conv4; mask "
           "layers 0-5); blocks = after each of the 8 conv blocks (layers 0-7)"),
    Column("sparse_mask", STR, "", "the sparse baseline's mask: paper = fixed element-wise, 40% dropped, rescaled by "
           "1/(1-p); channels = a fixed 40% of channels dropped, no rescaling"),
    Column("curvature_every", INT, "epochs", "loss curvature computed at the end of every k-th epoch and the last; "
           "0 = off"),
    Column("curvature_directions", INT, "", "Rademacher directions per example for the loss curvature"),
    Column("curvature_h", FLOAT, "", "finite-difference step of the loss curvature (input units)"),
    Column("subsets", INT, "", "0: an ordinary run; M >= 2: a pack of the M subset models of the ordinary run with "
           "the same other fields, for held-out memorization scores (an auxiliary training; sweep/packs.py)"),
    Column("subset_fraction", FLOAT, ACC, "the fraction of training examples each subset model trains on (0.7 "
           "unless subsets > 0 says otherwise)"),
    Column("pack", INT, "", "subset models trained at once in one pack (0 for other runs)"),
    Column("pack_index", INT, "", "which pack: it trains models pack_index * pack .. (pack_index + 1) * pack - 1"),
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
        Column("dynamics_seconds", FLOAT, "s", "part of `seconds` spent on the per-example training-pass signals (aum, "
               "forgetting_events, csl: a few device ops per batch on the logits training computes anyway) and on "
               "`detection_epochs`; measured with CUDA events around those ops (GPU time), wall clock on a CPU"),
        Column("curvature_seconds", FLOAT, "s", "part of `seconds` spent computing `loss_curvature` (0 when "
               "curvature_every = 0): (curvature_directions + 1) forward and backward passes over the training set "
               "at each epoch it is computed at"),
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
        Column("aum", FLOAT, "logit", "area under the margin (Pleiss et al., 2020), as published: the training "
               "label's logit minus the largest other logit from the training forward pass of the example's minibatch "
               "(train mode), averaged over its presentations (one per epoch); low or negative = suspicious"),
        Column("aum_eval", FLOAT, "logit", "the same margin from the eval-mode pass after each epoch, averaged over "
               "the epochs (the earlier `aum`)"),
        Column("forgetting_events", INT, "events", "forgetting events (Toneva et al., 2019), as published: over the "
               "example's consecutive minibatch presentations, times it went from predicted as labelled (argmax of "
               "the training logits) to not. An example never predicted as labelled at any presentation gets its "
               "number of presentations (= epochs), the maximum, as the authors' code (order_examples_by_forgetting."
               "py) does; more = suspicious"),
        Column("forgetting_events_eval", INT, "events", "the same transitions between consecutive epochs' eval-mode "
               "predictions (the earlier `forgetting_events`); 0 for never-learned examples"),
        Column("csl", FLOAT, "nats", "cumulative sample loss (Ravikumar et al., ICML 2025): the example's training "
               "cross-entropy summed over its presentations, from the training forward passes (no extra pass); the "
               "authors' code averages eval-mode losses of each epoch's checkpoint instead. High = suspicious"),
        Column("learning_time", FLOAT, ACC, "threshold learning time (\"Thr. LT\" in Ravikumar et al. 2025, after "
               "Jiang et al. 2021 and Maini et al. 2022): the first epoch, counted from 0, at whose end (eval mode) "
               "the example was predicted as labelled, divided by `epochs` (= (first_learned_epoch - 1) / epochs); 1 "
               "for one never learned. High = learned late = suspicious (their notebook scores 1 - the first "
               "correct epoch, never-learned as 0: the opposite sign, at AUROC ~0.5)"),
        Column("in_confidence", FLOAT, "probability", "in-confidence (Carlini et al. 2019, as Ravikumar et al. "
               "2025 compute it): 1 - the final model's largest softmax probability on the example (eval mode, "
               "last epoch). Their code takes the largest probability; their appendix words it as the probability "
               "of the label, which `final_loss` ranks the same as. High = suspicious"),
        Column("loss_curvature", FLOAT, "gradient norm", "input loss curvature (Garg, Ravikumar and Roy, ICML "
               "2024), their estimator: mean over curvature_directions Rademacher directions v of "
               "||grad_x l(x + h v) - grad_x l(x)||_2 (h = curvature_h, training label, eval mode, float32), at "
               "the end of every curvature_every-th epoch and the last, averaged over those epochs. Not divided by "
               "h nor by a batch size (their code divides by the batch size). High = suspicious. NaN when "
               "curvature_every = 0, and in auxiliary trainings (their examples are never scored)"),
    ), "Are mislabeled examples learned later, and how many are never learned?",
        'ex = pd.read_parquet("results/examples")\n'
        'ex.groupby(["arch", "is_noisy"])["first_learned_epoch"].agg(["median", lambda s: s.isna().mean()])'),
    Table("epochs", "run x epoch", ("epoch",), (
        Column("epoch", INT, "epoch", "training epoch (1..epochs), metrics at its end, eval mode"),
        Column("train_loss", FLOAT, "nats", "mean training-batch loss over the epoch (train mode)"),
        *ACCURACIES,
        Column("noisy_true_acc", FLOAT, ACC, "accuracy on the mislabeled examples against their true label"),
        Column("epoch_lr", FLOAT, "learning rate", "learning rate at the epoch's last step"),
        Column("seconds", FLOAT, "s", "wall time of the epoch, evaluation (and loss curvature, when computed at "
               "this epoch) included"),
    ), "When does memorization happen? (noisy-train accuracy per epoch, averaged over seeds)",
        'ep = pd.read_parquet("results/epochs")\n'
        'ep.pivot_table(index="epoch", columns=["arch", "variant"], values="noisy_acc")'),
    Table("gradients", "run x epoch x layer group", ("epoch", "layer"), (
        Column("epoch", INT, "epoch", "training epoch (1..epochs)"),
        LAYER, LAYER_NAME,
        Column("clean_norm", FLOAT, "gradient norm", "the clean examples' summed gradient over the epoch: sum over "
               "the group's tensors of ||G||_2 / sqrt(numel)"),
        Column("noisy_norm", FLOAT, "gradient norm", "the same for the mislabeled examples"),
        Column("cosine", FLOAT, COSINE, "mean over the group's tensors of cos(G_clean, G_noisy), as the paper's code; "
               "NaN when one is zero"),
        Column("cosine_flat", FLOAT, COSINE, "cos(G_clean, G_noisy) of the group's gradients flattened into one "
               "vector (large tensors weigh more than in `cosine`); NaN when one is zero"),
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
        Column("retrain_peak", FLOAT, ACC, "where the retraining triangle peaks, as a fraction of `retrain_epochs`: "
               "0.5 = half-way, as the paper's code; 0.2 = our earlier rule"),
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
               "module, unit} (see the `flip_units` table); empty when none; the same rows, one per unit, are in "
               "`flip_units`"),
        FLIP_RULE,
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
        UNIT_MODULE, UNIT_INDEX,
        FLIP_RULE,
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
    Table("ssft", "first-half example of a second-split forgetting run (ssft_half = 1 or 2)", ("example_id",), (
        Column("of_run_id", STR, "", "the ordinary run (same config and seeds, ssft_half 0) these scores are for; "
               "its two SSFT runs score each of its training examples exactly once (halves 1 and 2 swap roles)"),
        EXAMPLE_ID,
        Column("label", INT, "class", "the training (noisy) label"),
        IS_NOISY,
        Column("forget_epoch", INT, "epoch", "second-split forgetting time (Maini et al., 2022): the first "
               "fine-tuning epoch (1..epochs) at whose end the example is predicted wrong (eval mode) and stays wrong "
               "at every later epoch's end; null (pd.NA) = still predicted as labelled at the last epoch (never "
               "forgotten). Low = suspicious: mislabeled examples are forgotten fast. An example wrong at every "
               "fine-tuning epoch gets 1, learned at the end of the first phase or not (the SSFT code's rule)",
               nullable_int=True),
        Column("learned_at_phase1_end", BOOL, "", "predicted as its training label (eval mode) at the end of the "
               "first phase, before fine-tuning on the other half"),
        Column("correct_epochs", INT, "epochs", "fine-tuning epochs at whose end it was predicted as labelled"),
    ), "Are mislabeled examples forgotten sooner once the model is fine-tuned on the other half?",
        'ss = pd.read_parquet("results/ssft")\n'
        'ss.assign(never=ss.forget_epoch.isna()).groupby("is_noisy")[["forget_epoch", "never"]].mean()'),
    Table("dropout", "run x evaluation mode", ("mode",), (
        Column("mode", STR, "", "example-tied runs: `tied` (each training example with its own mask; test as "
               "`all`), `all` (memorization channels x p_mem), `drop` (memorization channels zeroed, the paper's "
               "rescale), `drop-expected` (zeroed, rescaled by the training-time mean); other variants: `test` "
               "(their usual eval mode)"),
        *ACCURACIES,
        Column("scale", FLOAT, "factor", "factor the generalization channels are multiplied by"),
        Column("scale_rule", STR, "", "none, paper ((p_gen + p_mem) / p_gen) or expected"),
    ), "How much of the memorized data is forgotten when the memorization channels are dropped?",
        'do = pd.read_parquet("results/dropout")\n'
        'do.pivot_table(index=["arch", "variant"], columns="mode", values=["noisy_acc", "test_acc"])'),
    Table("detection_epochs", "run x epoch x training-pass signal", ("epoch", "signal"), (
        Column("epoch", INT, "epoch", "training epoch (1..epochs)"),
        Column("signal", STR, "", "loss (high = suspicious), margin (low = suspicious) or correct (wrong = "
               "suspicious): each training example's value at its presentation in this epoch's training "
               "forward passes, scored so that suspicious is high"),
        Column("auroc", FLOAT, ACC, "area under the ROC curve for finding the mislabeled training examples by this "
               "score (ties count half); NaN when the run has no mislabeled or no clean example"),
        Column("average_precision", FLOAT, ACC, "average precision for the same (as sklearn's average_precision_"
               "score: tied scores enter together); NaN as for auroc"),
    ), "Does each epoch's training loss find the mislabeled examples better early or late in training?",
        'de = pd.read_parquet("results/detection_epochs")\n'
        'de.pivot_table(index="epoch", columns=["arch", "signal"], values="auroc")'),
    Table("dropout_examples", "training example of an example-tied run", ("example_id",), (
        EXAMPLE_ID, IS_NOISY,
        Column("correct_tied", BOOL, "", "predicted as its training label with its own mask (mode tied)"),
        Column("correct_drop", BOOL, "", "predicted as its training label with memorization channels dropped"),
    ), "How many clean and mislabeled examples stay right once the memorization channels are dropped?",
        'de = pd.read_parquet("results/dropout_examples")\n'
        'de.groupby(["run_id", "is_noisy"])[["correct_tied", "correct_drop"]].mean()'),
)}

# The localization benchmark (sweep/probes/localize.py, issue 23): which units a localizer ranks for a target,
# scored against a planted ground truth where the run has one.
LOC_TRUTH = Column("truth", STR, "", "the ground truth the row is scored against: `tied` (example-tied run: the "
                   "target's own memorization channels in every masked layer; an MLP layer's mask channel c is output "
                   "feature c of `fcK.linear`, a ResNet-9 place's channel c is output channel c of `<block>.conv` of "
                   "the block holding it, whose output, after the residual sum for res1b/res2b, the mask multiplies), "
                   "`injected` (a standard run fine-tuned so that a few clean targets take a new wrong label using "
                   "only `inject_units` random units: those units), `none` (a standard run's own targets: no truth, "
                   "only the deletion view)")
LOC_MODE = Column("mode", STR, "", "example-tied runs: `tied` (each target forwarded with its own mask; the other "
                  "examples' memorization channels are dead for it and no localizer may pick them), `all` (plain "
                  "forward, every unit live); other runs: `all`")
LOC_LOCALIZER = Column("localizer", STR, "", "the localizer (sweep/localizers): greedy, zero_out, activation, "
                       "grad_x_act, integrated_gradients, slimming, hard_concrete, or a plug-in's name")
LOC_TARGET = (EXAMPLE_ID, Column("is_noisy", BOOL, "", "true when the example's training label was changed by the "
                                 "label noise (injected targets are clean examples: false)"),)
LOC_PRECISIONS = tuple(
    Column(f"{what}_at_{k}", FLOAT, ACC, f"{meaning} at k = {k}; NaN when the row has no truth (truth `none`) or "
           "the injection did not take")
    for k in (1, 5, 10, 20)
    for what, meaning in (("precision", "fraction of the localizer's top-k units in the truth set"),
                          ("recall", "fraction of the truth set (within the candidates) among the top-k units")))
LOCALIZE_TABLES = (
    Table("localize", "run x truth x mode x localizer x target", ("truth", "mode", "localizer", "example_id"), (
        LOC_TRUTH, LOC_MODE, LOC_LOCALIZER, *LOC_TARGET,
        Column("label", INT, "class", "the label the target is localized for: its training label, or for an "
               "injected target its new (injected) label"),
        Column("n_units", INT, "units", "units of the model (rule `outputs`: hidden conv channels and linear "
               "features)"),
        Column("n_candidates", INT, "units", "units that can act on the target in this mode (the live ones): all "
               "units in mode `all`; in mode `tied` generalization channels + the target's own memorization "
               "channels of masked layers + every unit of the unmasked layers"),
        Column("n_truth", INT, "units", "units in the truth set (0 for truth `none`)"),
        Column("chance", FLOAT, ACC, "precision of a random ranking: |truth within the candidates| / candidates "
               "(injected: |truth| / n_units); NaN for truth `none`"),
        *LOC_PRECISIONS,
        Column("k_flip", INT, "units", "units to flip: the smallest k (1..localize_cap) whose top-k removal makes the "
               "model predict another class than `label` (in this mode); null when none within the cap or the "
               "ranking", nullable_int=True),
        Column("precision_at_flip", FLOAT, ACC, "precision at k = k_flip; NaN when k_flip is null or no truth"),
        Column("recall_at_flip", FLOAT, ACC, "recall at k = k_flip; NaN when k_flip is null or no truth"),
        Column("outside_at_5", INT, "units", "of the top-5 units, those in layers without a dropout mask (outside "
               "every truth set: ResNet-9's res1a, res2a, ... under the paper's places); 0 for untied runs"),
        Column("seconds", FLOAT, "s", "the localizer's wall time per target (its call over the chunk / targets); "
               "NaN for an injection that did not take"),
        Column("fitted", BOOL, "", "false: an injected target whose new label the fine-tuned model does not "
               "predict, reported and not scored; true for every other row"),
    ), "Do localizers find the planted memorization units better than chance?",
        'lo = pd.read_parquet("results/localize")\n'
        'lo[lo.truth != "none"].groupby(["truth", "mode", "localizer"])[["precision_at_5", "chance"]].mean()'),
    Table("localize_units", "run x truth x mode x localizer x target x ranked unit",
          ("truth", "mode", "localizer", "example_id", "rank"), (
        LOC_TRUTH, LOC_MODE, LOC_LOCALIZER, *LOC_TARGET,
        Column("rank", INT, "", "position in the localizer's ranking, from 0 (most responsible)"),
        LAYER, LAYER_NAME,
        UNIT_MODULE, UNIT_INDEX,
        Column("global_unit", INT, "", "the unit's global index (layers in forward order, then channel): the "
               "numbering of sweep.probes.flip.UnitSpace"),
        Column("score", FLOAT, "score", "the localizer's score (higher = more responsible; its scale is the method's)"),
        Column("in_truth", INT, "", "1 when the unit is in the target's truth set, 0 when not, null for truth "
               "`none`", nullable_int=True),
        Column("outside", BOOL, "", "the unit's layer has no dropout mask (example-tied runs; false elsewhere)"),
    ), "In which layers sit the units each localizer ranks first?",
        'lu = pd.read_parquet("results/localize_units")\n'
        'lu[lu["rank"] < 5].groupby(["localizer", "mode"])["layer_name"].value_counts(normalize=True)'),
    Table("localize_ladder", "run x truth x mode x localizer x target x k on the ladder",
          ("truth", "mode", "localizer", "example_id", "k"), (
        LOC_TRUTH, LOC_MODE, LOC_LOCALIZER, *LOC_TARGET,
        Column("k", INT, "units", "top-k units removed; k runs over 1, 2, 3, 5, 8, 13, ... (each the sum of the "
               "two before) up to localize_cap, the cap included, and at most the ranking's length"),
        Column("flipped", BOOL, "", "the target is predicted as another class than its label with the k units "
               "removed"),
        Column("target_loss", FLOAT, "nats", "cross-entropy of the target at its label with the k units removed"),
        Column("precision", FLOAT, ACC, "fraction of the k units in the truth set; NaN without truth"),
        Column("recall", FLOAT, ACC, "fraction of the truth set (within the candidates) among the k units; NaN "
               "without truth"),
        *(Column(c.name, FLOAT, ACC, f"{c.meaning}, of the model with the k units removed, on the evaluation "
                 "sample (flip_eval_size; mode `tied`: training examples with their own masks, test as `all`)")
          for c in ACCURACIES),
        *_base("the edit"),
    ), "How much accuracy does removing each localizer's top-k units cost, against how often it forgets the target?",
        'ld = pd.read_parquet("results/localize_ladder")\n'
        'ld.groupby(["mode", "localizer", "k"])[["flipped", "test_acc", "test_acc_base"]].mean()'),
    Table("injections", "run x injected target (standard runs)", ("example_id",), (
        EXAMPLE_ID,
        Column("original_label", INT, "class", "the target's training label before the injection (a clean example: "
               "its true label)"),
        Column("new_label", INT, "class", "the wrong label fine-tuned into the model"),
        Column("fitted", BOOL, "", "the fine-tuned model predicts the new label (false: not scored in `localize`)"),
        Column("steps", INT, "", "fine-tuning steps taken"),
        Column("n_units_injected", INT, "units", "units fine-tuned (the truth set of every injected target)"),
        Column("injected_units", pa.list_(UNIT_TYPE), "", "those units, each {layer, layer_name, module, unit}"),
        *(Column(c.name, FLOAT, ACC, f"{c.meaning}, of the fine-tuned model, on the evaluation sample "
                 "(flip_eval_size; the injected targets keep their original labels there)") for c in ACCURACIES),
        *_base("the injection"),
    ), "Did the injections take, and what did they cost the model?",
        'inj = pd.read_parquet("results/injections")\n'
        'inj.groupby("run_id")[["fitted", "clean_acc", "clean_acc_base", "test_acc", "test_acc_base"]].mean()'),
)
TABLES.update({t.name: t for t in LOCALIZE_TABLES})

# Held-out memorization scores (sweep/memorization.py, sweep/probes/memorization.py, issue 24): per ordinary run
# with subset models, from its packs' `subset_predictions`.
MEM_SET = Column("set", STR, "", "the target set: `noisy` (mislabeled examples, drawn by seed), `atypical` (clean "
                 "examples of highest mem), `typical` (clean examples of lowest mem); each of mem_targets examples "
                 "the final model predicts as labelled")
MEMORIZATION_TABLES = (
    Table("memorization", "run x training example, from the run's subset models", ("example_id",), (
        EXAMPLE_ID, IS_NOISY,
        Column("mem", FLOAT, DIFFERENCE, "held-out memorization (Feldman and Zhang 2020): in_acc - out_acc; NaN when "
               "n_in or n_out is 0"),
        Column("in_acc", FLOAT, ACC, "share of the subset models that trained on the example and predict it as its "
               "training label; NaN when n_in = 0"),
        Column("out_acc", FLOAT, ACC, "the same over the subset models that left it out; NaN when n_out = 0"),
        Column("n_in", INT, "models", "subset models that trained on the example"),
        Column("n_out", INT, "models", "subset models that left it out"),
        Column("mem_se", FLOAT, DIFFERENCE, "standard error of mem: sqrt(in_acc (1 - in_acc) / n_in + out_acc (1 - "
               "out_acc) / n_out); NaN when n_in or n_out is 0"),
        Column("mem_prob", FLOAT, DIFFERENCE, "the same difference on the probability of the training label (mean "
               "over models in minus mean over models out)"),
        Column("n_models", INT, "models", "subset models the scores come from (the run's `subsets` M)"),
        Column("fraction", FLOAT, ACC, "the fraction of the training set each subset model trained on"),
    ), "Which clean examples are memorized (fitted only when trained on), and are the mislabeled ones all of them?",
        'mem = pd.read_parquet("results/memorization")\n'
        'mem.groupby(["dataset", "is_noisy"])["mem"].describe()'),
    Table("mem_influence", "run x (training example, test example) pair of highest influence",
          ("example_id", "test_id"), (
        EXAMPLE_ID,
        Column("test_id", INT, "", "index of the example in the test split"),
        Column("influence", FLOAT, DIFFERENCE, "Feldman-Zhang influence of the training example on the test example: "
               "in_acc - out_acc; only the mem_influence_top highest pairs of a run are kept"),
        Column("in_acc", FLOAT, ACC, "share of the subset models that trained on the training example and predict "
               "the test example right"),
        Column("out_acc", FLOAT, ACC, "the same over the subset models that left the training example out"),
        Column("n_in", INT, "models", "subset models that trained on the training example"),
        Column("n_out", INT, "models", "subset models that left it out"),
    ), "Which training examples does each test example's prediction lean on?",
        'inf = pd.read_parquet("results/mem_influence")\n'
        'inf.sort_values("influence", ascending=False).groupby("run_id").head(5)'),
    Table("mem_flips", "run x target set x localizer x target", ("set", "localizer", "example_id"), (
        MEM_SET,
        Column("localizer", STR, "", "the localizer (sweep/localizers); greedy = the flip engine "
               "(sweep.probes.flip.flip_batched)"),
        EXAMPLE_ID, IS_NOISY,
        Column("mem", FLOAT, DIFFERENCE, "the target's memorization score (table `memorization`)"),
        Column("units_to_flip", INT, "units", "smallest k whose top-k removal (the localizer's ranking; greedy: its "
               "own removals) makes the final model predict another class than the training label; null when none "
               "within the cap", nullable_int=True),
        Column("flipped", BOOL, "", "true when units_to_flip is not null"),
        Column("cap", INT, "units", "the longest removal tried (localize_cap, at most the model's units)"),
    ), "Does the few-units result hold for naturally memorized clean examples as for mislabeled ones?",
        'mf = pd.read_parquet("results/mem_flips")\n'
        'mf.groupby(["set", "localizer"])["units_to_flip"].median()'),
)
TABLES.update({t.name: t for t in MEMORIZATION_TABLES})

# What a pack of subset models (sweep/packs.py) writes besides its aux_* training rows: every model's final
# eval-mode prediction on every training and test example, the input of `memorization`.
TABLES["subset_predictions"] = Table(
    "subset_predictions", "pack x subset model x example (training and test split)", ("model", "split", "example_id"), (
        Column("model", INT, "", "the subset model j (0..subsets-1) of the ordinary run; a pack trains models "
               "pack_index * pack .. (pack_index + 1) * pack - 1"),
        Column("split", STR, "", "`train` or `test`: which split example_id indexes"),
        Column("example_id", INT, "", "index of the example in its split (training ids as in `examples`)"),
        Column("in_subset", BOOL, "", "model j trained on this example: its membership hash (noise_seed, j, "
               "example_id) is below subset_fraction (sweep.packs.membership); false for test rows"),
        Column("correct", BOOL, "", "the final model's eval-mode prediction equals `label`"),
        Column("p_label", FLOAT, "probability", "softmax probability of `label` under the final model (eval mode)"),
        Column("label", INT, "class", "the training (noisy) label for train rows, the true label for test rows"),
    ), "How often is a training example predicted as labelled by the models that trained on it, and by those "
       "that did not?",
    'sp = pd.read_parquet("results/subset_predictions")\n'
    'sp.groupby(["split", "in_subset"])[["correct", "p_label"]].mean()')


# The per-run tables a training writes. An auxiliary training (RunConfig.auxiliary: an out-of-sample fold run or
# an SSFT half) writes the same rows to the twin `aux_<table>` instead (sweep.store.table_for picks the name), so
# the tables the paper's figures and a plain `pd.read_parquet` read hold ordinary runs only. A per-run training
# table added later is listed here and gets its twin (same columns, in the catalogue) without more code.
TRAINING_TABLES = ("runs", "examples", "epochs", "gradients", "detection_epochs")
AUX_PREFIX = "aux_"
TABLES.update({f"{AUX_PREFIX}{name}": Table(
    f"{AUX_PREFIX}{name}", f"{TABLES[name].row}, of an auxiliary training (cv_folds > 0 or ssft_half > 0)",
    TABLES[name].keys, TABLES[name].columns,
    f"The `{name}` rows of the trainings that exist only to feed a signal: out-of-sample fold runs (confident "
    "learning) and second-split forgetting runs (SSFT). How did they train?",
    f'aux = pd.read_parquet("results/{AUX_PREFIX}{name}")\n'
    'aux.groupby(["cv_folds", "ssft_half"])["run_id"].nunique()', twin_of=name) for name in TRAINING_TABLES})


# Tables the report derives from the sweep's tables and writes into the results folder (one file each, rewritten
# whole by every report): never written by the engine, never planned, never stale (sweep.plan looks only at the
# engine's tables). Same conventions: the run columns first, a fixed schema, in the catalogue.
REPORT_TABLES: dict[str, Table] = {t.name: t for t in (
    Table("detection", "run x example set x signal of the mislabel-detection comparison (written by "
          "`python -m analyses.report` to detection/comparison.parquet; ordinary runs only)", ("set", "signal"), (
        Column("set", STR, "", "the examples compared: `flip subset` (the examples the flip analysis scored) or "
               "`all training examples`; every signal of one run and set is measured on the same examples"),
        Column("signal", STR, "", "the signal (analyses.signals): units_to_flip, forgotten_drop, final_loss, "
               "first_learned, aum (training pass), aum_eval, forgetting (training pass), forgetting_eval, csl, "
               "learning_time, in_confidence, loss_curvature, ssft, cleanlab, cleanlab_issue, mem_score, and any "
               "plug-in's"),
        Column("source", STR, "", "the table column the signal's natural value comes from (no negated scores: the "
               "value itself, read in the direction of `suspicious`)"),
        Column("suspicious", STR, "", "`high` or `low`: which end of the natural value points at a mislabeled "
               "example (e.g. low AUM, few units to flip, high loss)"),
        Column("n", INT, "examples", "examples in the set"),
        Column("n_noisy", INT, "examples", "mislabeled examples among them"),
        Column("rate", FLOAT, ACC, "their share: the noise rate on all training examples, about 1/2 on the flip "
               "subset"),
        Column("k", INT, "examples", "round(rate * n): how many top-ranked examples `precision_at_rate` looks at"),
        Column("auroc", FLOAT, ACC, "area under the ROC curve for finding the mislabeled examples (ties count half; "
               "0.5 = chance)"),
        Column("average_precision", FLOAT, ACC, "average precision (scikit-learn's, on the ranks)"),
        Column("precision_at_rate", FLOAT, ACC, "precision at the noise rate: share of mislabeled examples among the k "
               "most suspicious (ties at the cut-off shared fractionally)"),
        Column("chance", FLOAT, ACC, "chance level of both precisions (= rate)"),
        Column("flagged", INT, "examples", "binary signals (tied drop, cleanlab flag): examples flagged; null for the "
               "others", nullable_int=True),
        Column("flag_precision", FLOAT, ACC, "binary signals: share of mislabeled among the flagged (NaN else)"),
        Column("flag_recall", FLOAT, ACC, "binary signals: share of the mislabeled that are flagged (NaN else)"),
        Column("extra_trainings", INT, "", "trainings the signal needs beyond the run itself: cleanlab the run's "
               "cv_folds fold runs, SSFT its 2 second-split runs, mem_score its M subset models (`subsets`), the "
               "others 0; null when its runs were not found",
               nullable_int=True),
        Column("extra_passes", STR, "", "what the signal adds to the training's own forward and backward passes"),
        Column("seconds", FLOAT, "s", "measured wall time of the signal for this run: runs.dynamics_seconds (every "
               "training-pass signal together), runs.curvature_seconds, or the summed seconds of its auxiliary runs; "
               "NaN where not measured"),
        Column("seconds_source", STR, "", "which measurement `seconds` is, or why there is none"),
    ), "Which signal finds the mislabeled examples best, and at what cost?",
        'det = pd.read_parquet("results/detection")\n'
        'det[det.set == "all training examples"].groupby(["arch", "noise", "signal"])[["auroc", "seconds"]].mean()'),
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


_SCHEMAS = {name: _build_schema(spec) for name, spec in {**TABLES, **REPORT_TABLES}.items()}


def column_units() -> dict[str, str]:
    """Every declared column's unit by name, over the run columns and every table (a name means one thing in
    every table it is in: a second unit for it is a declaration bug, refused here)."""
    units: dict[str, str] = {}
    for column in (*RUN_COLUMNS, *(c for spec in TABLES.values() for c in spec.columns)):
        if units.setdefault(column.name, column.unit) != column.unit:
            raise ValueError(f"column {column.name} is declared with units {units[column.name]!r} and {column.unit!r}")
    return units


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


# The first line of every catalogue: a README.md without it is the user's and never replaced (sweep.ownership).
CATALOGUE_MARK = "<!-- memloc-sweep catalogue (sweep/schemas.py): rewritten by every sweep; edits are lost -->"


def catalogue() -> str:
    """The text of results/README.md: every table, every column with type, unit and meaning, and one pandas
    example per table."""
    lines = [
        CATALOGUE_MARK,  # how a sweep knows a README.md is its own and may be replaced (sweep.ownership)
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
        "Units and the range their values live in (the report keeps every across-seed interval inside it): "
        + "; ".join(f"{unit} {_range_text(bounds)}" for unit, bounds in UNIT_RANGES.items() if bounds) + ".",
        "",
        "Auxiliary trainings, which exist only to feed a signal (out-of-sample fold runs, `cv_folds > 0`, for",
        "`oos_predictions`; second-split forgetting runs, `ssft_half > 0`, for `ssft`), write their rows of",
        f"{', '.join(f'`{t}`' for t in TRAINING_TABLES)} to the `{AUX_PREFIX}*` twins of those tables, so every",
        "other table holds ordinary runs only and reads as the paper's figures use it.",
        "",
    ]
    for spec in TABLES.values():
        key = ", ".join(("run_id", *spec.keys))
        columns = ([f"The columns of `{spec.twin_of}`. Auxiliary trainings write here instead of `{spec.twin_of}`, "
                    "so a plain read of the main table holds ordinary runs only (cv_folds == 0 and ssft_half == 0)."]
                   if spec.twin_of else ["| column | type | unit | meaning |", "|---|---|---|---|",
                                         *_rows(spec.columns)])
        lines += [f"## {spec.name}", "", f"One row per {spec.row} (unique key: {key}).", "", *columns, "",
                  f"{spec.question}", "", "```python", "import pandas as pd", spec.example, "```", ""]
    lines += ["# Tables the report writes", "",
              "`python -m analyses.report` (run at the end of every sweep) derives these from the tables above and",
              "writes each as one file, rewritten whole by every report, so they always match the report beside them.",
              ""]
    for spec in REPORT_TABLES.values():
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
        "- `_failed/`: one note per unit whose last attempt failed (its error's first line), for `--status`, and",
        "  its whole traceback beside it (`<unit>.txt`).",
        "- `_tune/sweep-<grid>/`: Ray Tune's own trial folders (TensorBoard event files: `tensorboard --logdir "
        "<results>/_tune`; with `--logger`, each run's analysis metrics too, as `analysis.csv` and an events file "
        "ending `.analysis`). `_lock.json`: the driver using this folder.",
        "- `report/index.html`: the HTML report, each figure as PNG and SVG, each table as CSV.",
        "",
    ]
    return "\n".join(lines)


def _range_text(bounds: tuple[float, float]) -> str:
    """'[0, 1]', '[0, inf)', '(-inf, inf)': a closed end where the range holds its bound."""
    low, high = bounds
    return f"{'(' if low == float('-inf') else '['}{low:g}, {high:g}{')' if high == float('inf') else ']'}"


def _rows(columns: tuple[Column, ...]) -> list[str]:
    return [f"| `{c.name}` | {_type_name(c)} | {c.unit} | {c.meaning} |" for c in columns]


if __name__ == "__main__":
    print(catalogue(), end="")
