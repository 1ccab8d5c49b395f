"""The one place howhard's events go through: structlog, plus any ``Observer`` subscribed.

Events: ``batch.formed`` (size, wait), ``batch.allocated`` (budget summary), ``request.done``
(request id, tenant, budget, tokens, cost, latency, queue wait, outcome, rounds) and
``scheduler.closed`` at debug level; ``request.failed``, ``quota.rejected``, ``quota.degraded``
and ``backend.retry`` at info; ``batch.policy_failed`` and ``ledger.overrun`` at warning. The
gateway (``howhard.serve``) adds its own (``http.request``, ``auth.rejected``, ``tenant.limited``
…) through the same hub.

Two kinds of subscriber read them. structlog, as always: an application that configures
structlog gets every event through its own pipeline; left unconfigured, structlog would print
every debug event to stdout, which a library must not do, so until then only warnings and above
are printed. And ``Observer``s, called with a frozen ``Event`` for *every* event whatever the log
level (metrics must not depend on logging configuration): the Prometheus exporter in
``howhard.serve.metrics`` is one. An observer that raises is logged (once per observer) and the
event goes on to the others, so instrumentation can never fail a request.

The ledger stores and the quota rules log nothing themselves; the scheduler reports what they
decided (a degraded grant, a charge capped at its reservation) through this hub.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable

import structlog

__all__ = ["Event", "Events", "Observer", "get_logger"]


def get_logger(name: str) -> structlog.typing.FilteringBoundLogger:
    """A bound logger for ``name``, quiet below warning while structlog is unconfigured."""
    if structlog.is_configured():
        logger: structlog.typing.FilteringBoundLogger = structlog.get_logger(name).bind()
        return logger
    quiet: structlog.typing.FilteringBoundLogger = structlog.wrap_logger(
        None, wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING)
    ).bind()
    return quiet


@dataclass(frozen=True, slots=True)
class Event:
    """One event as observers receive it (immutable)."""

    name: str
    """Dotted event name, e.g. ``request.done``."""
    level: int
    """The ``logging`` level it was emitted at."""
    source: str
    """The emitting component's logger name (``howhard.scheduler``, ``howhard.serve`` …)."""
    fields: Mapping[str, Any]
    """The event's key-value payload (read-only)."""
    time: float
    """``time.monotonic()`` when it was emitted."""


@runtime_checkable
class Observer(Protocol):
    """Receives every event of the hubs it is subscribed to (metrics exporters, tracers, tests).

    Called synchronously on the event loop: keep it cheap and never block.
    """

    def __call__(self, event: Event, /) -> None:
        """Handle one event."""
        ...


class Events:
    """An event hub: ``events.info("quota.rejected", tenant=...)`` logs and notifies observers.

    It has the logging methods of a structlog logger (``debug``, ``info``, ``warning``,
    ``error``), so components emit events exactly as they log.
    """

    __slots__ = ("_failed", "_log", "_observers", "name")

    def __init__(self, name: str, observers: Iterable[Observer] = ()) -> None:
        self.name = name
        self._log = get_logger(name)
        self._observers: tuple[Observer, ...] = ()
        self._failed: set[int] = set()
        for observer in observers:
            self.subscribe(observer)

    @property
    def observers(self) -> tuple[Observer, ...]:
        """The subscribed observers, in subscription order."""
        return self._observers

    def subscribe(self, observer: Observer) -> None:
        """Add ``observer``; it receives every later event."""
        if not callable(observer):
            from howhard.errors import ConfigError

            raise ConfigError(
                f"an observer must be callable as observer(event), got {type(observer).__name__}"
            )
        self._observers = (*self._observers, observer)

    def _notify(self, level: int, name: str, fields: dict[str, Any]) -> None:
        event = Event(name, level, self.name, MappingProxyType(fields), time.monotonic())
        for observer in self._observers:
            try:
                observer(event)
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as exc:  # a sync callback's CancelledError is always stray
                key = id(observer)
                if key not in self._failed:
                    self._failed.add(key)
                    self._log.error(
                        "observer.failed",
                        observer=type(observer).__name__,
                        failed_event=name,
                        error=f"{type(exc).__name__}: {exc}",
                    )

    def debug(self, name: str, **fields: Any) -> None:
        """Emit ``name`` at debug level."""
        self._log.debug(name, **fields)
        if self._observers:
            self._notify(logging.DEBUG, name, fields)

    def info(self, name: str, **fields: Any) -> None:
        """Emit ``name`` at info level."""
        self._log.info(name, **fields)
        if self._observers:
            self._notify(logging.INFO, name, fields)

    def warning(self, name: str, **fields: Any) -> None:
        """Emit ``name`` at warning level."""
        self._log.warning(name, **fields)
        if self._observers:
            self._notify(logging.WARNING, name, fields)

    def error(self, name: str, **fields: Any) -> None:
        """Emit ``name`` at error level."""
        self._log.error(name, **fields)
        if self._observers:
            self._notify(logging.ERROR, name, fields)
