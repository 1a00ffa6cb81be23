"""The optimisation schedule shared by training and layer retraining (DESIGN.md §3 and §4).

Its own module so that the trainer and the retraining probe both import it without importing each other.
"""

from __future__ import annotations

import numpy as np

MOMENTUM, WEIGHT_DECAY = 0.9, 5e-4


def lr_at(step: int, total_steps: int, peak: float) -> float:
    """Piecewise-linear one-cycle: 0 -> peak at 1/5 of the run -> 0 at its end (epoch 10 of 50 in the paper).

    Evaluated at the middle of the step so neither the first nor the last step is wasted at lr 0.
    """
    t = step + 0.5
    return float(np.interp(t, [0.0, total_steps / 5, total_steps], [0.0, peak, 0.0]))
