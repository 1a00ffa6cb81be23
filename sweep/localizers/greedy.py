"""`greedy`: the flip probe's own search (`sweep.probes.flip.flip_batched`) as a localizer.

For each target it removes, one at a time, the present unit with the largest attribution y * dJ/dy of
J = mean_P loss - loss_target, recomputed after every removal: exactly the units the flip probe removes, in
its order, up to the step where the target's prediction first leaves its label (`flip_k`). A ranking is
asked for to a fixed length (k_max), so the search goes on past the flip point, still greedily, until k_max
units (or every live unit) are gone; a unit's score is its attribution at the step it was chosen (so scores
need not decrease along the ranking: the ranking is the removal order).
"""

from __future__ import annotations

import numpy as np

from sweep.config import AnalysisConfig
from sweep.localizers import Problem, Ranking, register_localizer
from sweep.localizers.common import RULE
from sweep.probes.flip import flip_batched


@register_localizer("greedy")
def greedy(problem: Problem, analysis: AnalysisConfig) -> list[Ranking]:
    ids = problem.ids if problem.tied else None
    pop_ids = problem.pop_ids if problem.tied else None
    outcomes = flip_batched(problem.model, problem.x, problem.y, problem.pop_x, problem.pop_y, problem.k_max,
                            rule=RULE, until=problem.k_max, ids=ids, pop_ids=pop_ids, live=problem.live)
    return [Ranking(units=np.array(o.units, dtype=np.int64), scores=np.array(o.scores, dtype=np.float64),
                    flip_k=o.flip_k) for o in outcomes]
