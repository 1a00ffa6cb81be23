"""The report's compact tables (analyses.report_tables): constant columns said once above a table, per-run and
long tables linked as CSV instead of inlined, configurations named without their hash (tooltip or footnote
letter), on hand-made frames and on the full fixture's report."""

from __future__ import annotations

import html
import re

import numpy as np
import pandas as pd
import pytest

from analyses.detection_table import FILE
from analyses.plotting import TITLE_CHARS, config_label, config_title, configs
from analyses.report import _Writer
from analyses.report_tables import MAX_INLINE, linked, table_html

HASH = re.compile(r"cfg [0-9a-f]{6}|-[0-9a-f]{10}\b")  # a bare hash, or a config_id / run_id ending in one


def visible(page: str) -> str:
    """The page's text as a reader sees it: no scripts, no tags (so no attribute such as a tooltip)."""
    page = re.sub(r"<script.*?</script>|<style.*?</style>", "", page, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


def tables(page: str) -> list[tuple[list[str], list[list[str]]]]:
    """Each inline table of the page as (header, rows of cell texts)."""
    out = []
    for body in re.findall(r'<table class="data">(.*?)</table>', page, flags=re.S):
        head = [html.unescape(h) for h in re.findall(r"<th>(.*?)</th>", body)]
        rows = [[html.unescape(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", r)]
                for r in re.findall(r"<tr[^>]*>(.*?)</tr>", body.split("</thead>", 1)[-1])]
        out.append((head, rows))
    return out


def frame(n: int, **columns) -> pd.DataFrame:
    """n rows over three configurations; `columns` adds (or overrides) columns."""
    ids = [f"digits-mlp-{v}-n0.1-{h}" for v, h in (("standard", "a216f1f08c"), ("tied", "254bdf9c00"),
                                                   ("sparse", "aee9291b74"))]
    rows = {"config_id": [ids[i % 3] for i in range(n)], "dataset": "digits", "arch": "mlp",
            "variant": [ids[i % 3].split("-")[2] for i in range(n)], "lr": 0.1, "p_gen": 0.4,
            "p_mem": 0.2, "auroc": np.linspace(0.5, 0.9, n)}
    return pd.DataFrame({**rows, **columns})


def test_constant_columns_are_said_once_above_the_table_and_not_as_columns():
    page = table_html(frame(6), "t", 6)
    line = re.search(r'<p class="constants"[^>]*>(.*?)</p>', page).group(1)
    assert html.unescape(line) == "dataset digits · arch mlp · lr 0.1 · p_gen 0.4 · p_mem 0.2"
    head, rows = tables(page)[0]
    assert head == ["variant", "auroc"]  # the varying ones only; config_id never a column
    assert [r[0] for r in rows] == ["standard", "tied", "sparse"] * 2
    assert [float(r[1]) for r in rows] == pytest.approx(np.linspace(0.5, 0.9, 6), abs=1e-4)


def test_a_one_row_table_keeps_its_numbers_in_the_table():
    page = table_html(frame(1, extra=3.0), "t", 1)
    head, rows = tables(page)[0]
    assert head == ["auroc", "extra"]  # only configuration columns moved up
    assert "variant standard" in visible(page)


def test_the_config_id_is_a_tooltip_not_text_and_clashes_get_footnote_letters():
    df = frame(3)
    df.loc[2, "variant"] = "standard"  # the sparse id now reads like the standard one
    page = table_html(df, "t", 3)
    table, foot = page.split("</table>")
    assert not HASH.search(visible(table))  # the hash only in tooltips and in the footnote below
    tips = re.findall(r'<tr title="config_id ([^"]+)">', page)
    assert tips == list(df["config_id"])
    head, rows = tables(page)[0]
    assert head[0] == "setting" and [r[0] for r in rows] == ["b", "", "a"]  # letters in sorted id order
    assert "a: digits-mlp-sparse-n0.1-aee9291b74; b: digits-mlp-standard-n0.1-a216f1f08c" in visible(foot)
    assert "<tr" not in foot


def test_a_per_run_or_long_table_is_a_csv_link_whose_file_reads_back_to_the_same_rows(tmp_path):
    (tmp_path / "tables").mkdir()
    w = _Writer(tmp_path)
    per_run = frame(5).assign(run_id=[f"r{i}" for i in range(5)])
    long = frame(MAX_INLINE + 1)
    assert linked(per_run) and linked(long) and not linked(frame(MAX_INLINE))
    for df, stem, words in ((per_run, "per_run", "per-run rows"), (long, "long", f"{MAX_INLINE + 1} rows")):
        page = w.table(df, stem)
        assert "<table" not in page and words in visible(page)
        assert re.search(rf'<a href="tables/{stem}.csv">{stem}.csv</a> \(CSV, {len(df)} rows\)', page)
        back = pd.read_csv(tmp_path / "tables" / f"{stem}.csv")
        pd.testing.assert_frame_equal(back, df.reset_index(drop=True), check_dtype=False)


def test_titles_name_what_tells_configurations_apart_never_the_hash():
    df = pd.DataFrame({"config_id": ["d-m-s-n0.1-aaaaaaaaaa", "d-m-s-n0.1-bbbbbbbbbb", "d-m-s-n0.1-cccccccccc"],
                       "dataset": "digits", "arch": "mlp", "variant": "standard", "noise": 0.1,
                       "width": 1.0, "epochs": [20, 60, 60], "lr": 0.1, "value": [1, 2, 3]})
    got = [(config_title(c, 2), config_label(c)) for c, _ in configs(df)]
    assert got[0] == ("digits / mlp / standard\nnoise 0.1 / width 1 / epochs 20\nn=2 seeds",
                      "digits / mlp / standard / noise 0.1 / width 1 / epochs 20")
    # the last two differ only in a field the table does not carry: a letter, as the report's tables give
    assert got[1][1].endswith("epochs 60 / setting a") and got[2][1].endswith("epochs 60 / setting b")
    assert not any(HASH.search(t) for pair in got for t in pair)
    assert all(len(line) <= TITLE_CHARS for title, _ in got for line in title.splitlines())  # panels never collide


def test_the_full_report_inlines_no_constant_column_and_links_what_is_per_run(report_index, results_dir):
    page = report_index.read_text()
    assert not HASH.search(visible(page))
    for head, rows in tables(page):
        assert len(rows) <= MAX_INLINE
        assert "run_id" not in head and "config_id" not in head
        if len(rows) >= 2:
            for i, name in enumerate(head):
                assert len({r[i] for r in rows}) > 1, (name, head)
    links = re.findall(r'<a href="tables/([^"]+)\.csv">[^<]+</a> \(CSV, (\d+) rows\)', page)
    assert "detection_per_run" in dict(links)
    for stem, n in links:
        assert len(pd.read_csv(report_index.parent / "tables" / f"{stem}.csv")) == int(n), stem
    back = pd.read_csv(report_index.parent / "tables" / "detection_per_run.csv")
    stored = pd.read_parquet(results_dir / FILE)  # the same per-run rows, written into the results folder
    keys = ["run_id", "signal", "set"]
    merged = back.merge(stored, on=keys, suffixes=("", "_stored"))
    assert len(merged) == len(back) == len(stored)
    np.testing.assert_allclose(merged["auroc"], merged["auroc_stored"], equal_nan=True)


def test_the_full_reports_figures_carry_no_hash_in_any_text(report_figures):
    for stem, fig in report_figures.items():
        texts = [t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text"))]
        assert not [t for t in texts if HASH.search(t)], stem
