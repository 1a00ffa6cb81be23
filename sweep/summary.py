"""The dry run's table for grids larger than a screen: counts of runs per dataset, arch and variant, by state.

A grid of thousands of auxiliary models (memorization scores) or of 100,000 seeds cannot be read line by line;
this table says what would launch in a few lines whatever the grid's size.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

from sweep.config import RunConfig

SCREEN_RUNS = 40  # a grid with more runs than this gets the summary table instead of one line per run


def summary_lines(runs: Iterable[RunConfig], pending: set[str], todo_by_run: Mapping[str, Counter[str]],
                  probes: tuple[str, ...]) -> list[str]:
    """One row per (dataset, arch, variant): its runs, how many are to train and done, the auxiliary trainings
    among them, and the probe tasks left per probe; then a total row."""
    groups: dict[tuple[str, str, str], Counter[str]] = {}
    for cfg in runs:
        row = groups.setdefault((cfg.dataset, cfg.arch, cfg.variant), Counter())
        row["runs"] += 1
        row["to train" if cfg.run_id in pending else "done"] += 1
        row["auxiliary"] += cfg.auxiliary
        for probe, n in todo_by_run.get(cfg.run_id, {}).items():
            row[probe] += n
    columns = ["runs", "to train", "done", "auxiliary", *probes]
    total: Counter[str] = Counter()
    for row in groups.values():
        total.update(row)
    table = [["dataset", "arch", "variant", *columns]]
    table += [[*key, *(str(row[c]) for c in columns)] for key, row in sorted(groups.items())]
    table.append(["total", "", "", *(str(total[c]) for c in columns)])
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    head = (f"{total['runs']} runs (more than {SCREEN_RUNS}: counted per dataset, arch and variant; the probe "
            "columns count the tasks left)")
    return [head, *("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in table)]
