"""The cost model: which calls a budget plans, and the worst case the ledger must hold for it.

Before a request runs, the scheduler holds its worst case in the ledger: its budget in units;
for each call the procedure plans, the prompt bound plus ``n * max_tokens`` tokens, priced at the
call's model (per token, plus ``timeout_s`` at a per-second price). This module owns that
pricing and the procedure's plans, and hands the ledger plain numbers
(:class:`howhard.ledger.Hold`); the rules it prices with are :mod:`howhard.ledger.rules`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from howhard.backends.base import Backend
from howhard.config import Price
from howhard.errors import InvalidRequest, UsageError
from howhard.ledger.rules import Hold, worst_case
from howhard.procedures.base import Procedure
from howhard.types import BudgetBounds

__all__ = ["CostModel", "RequestShape"]

_FREE = Price()
_PLAN_CACHE = 4096


@dataclass(frozen=True, slots=True)
class RequestShape:
    """What bounds one request's spend per planned call, whatever its budget."""

    prompt_tokens: int
    """Upper bound on the prompt's tokens (its UTF-8 bytes plus the chat template overhead)."""
    max_tokens: int
    """Most tokens one sample may generate."""
    seconds: float
    """Most backend time one call may take (the request's timeout; 0 without one)."""


class CostModel:
    """Plans and prices requests for the ledger.

    ``prices`` maps model name → :class:`~howhard.config.Price` (unlisted models are free).
    Plans come from ``procedure.plan(budget)`` and are cached per budget (plans must be pure).
    """

    def __init__(
        self,
        procedure: Procedure,
        backend: Backend,
        *,
        prices: Mapping[str, Price],
        prompt_overhead_tokens: int,
    ) -> None:
        self._procedure = procedure
        self._backend = backend
        self._prices = dict(prices)
        self._overhead = prompt_overhead_tokens
        self._plans: dict[int, tuple[tuple[str, int], ...]] = {}
        self._timed_models: frozenset[str] | None = None

    def price(self, model: str) -> Price:
        """The price of ``model`` (zero when the table has no entry)."""
        return self._prices.get(model, _FREE)

    def shape(self, prompt: str, max_tokens: int, timeout_s: float | None) -> RequestShape:
        """The per-call bounds of a request with this prompt, token cap and timeout."""
        return RequestShape(len(prompt.encode()) + self._overhead, max_tokens, timeout_s or 0.0)

    def planned(self, budget: int) -> tuple[tuple[str, int], ...]:
        """``(model, n)`` of each call planned for ``budget`` (validated, cached)."""
        plan = self._plans.get(budget)
        if plan is None:
            default = self._backend
            plan = tuple(
                ((call.backend or default).model, call.n) for call in self._procedure.plan(budget)
            )
            for _, n in plan:
                # A negative n would reserve a negative worst case: a credit against the quota.
                if type(n) is not int or n < 0:
                    raise UsageError(
                        f"{type(self._procedure).__name__}.plan({budget}) planned n={n!r}; "
                        "each PlannedCall.n must be an int >= 0"
                    )
            if len(self._plans) < _PLAN_CACHE:
                self._plans[budget] = plan
        return plan

    def hold(self, shape: RequestShape, budget: int) -> Hold:
        """The worst case of running a request of ``shape`` with ``budget`` units."""
        price = self.price
        return worst_case(
            budget,
            [(price(model), n) for model, n in self.planned(budget)],
            prompt_tokens=shape.prompt_tokens,
            max_tokens=shape.max_tokens,
            seconds=shape.seconds,
        )

    def fallbacks(self, shape: RequestShape, budget: int, bounds: BudgetBounds) -> list[Hold]:
        """Holds of the smaller budgets ``bounds.min_budget .. budget - 1`` (degrade mode)."""
        return [self.hold(shape, b) for b in range(bounds.min_budget, budget)]

    def refuse_unbounded_time(self, tenant: str, bounds: BudgetBounds) -> None:
        """Raise ``InvalidRequest`` when a planned model is priced per second.

        Per-second cost is reserved as the request's timeout; without one the worst case is
        unbounded and concurrent requests could overspend the tenant's cost quota.
        """
        if self._timed_models is None:
            self._timed_models = frozenset(
                model
                for budget in range(bounds.min_budget, bounds.max_budget + 1)
                for model, n in self.planned(budget)
                if n > 0
            )
        for model in sorted(self._timed_models):
            per_second = self.price(model).per_second
            if per_second > 0:
                raise InvalidRequest(
                    f"tenant {tenant!r} has a cost quota and model {model!r} is priced per second "
                    f"(per_second={per_second}), but the request has no timeout, so its cost "
                    "cannot be reserved; pass timeout_s=... (or set request_timeout_s), or price "
                    f"{model!r} per token"
                )
