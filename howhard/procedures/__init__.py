"""Decoding procedures: how a request is answered with the budget a policy gave it.

Procedures (best-of-k, self-consistency, routing) make their backend calls through a
:class:`RetryingCaller`, which retries transient failures within the request's deadline and
accounts the usage; ``howhard collect`` samples through the same caller.
"""

from howhard.procedures.base import Context, Outcome, PlannedCall, Procedure
from howhard.procedures.best_of_k import BestOfK
from howhard.procedures.caller import RetryingCaller
from howhard.procedures.retry import backoff_delay
from howhard.procedures.routing import Routing
from howhard.procedures.self_consistency import SelfConsistency
from howhard.procedures.sequential import (
    AdaptiveSelfConsistency,
    BetaRule,
    EscRule,
    RoundGate,
    RoundState,
    SequentialBestOfK,
    StopReason,
    StopRule,
    ValueRule,
)

__all__ = [
    "AdaptiveSelfConsistency",
    "BestOfK",
    "BetaRule",
    "Context",
    "EscRule",
    "Outcome",
    "PlannedCall",
    "Procedure",
    "RetryingCaller",
    "RoundGate",
    "RoundState",
    "Routing",
    "SelfConsistency",
    "SequentialBestOfK",
    "StopReason",
    "StopRule",
    "ValueRule",
    "backoff_delay",
]
