"""How the report shows a table: compact enough that the page stays a few screens per section.

Three rules, applied to every table of the report (analyses.report's writer calls `table_html`):
1. A column whose value is the same on every row (lr, p_gen, p_mem, ... in most sweeps) is said once, on one line
   above the table ("lr 0.1 · p_gen 0.4 · ..."), instead of on every row. With a single row only the
   configuration columns move up, so the numbers still stand in a table.
2. A table keyed by run (a run_id column: one row per run or per run x something) or longer than `MAX_INLINE`
   rows is not inlined: the page links its CSV ("per-run rows (CSV, N rows)"). Such tables grow with the seeds and
   the grid; the aggregated tables and the figures carry the reading, the CSV every row.
3. A configuration is named by its readable columns (dataset / arch / variant, plus whatever else varies); its
   config_id (a hash) is only in a tooltip (the row's title attribute), or a footnote letter where two
   configurations of one table would otherwise read the same.
Cells do not wrap (a wrapped "mean [lo, hi]" cell tripled each row's height); a wide table scrolls sideways inside
its own box, so the page itself never overflows a narrow window.
"""

from __future__ import annotations

import html
import math
import urllib.parse
from collections.abc import Sequence

import numpy as np
import pandas as pd

from analyses.plotting import setting_letters
from analyses.stats import GROUP_COLUMNS

# More rows than fit one screen (about 21 CSS px per row with unwrapped cells) are linked, not inlined.
MAX_INLINE = 30
# Text longer than this wraps in its cell (descriptions), so that one column does not push the table wide.
LONG_TEXT = 60
CONFIG = "config_id"
SEPARATOR = " · "


def cell(value: object) -> str:
    """A value as the page prints it: floats to 4 significant digits, missing as '-'."""
    if value is None or (isinstance(value, float | np.floating) and math.isnan(value)):
        return "-"
    if isinstance(value, float | np.floating):
        return f"{value:.4g}"
    if isinstance(value, tuple | list | np.ndarray):  # a per-seed tuple: each value as the page prints one
        return "(" + ", ".join(cell(v) for v in value) + ")"
    try:
        if pd.isna(value):
            return "-"
    except (TypeError, ValueError):  # a tuple or list cell: never missing as a whole
        pass
    return str(value)


def constant_columns(df: pd.DataFrame) -> list[str]:
    """The columns said once above the table: equal on every row (missing counts as one value), the config_id
    excepted (it stays a tooltip). With one row only configuration columns, so values stay in the table."""
    if df.empty:
        return []
    names = [c for c in df.columns if c != CONFIG and df[c].map(cell).nunique() == 1]
    if len(df) == 1:
        names = [c for c in names if c in GROUP_COLUMNS]
    if len(names) == len([c for c in df.columns if c != CONFIG]):  # something must stay a column
        names = names[1:]
    return names


def linked(df: pd.DataFrame) -> bool:
    """Whether the page links the table's CSV instead of inlining it: keyed by run, or too long to read."""
    return "run_id" in df.columns or len(df) > MAX_INLINE


def readable_config(config_id: str) -> str:
    """'digits / mlp / standard / n0.1' from 'digits-mlp-standard-n0.1-a216f1f08c': the config_id (or a run_id,
    which adds '-s<seed>') without its hash, where there are no dataset/arch/variant columns to name it by."""
    head = str(config_id).rsplit("-", 1)[0] if "-" in str(config_id) else str(config_id)
    return " / ".join(head.split("-"))


def _settings(df: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Where two config_ids of the table have the same readable configuration columns (they differ only in a
    field the table does not carry), a 'setting' column of footnote letters and the footnotes naming each id."""
    if CONFIG not in df.columns:
        return df, []
    readable = [c for c in GROUP_COLUMNS if c in df.columns and c != CONFIG]
    if not readable:
        out = df.copy()
        out.insert(list(df.columns).index(CONFIG), "configuration", df[CONFIG].map(readable_config))
        readable = ["configuration"]
        df = out
    ids = df[[CONFIG, *readable]].astype(str).drop_duplicates()
    clash = ids[ids.duplicated(readable, keep=False)][CONFIG].tolist()
    if not clash:
        return df, []
    letter = setting_letters(clash)
    out = df.copy()
    out.insert(list(df.columns).index(CONFIG), "setting", df[CONFIG].map(lambda c: letter.get(str(c), "")))
    notes = [f"{v}: {k}" for k, v in letter.items()]
    return out, notes


def constants_line(df: pd.DataFrame, names: Sequence[str]) -> str:
    """'lr 0.1 · p_gen 0.4 · ...' as a paragraph, with the config_id in its tooltip when the table has one."""
    if not names:
        return ""
    text = SEPARATOR.join(f"{n} {cell(df[n].iloc[0])}" for n in names)
    ids = sorted({str(v) for v in df[CONFIG]}) if CONFIG in df.columns else []
    tip = f' title="config_id {html.escape(", ".join(ids))}"' if ids else ""
    return f'<p class="constants"{tip}>{html.escape(text)}</p>'


def _table(df: pd.DataFrame, hidden: Sequence[str]) -> str:
    shown = [c for c in df.columns if c not in hidden and c != CONFIG]
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in shown)
    rows = []
    for record in df.to_dict("records"):
        tip = f' title="config_id {html.escape(str(record[CONFIG]))}"' if CONFIG in record else ""
        cells = []
        for name in shown:
            text = cell(record[name])
            cls = ' class="text"' if len(text) > LONG_TEXT else ""
            cells.append(f"<td{cls}>{html.escape(text)}</td>")
        rows.append(f"<tr{tip}>{''.join(cells)}</tr>")
    return (f'<div class="scroll"><table class="data"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table></div>")


def table_html(df: pd.DataFrame, stem: str, rows_in_csv: int) -> str:
    """The table's HTML: the constants line and the table, or the link to tables/<stem>.csv (which the caller
    has written, `rows_in_csv` rows) when `linked` says so."""
    href = "tables/" + urllib.parse.quote(f"{stem}.csv")
    if linked(df):
        what = "per-run rows" if "run_id" in df.columns else f"the whole table (over {MAX_INLINE} rows to show here)"
        return (f'<p class="csv-link">{html.escape(what)}: <a href="{href}">{html.escape(stem)}.csv</a> '
                f"(CSV, {rows_in_csv} rows)</p>")
    df, notes = _settings(df.reset_index(drop=True))
    names = constant_columns(df)
    foot = (f'<p class="note settings">setting {html.escape("; ".join(notes))} (configurations that differ only in '
            "fields this table does not show)</p>") if notes else ""
    return constants_line(df, names) + _table(df, names) + foot
