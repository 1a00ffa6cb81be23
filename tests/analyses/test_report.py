"""The HTML report: every section on a full results folder, clear sentences for missing parts, the CLI."""

import os
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from analyses.report import SECTIONS, main, write_report
from tests.analyses.builders import run_config, write, write_run


def sections(page: str) -> dict[str, str]:
    return dict(re.findall(r'<section id="([^"]+)">(.*?)</section>', page, flags=re.S))


def test_full_report_has_every_section_with_its_figure(report_index):
    page = report_index.read_text()
    found = sections(page)
    assert list(found) == [key for key, _, _ in SECTIONS]
    for key, body in found.items():
        assert 'class="error"' not in body, (key, body[:2000])
        if key != "overview":
            assert "<img " in body, key
        if key != "figure7":
            assert 'class="missing"' not in body, (key, body[:2000])
    for src in re.findall(r'<img src="([^"]+)"', page):
        assert (report_index.parent / src).stat().st_size > 1000
    for link in re.findall(r'href="(tables/[^"]+)"', page):
        assert (report_index.parent / link).is_file()


def test_full_report_puts_paper_beside_matching_settings_only(report_index):
    found = sections(report_index.read_text())
    assert "99.9 / 99.3 / 79.3" in found["table1"]  # CIFAR-10 ResNet-9 10%: paper Table 1 before
    assert "90.8 / 3.1 / 82.7" in found["table1"]
    assert "no paper number for this setting" in found["table1"]  # digits / MLP
    assert "100.0 / 99.8" in found["table3"]
    assert "~5" in found["figure5"] and "no paper number for this setting" in found["figure5"]
    assert "no interval" in found["curves"] and "n_seeds" in found["curves"]


def test_full_report_gallery_says_which_images_are_unavailable(report_index):
    body = sections(report_index.read_text())["figure7"]
    assert "images for cifar10 not available here" in body
    assert "digits / mlp / tied" in body or "digits" in body


def test_missing_tables_are_named_and_the_rest_still_works(tmp_path):
    write_run(tmp_path, run_config("cifar10", "resnet9", "standard", 0.1, 0), {"runs", "epochs"})
    index = write_report(tmp_path, tmp_path / "out")
    found = sections(index.read_text())
    assert list(found) == [key for key, _, _ in SECTIONS]
    assert "<img " in found["curves"]
    for key, table in (
        ("figure1", "gradients"),
        ("figure3", "rewinding"),
        ("figure4", "retraining"),
        ("figure5", "flips"),
        ("table1", "dropout"),
        ("figure7", "dropout_examples"),
    ):
        assert f"Table &#x27;{table}&#x27; is missing" in found[key], key
    assert "all missing or empty" in found["detection"]
    overview = found["overview"]  # one noise rate: a sentence where the figure against the noise rate goes
    assert "No configuration was run at two or more noise rates (this sweep&#x27;s noise rate: 0.1)" in overview
    assert 'class="missing"' not in overview and "<img " not in overview


def test_empty_results_folder_still_writes_a_page(tmp_path):
    index = write_report(tmp_path)
    assert index == tmp_path / "report" / "index.html"
    assert "no finished training run" in sections(index.read_text())["overview"]


def test_a_section_that_fails_shows_its_error_and_others_survive(tmp_path):
    write_run(tmp_path, run_config("cifar10", "resnet9", "standard", 0.1, 0), {"runs", "epochs"})
    write(tmp_path, "dropout", "broken", pd.DataFrame({"run_id": ["x"], "dataset": ["cifar10"]}))
    found = sections(write_report(tmp_path).read_text())
    assert 'class="error"' in found["table1"]
    assert "<img " in found["curves"] and 'class="error"' not in found["curves"]


def test_cli_writes_report_and_prints_its_path(results_dir, tmp_path, capsys):
    small = tmp_path / "results"
    for table in ("runs", "epochs"):  # without a runs table the CLI refuses the folder as not a sweep's
        shutil.copytree(results_dir / table, small / table)
    assert main(["--results", str(small), "--out", str(tmp_path / "rep")]) == 0
    printed = Path(capsys.readouterr().out.strip())
    assert printed == tmp_path / "rep" / "index.html" and printed.is_file()


def test_cli_names_each_unreadable_table_file_on_the_terminal_and_exits_1(results_dir, tmp_path, capsys):
    small = tmp_path / "results"
    for table in ("runs", "epochs"):
        shutil.copytree(results_dir / table, small / table)
    cut = sorted((small / "epochs").glob("*.parquet"))[0]
    cut.write_bytes(cut.read_bytes()[:40])
    assert main(["--results", str(small), "--out", str(tmp_path / "rep")]) == 1
    captured = capsys.readouterr()
    errors = captured.err.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith(f"error: unreadable, left out of the report: {cut}: ")
    assert Path(captured.out.strip()).is_file()  # the rest of the report is still written


