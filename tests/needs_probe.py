"""A tiny probe with `needs`, registered by tests/test_needs.py in its driver and, through Ray's worker setup hook,
in every worker: it records how many of its run's out-of-sample fold runs were done when it ran."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

from sweep import records, schemas
from sweep.config import RunConfig
from sweep.grids import out_of_sample_runs

TABLE = "needs_check"


def _run(run, shard: str, analysis) -> dict[str, pd.DataFrame]:  # noqa: ANN001 - RunData, AnalysisConfig
    folds = out_of_sample_runs(run.cfg, 2)
    done = sum(records.read(run.store, records.run_record_path(f.run_id)) is not None for f in folds)
    return {TABLE: pd.DataFrame({"folds_done": [done]})}


def register() -> None:
    """Declare the probe's table and register the probe (idempotent: the driver and each worker call it)."""
    from sweep import store
    from sweep.probes import PROBES, Probe, register_probe

    if TABLE not in schemas.TABLES:  # a table of this test only, declared where the engine's writers look it up
        spec = schemas.Table(TABLE, "test row", (), (
            schemas.Column("folds_done", pa.int64(), "", "fold runs with a done-record when the task ran"),), "", "")
        schemas.TABLES[TABLE] = spec
        schemas._SCHEMAS[TABLE] = schemas._build_schema(spec)
        store.TABLE_KEYS[TABLE] = ["run_id"]
    if "waits_for_folds" not in PROBES:
        register_probe(Probe("waits_for_folds", (TABLE,), lambda cfg, analysis: ["all"], _run,
                             applies=lambda cfg: cfg.variant == "standard",
                             needs=lambda r: r.cv_folds > 0))


def needs_folds(cfg: RunConfig) -> bool:
    return cfg.cv_folds > 0
