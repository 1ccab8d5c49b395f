"""Small in-process OpenAI-compatible ASGI apps that reproduce real servers' deviations.

They are stand-ins, named for the behaviour they reproduce, used to test OpenAIBackend's
handling of servers that ignore ``n``, under-report usage or fail; the real servers (vLLM,
llama.cpp) are exercised in tests/integration.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

WORDS = ["The", " answer", " is", " 5", "."]


@dataclass
class ScriptedOpenAIServer:
    """An OpenAI-compatible app whose quirks are switched on by its fields."""

    honours_n: bool = True
    """False: return one choice whatever ``n`` asks (like llama-cpp-python's server)."""
    usage_counts_one_choice: bool = False
    """True: usage.completion_tokens covers the first choice only (like llama.cpp's server)."""
    returns_logprobs: bool = True
    """False: never return logprobs, even when asked."""
    failure: tuple[int, dict[str, str]] | None = None
    """Answer every call with this HTTP status and headers."""
    requests: list[dict[str, Any]] = field(default_factory=list)
    _counter: itertools.count[int] = field(default_factory=itertools.count)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/completions", self._completions, methods=["POST"]),
                Route("/v1/embeddings", self._embeddings, methods=["POST"]),
            ]
        )

    async def _body(self, request: Request) -> dict[str, Any]:
        body: dict[str, Any] = await request.json()
        self.requests.append(body)
        return body

    def _error(self) -> JSONResponse | None:
        if self.failure is None:
            return None
        status, headers = self.failure
        error = {"error": {"message": f"scripted failure {status}", "type": "x", "code": status}}
        return JSONResponse(error, status_code=status, headers=headers)

    def _samples(self, body: dict[str, Any]) -> list[list[str]]:
        n = int(body.get("n") or 1) if self.honours_n else 1
        length = min(int(body.get("max_tokens") or 16), len(WORDS))
        # Sample k has k+1 tokens (capped), so per-choice counts differ and can be checked.
        return [WORDS[: min(next(self._counter) % length + 1, length)] for _ in range(n)]

    def _usage(self, prompt: str, samples: list[list[str]]) -> dict[str, int]:
        counts = [len(s) for s in samples]
        completion = counts[0] if self.usage_counts_one_choice else sum(counts)
        prompt_tokens = len(prompt.split())
        return {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": prompt_tokens + completion,
        }

    async def _chat(self, request: Request) -> JSONResponse:
        body = await self._body(request)
        if (error := self._error()) is not None:
            return error
        samples = self._samples(body)
        logprobs = bool(body.get("logprobs")) and self.returns_logprobs
        choices = [
            {
                "index": i,
                "message": {"role": "assistant", "content": "".join(tokens)},
                "finish_reason": "stop" if len(tokens) < body.get("max_tokens", 16) else "length",
                "logprobs": {
                    "content": [
                        {"token": t, "logprob": -0.5, "bytes": None, "top_logprobs": []}
                        for t in tokens
                    ]
                }
                if logprobs
                else None,
            }
            for i, tokens in enumerate(samples)
        ]
        prompt = " ".join(m["content"] for m in body["messages"])
        return JSONResponse(
            {
                "id": "chatcmpl-scripted",
                "object": "chat.completion",
                "created": 0,
                "model": body["model"],
                "choices": choices,
                "usage": self._usage(prompt, samples),
            }
        )

    async def _completions(self, request: Request) -> JSONResponse:
        body = await self._body(request)
        if (error := self._error()) is not None:
            return error
        samples = self._samples(body)
        logprobs = body.get("logprobs") is not None and self.returns_logprobs
        choices = [
            {
                "index": i,
                "text": "".join(tokens),
                "finish_reason": "stop",
                "logprobs": {
                    "tokens": tokens,
                    "token_logprobs": [-0.25] * len(tokens),
                    "top_logprobs": None,
                    "text_offset": [0] * len(tokens),
                }
                if logprobs
                else None,
            }
            for i, tokens in enumerate(samples)
        ]
        return JSONResponse(
            {
                "id": "cmpl-scripted",
                "object": "text_completion",
                "created": 0,
                "model": body["model"],
                "choices": choices,
                "usage": self._usage(body["prompt"], samples),
            }
        )

    async def _embeddings(self, request: Request) -> JSONResponse:
        body = await self._body(request)
        if (error := self._error()) is not None:
            return error
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = [
            {"object": "embedding", "index": i, "embedding": [float(len(text)), float(i), 1.0]}
            for i, text in enumerate(inputs)
        ]
        data.reverse()  # servers may return rows out of order; index is what counts
        return JSONResponse(
            {
                "object": "list",
                "data": data,
                "model": body["model"],
                "usage": {"prompt_tokens": 1, "total_tokens": 1},
            }
        )


def ignores_n_server() -> ScriptedOpenAIServer:
    """A server that silently ignores ``n`` and returns one choice per call."""
    return ScriptedOpenAIServer(honours_n=False)
