"""Async tests in this folder run on asyncio through anyio's pytest plugin; logs are captured."""

from collections.abc import Iterator
from typing import Any

import pytest
import structlog


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def log_events() -> Iterator[list[dict[str, Any]]]:
    """Structured events emitted during the test (and nothing printed)."""
    with structlog.testing.capture_logs() as events:
        yield events
