"""The optimisation schedule shared by training and layer retraining (DESIGN.md §3 and §4).

Its own module so that the trainer and the retraining probe both import it without importing each other.
"""

from __future__ import annotations

import numpy as np

MOMENTUM, WEIGHT_DECAY = 0.9, 5e-4


def lr_at(step: int, total_steps: int, peak: float, peak_step: float | None = None) -> float:
    """Piecewise-linear one-cycle: 0 -> peak at `peak_step` -> 0 at the run's end. Training leaves `peak_step`
    out: 1/5 of the run (epoch 10 of 50 in the paper); layer retraining passes its own (sweep.probes.retrain).

    Evaluated at the middle of the step so neither the first nor the last step is wasted at lr 0.
    """
    t = step + 0.5
    turn = total_steps / 5 if peak_step is None else peak_step
    return float(np.interp(t, [0.0, turn, total_steps], [0.0, peak, 0.0]))
