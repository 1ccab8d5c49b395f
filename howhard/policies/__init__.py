"""howhard.policies: how much compute each request gets.

Exact allocators (:mod:`howhard.policies.allocators`), baseline allocations
(:mod:`howhard.policies.baselines`), the Policy/Predictor protocols users plug in
(:mod:`howhard.policies.base`), the built-in policies the scheduler runs
(:mod:`howhard.policies.builtin`), baseline predictors (:mod:`howhard.policies.predictors`),
the learning adaptive policy (:mod:`howhard.policies.online_adaptive`, with its groups, price and
safeguard; ``default_policy()`` builds the served one), and for sequential procedures the
stream allocator that grants units round by round (:mod:`howhard.policies.stream`) with the
priors it reads (:mod:`howhard.policies.priors`).
The marginal-reward maths (:mod:`howhard.marginals`) is re-exported here. Policies never import
the scheduler, backends or training (``docs/architecture.md``); a trained probe's predictor
lives in :mod:`howhard.probes`.
"""

import warnings
from typing import Any

from howhard.marginals import (
    marginals_from_rewards,
    marginals_from_success_prob,
    preference_prob,
)
from howhard.policies.allocators import (
    OfflineAllocator,
    OnlineAllocator,
    allocate,
    allocate_success_prob,
)
from howhard.policies.base import LearningPolicy, Policy, Predictor, check_budgets
from howhard.policies.baselines import oracle_budgets, random_routing, uniform_budgets
from howhard.policies.builtin import (
    AdaptivePolicy,
    RandomRoutingPolicy,
    RoutingPolicy,
    UniformPolicy,
)
from howhard.policies.defaults import default_policy
from howhard.policies.grouping import FeatureClusters
from howhard.policies.online_adaptive import AdaptiveConfig, OnlineAdaptivePolicy, ProbeReader
from howhard.policies.predictors import ConstantPredictor, OraclePredictor
from howhard.policies.price import StreamPrice
from howhard.policies.priors import (
    EstimatePrior,
    FixedPrior,
    OnlinePrior,
    OnlinePriorConfig,
    PriorFit,
    PriorSource,
    RequestInfo,
    SuccessEstimate,
)
from howhard.policies.safeguard import CalibrationSafeguard
from howhard.policies.stream import (
    EliminationAllocator,
    FixedPriceAllocator,
    Grants,
    RoundAllocator,
    RoundRequest,
    StreamAllocator,
    StreamGate,
    UnlimitedAllocator,
)

__all__ = [
    "AdaptiveConfig",
    "AdaptivePolicy",
    "CalibrationSafeguard",
    "ConstantPredictor",
    "EliminationAllocator",
    "EstimatePrior",
    "FeatureClusters",
    "FixedPriceAllocator",
    "FixedPrior",
    "Grants",
    "LearningPolicy",
    "OfflineAllocator",
    "OnlineAdaptivePolicy",
    "OnlineAllocator",
    "OnlinePrior",
    "OnlinePriorConfig",
    "OraclePredictor",
    "Policy",
    "Predictor",
    "PriorFit",
    "PriorSource",
    "ProbeReader",
    "RandomRoutingPolicy",
    "RequestInfo",
    "RoundAllocator",
    "RoundRequest",
    "RoutingPolicy",
    "StreamAllocator",
    "StreamGate",
    "StreamPrice",
    "SuccessEstimate",
    "UniformPolicy",
    "UnlimitedAllocator",
    "allocate",
    "allocate_success_prob",
    "check_budgets",
    "default_policy",
    "marginals_from_rewards",
    "marginals_from_success_prob",
    "oracle_budgets",
    "preference_prob",
    "random_routing",
    "uniform_budgets",
]


def __getattr__(name: str) -> Any:
    # Compatibility: ProbePredictor moved to howhard.probes. Resolved lazily so that the
    # policies package itself never imports probes (which reach the backend registry).
    if name == "ProbePredictor":
        warnings.warn(
            "howhard.policies.ProbePredictor moved to howhard.probes.ProbePredictor; "
            "import it from there",
            DeprecationWarning,
            stacklevel=2,
        )
        from howhard.probes.predictor import ProbePredictor

        return ProbePredictor
    raise AttributeError(f"module 'howhard.policies' has no attribute {name!r}")
