"""The gateway's runtime: one scheduler per served model, a shared ledger, keys and limits.

``async with Gateway(config) as gateway`` builds and starts the backends, the policies and one
``Scheduler`` per model name, all charging one ledger (so a tenant's quota covers every model,
and no tenant can spend another's): an ``InMemoryLedger``, or with ``[ledger] kind = "redis"``
a ``RedisLedger`` that every replica of the gateway shares. ``gateway.serve(...)`` turns one
validated API request into a ``Result`` through the scheduler's public ``submit``; the HTTP
layer (``howhard.serve.app``) only parses, authenticates and formats.

Shutdown: ``begin_drain()`` (SIGTERM) marks the gateway not ready and refuses new requests with
503; requests in flight get ``server.drain_grace_s`` to finish, after which the schedulers cancel
them (their reservations are refunded and their clients get 503). Leaving the ``async with``
closes the schedulers, then the probes' encoders and the backends (a vLLM engine and its
processes shut down).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import anyio
from anyio.abc import TaskGroup

from howhard.backends.base import Backend
from howhard.config import QuotaConfig
from howhard.errors import ConfigError, InvalidRequest, LedgerUnavailable
from howhard.ledger import InMemoryLedger, Ledger, RedisLedger, TenantSpend
from howhard.scheduler import Scheduler, SchedulerState, SchedulerStats
from howhard.scheduler.events import Events, Observer
from howhard.serve.config import BackendConfig, LedgerConfig, ModelConfig, ServeConfig
from howhard.serve.errors import ApiError
from howhard.serve.keys import KeyRing
from howhard.serve.limits import TenantLimiter
from howhard.serve.metrics import Metrics
from howhard.serve.policy import ServingPolicy, build_policy, gates_rounds
from howhard.serve.procedure import ProcedureChoice, build_verifier, verifies
from howhard.serve.protocol import Extension, rounds_of
from howhard.types import GenerationParams, Request, Result

__all__ = ["Gateway", "Served", "ServedModel", "build_backend", "build_ledger"]

OPEN_TENANT = "default"
"""The tenant of every request when no tenants are configured."""


def build_backend(config: BackendConfig) -> Backend:
    """The backend a ``[backends.NAME]`` section describes (the one place backends are built)."""
    if config.factory is not None:
        import importlib

        module_name, _, attr = config.factory.partition(":")
        try:
            factory = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"factory={config.factory!r} cannot be imported: {exc}") from exc
        backend = factory(**config.options)
    else:
        from howhard.backends import create

        assert config.kind is not None  # the config's validator ensures one of the two
        options = dict(config.options)
        # Local engines without a model load the packaged default model themselves.
        if config.model is not None:
            options["model"] = config.model
        if config.base_url is not None:
            options["base_url"] = config.base_url
        backend = create(config.kind, **options)
    if not isinstance(backend, Backend):
        raise ConfigError(
            f"the backend built from {config!r} is a {type(backend).__name__}, which lacks "
            "Backend's model / generate / aclose"
        )
    return backend


def build_ledger(
    config: LedgerConfig, quotas: Mapping[str, QuotaConfig] | None
) -> InMemoryLedger | RedisLedger:
    """The quota store a ``[ledger]`` section describes, with these tenants' quotas.

    A ``RedisLedger`` must be opened (``async with``) before use; the gateway does that.
    """
    if config.kind == "memory":
        return InMemoryLedger(quotas)
    assert config.url is not None  # the config's validator ensures it
    return RedisLedger(
        config.url,
        quotas,
        key_prefix=config.key_prefix,
        lease_ttl_s=config.lease_ttl_s,
        timeout_s=config.timeout_s,
        retries=config.retries,
        max_connections=config.max_connections,
        fail_open=config.fail_open,
    )


@dataclass(frozen=True, slots=True)
class ServedModel:
    """One model name the gateway answers for."""

    name: str
    config: ModelConfig
    scheduler: Scheduler
    policy: ServingPolicy
    procedure: ProcedureChoice


@dataclass(frozen=True, slots=True)
class Served:
    """One answered request: its result and what the response reports about it."""

    result: Result
    procedure: str
    predicted: float | None


async def _close(resource: Any) -> None:
    with anyio.CancelScope(shield=True):
        await resource.aclose()


class Gateway:
    """Schedulers, ledger, keys and limits behind the HTTP layer (see the module docstring)."""

    def __init__(self, config: ServeConfig, *, observers: Iterable[Observer] = ()) -> None:
        self.config = config
        self.metrics = Metrics()
        self._observers = tuple(observers)
        self.events = Events("howhard.serve", [self.metrics.on_gateway_event, *self._observers])
        self.keys = KeyRing((k.hash, k.tenant) for k in config.keys)
        self.limiter = TenantLimiter(config.tenants)
        self.ledger: Ledger | None = None
        self._spend_seen: Mapping[str, TenantSpend] = {}
        self.models: dict[str, ServedModel] = {}
        self.ready = False
        self.draining = False
        self._stack = contextlib.AsyncExitStack()
        self._tg: TaskGroup | None = None
        self._drain: anyio.Event | None = None
        self._grace_s = config.server.drain_grace_s
        self.metrics.watch(self._stats, self._spend, self._policy_stats)

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Gateway:
        try:
            await self._start()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def _start(self) -> None:
        stack = self._stack
        config = self.config
        used = {model.backend for model in config.models.values()}
        backends: dict[str, Backend] = {}
        for name in sorted(used):
            backend = build_backend(config.backends[name])
            stack.push_async_callback(_close, backend)
            start = getattr(backend, "start", None)
            if start is not None:
                await start()  # engines load now, not on the first request
            backends[name] = backend
        quotas = {name: tenant.quota for name, tenant in config.tenants.items()} or None
        ledger = build_ledger(config.ledger, quotas)
        self.ledger = (
            await stack.enter_async_context(ledger) if isinstance(ledger, RedisLedger) else ledger
        )
        prices = {backends[n].model: config.backends[n].price for n in backends}
        for name, model in config.models.items():
            policy = build_policy(model)
            stack.push_async_callback(_close, policy)
            verifier, needs_reference = build_verifier(model.verifier)
            procedure = ProcedureChoice(
                verifier,
                needs_reference=needs_reference,
                default=model.procedure,
                schedule=model.rounds,
                gate=policy.gate,
            )
            scheduler = Scheduler(
                backend=backends[model.backend],
                policy=policy,
                procedure=procedure,
                # A gated model's requests each reserve their cap: its round gate keeps
                # average_budget per request, over the stream.
                average_budget=model.max_budget if gates_rounds(model) else model.average_budget,
                max_budget=model.max_budget,
                min_budget=model.min_budget,
                batching=model.batching,
                max_queue=model.max_queue,
                max_concurrency=model.max_concurrency,
                params=GenerationParams(max_tokens=model.max_tokens, temperature=model.temperature),
                ledger=self.ledger,
                prices=prices,
                observers=[self.metrics.observer(name), *self._observers],
            )
            await stack.enter_async_context(scheduler)
            self.models[name] = ServedModel(name, model, scheduler, policy, procedure)
        self._drain = anyio.Event()
        self._tg = await stack.enter_async_context(anyio.create_task_group())
        # Cancel the drain timer (if any) before the schedulers close.
        stack.callback(self._tg.cancel_scope.cancel)
        self._tg.start_soon(self._cancel_after_drain)
        self.ready = True
        self.events.info("gateway.ready", models=sorted(self.models))

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.ready = False
        self.draining = True
        await self._stack.__aexit__(exc_type, exc, tb)
        self.events.info(
            "gateway.stopped", spend={t: s.settled.units for t, s in self._spend().items()}
        )

    def begin_drain(self, grace_s: float | None = None) -> None:
        """Stop taking requests; cancel what is still running after ``grace_s`` (default: config).

        Safe to call more than once, and from a plain event-loop callback (a signal handler's
        ``call_soon_threadsafe``): it only sets flags and an event.
        """
        if self.draining or self._drain is None:
            return
        self.draining = True
        self.ready = False
        if grace_s is not None:
            self._grace_s = grace_s
        self.events.info("gateway.draining", grace_s=self._grace_s, in_flight=self.in_flight())
        self._drain.set()

    async def _cancel_after_drain(self) -> None:
        assert self._drain is not None
        await self._drain.wait()
        await anyio.sleep(self._grace_s)
        self.events.warning("gateway.cancelling", in_flight=self.in_flight())
        for served in self.models.values():
            await served.scheduler.aclose(cancel=True)

    def in_flight(self) -> int:
        """Requests queued or running, over all models."""
        return sum(s.queued + s.in_flight for s in self._stats().values())

    def _stats(self) -> Mapping[str, SchedulerStats]:
        return {name: served.scheduler.stats() for name, served in self.models.items()}

    def _policy_stats(self) -> Mapping[str, Mapping[str, float]]:
        return {name: served.policy.stats() for name, served in self.models.items()}

    def _spend(self) -> Mapping[str, TenantSpend]:
        # An in-memory store can be read synchronously (the metrics scrape does); a shared one
        # reports what refresh_spend last read from its server.
        if isinstance(self.ledger, InMemoryLedger):
            return self.ledger.snapshot_nowait()
        return self._spend_seen

    async def refresh_spend(self) -> None:
        """Read per-tenant spend from a shared ledger's server (before a metrics scrape).

        While the server is unreachable the last figures read stay in place.
        """
        if self.ledger is None or isinstance(self.ledger, InMemoryLedger):
            return
        with contextlib.suppress(LedgerUnavailable):
            self._spend_seen = await self.ledger.snapshot()

    @property
    def live(self) -> bool:
        """Whether every scheduler still runs (the readiness check also needs ``not draining``)."""
        return bool(self.models) and all(
            s.scheduler.state is SchedulerState.RUNNING for s in self.models.values()
        )

    # ------------------------------------------------------------------ per request

    def authenticate(self, authorization: str | None) -> str:
        """The tenant of an ``Authorization`` header, or a 401 that does not say what was wrong."""
        if self.config.open_access:
            return OPEN_TENANT
        scheme, _, key = (authorization or "").partition(" ")
        tenant = self.keys.tenant(key.strip()) if scheme.lower() == "bearer" else None
        if tenant is None:
            self.events.info("auth.rejected")
            raise ApiError(
                401,
                "missing or invalid API key; send 'Authorization: Bearer <key>'",
                code="invalid_api_key",
            )
        return tenant

    def model(self, name: str) -> ServedModel:
        """The served model ``name``, or 404."""
        served = self.models.get(name)
        if served is None:
            raise ApiError(
                404,
                f"model {name!r} does not exist; GET /v1/models lists {sorted(self.models)}",
                param="model",
                code="model_not_found",
            )
        return served

    def admit(self, tenant: str) -> None:
        """Count one request against ``tenant``'s limits, or 429/503; pair with ``release``."""
        if self.draining:
            raise ApiError(
                503,
                "the server is shutting down; retry on another replica",
                type="server_error",
                code="shutting_down",
                retry_after_s=5.0,
            )
        limited = self.limiter.acquire(tenant)
        if limited is not None:
            self.events.info("tenant.limited", tenant=tenant, reason=limited.reason)
            raise ApiError(
                429,
                limited.message,
                type="rate_limit_error",
                code=f"{limited.reason}_limit",
                retry_after_s=limited.retry_after_s,
            )

    def release(self, tenant: str) -> None:
        """End one admitted request of ``tenant``."""
        self.limiter.release(tenant)

    def quota_window_s(self, tenant: str) -> float | None:
        """``tenant``'s quota window (bounds how long a quota refusal lasts)."""
        config = self.config.tenants.get(tenant)
        return None if config is None else config.quota.window_s

    def prepare(
        self,
        served: ServedModel,
        prompt: str,
        *,
        tenant: str,
        extension: Extension | None,
        max_tokens: int | None,
        temperature: float | None,
        top_p: float | None,
        stop: tuple[str, ...],
        seed: int | None,
        logprobs: bool,
        user: str | None,
    ) -> tuple[Request, float | None]:
        """The ``Request`` and deadline for one prompt, or a 400 naming the field."""
        model = served.config
        ext = extension or Extension()
        if max_tokens is not None and max_tokens > model.max_tokens_limit:
            raise ApiError(
                400,
                f"max_tokens must be <= {model.max_tokens_limit} for model {served.name!r}, "
                f"got {max_tokens}",
                param="max_tokens",
            )
        if (
            ext.max_budget is not None
            and not model.min_budget <= ext.max_budget <= model.max_budget
        ):
            raise ApiError(
                400,
                f"howhard.max_budget must be in [{model.min_budget}, {model.max_budget}] for "
                f"model {served.name!r}, got {ext.max_budget}",
                param="howhard.max_budget",
            )
        procedure = served.procedure.resolve(ext.procedure, ext.reference is not None)
        if gates_rounds(model) and procedure != model.procedure:
            raise ApiError(
                400,
                f"model {served.name!r} grants its {model.procedure!r} rounds from a stream "
                f"allocator and serves no other procedure, got {procedure!r}; drop "
                'howhard.procedure, or serve it from a model with rounds_gate = "none"',
                param="howhard.procedure",
            )
        if verifies(procedure) and served.procedure.needs_reference and ext.reference is None:
            raise ApiError(
                400,
                f"howhard.reference is required for procedure {procedure!r} (its verifier, "
                f"{model.verifier!r}, checks samples against it); send one, or use "
                "'self-consistency' or 'auto'",
                param="howhard.reference",
            )
        timeout = ext.timeout_s if ext.timeout_s is not None else model.request_timeout_s
        if timeout is not None and timeout > self.config.server.max_timeout_s:
            raise ApiError(
                400,
                f"howhard.timeout_s must be <= {self.config.server.max_timeout_s}, got {timeout}",
                param="howhard.timeout_s",
            )
        if not prompt.strip():
            raise ApiError(400, "the prompt must contain some text", param="messages")
        wants_logprobs = logprobs or (verifies(procedure) and model.verifier == "logprob")
        try:
            params = GenerationParams(
                max_tokens=max_tokens if max_tokens is not None else model.max_tokens,
                temperature=temperature if temperature is not None else model.temperature,
                top_p=top_p if top_p is not None else 1.0,
                stop=stop,
                logprobs=wants_logprobs,
                seed=seed,
            )
        except InvalidRequest as exc:
            message = str(exc)
            raise ApiError(400, message, param=message.split(" ", 1)[0]) from exc
        metadata: dict[str, Any] = {"procedure": procedure}
        if ext.max_budget is not None:
            metadata["max_budget"] = ext.max_budget
        if ext.priority != 1.0:
            metadata["priority"] = ext.priority
        if user is not None:
            metadata["user"] = user
        request = Request(
            prompt=prompt,
            tenant=tenant,
            reference=ext.reference,
            params=params,
            metadata=metadata,
        )
        return request, timeout

    async def serve(
        self, served: ServedModel, request: Request, deadline_s: float | None
    ) -> Served:
        """Submit one prepared request (fails fast with 503 when the queue is full)."""
        started = time.monotonic()
        try:
            result = await served.scheduler.submit_nowait(request, timeout_s=deadline_s)
        finally:
            predicted = served.policy.take_prediction(request.id)
        procedure = str(request.metadata["procedure"])
        verified = None
        if (
            verifies(procedure)
            and served.procedure.needs_reference
            and result.candidates
            and request.reference is not None
        ):
            verified = sum(c.score for c in result.candidates) / len(result.candidates)
        self.events.debug(
            "request.served",
            model=served.name,
            tenant=request.tenant,
            request_id=request.id,
            procedure=procedure,
            rounds=rounds_of(result),
            predicted=predicted,
            verified=verified,
            budget=result.budget,
            seconds=round(time.monotonic() - started, 6),
        )
        return Served(result, procedure, predicted)