def test_cli_help_shows_every_default(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    for option, default in (("--results", "results"), ("--out", "<results>/report"), ("--data-dir", "data")):
        assert option in text and f"(default: {default})" in text


def test_report_sections_say_their_units_and_the_final_model(report_index):
    found = sections(report_index.read_text())
    assert "percentage points" in found["figure5"]
    assert "final model" in found["figure3"] and "noisy_acc_base" in found["figure3"]
    assert "dashed lines are the final model" in found["figure4"] and "noisy_acc_base" in found["figure4"]
    assert "Against the noise rate" in found["overview"] and "figures/noise.png" in found["overview"]


def test_cli_refuses_a_missing_results_folder(tmp_path, capsys):
    assert main(["--results", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["figures", "tables"])
def test_report_files_sit_beside_the_page(report_index, name):
    assert any((report_index.parent / name).iterdir())


def test_analyses_never_import_training_code():
    code = (
        "import sys, analyses.report, analyses.detection, analyses.paper\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'sweep', 'ray')\n"
        # the tables' declarations (units and ranges) and the stop-signal exception, both free of torch and Ray
        "             and m not in ('sweep', 'sweep.schemas', 'sweep.errors'))\n"
        "assert not bad, bad\n"
    )
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=root, env=env
    )
    assert done.returncode == 0, done.stderr


def test_detection_section_shows_every_signal_says_who_wins_and_links_the_suspects(report_index):
    found = sections(report_index.read_text())
    body = found["detection"]
    assert "Which signal wins where" in body
    wins = re.findall(r"<li>([^<]*wins with AUROC[^<]*)</li>", body)
    # one sentence per configuration and set: 7 configurations on all examples, the 3 standard ones also on the
    # flip subset
    assert len(wins) == 7 + 3 and sum("flip subset" in line for line in wins) == 3
    table = pd.read_csv(report_index.parent / "tables" / "detection.csv")
    standard = table[(table["dataset"] == "cifar10") & (table["variant"] == "standard")]
    assert set(standard["signal"]) >= {"units_to_flip", "aum", "forgetting", "cleanlab", "cleanlab_issue"}
    assert set(standard["set"]) == {"flip subset", "all training examples"}
    assert table[["auroc_mean", "average_precision_mean", "precision_at_rate_mean"]].stack().between(0, 1).all()
    links = re.findall(r'href="(suspects/[^"]+\.csv)"', body)
    runs = pd.read_csv(report_index.parent / "tables" / "runs_summary.csv")
    # one file per ordinary run, none for the fold and SSFT runs (runs_summary.csv lists every run)
    assert len(links) == ((runs["cv_folds"] == 0) & (runs["ssft_half"] == 0)).sum() < len(runs)
    for link in links:
        suspects = pd.read_csv(report_index.parent / link)
        assert {"example_id", "label", "original_label", "is_noisy", "sorted_by"} <= set(suspects.columns)
    assert "sorted by the AUM rank" in body
    assert "Beside these 10 runs, 9 out-of-sample fold runs (cv_folds &gt; 0" in found["overview"]
    assert "and 2 second-split forgetting runs (ssft_half &gt; 0" in found["overview"]


def test_a_run_with_a_missing_fold_is_named_and_not_scored_by_cleanlab(tmp_path):
    from tests.analyses.builders import STANDARD, write_folds

    cfg = run_config("digits", "mlp", "standard", 0.1, 0)
    write_run(tmp_path, cfg, STANDARD)
    write_folds(tmp_path, cfg, 3, only=[0, 2])
    body = sections(write_report(tmp_path).read_text())["detection"]
    assert "do not cover their training examples exactly once" in body and "fold 1 of 3 missing" in body
    per_run = pd.read_csv(tmp_path / "report" / "tables" / "detection_per_run.csv")
    assert "cleanlab" not in set(per_run["signal"]) and "aum" in set(per_run["signal"])


def test_a_grid_without_fold_runs_gets_a_note_not_a_warning(tmp_path):
    """cv_folds is off by default: no oos_predictions is a grid's choice, so the section says so as a note (a
    finished smoke sweep's report has no 'missing' paragraph)."""
    write_run(tmp_path, run_config("digits", "mlp", "standard", 0.1, 0), {"runs", "examples", "flips"})
    body = sections(write_report(tmp_path).read_text())["detection"]
    assert '<p class="note">No out-of-sample predictions' in body and "cv_folds = K" in body
    assert 'class="error"' not in body
    assert "<img " in body and "Which signal wins where" in body
