"""Chaos tests capture the structured events they cause (and print none)."""

from collections.abc import Iterator
from typing import Any

import pytest
import structlog


@pytest.fixture(autouse=True)
def log_events() -> Iterator[list[dict[str, Any]]]:
    """Structured events emitted during the test (and nothing printed)."""
    with structlog.testing.capture_logs() as events:
        yield events
