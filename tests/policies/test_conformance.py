"""The built-in policies pass the policy conformance suite (howhard.testing.PolicyContract)."""

import numpy as np

from howhard.marginals import marginals_from_success_prob
from howhard.policies import (
    AdaptivePolicy,
    ConstantPredictor,
    OfflineAllocator,
    OnlineAllocator,
    OraclePredictor,
    Policy,
    RandomRoutingPolicy,
    RoutingPolicy,
    UniformPolicy,
)
from howhard.testing import PolicyContract
from howhard.types import BudgetBounds

ROUTER_BOUNDS = (
    BudgetBounds(average_budget=0.5, max_budget=1),
    BudgetBounds(average_budget=1.0, max_budget=1, min_budget=1),
)


class TestUniformPolicy(PolicyContract):
    def make_policy(self) -> Policy:
        return UniformPolicy()


class TestAdaptivePolicyOnline(PolicyContract):
    def make_policy(self) -> Policy:
        return AdaptivePolicy(OraclePredictor(), OnlineAllocator())


class TestAdaptivePolicyConstantPredictor(PolicyContract):
    def make_policy(self) -> Policy:
        return AdaptivePolicy(ConstantPredictor(success_prob=0.3), OnlineAllocator())


class TestAdaptivePolicyOffline(PolicyContract):
    def make_policy(self) -> Policy:
        held_out = np.linspace(0.0, 1.0, 50)
        table = OfflineAllocator.fit(
            held_out, marginals_from_success_prob(held_out, 4), average_budget=2, n_bins=4
        )
        return AdaptivePolicy(OraclePredictor(), table)


class TestRoutingPolicy(PolicyContract):
    bounds = ROUTER_BOUNDS

    def make_policy(self) -> Policy:
        return RoutingPolicy(OraclePredictor(), strong_fraction=0.5)


class TestRandomRoutingPolicy(PolicyContract):
    bounds = ROUTER_BOUNDS

    def make_policy(self) -> Policy:
        return RandomRoutingPolicy(0.5, seed=1)
