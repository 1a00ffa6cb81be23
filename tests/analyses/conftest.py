"""Fixtures for the analyses tests: a synthetic results folder and its report, built once per session
because drawing every figure is the slow part; the report's Figure objects are kept for the figure tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from analyses import report
from analyses.report import write_report
from tests.analyses.builders import make_results


@pytest.fixture(scope="session")
def results_dir(tmp_path_factory):
    return make_results(tmp_path_factory.mktemp("results"))


@pytest.fixture(scope="session")
def report_build(results_dir, tmp_path_factory):
    """(index.html, {stem: Figure}) of the full fixture's report; dataset files are looked for in an empty
    folder, so the CIFAR-10 gallery must say it has no images while digits (embedded) can still be drawn."""
    figures = {}
    real = report.save

    def keep(fig, stem):
        figures[Path(stem).name] = fig
        return real(fig, stem)

    patch = pytest.MonkeyPatch()
    patch.setattr(report, "save", keep)
    try:
        index = write_report(results_dir, results_dir / "report", data_dir=str(tmp_path_factory.mktemp("no-data")))
    finally:
        patch.undo()
    return index, figures


@pytest.fixture(scope="session")
def report_index(report_build):
    return report_build[0]


@pytest.fixture(scope="session")
def report_figures(report_build):
    return report_build[1]
