"""The paper's numbers apply only where dataset, architecture and noise match."""

import pytest

from analyses import paper


def test_table1_matches_only_the_paper_setting():
    assert paper.table1_numbers("cifar10", "resnet9", 0.1, "after") == pytest.approx((0.908, 0.031, 0.827))
    assert paper.table1_numbers("mnist", "resnet9", 0.1, "before") == pytest.approx((1.0, 1.0, 0.99))
    assert paper.table1_numbers("cifar10", "resnet9", 0.2, "after") is None
    assert paper.table1_numbers("cifar10", "mlp", 0.1, "after") is None
    assert paper.table1_numbers("digits", "resnet9", 0.1, "after") is None


def test_table3_and_flip_numbers():
    assert paper.table3_numbers("cifar10", "resnet9", 0.1, "sparse") == pytest.approx((1.0, 0.998))
    assert paper.table3_numbers("svhn", "resnet9", 0.1, "sparse") is None
    assert paper.flip_units_noisy("cifar10", "resnet9", 0.1) == 5.0
    assert paper.flip_units_noisy("mnist", "resnet9", 0.1) is None


def test_tables_as_frames():
    t1 = paper.paper_table1()
    assert len(t1) == 6 and set(t1["dataset"]) == {"cifar10", "mnist", "svhn"}
    t3 = paper.paper_table3().set_index("variant")
    assert t3.loc["tied", "noisy_acc"] == pytest.approx(0.031)
