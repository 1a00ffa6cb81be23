"""Valid rows for any table, built from its declared schema: for tests that write tables without training."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from sweep.config import RunConfig
from sweep.schemas import TABLES, rows_frame
from sweep.store import with_run_columns


def _value(column_type: pa.DataType, i: int, rng: np.random.Generator) -> object:
    if pa.types.is_list(column_type) and not pa.types.is_struct(column_type.value_type):  # class probabilities
        return list(rng.dirichlet(np.ones(10)))
    if pa.types.is_list(column_type):  # flip units: lengths 0, 1, 2, ... so empty lists are always among them
        return [{"layer": k % 3, "layer_name": f"g{k % 3}", "module": f"m{k % 3}", "unit": int(rng.integers(64))}
                for k in range(i % 4)]
    if pa.types.is_boolean(column_type):
        return bool(i % 2)
    if pa.types.is_integer(column_type):
        return i
    if pa.types.is_floating(column_type):
        return float(rng.random())
    return f"v{i % 3}"


def sample_frame(table: str, cfg: RunConfig | None = None, n: int = 4, seed: int = 0, **fixed: object) -> pd.DataFrame:
    """`n` rows of `table` for run `cfg` (the run columns included), every column of its declared type; nullable
    integers are null on every third row; `fixed` sets columns to one value."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        row = {}
        for column in TABLES[table].columns:
            row[column.name] = None if column.nullable_int and i % 3 == 2 else _value(column.type, i, rng)
        rows.append({**row, **fixed})
    return with_run_columns(rows_frame(table, rows), cfg or RunConfig())
