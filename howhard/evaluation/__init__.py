"""howhard.evaluation: exact quality-versus-compute maths for allocation policies.

Expected quality of an allocation under true marginal rewards (:mod:`.quality`), curves over a
grid of average budgets for uniform / online / offline / oracle allocation (:mod:`.curves`), and
compute savings at matched quality and the share of the oracle's gain (:mod:`.savings`).

The benchmark report ``howhard evaluate`` writes is built from a split's data (:mod:`.data`),
the benchmark's curves (:mod:`.benchmark`, with majority votes from :mod:`.consistency`), the
report's figures (:mod:`.report`; probe metrics come from :mod:`howhard.probes.metrics`, the
same code ``howhard train`` reports with) and its writer (:mod:`.render`). Sequential
procedures are evaluated by exact simulation on logged samples (:mod:`.simulate`, checked by
the closed forms in :mod:`.sequential`; ``howhard evaluate --sequential`` writes
:mod:`.sequential_report`); the self-consistency value model is fitted and measured across task
families in :mod:`.vote_value`. Evaluation never
imports the scheduler (``docs/architecture.md``).
"""

from howhard.evaluation.curves import (
    Curve,
    offline_curve,
    online_curve,
    oracle_curve,
    quality_curves,
    uniform_curve,
)
from howhard.evaluation.quality import expected_quality, quality_table, uniform_quality
from howhard.evaluation.savings import (
    budget_to_reach,
    compute_savings,
    oracle_gain_fraction,
    savings_vs_uniform,
)
from howhard.evaluation.simulate import (
    LoggedSamples,
    SimulatedPolicy,
    SimulationResult,
    simulate,
)

__all__ = [
    "Curve",
    "LoggedSamples",
    "SimulatedPolicy",
    "SimulationResult",
    "budget_to_reach",
    "compute_savings",
    "expected_quality",
    "offline_curve",
    "online_curve",
    "oracle_curve",
    "oracle_gain_fraction",
    "quality_curves",
    "quality_table",
    "savings_vs_uniform",
    "simulate",
    "uniform_curve",
    "uniform_quality",
]
