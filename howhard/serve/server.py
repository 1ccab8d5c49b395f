"""Running the gateway under uvicorn, with a graceful SIGTERM.

On SIGTERM (or Ctrl-C) uvicorn stops accepting connections and waits for the requests in
flight; the gateway at the same moment turns ``/readyz`` to 503, refuses new requests on open
connections with 503, and after ``server.drain_grace_s`` cancels whatever still runs (refunded,
answered 503). Then the gateway closes: schedulers, then backends (a vLLM engine's processes with
them), and ``serve`` returns the signal that stopped it.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

from howhard.serve.config import ServeConfig

__all__ = ["serve"]


def serve(config: ServeConfig, *, on_ready: Callable[[str], None] | None = None) -> int | None:
    """Serve ``config`` until SIGTERM or SIGINT; return that signal's number.

    Blocking (runs its own event loop). The socket listens at once (``/healthz`` answers, and
    ``/readyz`` says 503 until the models are loaded); ``on_ready(url)`` is called once they are.
    """
    import uvicorn

    from howhard.serve.app import create_app
    from howhard.serve.gateway import Gateway
    from howhard.serve.tracing import from_environment

    tracing = from_environment()
    gateway = Gateway(config, observers=[] if tracing is None else [tracing])
    app = create_app(config, gateway=gateway)
    received: list[int] = []

    class _Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            # uvicorn re-raises the signal after its shutdown; here the gateway still has to
            # close (schedulers, engines) after uvicorn, so the signal is reported instead.
            previous = {
                s: signal.signal(s, self.handle_exit) for s in (signal.SIGINT, signal.SIGTERM)
            }
            try:
                yield
            finally:
                for s, handler in previous.items():
                    signal.signal(s, handler)

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            received.append(sig)
            # A signal handler runs on the loop's thread between two steps of the loop.
            asyncio.get_event_loop().call_soon_threadsafe(gateway.begin_drain)
            super().handle_exit(sig, frame)

    uv_config = uvicorn.Config(
        app,
        host=config.server.host,
        port=config.server.port,
        lifespan="off",  # the gateway's lifetime is main()'s block, around uvicorn's
        log_level=config.server.log_level,
        access_log=config.server.log_level == "debug",
        # A backstop: the gateway cancels (and answers) its own requests first.
        timeout_graceful_shutdown=int(config.server.drain_grace_s) + 10,
    )
    server = _Server(uv_config)

    async def main() -> None:
        # uvicorn listens first, answering /healthz (and /readyz with 503 "starting") while the
        # models load, so an orchestrator can tell a loading gateway from a dead one.
        serving = asyncio.ensure_future(server.serve())
        try:
            await _started(server, serving)
            async with gateway:
                if on_ready is not None:
                    host, port = server.servers[0].sockets[0].getsockname()[:2]
                    on_ready(f"http://{host}:{port}")
                await serving
        finally:
            if not serving.done():  # the gateway failed to start: stop listening too
                server.should_exit = True
                await serving

    # uvloop when installed (uvicorn's choice), else asyncio's own loop.
    with asyncio.Runner(loop_factory=uv_config.get_loop_factory()) as runner:
        runner.run(main())
    return received[0] if received else None


async def _started(server: Any, serving: asyncio.Future[None]) -> None:
    """Wait until uvicorn listens (or failed to, e.g. the port is taken: re-raised here)."""
    # uvicorn exposes readiness only as a flag, not an event to wait on.
    while not server.started and not serving.done():  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    if serving.done():
        serving.result()
