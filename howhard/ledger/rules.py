"""The quota rules, pure and synchronous: what fits, what degrades, what a window forgets.

Every ledger store applies these same rules (the in-memory store calls them under its lock; a
shared store mirrors them in its server-side scripts and proves it by passing the conformance
suite in :mod:`howhard.testing.ledger`). Nothing here does I/O, keeps state or reads a clock.

Amounts are integers: units, prompt and completion tokens, and money in **micro-units** of the
price table's currency (``cost_micros``; 1 = one millionth of a dollar by default), so sums
never drift the way float sums do. Prices are converted per call with
:meth:`howhard.config.Price.cost_micros`, the same rounding for a reservation's worst case and
for a request's actual usage, so actual ``<=`` worst case holds exactly.

The rules, in one place:

- **Fits**: a hold of ``amount`` fits when, for each limit the quota sets, settled usage still
  in the window plus open holds plus ``amount`` stays within it (:func:`breach`).
- **Degrade**: a tenant whose quota says ``degrade`` gets the largest budget whose worst case
  fits, among the fallbacks the scheduler priced (:func:`choose`).
- **Never charge above the hold**: settling charges the actual usage capped, field by field, at
  what was reserved (:func:`charge`); the excess is reported, not charged. Figures that are not
  integers ``>= 0`` (NaN, floats, negatives) are refused before they touch the books.
- **Charge what was generated**: the scheduler settles a request that failed after its backend
  answered (a scorer raised, the deadline passed while scoring, a reply with invalid figures,
  counted at its worst case) with what was generated; only work never generated is refunded.
- **Window**: settled usage counts against the quota until ``window_s`` seconds have passed
  (:func:`in_window`); without a window it counts forever.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

from howhard.config import Price, QuotaConfig
from howhard.errors import ConfigError, UnknownTenant, UsageError
from howhard.types import Usage

__all__ = [
    "MICROS",
    "Amount",
    "Hold",
    "QuotaTable",
    "breach",
    "charge",
    "choose",
    "cost_limit_micros",
    "in_window",
    "over_quota_message",
    "total",
    "worst_case",
]

MICROS = 1_000_000
"""Micro-units per unit of currency: ledgers count money as integer ``cost_micros``."""


class Amount(NamedTuple):
    """Resources as the ledger counts them: whole units, tokens and micro-units of money.

    Immutable (a named tuple: cheap to build on the hot path, and four plain numbers for a store
    to send to a server). Combine with :meth:`plus`, :meth:`minus` and :func:`total`.
    """

    units: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_micros: int = 0

    @property
    def tokens(self) -> int:
        """Prompt plus completion tokens (what a ``tokens`` quota limits)."""
        return self.prompt_tokens + self.completion_tokens

    def plus(self, other: Amount) -> Amount:
        """Field by field sum."""
        return Amount(
            self.units + other.units,
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.cost_micros + other.cost_micros,
        )

    def minus(self, other: Amount) -> Amount:
        """Field by field difference."""
        return Amount(
            self.units - other.units,
            self.prompt_tokens - other.prompt_tokens,
            self.completion_tokens - other.completion_tokens,
            self.cost_micros - other.cost_micros,
        )

    def capped(self, ceiling: Amount) -> Amount:
        """Each field at most ``ceiling``'s (``self`` itself when nothing exceeds it)."""
        if (
            self.units <= ceiling.units
            and self.prompt_tokens <= ceiling.prompt_tokens
            and self.completion_tokens <= ceiling.completion_tokens
            and self.cost_micros <= ceiling.cost_micros
        ):
            return self
        return Amount(
            min(self.units, ceiling.units),
            min(self.prompt_tokens, ceiling.prompt_tokens),
            min(self.completion_tokens, ceiling.completion_tokens),
            min(self.cost_micros, ceiling.cost_micros),
        )

    def usage(self) -> Usage:
        """The same resources as a public :class:`~howhard.types.Usage` (cost in currency)."""
        return Usage(
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            units=self.units,
            cost=self.cost_micros / MICROS,
        )

    @classmethod
    def of(cls, usage: Usage) -> Amount:
        """A :class:`~howhard.types.Usage` as an amount (cost rounded to micro-units)."""
        return cls(
            units=usage.units,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            cost_micros=round(usage.cost * MICROS),
        )


def total(amounts: Iterable[Amount]) -> Amount:
    """The field by field sum of ``amounts`` (zero when there are none)."""
    out = Amount()
    for amount in amounts:
        out = out.plus(amount)
    return out


class Hold(NamedTuple):
    """A budget and the worst case it may spend: what ``reserve`` is asked to hold."""

    budget: int
    amount: Amount


