"""A hostile OpenAI-compatible HTTP server on 127.0.0.1, speaking raw HTTP over a real socket.

Raw sockets, not an ASGI app, so it can do what a broken server or network does: drip a body a
byte at a time, reset the connection mid-body, send a 200 that is not JSON. The behaviour is
picked per request by the ``model`` field (see :data:`MODES`).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from anyio.abc import SocketStream

MODES = {
    "ok": "a valid reply: n choices, usage counted",
    "rate_limited_for_a_day": "429 with Retry-After: 86400",
    "unavailable": "503",
    "not_json": "200 whose body is HTML",
    "drip": "200 whose body arrives one byte every 50 ms, forever",
    "reset": "200 whose connection is reset mid-body",
    "short": "one choice whatever n asks",
    "long": "n + 5 choices",
    "no_usage": "no usage object (and no logprobs)",
    "absurd_usage": "usage of 10**12 prompt and completion tokens",
    "many_logprobs": "1,000 logprob entries per choice",
    "str_usage": "completion_tokens as a string",
}


def _reply(body: dict[str, Any]) -> dict[str, Any]:
    mode = body.get("model", "ok")
    n = int(body.get("n") or 1)
    count = {"short": 1, "long": n + 5}.get(mode, n)
    entries = 1000 if mode == "many_logprobs" else 4
    logprobs = None
    if body.get("logprobs") and mode != "no_usage":
        logprobs = {"content": [{"token": "x", "logprob": -0.5, "top_logprobs": []}] * entries}
    choices = [
        {
            "index": i,
            "message": {"role": "assistant", "content": "The answer is 4."},
            "finish_reason": "stop",
            "logprobs": logprobs,
        }
        for i in range(count)
    ]
    reply: dict[str, Any] = {
        "id": "x",
        "object": "chat.completion",
        "created": 0,
        "model": mode,
        "choices": choices,
    }
    if mode == "absurd_usage":
        reply["usage"] = {"prompt_tokens": 10**12, "completion_tokens": 10**12, "total_tokens": 0}
    elif mode == "str_usage":
        reply["usage"] = {"prompt_tokens": 3, "completion_tokens": "abc", "total_tokens": 3}
    elif mode != "no_usage":
        reply["usage"] = {"prompt_tokens": 3, "completion_tokens": 4 * count, "total_tokens": 0}
    return reply


async def _read_request(stream: SocketStream) -> dict[str, Any]:
    data = b""
    while b"\r\n\r\n" not in data:
        data += await stream.receive()
    head, _, rest = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(rest) < length:
        rest += await stream.receive()
    parsed: dict[str, Any] = json.loads(rest[:length] or b"{}")
    return parsed


def _response(status: str, body: bytes, headers: dict[str, str] | None = None) -> bytes:
    lines = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _serve(stream: SocketStream) -> None:
    async with stream:
        try:
            body = await _read_request(stream)
        except (anyio.EndOfStream, anyio.BrokenResourceError, ValueError):
            return
        mode = body.get("model", "ok")
        json_type = {"Content-Type": "application/json"}
        error = json.dumps({"error": {"message": mode, "type": "x", "code": 0}}).encode()
        if mode == "rate_limited_for_a_day":
            await stream.send(
                _response("429 Too Many Requests", error, {**json_type, "Retry-After": "86400"})
            )
        elif mode == "unavailable":
            await stream.send(_response("503 Service Unavailable", error, json_type))
        elif mode == "not_json":
            await stream.send(_response("200 OK", b"<html>oops</html>", json_type))
        elif mode == "drip":
            payload = json.dumps(_reply(body)).encode()
            head = _response("200 OK", b"", json_type).replace(
                b"Content-Length: 0", f"Content-Length: {len(payload)}".encode()
            )
            await stream.send(head)
            for byte in payload:
                await stream.send(bytes([byte]))
                await anyio.sleep(0.05)
        elif mode == "reset":
            payload = json.dumps(_reply(body)).encode()
            full = _response("200 OK", payload, json_type)
            await stream.send(full[: len(full) - len(payload) // 2])
            # An abortive close (RST), as a crashed server or a middlebox does.
            raw = stream.extra(anyio.abc.SocketAttribute.raw_socket)
            import socket
            import struct

            raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        else:
            await stream.send(_response("200 OK", json.dumps(_reply(body)).encode(), json_type))


@asynccontextmanager
async def hostile_server() -> AsyncIterator[str]:
    """Serve on a free port of 127.0.0.1; yields the base URL (``http://127.0.0.1:PORT/v1``)."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as group:
        group.start_soon(listener.serve, _serve)
        try:
            yield f"http://127.0.0.1:{port}/v1"
        finally:
            group.cancel_scope.cancel()
