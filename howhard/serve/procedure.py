"""The procedure a served model runs, chosen per request: best-of-k or self-consistency.

Without a reference there is nothing to verify a sample against, so best-of-k would need a
reward model; the gateway's default (``auto``) therefore votes (self-consistency) on requests
without a reference and runs best-of-k with the model's verifier on requests whose ``howhard``
extension carries one. Both plan the same call (``n = budget`` samples of the prompt), so the
ledger reserves the same worst case whichever runs.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

from howhard.errors import ConfigError
from howhard.procedures.base import Context, Outcome, PlannedCall
from howhard.procedures.best_of_k import BestOfK
from howhard.procedures.self_consistency import SelfConsistency
from howhard.scoring.base import Scorer
from howhard.types import Request

__all__ = ["ProcedureChoice", "build_verifier"]

_NEEDS_REFERENCE = {"math", "exact"}


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
    """Runs ``metadata["procedure"]`` (or ``default``): best-of-k, self-consistency or auto."""

    def __init__(self, verifier: Scorer, *, needs_reference: bool, default: str = "auto") -> None:
        if default not in ("auto", "best-of-k", "self-consistency"):
            raise ConfigError(
                f"default={default!r} must be 'auto', 'best-of-k' or 'self-consistency'"
            )
        self.default = default
        self.needs_reference = needs_reference
        self._best_of_k = BestOfK(verifier)
        self._vote = SelfConsistency()

    def resolve(self, procedure: str | None, has_reference: bool) -> str:
        """The procedure that runs for a request asking for ``procedure`` (``None``: default)."""
        name = procedure or self.default
        if name == "auto":
            return "best-of-k" if has_reference or not self.needs_reference else "self-consistency"
        return name

    def plan(self, budget: int) -> Sequence[PlannedCall]:
        """One call with ``n=budget`` samples, or none at budget 0 (both procedures agree)."""
        return [PlannedCall(None, budget)] if budget > 0 else []

    async def run(self, request: Request, budget: int, context: Context) -> Outcome:
        """Run the resolved procedure."""
        name = self.resolve(request.metadata.get("procedure"), request.reference is not None)
        if name == "best-of-k":
            return await self._best_of_k.run(request, budget, context)
        return await self._vote.run(request, budget, context)
