"""The paper's numbers apply only to the paper's own setting: dataset, architecture, noise, full width, 50
epochs at batch 512, and p_gen / p_mem for example-tied dropout."""

import pytest

from analyses import paper
from tests.analyses.builders import run_config


def cfg(dataset="cifar10", arch="resnet9", variant="standard", noise=0.1, **fields):
    return run_config(dataset, arch, variant, noise, 0, **fields)


def test_table1_matches_only_the_paper_setting():
    assert paper.table1_numbers(cfg(variant="tied"), "after") == pytest.approx((0.908, 0.031, 0.827))
    assert paper.table1_numbers(cfg("mnist", variant="tied"), "before") == pytest.approx((1.0, 1.0, 0.99))
    assert paper.table1_numbers(cfg(variant="tied", noise=0.2), "after") is None
    assert paper.table1_numbers(cfg(arch="mlp", variant="tied"), "after") is None
    assert paper.table1_numbers(cfg("digits", variant="tied"), "after") is None


@pytest.mark.parametrize("fields", [{"width": 0.5}, {"p_mem": 0.5}, {"p_gen": 0.3}, {"epochs": 20},
                                    {"batch_size": 128}])
def test_no_paper_number_beside_another_width_schedule_or_dropout_setting(fields):
    assert paper.table1_numbers(cfg(variant="tied", **fields), "after") is None
    assert paper.table3_numbers(cfg(variant="tied", **fields)) is None


def test_a_row_without_the_fields_never_matches():
    assert not paper.matches({"dataset": "cifar10", "arch": "resnet9", "noise": 0.1})


def test_table3_and_flip_numbers():
    assert paper.table3_numbers(cfg(variant="sparse")) == pytest.approx((1.0, 0.998))
    assert paper.table3_numbers(cfg(variant="sparse", p_mem=0.5)) == pytest.approx((1.0, 0.998))  # not tied
    assert paper.table3_numbers(cfg("svhn", variant="sparse")) is None
    assert paper.flip_units_noisy(cfg()) == 5.0
    assert paper.flip_units_noisy(cfg(width=0.25)) is None
    assert paper.flip_units_noisy(cfg("mnist")) is None


def test_tables_as_frames():
    t1 = paper.paper_table1()
    assert len(t1) == 6 and set(t1["dataset"]) == {"cifar10", "mnist", "svhn"}
    t3 = paper.paper_table3().set_index("variant")
    assert t3.loc["tied", "noisy_acc"] == pytest.approx(0.031)
