"""howhard.policies: how much compute each request gets.

Marginal-reward maths (:mod:`howhard.marginals`), exact allocators
(:mod:`howhard.policies.allocators`), baseline allocations (:mod:`howhard.policies.baselines`),
the Policy/Predictor protocols users plug in (:mod:`howhard.policies.base`) and the built-in
policies the scheduler runs (:mod:`howhard.policies.policies`).
"""

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
from howhard.policies.base import Policy, Predictor, check_budgets
from howhard.policies.baselines import oracle_budgets, random_routing, uniform_budgets
from howhard.policies.policies import (
    AdaptivePolicy,
    RandomRoutingPolicy,
    RoutingPolicy,
    UniformPolicy,
)
from howhard.policies.predictors import ConstantPredictor, OraclePredictor, ProbePredictor

__all__ = [
    "AdaptivePolicy",
    "ConstantPredictor",
    "OfflineAllocator",
    "OnlineAllocator",
    "OraclePredictor",
    "Policy",
    "Predictor",
    "ProbePredictor",
    "RandomRoutingPolicy",
    "RoutingPolicy",
    "UniformPolicy",
    "allocate",
    "allocate_success_prob",
    "check_budgets",
    "marginals_from_rewards",
    "marginals_from_success_prob",
    "oracle_budgets",
    "preference_prob",
    "random_routing",
    "uniform_budgets",
]
