"""Policies: how a batch's compute budget is split across its requests."""

from howhard.policies.base import Policy, Predictor

__all__ = ["Policy", "Predictor"]
