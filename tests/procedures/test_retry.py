"""Backoff: exponential, capped, jittered, and never sooner than the server's Retry-After."""

import math

import pytest

from howhard import RetryConfig
from howhard.errors import BackendTimeout, RateLimited
from howhard.procedures import backoff_delay

CONFIG = RetryConfig(initial_backoff_s=0.1, max_backoff_s=1.0, jitter=False)


@pytest.mark.parametrize(("attempt", "delay"), [(1, 0.1), (2, 0.2), (3, 0.4), (4, 0.8), (5, 1.0)])
def test_backoff_doubles_up_to_the_cap(attempt: int, delay: float) -> None:
    assert backoff_delay(attempt, BackendTimeout("t"), CONFIG, lambda: 0.5) == pytest.approx(delay)


def test_full_jitter_draws_below_the_bound() -> None:
    jittered = RetryConfig(initial_backoff_s=0.1, max_backoff_s=1.0, jitter=True)
    assert backoff_delay(3, BackendTimeout("t"), jittered, lambda: 0.25) == pytest.approx(0.1)
    assert backoff_delay(3, BackendTimeout("t"), jittered, lambda: 0.0) == 0.0


def test_retry_after_is_a_floor() -> None:
    slow_down = RateLimited("429", retry_after=0.7)
    assert backoff_delay(1, slow_down, CONFIG, lambda: 0.5) == 0.7
    soon = RateLimited("429", retry_after=0.01)
    assert backoff_delay(2, soon, CONFIG, lambda: 0.5) == pytest.approx(0.2)
    assert backoff_delay(2, RateLimited("429"), CONFIG, lambda: 0.5) == pytest.approx(0.2)


def test_a_nan_retry_after_is_no_hint_at_all() -> None:
    assert backoff_delay(2, RateLimited("429", retry_after=math.nan), CONFIG, lambda: 0.5) == (
        pytest.approx(0.2)
    )


@pytest.mark.parametrize("hint", [1.01, 86400.0, math.inf])
def test_a_retry_after_beyond_max_backoff_is_not_waited_for(hint: float) -> None:
    # Honoured as given, "Retry-After: 86400" would hold the request, a worker and its
    # reservation for a day; float("inf") parses from "Retry-After: inf".
    assert backoff_delay(1, RateLimited("429", retry_after=hint), CONFIG, lambda: 0.5) is None
