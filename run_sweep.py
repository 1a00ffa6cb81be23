"""Run a grid of trainings and every analysis of them on Ray; results land as Parquet tables.

The command line lives in sweep/cli.py, so that `pip install` can make it the `memloc-sweep` command; this file
keeps `python run_sweep.py` working from a checkout. `python run_sweep.py --help` lists every option.
"""

from __future__ import annotations

import sys

from sweep import cli


def main(argv: list[str] | None = None) -> int:
    return cli.main(argv, prog="python run_sweep.py")


if __name__ == "__main__":
    sys.exit(main())