class QuotaTable:
    """Which quota a tenant has: its own, else the default; with neither configured, unlimited.

    With quotas but no default, a tenant not listed is unknown (``UnknownTenant``).
    """

    def __init__(
        self, quotas: Mapping[str, QuotaConfig] | None, default: QuotaConfig | None
    ) -> None:
        for name, quota in (quotas or {}).items():
            if not isinstance(quota, QuotaConfig):
                raise ConfigError(
                    f"quotas[{name!r}] must be a QuotaConfig, got {type(quota).__name__}"
                )
        self._quotas = dict(quotas or {})
        self._default = default
        self._open = not self._quotas and default is None

    def lookup(self, tenant: str) -> QuotaConfig | None:
        """``tenant``'s quota (``None``: unlimited), or ``UnknownTenant``."""
        if tenant in self._quotas:
            return self._quotas[tenant]
        if self._default is not None or self._open:
            return self._default
        raise UnknownTenant(
            f"tenant {tenant!r} has no quota; add it to quotas= or set default_quota="
        )


def worst_case(
    budget: int,
    calls: Sequence[tuple[Price, int]],
    *,
    prompt_tokens: int,
    max_tokens: int,
    seconds: float,
) -> Hold:
    """Price the worst case of ``budget``: every planned call at its most.

    ``calls`` holds each planned backend call's price and sample count ``n``; each call may read
    ``prompt_tokens`` and generate ``n * max_tokens`` tokens in at most ``seconds``.
    """
    prompt = completion = micros = 0
    for price, n in calls:
        generated = n * max_tokens
        prompt += prompt_tokens
        completion += generated
        micros += price.cost_micros(prompt_tokens, generated, seconds)
    return Hold(
        budget,
        Amount(
            units=budget, prompt_tokens=prompt, completion_tokens=completion, cost_micros=micros
        ),
    )


def cost_limit_micros(quota: QuotaConfig) -> int | None:
    """The quota's ``cost`` limit in micro-units (``None`` when cost is unlimited)."""
    return None if quota.cost is None else round(quota.cost * MICROS)


def breach(quota: QuotaConfig | None, held: Amount, amount: Amount) -> str | None:
    """The first limit that holding ``amount`` on top of ``held`` would break, or ``None``.

    ``held`` is the tenant's settled usage still in the window plus its open holds.
    """
    if quota is None:
        return None
    if quota.units is not None and held.units + amount.units > quota.units:
        return f"units: {held.units} held + {amount.units} > {quota.units}"
    if quota.tokens is not None and held.tokens + amount.tokens > quota.tokens:
        return f"tokens: {held.tokens} held + {amount.tokens} > {quota.tokens}"
    limit = cost_limit_micros(quota)
    if limit is not None and held.cost_micros + amount.cost_micros > limit:
        return (
            f"cost: {held.cost_micros / MICROS:.6g} held + {amount.cost_micros / MICROS:.6g} "
            f"> {limit / MICROS:.6g}"
        )
    return None


def choose(
    quota: QuotaConfig | None, held: Amount, hold: Hold, fallbacks: Sequence[Hold] = ()
) -> tuple[Hold | None, str | None]:
    """What to grant for ``hold``: ``(granted, None)``, or ``(None, the limit it breaks)``.

    A quota that says ``degrade`` grants the largest of ``fallbacks`` (smaller budgets, in
    increasing order, with non-decreasing amounts) that fits when ``hold`` does not.
    """
    if hold.budget < 0 or (fallbacks and min(f.budget for f in fallbacks) < 0):
        raise UsageError(f"budgets must be >= 0, got {hold.budget} (fallbacks {fallbacks!r})")
    broken = breach(quota, held, hold.amount)
    if broken is None:
        return hold, None
    if quota is None or quota.on_exceed != "degrade" or not fallbacks:
        return None, broken
    # Amounts grow with the budget, so "fits" is monotone: binary search the largest that fits.
    lo, hi, best = 0, len(fallbacks) - 1, None
    while lo <= hi:
        mid = (lo + hi) // 2
        if breach(quota, held, fallbacks[mid].amount) is None:
            best, lo = fallbacks[mid], mid + 1
        else:
            hi = mid - 1
    if best is None:
        return None, breach(quota, held, fallbacks[0].amount) or broken
    return best, None


def charge(held: Amount, actual: Amount) -> Amount:
    """What settling ``actual`` against a hold of ``held`` charges: ``actual`` capped at the hold.

    Never above the hold, whatever a backend reports (the excess is ``actual.minus(charge)``).
    Every field must be an ``int >= 0``: a negative figure would credit the quota, and a NaN
    (or any float) would make the tenant's totals NaN, after which no limit ever breaks again.
    """
    for value in actual:
        if type(value) is not int or value < 0:
            raise UsageError(
                f"settled usage must be an int >= 0 in every field, got {actual!r}; "
                "validate a backend's figures before settling them"
            )
    return actual.capped(held)


def in_window(settled_at: float, now: float, window_s: float | None) -> bool:
    """Whether usage settled at ``settled_at`` still counts against a quota at ``now``.

    It counts while ``now - settled_at < window_s``: at exactly ``window_s`` seconds it has left.
    """
    return window_s is None or now - settled_at < window_s


def over_quota_message(tenant: str, budget: int, broken: str) -> str:
    """The ``QuotaExceeded`` message every store raises for a hold that does not fit."""
    return (
        f"tenant {tenant!r} is over quota for budget {budget} ({broken}); wait for the window "
        "to pass, raise the quota, or use on_exceed='degrade'"
    )
