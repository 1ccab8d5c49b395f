"""Gateway replicas on Ray Serve: ``howhard serve --ray``, or ``serve run howhard.deploy.ray:app``.

What runs where::

    clients ──HTTP──▶ Ray Serve proxy (server.host:server.port)
                         │ routes each request to a replica with room (max_ongoing_requests)
           ┌─────────────┴─────────────┐
           ▼                           ▼
    GatewayReplica (a Ray actor)  GatewayReplica …       one process each: the whole gateway
      keys, limits, /metrics        (howhard.serve), one Scheduler per model with its own
      Scheduler per model           micro-batches and budget carry
           │  reserve / settle         │
           └──────▶ Valkey / Redis ◀───┘                 [ledger] kind = "redis": one server
           │ generate                  │
           ▼                           ▼
    upstream model servers (OpenAI-compatible, e.g. vLLM) or an engine inside each replica

Each replica is one ``howhard.serve`` gateway built from the same ``ServeConfig`` (shipped to
the replicas as data, so they need no copy of the file). Replica count, autoscaling and the
resources Ray reserves per replica come from ``[deployment]``; tenants' quotas are shared only
through ``[ledger] kind = "redis"``, a ``RedisLedger`` every replica reaches (the config refuses
several replicas with quotas kept in each replica's memory). Each replica keeps its own budget
carry, so the long-run average budget is exact per replica and hence overall (README, "Replicas
on Ray Serve").

Every response carries ``x-howhard-replica`` naming the replica that answered. ``/metrics`` is
per replica (the proxy routes a scrape to one of them); scrape each replica's metrics through
Ray's own metrics export, or sum the ledger's spend, which is shared.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Mapping
from types import FrameType
from typing import Any

from howhard.errors import ConfigError, MissingDependency

try:
    import ray
    from ray import serve
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise MissingDependency(
        "howhard.deploy.ray (howhard serve --ray) needs Ray Serve: pip install 'howhard[ray]'"
    ) from exc
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from howhard.serve.app import create_app
from howhard.serve.config import ServeConfig, is_loopback, load_config
from howhard.serve.gateway import Gateway

__all__ = ["REPLICA_HEADER", "GatewayReplica", "app", "application", "run"]

REPLICA_HEADER = "x-howhard-replica"
"""Response header naming the replica that answered."""

DEPLOYMENT_NAME = "gateway"
"""The Ray Serve deployment's name inside the application."""


class _NameReplica:
    """ASGI wrapper adding ``x-howhard-replica`` to every HTTP response."""

    def __init__(self, app: ASGIApp, replica: str) -> None:
        self.app = app
        self._header = (REPLICA_HEADER.encode(), replica.encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def named(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), self._header]}
            await send(message)

        await self.app(scope, receive, named)


class GatewayReplica:
    """One gateway replica: a ``howhard.serve`` gateway in a Ray Serve actor.

    ``config`` is a ``ServeConfig`` as JSON data. Ray runs the app's lifespan when the replica
    starts (the gateway loads its backends and probes; the replica is ready after) and when it
    stops (after Ray has let in-flight requests finish: schedulers drain, engines shut down).
    """

    def __init__(self, config: Mapping[str, Any]) -> None:
        self._config = ServeConfig(**config)
        self._gateway: Gateway | None = None

    def __serve_build_asgi_app__(self) -> ASGIApp:
        """The replica's ASGI app (Ray calls this once, after ``__init__``)."""
        app = create_app(self._config)
        self._gateway = app.gateway
        replica = serve.get_replica_context().replica_id.unique_id
        return _NameReplica(app, replica)

    def check_health(self) -> None:
        """Ray's periodic health check: fail once a started gateway's scheduler has stopped.

        Ray then replaces the replica. A draining gateway is healthy (it is finishing work).
        """
        gateway = self._gateway
        if gateway is not None and gateway.ready and not gateway.draining and not gateway.live:
            raise RuntimeError("a scheduler of this gateway replica stopped; replace the replica")


_INGRESS = serve.deployment(name=DEPLOYMENT_NAME)(serve.ingress()(GatewayReplica))


