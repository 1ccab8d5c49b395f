"""Lua scripts on a Redis-protocol server, with concurrent calls gathered into pipelines.

One round trip per operation would cap a process at what one connection's latency allows, and
spend most of its CPU on per-command overhead. :class:`ScriptPipeline` instead queues each call
and lets a few flusher tasks send whatever has gathered in one pipeline (no transaction: each
script is atomic on its own). A lone call still goes out at once; under load, calls ride
together. Scripts are sent by SHA (``EVALSHA``) and loaded again when the server has lost them
(a restart), which is safe because every script the ledger runs is idempotent.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["ScriptPipeline"]


@dataclass(slots=True, eq=False)
class _Call:
    script: str
    keys: Sequence[str]
    args: Sequence[str | int]
    done: anyio.Event = field(default_factory=anyio.Event)
    result: Any = None
    error: BaseException | None = None


def _closed() -> Exception:
    from redis.exceptions import ConnectionError

    return ConnectionError("the pipeline closed before the server answered")


class ScriptPipeline:
    """Runs named Lua scripts on ``client``, pipelining concurrent calls (see the module doc).

    ``run()`` is the flushers' loop: start it in the owner's task group; ``call`` waits for it.
    """

    def __init__(
        self,
        client: Redis,
        scripts: Mapping[str, str],
        *,
        flushers: int = 2,
        max_batch: int = 256,
    ) -> None:
        self._client = client
        self._sources = dict(scripts)
        self._shas = {name: hashlib.sha1(s.encode()).hexdigest() for name, s in scripts.items()}
        self._flushers = flushers
        self._max_batch = max_batch
        # Unbounded on purpose: each caller waits for its own answer, so what is queued is at
        # most one call per waiting caller.
        self._send, self._receive = anyio.create_memory_object_stream[_Call](math.inf)

    async def call(self, script: str, keys: Sequence[str], args: Sequence[str | int]) -> Any:
        """Run ``script`` with ``keys`` and ``args``; returns its reply or raises the client's
        error (``redis.exceptions.ConnectionError`` when the server cannot be reached)."""
        call = _Call(script, keys, args)
        self._send.send_nowait(call)
        await call.done.wait()
        if call.error is not None:
            raise call.error
        return call.result

    async def run(self) -> None:
        """The flushers: each takes what has gathered and sends it as one pipeline.

        Runs until cancelled; the queue closes with it.
        """
        with self._send, self._receive:
            async with anyio.create_task_group() as tg:
                for _ in range(self._flushers):
                    tg.start_soon(self._flush, self._receive.clone())

    async def _flush(self, receive: MemoryObjectReceiveStream[_Call]) -> None:
        async with receive:
            async for first in receive:
                batch = [first]
                while len(batch) < self._max_batch:
                    try:
                        batch.append(receive.receive_nowait())
                    except anyio.WouldBlock:
                        break
                answered = False
                try:
                    await self._execute(batch)
                    answered = True
                except Exception as exc:
                    answered = True
                    for call in batch:
                        call.error = exc
                finally:
                    for call in batch:
                        if (
                            not answered
                        ):  # cancelled mid-flight: the server may or may not have run it
                            call.error = _closed()
                        call.done.set()

    async def _execute(self, batch: list[_Call]) -> None:
        from redis.exceptions import NoScriptError

        results = await self._pipeline(batch)
        lost = {
            c.script for c, r in zip(batch, results, strict=True) if isinstance(r, NoScriptError)
        }
        if lost:
            # The server restarted (or flushed its scripts): load them and run those calls again.
            for name in lost:
                await self._client.script_load(self._sources[name])
            again = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
            for i, result in zip(
                again, await self._pipeline([batch[i] for i in again]), strict=True
            ):
                results[i] = result
        for call, result in zip(batch, results, strict=True):
            if isinstance(result, Exception):
                call.error = result
            else:
                call.result = result

    async def _pipeline(self, batch: list[_Call]) -> list[Any]:
        async with self._client.pipeline(transaction=False) as pipe:
            for call in batch:
                pipe.evalsha(self._shas[call.script], len(call.keys), *call.keys, *call.args)
            return await pipe.execute(raise_on_error=False)
