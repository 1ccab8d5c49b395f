"""Lua scripts on a Redis-protocol server, with concurrent calls gathered into pipelines.

One round trip per operation would cap a process at what one connection's latency allows, and
spend most of its CPU on per-command overhead. :class:`ScriptPipeline` instead queues each call
and lets a few flusher tasks, each owning one connection, write whatever has gathered at once
and read the replies in order (no transaction: each script is atomic on its own). A lone call
still goes out at once; under load, calls ride together. Scripts are sent by SHA (``EVALSHA``)
and loaded again when the server has lost them (a restart). A batch that meets a connection
error is sent again, up to ``retries`` times, which is safe because every script the ledger
runs is idempotent.
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
    from redis.asyncio.connection import AbstractConnection

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
    """Runs named Lua scripts on ``client``'s server, pipelining concurrent calls (module doc).

    ``run()`` is the flushers' loop: start it in the owner's task group; ``call`` waits for it.
    """

    def __init__(
        self,
        client: Redis,
        scripts: Mapping[str, str],
        *,
        flushers: int = 2,
        retries: int = 2,
        max_batch: int = 256,
    ) -> None:
        self._client = client
        self._sources = dict(scripts)
        self._shas = {name: hashlib.sha1(s.encode()).hexdigest() for name, s in scripts.items()}
        self._flushers = flushers
        self._retries = retries
        self._max_batch = max_batch
        # Unbounded on purpose: each caller waits for its own answer, so what is queued is at
        # most one call per waiting caller.
        self._send, self._receive = anyio.create_memory_object_stream[_Call](math.inf)
        self.calls = 0
        """Script calls sent so far."""
        self.batches = 0
        """Round trips that carried them (``calls / batches`` is the mean batch size)."""

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
        pool = self._client.connection_pool
        connection: AbstractConnection | None = None
        with receive:
            try:
                async for first in receive:
                    batch = [first]
                    while len(batch) < self._max_batch:
                        try:
                            batch.append(receive.receive_nowait())
                        except anyio.WouldBlock:
                            break
                    if connection is None:  # taken on first use, kept until the end
                        connection = await pool.get_connection()  # type: ignore[no-untyped-call]  # redis leaves it untyped
                    await self._answer(connection, batch)
            finally:
                if connection is not None:
                    with anyio.CancelScope(shield=True):
                        await pool.release(connection)

    async def _answer(self, connection: AbstractConnection, batch: list[_Call]) -> None:
        """Run ``batch`` and wake its callers, each with its reply or error."""
        answered = False
        try:
            await self._execute(connection, batch)
            answered = True
        except Exception as exc:
            answered = True
            for call in batch:
                call.error = exc
        finally:
            for call in batch:
                if not answered:  # cancelled mid-flight: the server may or may not have run it
                    call.error = _closed()
                call.done.set()

    async def _execute(self, connection: AbstractConnection, batch: list[_Call]) -> None:
        from redis.exceptions import NoScriptError

        results = await self._send_with_retries(connection, [self._command(c) for c in batch])
        again = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
        if again:
            # The server restarted (or flushed its scripts): load them and run those calls again.
            lost = sorted({batch[i].script for i in again})
            loads = [("SCRIPT", "LOAD", self._sources[name]) for name in lost]
            for reply in await self._send_with_retries(connection, loads):
                if isinstance(reply, Exception):
                    raise reply
            commands = [self._command(batch[i]) for i in again]
            rerun = await self._send_with_retries(connection, commands)
            for i, result in zip(again, rerun, strict=True):
                results[i] = result
        for call, result in zip(batch, results, strict=True):
            if isinstance(result, Exception):
                call.error = result
            else:
                call.result = result

    def _command(self, call: _Call) -> tuple[Any, ...]:
        return ("EVALSHA", self._shas[call.script], len(call.keys), *call.keys, *call.args)

    async def _send_with_retries(
        self, connection: AbstractConnection, commands: list[tuple[Any, ...]]
    ) -> list[Any]:
        from redis.exceptions import ConnectionError, TimeoutError

        # A connection kept open between batches may have been closed by the server meanwhile
        # (a restart): finding that out is not an outage, so it earns one more attempt.
        stale = connection.is_connected
        attempt = 0
        while True:
            try:
                return await self._round_trip(connection, commands)
            except (ConnectionError, TimeoutError, OSError) as exc:
                if stale and isinstance(exc, ConnectionError) and not isinstance(exc, TimeoutError):
                    stale = False
                    continue
                stale = False
                if attempt == self._retries:
                    raise
                await anyio.sleep(min(0.1, 0.01 * 2**attempt))
                attempt += 1

    async def _round_trip(
        self, connection: AbstractConnection, commands: list[tuple[Any, ...]]
    ) -> list[Any]:
        """Write the commands at once, then read every reply in order (errors as values)."""
        from redis.exceptions import ResponseError

        self.batches += 1
        self.calls += len(commands)

        try:
            # send_packed_command connects first when the connection is down.
            await connection.send_packed_command(
                connection.pack_commands(commands), check_health=False
            )
            results: list[Any] = []
            for _ in commands:
                try:
                    results.append(await connection.read_response())
                except ResponseError as exc:  # one command's error; its reply was read
                    results.append(exc)
            return results
        except BaseException:
            # Replies may be left unread: the connection cannot be trusted for the next batch.
            with anyio.CancelScope(shield=True):
                await connection.disconnect()
            raise
