"""The quota rules, pure: fits, degrade, never charge above the hold, windows, pricing."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from howhard import Price, QuotaConfig
from howhard.errors import UsageError
from howhard.ledger.rules import (
    Amount,
    Hold,
    breach,
    charge,
    choose,
    cost_limit_micros,
    in_window,
    total,
    worst_case,
)
from howhard.types import Usage


def hold(budget: int, per_unit: int = 10) -> Hold:
    return Hold(budget, Amount(units=budget, completion_tokens=per_unit * budget))


def test_breach_names_the_first_limit_broken_and_none_when_it_fits() -> None:
    quota = QuotaConfig(units=10, tokens=100, cost=0.5)
    held = Amount(units=6, completion_tokens=50, cost_micros=400_000)
    assert breach(quota, held, Amount(units=4, completion_tokens=50, cost_micros=100_000)) is None
    assert breach(quota, held, Amount(units=5)) == "units: 6 held + 5 > 10"
    assert breach(quota, held, Amount(prompt_tokens=51)) == "tokens: 50 held + 51 > 100"
    assert breach(quota, held, Amount(cost_micros=100_001)) == "cost: 0.4 held + 0.100001 > 0.5"
    assert breach(None, held, Amount(units=10**9)) is None


def test_cost_limits_are_whole_micro_units() -> None:
    assert cost_limit_micros(QuotaConfig(cost=0.3)) == 300_000
    assert cost_limit_micros(QuotaConfig()) is None
    # Three tenths of a dollar fill a 0.3 quota exactly, with no float slack needed.
    three = Amount(cost_micros=3 * 100_000)
    assert breach(QuotaConfig(cost=0.3), Amount(), three) is None


def test_choose_grants_the_hold_or_in_degrade_mode_the_largest_fallback_that_fits() -> None:
    fallbacks = [hold(b) for b in range(8)]
    reject, degrade = QuotaConfig(units=10), QuotaConfig(units=10, on_exceed="degrade")
    assert choose(reject, Amount(units=2), hold(8)) == (hold(8), None)
    assert choose(reject, Amount(units=7), hold(8), fallbacks) == (None, "units: 7 held + 8 > 10")
    assert choose(degrade, Amount(units=7), hold(8), fallbacks) == (hold(3), None)
    granted, broken = choose(degrade, Amount(units=10), hold(8), fallbacks[1:])
    assert granted is None and broken == "units: 10 held + 1 > 10"
    with pytest.raises(UsageError, match=">= 0"):
        choose(reject, Amount(), hold(-1))


@given(
    limit=st.integers(0, 40),
    held=st.integers(0, 40),
    per_unit=st.integers(0, 5),
    budget=st.integers(0, 12),
    low=st.integers(0, 12),
)
def test_degrade_agrees_with_trying_every_budget(
    limit: int, held: int, per_unit: int, budget: int, low: int
) -> None:
    quota = QuotaConfig(tokens=limit, on_exceed="degrade")
    fallbacks = [hold(b, per_unit) for b in range(min(low, budget), budget)]
    granted, _ = choose(quota, Amount(prompt_tokens=held), hold(budget, per_unit), fallbacks)
    fitting = [
        h
        for h in [*fallbacks, hold(budget, per_unit)]
        if breach(quota, Amount(prompt_tokens=held), h.amount) is None
    ]
    assert granted == (fitting[-1] if fitting else None)


def test_charge_caps_each_field_at_the_hold_and_reports_the_excess() -> None:
    held = Amount(units=2, prompt_tokens=10, completion_tokens=20, cost_micros=300)
    actual = Amount(units=2, prompt_tokens=15, completion_tokens=5, cost_micros=301)
    charged = charge(held, actual)
    assert charged == Amount(units=2, prompt_tokens=10, completion_tokens=5, cost_micros=300)
    assert actual.minus(charged) == Amount(prompt_tokens=5, cost_micros=1)
    assert charge(held, Amount(units=1)) == Amount(units=1)  # within the hold: charged as is
    with pytest.raises(UsageError, match=">= 0"):
        charge(held, Amount(cost_micros=-1))


def test_usage_leaves_the_window_exactly_window_s_after_it_settled() -> None:
    assert in_window(10.0, 10.0 + 59.9, 60.0)
    assert not in_window(10.0, 70.0, 60.0)
    assert in_window(10.0, 10.0**9, None)


def test_worst_case_prices_every_planned_call_in_micro_units() -> None:
    strong, weak = Price(input_per_mtok=1.0, output_per_mtok=2.0), Price(per_second=0.001)
    result = worst_case(3, [(strong, 3), (weak, 1)], prompt_tokens=100, max_tokens=50, seconds=2)
    assert result.budget == 3
    assert result.amount == Amount(
        units=3,
        prompt_tokens=200,
        completion_tokens=200,
        # strong: 100 prompt x 1 + 150 generated x 2 micro-units; weak: 2 s x 0.001 $/s.
        cost_micros=100 + 300 + 2_000,
    )


def test_price_micro_units_match_the_float_price_and_round_monotonically() -> None:
    price = Price(input_per_mtok=0.15, output_per_mtok=0.6)
    assert price.cost_micros(1_000_000, 1_000_000) == 750_000
    assert price.cost_micros(1_000_000, 1_000_000) == round(price.cost(1_000_000, 10**6) * 1e6)
    costs = [price.cost_micros(p, 2 * p) for p in range(0, 200)]
    assert costs == sorted(costs)


def test_amounts_convert_to_usage_and_back_exactly() -> None:
    amount = Amount(units=4, prompt_tokens=7, completion_tokens=9, cost_micros=123_457)
    assert amount.usage() == Usage(prompt_tokens=7, completion_tokens=9, units=4, cost=0.123457)
    assert Amount.of(amount.usage()) == amount
    assert amount.minus(amount) == Amount() and amount.plus(Amount()) == amount
    assert total([amount, amount]) == Amount(8, 14, 18, 246_914) and total([]) == Amount()
    assert amount.tokens == 16
