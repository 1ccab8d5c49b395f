"""Decoding procedures: how a request is answered with the budget a policy gave it."""

from howhard.procedures.base import Context, Outcome, PlannedCall, Procedure
from howhard.procedures.best_of_k import BestOfK
from howhard.procedures.routing import Routing
from howhard.procedures.self_consistency import SelfConsistency

__all__ = [
    "BestOfK",
    "Context",
    "Outcome",
    "PlannedCall",
    "Procedure",
    "Routing",
    "SelfConsistency",
]