def application(config: ServeConfig) -> serve.Application:
    """The Ray Serve application running ``config``'s gateway as ``[deployment]`` says."""
    deployment = config.deployment
    options: dict[str, Any] = {
        "ray_actor_options": {
            "num_cpus": deployment.cpus_per_replica,
            "num_gpus": deployment.gpus_per_replica,
        },
        "max_ongoing_requests": deployment.max_ongoing_requests,
        # Ray stops routing to a stopping replica, then waits for its requests; the gateway's
        # own drain grace comes first, the margin covers closing engines.
        "graceful_shutdown_timeout_s": config.server.drain_grace_s + 10.0,
    }
    scaling = deployment.autoscaling
    if scaling is None:
        options["num_replicas"] = deployment.replicas
    else:
        options["autoscaling_config"] = {
            "min_replicas": scaling.min_replicas,
            "max_replicas": scaling.max_replicas,
            "target_ongoing_requests": scaling.target_ongoing_requests,
            "upscale_delay_s": scaling.upscale_delay_s,
            "downscale_delay_s": scaling.downscale_delay_s,
        }
    return _INGRESS.options(**options).bind(config.model_dump(mode="json"))


def app(args: dict[str, str]) -> serve.Application:
    """Ray Serve's application builder: ``serve run howhard.deploy.ray:app config=serve.toml``.

    ``config`` is the gateway's TOML file (read here, on the machine running ``serve run``;
    replicas receive its contents); without it, the embedded default model is served.
    """
    unknown = sorted(set(args) - {"config"})
    if unknown:
        raise ConfigError(
            f"unknown application arguments {unknown}; the only one is config=PATH (a TOML file)"
        )
    return application(load_config(args.get("config")))


def run(config: ServeConfig, *, on_ready: Callable[[str], None] | None = None) -> int | None:
    """Serve ``config`` on Ray Serve until SIGTERM or SIGINT; return that signal's number.

    Blocking. Starts a local Ray cluster for this command unless ``deployment.ray_address``
    names one to join; deploys the replicas, calls ``on_ready(url)`` once every replica is
    ready, and on a signal deletes the application (Ray lets each replica's requests finish,
    then its gateway closes), then stops what it started.
    """
    host, port = config.server.host, config.server.port
    if port == 0:
        raise ConfigError(
            "server.port = 0 is not supported with --ray (Ray Serve's proxy needs a fixed "
            "port); pass --port PORT"
        )
    deployment = config.deployment
    local = deployment.ray_address is None
    init: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING}
    if local:
        init["num_cpus"] = deployment.num_cpus
        if is_loopback(host):
            init["_node_ip_address"] = "127.0.0.1"
    else:
        init["address"] = deployment.ray_address
    ray.init(**init)
    # After ray.init: it installs its own SIGTERM handler, which would end the process at once.
    with _Signals() as signals:
        try:
            # On a joined cluster where Serve already runs, its proxy keeps its own address.
            serve.start(http_options={"host": host, "port": port})
            level = config.server.log_level
            serve.run(
                application(config),
                name=deployment.app_name,
                route_prefix="/",
                logging_config={"log_level": level.upper(), "enable_access_log": level == "debug"},
            )
            if on_ready is not None:
                on_ready(f"http://{host}:{port}")
            signals.wait()
        except _Stopped:
            pass  # a signal while the replicas were still starting
        finally:
            try:
                # Ray stops routing to each replica, lets its requests finish, then its gateway
                # closes (schedulers drain, engines stop).
                serve.delete(deployment.app_name)
                if local:
                    serve.shutdown()  # type: ignore[no-untyped-call]  # untyped in Ray 2.60
            finally:
                if local:
                    ray.shutdown()
    return signals.received


class _Stopped(Exception):
    """A stop signal arrived before the application was ready."""


class _Signals:
    """SIGTERM and SIGINT as one stop request: interrupt while starting, an event once ready."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._ready = False
        self._stop = threading.Event()
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _Signals:
        for s in (signal.SIGINT, signal.SIGTERM):
            self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is None:
            self.received = signum
        self._stop.set()
        if not self._ready:
            self._ready = True  # a second signal must not interrupt the cleanup
            raise _Stopped

    def wait(self) -> None:
        """Block until a stop signal arrives (returns at once if one already has)."""
        self._ready = True
        self._stop.wait()
