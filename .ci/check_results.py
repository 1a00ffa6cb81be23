"""After the README's main command: fail unless results/ holds every run and analysis of the default grid.

Counts from the files, as a user's pandas would read them: every run has its `runs` row, every analysis task
its files, and every table of the grid reads back non-empty with no duplicated rows.
"""

from __future__ import annotations

import sys

import pandas as pd

from sweep.engine import selected_probes, tally
from sweep.grids import load_grid
from sweep.store import TABLES, Store

KEYS = {"runs": ["run_id"], "examples": ["run_id", "example_id"], "epochs": ["run_id", "epoch"],
        "gradients": ["run_id", "epoch", "layer"], "rewinding": ["run_id", "layer", "rewind_epoch"],
        "retraining": ["run_id", "layer", "epoch"], "flips": ["run_id", "example_id"],
        "dropout": ["run_id", "mode"], "dropout_examples": ["run_id", "example_id"]}


def main() -> int:
    grid, store = load_grid("demo"), Store("results")
    found = tally(store, grid, selected_probes(None))
    problems = [] if found.complete else [f"incomplete: {found}"]
    for table in TABLES:
        frame = pd.read_parquet(f"results/{table}")
        if frame.empty:
            problems.append(f"table {table} is empty")
        elif frame.duplicated(KEYS[table]).any():
            problems.append(f"table {table} has duplicated {KEYS[table]} rows")
    runs = pd.read_parquet("results/runs")
    if sorted(runs["run_id"]) != sorted(c.run_id for c in grid.runs) or not (runs["status"] == "complete").all():
        problems.append("the runs table does not hold exactly the demo grid's runs, all complete")
    print("\n".join(problems) or f"results/ complete: {found}; every table non-empty")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
