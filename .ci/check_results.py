"""After the README's main command: fail unless results/ holds every run and analysis of the default grid.

Counts from the files, as a user's pandas would read them: every run has its `runs` row (an auxiliary training
its `aux_runs` row), every analysis task its files, every table of the grid reads back non-empty with no
duplicated rows, and the main training tables hold ordinary runs only.
"""

from __future__ import annotations

import sys

import pandas as pd

from sweep.grids import load_grid
from sweep.plan import selected_probes, tally
from sweep.schemas import TRAINING_TABLES
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
    for kind, table, runs in (("ordinary", "runs", [c for c in grid.runs if not c.auxiliary]),
                              ("auxiliary", "aux_runs", [c for c in grid.runs if c.auxiliary])):
        found = pd.read_parquet(f"results/{table}")
        if sorted(found["run_id"]) != sorted(c.run_id for c in runs) or not (found["status"] == "complete").all():
            problems.append(f"table {table} does not hold exactly the demo grid's {kind} runs, all complete")
    for table in TRAINING_TABLES:
        frame = pd.read_parquet(f"results/{table}")
        if ((frame["cv_folds"] != 0) | (frame["ssft_half"] != 0)).any():
            problems.append(f"table {table} holds rows of auxiliary trainings (they belong in aux_{table})")
    print("\n".join(problems) or f"results/ complete: {found}; every table non-empty")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
