"""The procedure a served model runs, chosen per request.

``best-of-k`` and ``self-consistency`` draw the whole budget in one call; their sequential forms
``sequential-best-of-k`` (stop at the first sample the verifier passes) and
``adaptive-self-consistency`` (stop when Adaptive-Consistency's Beta rule says the vote is
settled) draw it in rounds and give what they do not use back to the stream; with a ``gate``
(the model's stream allocator) each round of ``sequential-best-of-k`` is granted by its value.

Without a reference there is nothing to verify a sample against, so best-of-k would need a
reward model; the gateway's default (``auto``) therefore votes (self-consistency) on requests
without a reference and runs best-of-k with the model's verifier on requests whose ``howhard``
extension carries one. The plan is the round-by-round one whichever runs: it holds the same
samples as one call and a prompt per round, so it covers every procedure's worst case.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

from howhard.config import RoundsConfig
from howhard.errors import ConfigError
from howhard.procedures.base import Context, Outcome, PlannedCall, Procedure
from howhard.procedures.best_of_k import BestOfK
from howhard.procedures.self_consistency import SelfConsistency
from howhard.procedures.sequential import (
    AdaptiveSelfConsistency,
    BetaRule,
    RoundGate,
    SequentialBestOfK,
)
from howhard.scoring.base import Scorer
from howhard.types import Request

__all__ = ["PROCEDURES", "ProcedureChoice", "build_verifier", "verifies"]

_NEEDS_REFERENCE = {"math", "exact"}
PROCEDURES = (
    "auto",
    "best-of-k",
    "self-consistency",
    "sequential-best-of-k",
    "adaptive-self-consistency",
)
"""The procedure names a served model or request may ask for."""


def verifies(procedure: str) -> bool:
    """Whether ``procedure`` scores samples with the model's verifier."""
    return procedure in ("best-of-k", "sequential-best-of-k")


def build_verifier(name: str) -> tuple[Scorer, bool]:
    """The scorer named by a model's ``verifier`` and whether it needs a reference."""
    from howhard.scoring import ExactMatch, MathAnswerVerifier, MeanLogprob

    aliases: dict[str, Any] = {
        "math": MathAnswerVerifier,
        "exact": ExactMatch,
        "logprob": MeanLogprob,
    }
    if name in aliases:
        scorer: Any = aliases[name]()
        return scorer, name in _NEEDS_REFERENCE
    module_name, _, attr = name.partition(":")
    if not module_name or not attr:
        raise ConfigError(
            f"verifier={name!r} is not one of {sorted(aliases)} nor a 'package.module:attr' path"
        )
    try:
        target = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"verifier={name!r} cannot be imported: {exc}") from exc
    scorer = target() if callable(target) and not hasattr(target, "score") else target
    if not hasattr(scorer, "score"):
        raise ConfigError(f"verifier={name!r} is not a Scorer (it has no score method)")
    # A custom scorer's needs are unknown: it fails its request itself if it needs a reference.
    return scorer, False


class ProcedureChoice:
    """Runs ``metadata["procedure"]`` (or ``default``), one of :data:`PROCEDURES`.

    ``schedule``: samples per round of the sequential procedures (the last size repeats).
    ``gate``: asked before every round of ``sequential-best-of-k`` (the model's stream
    allocator, :func:`howhard.serve.policy.build_gate`); ``None`` runs each request to its
    budget or first pass.
    """

    def __init__(
        self,
        verifier: Scorer,
        *,
        needs_reference: bool,
        default: str = "auto",
        schedule: tuple[int, ...] = (1, 2, 4, 8),
        gate: RoundGate | None = None,
    ) -> None:
        if default not in PROCEDURES:
            raise ConfigError(f"default={default!r} must be one of {', '.join(PROCEDURES)}")
        self.default = default
        self.needs_reference = needs_reference
        rounds = RoundsConfig(schedule=schedule, max_budget=512)
        self._procedures: dict[str, Procedure] = {
            "best-of-k": BestOfK(verifier),
            "self-consistency": SelfConsistency(),
            "sequential-best-of-k": SequentialBestOfK(verifier, config=rounds, gate=gate),
            "adaptive-self-consistency": AdaptiveSelfConsistency(
                BetaRule(confidence=0.95, rounds=None), config=rounds
            ),
        }

    def resolve(self, procedure: str | None, has_reference: bool) -> str:
        """The procedure that runs for a request asking for ``procedure`` (``None``: default)."""
        name = procedure or self.default
        if name == "auto":
            return "best-of-k" if has_reference or not self.needs_reference else "self-consistency"
        return name

    def plan(self, budget: int) -> Sequence[PlannedCall]:
        """The round-by-round plan: the samples of one call and a prompt per round, so it
        covers the worst case of every procedure."""
        return self._procedures["sequential-best-of-k"].plan(budget)

    async def run(self, request: Request, budget: int, context: Context) -> Outcome:
        """Run the resolved procedure."""
        name = self.resolve(request.metadata.get("procedure"), request.reference is not None)
        return await self._procedures[name].run(request, budget, context)
