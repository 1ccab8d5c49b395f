"""Policies: how a batch's compute budget is split across its requests."""

from howhard.policies.base import Policy, Predictor, check_budgets
from howhard.policies.policies import (
    AdaptivePolicy,
    RandomRoutingPolicy,
    RoutingPolicy,
    UniformPolicy,
)

__all__ = [
    "AdaptivePolicy",
    "Policy",
    "Predictor",
    "RandomRoutingPolicy",
    "RoutingPolicy",
    "UniformPolicy",
    "check_budgets",
]
