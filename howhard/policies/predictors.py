"""Baseline predictors of marginal rewards: a constant, and the oracle skyline.

Both implement :class:`howhard.policies.Predictor`: ``await predict(requests)`` returns
``(len(requests), max_budget)`` marginals (column ``j`` = gain of unit ``j + 1``; column 0 is λ
for binary rewards), ready for ``AdaptivePolicy`` and its allocators. The trained probe's
predictor is :class:`howhard.probes.ProbePredictor`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt
import structlog

from howhard.errors import ConfigError
from howhard.marginals import marginals_from_rewards, marginals_from_success_prob, success_rate
from howhard.types import Request

if TYPE_CHECKING:
    pass

__all__ = ["CollectedRewards", "ConstantPredictor", "OraclePredictor"]

FloatArray = npt.NDArray[np.float64]

log = structlog.get_logger("howhard.predictors")


class CollectedRewards(Protocol):
    """Sampled rewards per request id: what ``howhard collect`` records (a training ``Dataset``)."""

    @property
    def ids(self) -> Sequence[str]:
        """Request ids, one per row of ``rewards``."""
        ...

    @property
    def rewards(self) -> npt.ArrayLike:
        """``(n, m)`` rewards of the ``m`` samples collected per request."""
        ...


def _row(values: npt.ArrayLike, max_budget: int, what: str) -> FloatArray:
    """One marginal row of length ``max_budget``: a scalar is λ, a vector is Δ (cut or 0-padded)."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 0:
        geometric: FloatArray = marginals_from_success_prob(array.reshape(1), max_budget)[0]
        return geometric
    if array.ndim != 1 or not np.isfinite(array).all():
        raise ConfigError(f"{what} must be a number (λ) or a finite 1-D list of marginals")
    row = np.zeros(max_budget)
    width = min(max_budget, len(array))
    row[:width] = array[:width]
    return row


def _check_max_budget(max_budget: int | None) -> int | None:
    if max_budget is not None and max_budget < 1:
        raise ConfigError(f"max_budget must be >= 1, got {max_budget}")
    return max_budget


def _columns(predictor: ConstantPredictor | OraclePredictor, max_budget: int | None) -> int:
    """The columns to predict: the caller's (the policy's bounds), else the predictor's own."""
    width = max_budget if max_budget is not None else predictor.max_budget
    if width is None or width < 1:
        raise ConfigError(
            f"{type(predictor).__name__}.predict needs max_budget >= 1 (got {width!r}); pass "
            "it, or construct the predictor with max_budget="
        )
    return width


class ConstantPredictor:
    """Predicts the same marginals for every request: the "Avg." baseline of the paper.

    Give either ``success_prob`` (geometric rows ``λ(1-λ)^(j-1)``) or a ``marginals`` row.
    ``max_budget`` is only the default width; policies ask for their bounds' width.
    """

    def __init__(
        self,
        *,
        max_budget: int | None = None,
        success_prob: float | None = None,
        marginals: npt.ArrayLike | None = None,
    ) -> None:
        self.max_budget = _check_max_budget(max_budget)
        if (success_prob is None) == (marginals is None):
            raise ConfigError("pass exactly one of success_prob=... or marginals=...")
        self._value: npt.ArrayLike = success_prob if success_prob is not None else marginals  # type: ignore[assignment]
        self._what = "success_prob" if success_prob is not None else "marginals"
        _row(self._value, 1, self._what)  # validate now, not at the first batch

    async def predict(
        self, requests: Sequence[Request], max_budget: int | None = None
    ) -> FloatArray:
        """The constant row, once per request: ``(len(requests), max_budget)``."""
        row = _row(self._value, _columns(self, max_budget), self._what)
        return np.tile(row, (len(requests), 1))


class OraclePredictor:
    """The true marginals of each request: the skyline an allocation is judged against.

    Not deployable (it needs the answers' statistics in advance); use it in evaluations. Values
    come from ``table[request.id]`` when a table is given, else from ``request.metadata[key]``;
    a number is read as λ, a list as the marginals row. A request without a value is a
    ConfigError naming it.
    """

    def __init__(
        self,
        *,
        max_budget: int | None = None,
        table: Mapping[str, Any] | None = None,
        key: str = "marginals",
    ) -> None:
        self.max_budget = _check_max_budget(max_budget)
        self.key = key
        self._table = dict(table) if table is not None else None

    @classmethod
    def from_dataset(
        cls, dataset: CollectedRewards, *, max_budget: int | None = None, head: str = "lambda"
    ) -> OraclePredictor:
        """Oracle from collected rewards: λ per request (``lambda``) or exact Δ rows (``delta``)."""
        rewards = np.asarray(dataset.rewards, dtype=np.float64)
        if head == "delta":
            values = marginals_from_rewards(rewards, rewards.shape[-1])
        else:
            values = success_rate(rewards)
        table = {request_id: values[k] for k, request_id in enumerate(dataset.ids)}
        return cls(max_budget=max_budget, table=table)

    async def predict(
        self, requests: Sequence[Request], max_budget: int | None = None
    ) -> FloatArray:
        """True marginals ``(n, max_budget)``."""
        width = _columns(self, max_budget)
        rows = np.empty((len(requests), width))
        for i, request in enumerate(requests):
            if self._table is not None:
                if request.id not in self._table:
                    raise ConfigError(f"OraclePredictor has no entry for request id {request.id!r}")
                value = self._table[request.id]
            elif self.key in request.metadata:
                value = request.metadata[self.key]
            else:
                raise ConfigError(
                    f"request {request.id!r} has no metadata[{self.key!r}]; pass a table or put "
                    "the true λ or marginals in each request's metadata"
                )
            rows[i] = _row(value, width, f"oracle value for {request.id!r}")
        return rows
