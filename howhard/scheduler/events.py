"""Structured events (structlog) emitted by the scheduler: the one place its events go through.

The ledger stores and the quota rules log nothing themselves; the scheduler reports what they
decided (a degraded grant, a charge capped at its reservation).

Events: ``batch.formed`` (size, wait), ``batch.allocated`` (budget summary), ``request.done``
(tenant, budget, tokens, cost, latency, outcome) and ``scheduler.closed`` at debug level;
``request.failed``, ``quota.rejected``, ``quota.degraded`` and ``backend.retry`` at info;
``batch.policy_failed`` and ``ledger.overrun`` at warning.

An application that configures structlog gets all of them through its own pipeline. Left
unconfigured, structlog would print every debug event to stdout, which a library must not do,
so until then only warnings and above are printed.
"""

from __future__ import annotations

import logging

import structlog

__all__ = ["get_logger"]


def get_logger(name: str) -> structlog.typing.FilteringBoundLogger:
    """A bound logger for ``name``, quiet below warning while structlog is unconfigured."""
    if structlog.is_configured():
        logger: structlog.typing.FilteringBoundLogger = structlog.get_logger(name).bind()
        return logger
    quiet: structlog.typing.FilteringBoundLogger = structlog.wrap_logger(
        None, wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING)
    ).bind()
    return quiet
