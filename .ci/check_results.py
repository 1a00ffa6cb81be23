"""After the README's main command: fail unless results/ holds every run and analysis of the default grid.

Counts from the files, as a user's pandas would read them: every run has its `runs` row, every analysis task
its files, and every table of the grid reads back non-empty with no duplicated rows.
"""

from __future__ import annotations

import sys

import pandas as pd

from sweep.grids import load_grid
from sweep.plan import selected_probes, tally
from sweep.store import TABLE_KEYS, Store


def main() -> int:
    grid, store = load_grid("demo"), Store("results")
    found = tally(store, grid, selected_probes(None))
    problems = [] if found.complete else [f"incomplete: {found}"]
    for table, key in TABLE_KEYS.items():
        frame = pd.read_parquet(f"results/{table}")
        if frame.empty:
            problems.append(f"table {table} is empty")
        elif frame.duplicated(key).any():
            problems.append(f"table {table} has duplicated {key} rows")
    runs = pd.read_parquet("results/runs")
    if sorted(runs["run_id"]) != sorted(c.run_id for c in grid.runs) or not (runs["status"] == "complete").all():
        problems.append("the runs table does not hold exactly the demo grid's runs, all complete")
    print("\n".join(problems) or f"results/ complete: {found}; every table non-empty")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
