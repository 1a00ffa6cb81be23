"""Fixtures for the analyses tests: a synthetic results folder and its report, built once per session
because drawing every figure is the slow part."""

from __future__ import annotations

import pytest

from analyses.report import write_report
from tests.analyses.builders import make_results


@pytest.fixture(scope="session")
def results_dir(tmp_path_factory):
    return make_results(tmp_path_factory.mktemp("results"))


@pytest.fixture(scope="session")
def report_index(results_dir, tmp_path_factory):
    """index.html of the full fixture's report; dataset files are looked for in an empty folder, so the
    CIFAR-10 gallery must say it has no images while digits (embedded) can still be drawn."""
    return write_report(results_dir, results_dir / "report", data_dir=str(tmp_path_factory.mktemp("no-data")))
