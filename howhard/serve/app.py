"""The ASGI application: OpenAI's routes over a ``Gateway``, as a Starlette app.

Routes: ``POST /v1/chat/completions``, ``POST /v1/completions``, ``GET /v1/models`` (all three
need ``Authorization: Bearer <key>`` unless no tenants are configured), ``GET /healthz`` (the
process is up), ``GET /readyz`` (models loaded and not draining; 503 otherwise) and
``GET /metrics`` (Prometheus). Each request is authenticated, size-checked, validated, admitted
against its tenant's limits and submitted; while it waits, a client that disconnects cancels it,
which refunds everything it had reserved and not yet generated.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import anyio
from starlette.applications import Starlette
from starlette.requests import Request as HttpRequest
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from howhard.errors import HowhardError
from howhard.serve.config import ServeConfig
from howhard.serve.errors import ApiError, from_exception
from howhard.serve.gateway import Gateway, Served, ServedModel
from howhard.serve.metrics import CONTENT_TYPE
from howhard.serve.protocol import (
    ChatCompletionRequest,
    CompletionRequest,
    chat_chunks,
    chat_response,
    completion_chunks,
    completion_response,
    extension_of,
    parse_request,
    render_messages,
)

__all__ = ["GatewayApp", "create_app"]

T = TypeVar("T")

_JSON = "application/json"


_STARTING = ApiError(
    503,
    "the server is still loading its models; retry shortly",
    type="server_error",
    code="starting",
    retry_after_s=5.0,
)


class _Disconnected(Exception):
    """The client went away before its answer was ready."""


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body).encode(), status_code=status, media_type=_JSON)


def _error(error: ApiError) -> Response:
    return Response(
        error.body(), status_code=error.status, media_type=_JSON, headers=error.headers()
    )


async def _read_body(request: HttpRequest, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    too_large = ApiError(
        413,
        f"the request body exceeds server.max_body_bytes = {limit} bytes; send less or raise "
        "the limit",
        code="body_too_large",
    )
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


async def _until_disconnect(request: HttpRequest, work: Callable[[], Awaitable[T]]) -> T:
    """Run ``work``; if the client disconnects first, cancel it and raise ``_Disconnected``.

    asyncio-native (uvicorn runs the app on asyncio): a watcher task waits for the client's
    ``http.disconnect`` and cancels this task, which is cheaper per request than a task group.
    The watcher is cancelled and awaited before this returns, so no task outlives the request.
    """
    task = asyncio.current_task()
    assert task is not None  # called from a request's task
    receive = request.receive
    disconnected = False

    async def watch() -> None:
        nonlocal disconnected
        while (await receive())["type"] != "http.disconnect":
            pass
        disconnected = True
        task.cancel()

    watcher = asyncio.ensure_future(watch())
    try:
        return await work()
    except asyncio.CancelledError:
        # Our own cancellation (the client left) becomes _Disconnected; any other propagates.
        if disconnected and task.uncancel() == 0:
            raise _Disconnected from None
        raise
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher


def _sse(chunks: list[dict[str, Any]]) -> StreamingResponse:
    async def events() -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield b"data: " + json.dumps(chunk).encode() + b"\n\n"
        yield b"data: [DONE]\n\n"

    return StreamingResponse(
        events(), media_type="text/event-stream", headers={"cache-control": "no-cache"}
    )


def create_app(config: ServeConfig, *, gateway: Gateway | None = None) -> GatewayApp:
    """The ASGI app serving ``config`` (Starlette); its lifespan starts and stops the ``Gateway``.

    Pass ``gateway`` to share one you manage yourself (its lifespan is then yours too).
    """
    owned = gateway is None
    gw = gateway if gateway is not None else Gateway(config)
    limit = config.server.max_body_bytes
    events = gw.events

    def record(route: str, status: int, started: float) -> None:
        events.debug("http.request", route=route, status=status, seconds=time.monotonic() - started)

    async def generate(
        http: HttpRequest,
        route: str,
        kind: type[ChatCompletionRequest] | type[CompletionRequest],
    ) -> Response:
        started = time.monotonic()
        tenant: str | None = None
        served: ServedModel | None = None
        admitted = False
        try:
            if not gw.ready and not gw.draining:
                raise _STARTING
            tenant = gw.authenticate(http.headers.get("authorization"))
            body = await _read_body(http, limit)
            parsed = parse_request(kind, body)
            served = gw.model(parsed.model)
            gw.admit(tenant)
            admitted = True
            if isinstance(parsed, ChatCompletionRequest):
                prompts = [render_messages(parsed.messages)]
            else:
                prompts = parsed.prompts()
                if not prompts:
                    raise ApiError(400, "prompt must not be an empty list", param="prompt")
            prepared = [
                gw.prepare(
                    served,
                    prompt,
                    tenant=tenant,
                    extension=parsed.howhard,
                    max_tokens=parsed.token_cap(),
                    temperature=parsed.temperature,
                    top_p=parsed.top_p,
                    stop=parsed.stops(),
                    seed=parsed.seed,
                    logprobs=parsed.wants_logprobs(),
                    user=parsed.user,
                )
                for prompt in prompts
            ]
            model = served

            async def work() -> list[Served]:
                if len(prepared) == 1:
                    request, deadline_s = prepared[0]
                    return [await gw.serve(model, request, deadline_s)]
                results: list[Served | None] = [None] * len(prepared)

                async def one(i: int) -> None:
                    request, deadline_s = prepared[i]
                    results[i] = await gw.serve(model, request, deadline_s)

                async with anyio.create_task_group() as tg:
                    for i in range(len(prepared)):
                        tg.start_soon(one, i)
                return [r for r in results if r is not None]

            outcomes = await _until_disconnect(http, work)
            extensions = [
                extension_of(o.result, procedure=o.procedure, predicted=o.predicted)
                for o in outcomes
            ]
            if isinstance(parsed, ChatCompletionRequest):
                if parsed.stream:
                    response: Response = _sse(
                        chat_chunks(outcomes[0].result, parsed, extensions[0])
                    )
                else:
                    response = _json(chat_response(outcomes[0].result, parsed, extensions[0]))
            else:
                results = [o.result for o in outcomes]
                if parsed.stream:
                    response = _sse(completion_chunks(results, parsed, extensions))
                else:
                    response = _json(completion_response(results, parsed, extensions))
        except _Disconnected:
            assert served is not None and tenant is not None
            events.info("client.disconnected", model=served.name, tenant=tenant)
            # Nobody reads this; 499 (nginx's "client closed request") marks it in the metrics.
            record(route, 499, started)
            return Response(status_code=499)
        except Exception as exc:
            # Several prompts of one completions request fail as a group: answer the first.
            leaf = _first_leaf(exc) if isinstance(exc, BaseExceptionGroup) else exc
            if not isinstance(leaf, ApiError | HowhardError):
                events.error(
                    "http.failed",
                    route=route,
                    error=f"{type(leaf).__name__}: {leaf}",
                    exc_info=leaf,
                )
                leaf = ApiError(500, "internal server error", type="server_error")
            window = gw.quota_window_s(tenant) if tenant is not None else None
            error = from_exception(leaf, quota_window_s=window)
            record(route, error.status, started)
            return _error(error)
        finally:
            if admitted and tenant is not None:
                gw.release(tenant)
        record(route, 200, started)
        return response

    async def chat_completions(http: HttpRequest) -> Response:
        return await generate(http, "/v1/chat/completions", ChatCompletionRequest)

    async def completions(http: HttpRequest) -> Response:
        return await generate(http, "/v1/completions", CompletionRequest)

    async def models(http: HttpRequest) -> Response:
        try:
            if not gw.ready and not gw.draining:
                raise _STARTING
            gw.authenticate(http.headers.get("authorization"))
        except ApiError as error:
            return _error(error)
        created = int(time.time())
        data = [
            {"id": name, "object": "model", "created": created, "owned_by": "howhard"}
            for name in sorted(gw.models)
        ]
        return _json({"object": "list", "data": data})

    async def healthz(http: HttpRequest) -> Response:
        return _json({"status": "ok"})

    async def readyz(http: HttpRequest) -> Response:
        if gw.ready and not gw.draining and gw.live:
            return _json({"status": "ready", "models": sorted(gw.models)})
        status = "draining" if gw.draining else "starting"
        return Response(
            json.dumps({"status": status}).encode(),
            status_code=503,
            media_type=_JSON,
            headers={"retry-after": "5"},
        )

    async def metrics(http: HttpRequest) -> Response:
        await gw.refresh_spend()
        return Response(gw.metrics.render(), media_type=CONTENT_TYPE)

    async def not_found(http: HttpRequest, exc: Exception) -> Response:
        return _error(ApiError(404, f"no route {http.method} {http.url.path}", code="not_found"))

    async def method_not_allowed(http: HttpRequest, exc: Exception) -> Response:
        return _error(
            ApiError(
                405, f"{http.method} is not allowed on {http.url.path}", code="method_not_allowed"
            )
        )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if owned:
            async with gw:
                yield
        else:
            yield

    app = Starlette(
        routes=[
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/v1/completions", completions, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
        ],
        exception_handlers={404: not_found, 405: method_not_allowed},
        lifespan=lifespan,
    )
    hot = {"/v1/chat/completions": chat_completions, "/v1/completions": completions}
    return GatewayApp(app, hot, gw)


class GatewayApp:
    """The ASGI entry point: generation routes go straight to their handlers, the rest (and the
    lifespan) to the Starlette app.

    The two generation routes catch their own errors, and at thousands of requests/s
    Starlette's middleware and router are a real share of the CPU, so they skip them.
    """

    def __init__(
        self,
        app: Starlette,
        hot: Mapping[str, Callable[[HttpRequest], Awaitable[Response]]],
        gateway: Gateway,
    ) -> None:
        self.app = app
        self.gateway = gateway
        self._hot = hot

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            endpoint = self._hot.get(scope["path"])
            if endpoint is not None:
                response = await endpoint(HttpRequest(scope, receive, send))
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _first_leaf(group: BaseExceptionGroup[Any]) -> BaseException:
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc
