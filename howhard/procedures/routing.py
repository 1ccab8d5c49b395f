"""Routing: budget 0 answers with the weak model (or procedure), budget 1 with the strong one."""

from __future__ import annotations

from collections.abc import Sequence
from types import MappingProxyType

from howhard.backends.base import Backend
from howhard.errors import ConfigError
from howhard.procedures.base import Context, Outcome, PlannedCall, Procedure
from howhard.procedures.self_consistency import SelfConsistency
from howhard.types import Generation, GenerationParams, Request

__all__ = ["Routing"]


class _OnBackend:
    """A context whose default backend is ``backend``: how Routing aims a procedure at a model."""

    __slots__ = ("_backend", "_inner")

    def __init__(self, inner: Context, backend: Backend) -> None:
        self._inner = inner
        self._backend = backend

    @property
    def backend(self) -> Backend:
        return self._backend

    @property
    def params(self) -> GenerationParams:
        return self._inner.params

    async def generate(self, prompt: str, *, n: int, backend: Backend | None = None) -> Generation:
        return await self._inner.generate(prompt, n=n, backend=backend or self._backend)


class Routing:
    """Routes each request to ``weak`` (budget 0) or ``strong`` (budget 1).

    ``weak`` and ``strong`` are either two backends — each then answers through ``procedure``
    (default: a single sample, answer extracted) with ``samples`` samples — or two procedures run
    on the scheduler's backend with budget ``samples``. A request costs 0 units on the weak
    route and 1 on the strong one; tokens and money are priced per model by the ledger, so the
    strong route's real cost shows in ``Result.usage.cost``. Budgets above 1 use the strong route.
    """

    def __init__(
        self,
        weak: Backend | Procedure,
        strong: Backend | Procedure,
        *,
        procedure: Procedure | None = None,
        samples: int = 1,
    ) -> None:
        if samples < 1:
            raise ConfigError(f"samples must be >= 1, got {samples!r}")
        self.weak = weak
        self.strong = strong
        self._procedure = procedure or SelfConsistency()
        self.samples = samples

    def _route(self, budget: int) -> tuple[str, Backend | Procedure]:
        return ("strong", self.strong) if budget >= 1 else ("weak", self.weak)

    def plan(self, budget: int) -> Sequence[PlannedCall]:
        """The chosen route's calls (a weak call costs tokens even at budget 0)."""
        _, target = self._route(budget)
        if isinstance(target, Backend):
            return [
                PlannedCall(call.backend or target, call.n)
                for call in self._procedure.plan(self.samples)
            ]
        return target.plan(self.samples)

    async def run(self, request: Request, budget: int, context: Context) -> Outcome:
        """Answer through the route the budget picks."""
        route, target = self._route(budget)
        if isinstance(target, Backend):
            outcome = await self._procedure.run(request, self.samples, _OnBackend(context, target))
            model = target.model
        else:
            outcome = await target.run(request, self.samples, context)
            model = context.backend.model
        metadata = {**outcome.metadata, "route": route, "model": model}
        return Outcome(
            answer=outcome.answer,
            chosen=outcome.chosen,
            candidates=outcome.candidates,
            abstained=outcome.abstained,
            metadata=MappingProxyType(metadata),
        )
