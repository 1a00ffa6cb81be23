"""Shared fixtures: small, real data (the embedded digits set) and quiet torch threading for 2-core machines."""

from __future__ import annotations

import pytest
import torch

torch.set_num_threads(1)  # tests share 2 cores with Ray workers; one thread each avoids thrashing


@pytest.fixture(scope="session")
def digits():
    from sweep.data import load_dataset

    return load_dataset("digits")
