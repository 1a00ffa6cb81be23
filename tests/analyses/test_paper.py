"""The paper's numbers apply only to the paper's own setting: every field of it, one mismatch at a time hides the
number (dataset, architecture, noise, full width, 50 epochs at batch 512 and lr 0.1, an ordinary run; p_gen /
p_mem and the dropout places for example-tied dropout, the places for standard dropout, the mask for the sparse
network; the paper's unit rule for the flip count)."""

import pytest

from analyses import paper
from tests.analyses.builders import run_config

# One value other than the paper's for every field of its setting.
OTHER = {"arch": "mlp", "noise": 0.2, "width": 0.5, "epochs": 20, "batch_size": 128, "lr": 0.01, "cv_folds": 3,
         "ssft_half": 1}
OTHER_VARIANT = {"tied": {"p_gen": 0.3, "p_mem": 0.5, "dropout_places": "blocks"},
                 "dropout": {"dropout_places": "blocks"}, "sparse": {"sparse_mask": "channels"}}


def cfg(dataset="cifar10", arch="resnet9", variant="standard", noise=0.1, **fields):
    row = run_config(dataset, arch, variant, noise, 0)
    return {**row, **fields}


def flips_cfg(**fields):
    return {**cfg(), "flip_units": "paper", **fields}


def test_table1_matches_only_the_paper_setting():
    assert paper.table1_numbers(cfg(variant="tied"), "after") == pytest.approx((0.908, 0.031, 0.827))
    assert paper.table1_numbers(cfg("mnist", variant="tied"), "before") == pytest.approx((1.0, 1.0, 0.99))
    assert paper.table1_numbers(cfg("digits", variant="tied"), "after") is None


def test_the_paper_setting_names_every_field():
    assert set(paper.PAPER_SETTING) == set(OTHER)
    for variant, fields in OTHER_VARIANT.items():
        assert set(paper.PAPER_VARIANT[variant]) == set(fields), variant
    assert paper.PAPER_SETTING["lr"] == 0.1  # the paper code's lr1 default, its peak of the triangle


@pytest.mark.parametrize("field", sorted(OTHER))
def test_one_mismatched_training_field_hides_every_paper_number(field):
    assert paper.matches(cfg(variant="tied")) and paper.matches(cfg(variant="sparse"))
    change = {field: OTHER[field]}
    assert paper.mismatches(cfg(variant="tied", **change)) == [field]
    assert paper.table1_numbers(cfg(variant="tied", **change), "after") is None
    assert paper.table1_numbers(cfg(variant="tied", **change), "before") is None
    for variant in ("tied", "dropout", "sparse"):
        assert paper.table3_numbers(cfg(variant=variant, **change)) is None, variant
    assert paper.flip_units_noisy(flips_cfg(**change)) is None


@pytest.mark.parametrize("variant, field", [(v, f) for v, fields in OTHER_VARIANT.items() for f in fields])
def test_one_mismatched_variant_field_hides_that_variants_numbers(variant, field):
    assert paper.table3_numbers(cfg(variant=variant)) is not None
    change = {field: OTHER_VARIANT[variant][field]}
    assert paper.mismatches(cfg(variant=variant, **change)) == [field]
    assert paper.table3_numbers(cfg(variant=variant, **change)) is None
    if variant == "tied":
        assert paper.table1_numbers(cfg(variant=variant, **change), "after") is None


def test_a_field_of_another_variant_does_not_matter():
    """The sparse network has no p_mem or dropout places, standard dropout no mask."""
    assert paper.table3_numbers(cfg(variant="sparse", p_mem=0.5, dropout_places="blocks")) == pytest.approx(
        (1.0, 0.998))
    assert paper.table3_numbers(cfg(variant="dropout", sparse_mask="channels", p_gen=0.3)) == pytest.approx(
        (1.0, 0.995))


@pytest.mark.parametrize("field", sorted({*OTHER, "flip_units", "dataset"}))
def test_the_flip_number_needs_every_field_and_the_papers_unit_rule(field):
    assert paper.flip_units_noisy(flips_cfg()) == 5.0
    change = {**OTHER, "flip_units": "outputs", "dataset": "mnist"}[field]
    assert paper.flip_units_noisy(flips_cfg(**{field: change})) is None


@pytest.mark.parametrize("field", ["lr", "epochs", "dropout_places", "cv_folds", "flip_units"])
def test_a_row_without_a_field_never_matches(field):
    row = {k: v for k, v in flips_cfg(variant="tied").items() if k != field}
    assert paper.flip_units_noisy(row) is None
    assert paper.matches(row) == (field == "flip_units")  # the unit rule is the flip number's own field
    assert not paper.matches({"dataset": "cifar10", "arch": "resnet9", "noise": 0.1})
    assert not paper.matches(cfg(variant="mystery"))


def test_tables_as_frames():
    t1 = paper.paper_table1()
    assert len(t1) == 6 and set(t1["dataset"]) == {"cifar10", "mnist", "svhn"}
    t3 = paper.paper_table3().set_index("variant")
    assert t3.loc["tied", "noisy_acc"] == pytest.approx(0.031)
