"""The OpenAI wire format the gateway speaks: request bodies (validated) and response bodies.

Requests follow OpenAI's chat/completions and completions APIs; fields the gateway does not use
(``presence_penalty``, ``tools`` …) are accepted and ignored, as most OpenAI-compatible servers
do, so any OpenAI client works unchanged. A request may carry the ``howhard`` extension object
(procedure, max budget, reference, priority, deadline); every response carries one back (budget,
samples and tokens spent, predicted success, procedure, rounds, why it stopped).

The backends take one prompt per request. A conversation of one user message is sent as that
message's text (what the difficulty probe was trained on); longer conversations are sent as a
transcript (``System: …``, ``User: …``, ``Assistant: …``, one turn per paragraph).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from howhard.serve.errors import ApiError
from howhard.types import Candidate, Result

__all__ = [
    "ChatCompletionRequest",
    "ChatMessage",
    "CompletionRequest",
    "Extension",
    "chat_chunks",
    "chat_response",
    "completion_chunks",
    "completion_response",
    "extension_of",
    "parse_request",
    "render_messages",
]

Procedure = Literal[
    "auto",
    "best-of-k",
    "self-consistency",
    "sequential-best-of-k",
    "adaptive-self-consistency",
]


class Extension(BaseModel):
    """The request's ``howhard`` object: how hard to try, and what counts as right."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    procedure: Procedure | None = Field(
        default=None, description="Overrides the model's procedure for this request."
    )
    max_budget: int | None = Field(
        default=None, ge=0, description="Most samples this request may get (≤ the model's)."
    )
    reference: str | None = Field(
        default=None,
        min_length=1,
        description="The expected answer: enables best-of-k with the verifier (never shown to "
        "the model).",
    )
    priority: float = Field(
        default=1.0,
        gt=0.0,
        le=1000.0,
        allow_inf_nan=False,
        description="Weight of this request's predicted gains when a batch's budget is split "
        "(2 = each extra sample counts twice as much as another request's).",
    )
    timeout_s: float | None = Field(
        default=None, gt=0.0, allow_inf_nan=False, description="Deadline from arrival (504 after)."
    )


class TextPart(BaseModel):
    """A text part of a message's content list."""

    model_config = ConfigDict(extra="ignore")

    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    """One message of a conversation."""

    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None
    name: str | None = None

    def text(self) -> str:
        """The message's text (parts joined)."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class StreamOptions(BaseModel):
    """``stream_options``: whether the last chunk carries usage."""

    model_config = ConfigDict(extra="ignore")

    include_usage: bool = False


class _Common(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1)
    n: int = Field(default=1, ge=1, le=128)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0, allow_inf_nan=False)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    max_tokens: int | None = Field(default=None, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = None
    tools: list[Any] | None = Field(
        default=None, max_length=0, description="Not supported: the gateway calls no tools."
    )
    howhard: Extension | None = None

    def stops(self) -> tuple[str, ...]:
        """``stop`` as a tuple of strings."""
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)


class ChatCompletionRequest(_Common):
    """A ``POST /v1/chat/completions`` body."""

    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    logprobs: bool = False

    def token_cap(self) -> int | None:
        """``max_completion_tokens`` (the current name) or ``max_tokens``."""
        return (
            self.max_completion_tokens
            if self.max_completion_tokens is not None
            else self.max_tokens
        )

    def wants_logprobs(self) -> bool:
        """Whether per-token logprobs were asked for."""
        return self.logprobs


class CompletionRequest(_Common):
    """A ``POST /v1/completions`` body (one prompt, or a list answered as separate requests)."""

    prompt: str | list[str]
    logprobs: int | None = Field(default=None, ge=0, le=20)

    def token_cap(self) -> int | None:
        """``max_tokens``."""
        return self.max_tokens

    def wants_logprobs(self) -> bool:
        """Whether per-token logprobs were asked for."""
        return self.logprobs is not None

    def prompts(self) -> list[str]:
        """The prompts, as a list."""
        return [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)


def parse_request(
    kind: type[ChatCompletionRequest] | type[CompletionRequest], body: bytes
) -> ChatCompletionRequest | CompletionRequest:
    """Validate ``body``; a bad one raises a 400 ``ApiError`` naming the field."""
    try:
        return kind.model_validate_json(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(part) for part in first["loc"]) or None
        if first["type"] == "json_invalid":
            raise ApiError(400, f"the body is not valid JSON: {first['msg']}") from None
        shown = repr(first.get("input"))
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        where = f"{param}: " if param else ""
        raise ApiError(400, f"{where}{first['msg']} (got {shown})", param=param) from None


_ROLE_NAMES = {
    "system": "System",
    "developer": "System",
    "user": "User",
    "assistant": "Assistant",
    "tool": "Tool",
}


def render_messages(messages: list[ChatMessage]) -> str:
    """The one prompt a conversation is sent as (see the module docstring)."""
    if len(messages) == 1 and messages[0].role == "user":
        return messages[0].text()
    return "\n\n".join(f"{_ROLE_NAMES[m.role]}: {m.text()}" for m in messages)


def rounds_of(result: Result) -> int:
    """Rounds of sampling the procedure ran (one-shot procedures: 1; abstained: 0)."""
    rounds = result.metadata.get("rounds")
    if isinstance(rounds, int):
        return rounds
    return 0 if result.abstained else 1


def stop_reason(result: Result) -> str:
    """Why the procedure stopped spending on this request."""
    reason = result.metadata.get("stop_reason")
    if isinstance(reason, str):
        return reason
    if result.abstained:
        return "abstained"
    if result.metadata.get("requested_budget") is not None:
        return "quota_degraded"
    return "budget_spent"


def extension_of(result: Result, *, procedure: str, predicted: float | None) -> dict[str, Any]:
    """The response's ``howhard`` object."""
    chosen = result.chosen
    usage = result.usage
    out: dict[str, Any] = {
        "request_id": result.request_id,
        "tenant": result.tenant,
        "procedure": procedure,
        "budget": result.budget,
        "samples": len(result.candidates),
        "tokens": {
            "prompt": usage.prompt_tokens,
            "completion": usage.completion_tokens,
            "total": usage.total_tokens,
        },
        "cost": usage.cost,
        "predicted_success": predicted,
        "rounds": rounds_of(result),
        "stop_reason": stop_reason(result),
        "abstained": result.abstained,
        "score": None if chosen is None else chosen.score,
        "answer": result.answer,
        "latency_s": round(result.latency_s, 6),
    }
    requested = result.metadata.get("requested_budget")
    if requested is not None:
        out["requested_budget"] = requested
    return out


def ranked(result: Result, n: int) -> list[Candidate | None]:
    """The ``n`` choices to return: the chosen candidate first, then the best of the others.

    Fewer when fewer samples were drawn; ``[None]`` when the request abstained.
    """
    chosen = result.chosen
    if chosen is None:
        return [None]
    others = sorted(
        (c for c in result.candidates if c is not chosen), key=lambda c: -c.score
    )  # stable: ties keep sample order
    picked: list[Candidate | None] = [chosen, *others]
    return picked[:n]


def _usage(result: Result) -> dict[str, int]:
    # Everything the tenant was charged for: all samples, not only the returned ones.
    usage = result.usage
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


def _finish(candidate: Candidate | None) -> str:
    if candidate is None:
        return "stop"
    reason = candidate.completion.finish_reason
    return reason if reason in ("stop", "length") else "stop"


def _chat_logprobs(candidate: Candidate | None) -> dict[str, Any] | None:
    if candidate is None or candidate.completion.logprobs is None:
        return None
    # Backends report token logprobs without the token strings.
    return {
        "content": [
            {"token": "", "logprob": lp, "bytes": None, "top_logprobs": []}
            for lp in candidate.completion.logprobs
        ]
    }


def chat_response(
    result: Result, request: ChatCompletionRequest, extension: Mapping[str, Any]
) -> dict[str, Any]:
    """A ``chat.completion`` object."""
    choices = []
    for index, candidate in enumerate(ranked(result, request.n)):
        choices.append(
            {
                "index": index,
                "message": {
                    "role": "assistant",
                    "content": None if candidate is None else candidate.completion.text,
                },
                "logprobs": _chat_logprobs(candidate) if request.logprobs else None,
                "finish_reason": _finish(candidate),
            }
        )
    return {
        "id": f"chatcmpl-{result.request_id}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.model,
        "choices": choices,
        "usage": _usage(result),
        "howhard": dict(extension),
    }


def chat_chunks(
    result: Result, request: ChatCompletionRequest, extension: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """The ``chat.completion.chunk`` objects streaming the chosen answer (then ``[DONE]``)."""
    base = {
        "id": f"chatcmpl-{result.request_id}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": request.model,
    }
    chunks: list[dict[str, Any]] = []
    picked = ranked(result, request.n)
    for index, candidate in enumerate(picked):
        text = "" if candidate is None else candidate.completion.text
        chunks.append(
            {
                **base,
                "choices": [
                    {
                        "index": index,
                        "delta": {"role": "assistant", "content": ""},
                        "logprobs": None,
                        "finish_reason": None,
                    }
                ],
            }
        )
        chunks.append(
            {
                **base,
                "choices": [
                    {
                        "index": index,
                        "delta": {"content": text},
                        "logprobs": _chat_logprobs(candidate) if request.logprobs else None,
                        "finish_reason": None,
                    }
                ],
            }
        )
        chunks.append(
            {
                **base,
                "choices": [
                    {
                        "index": index,
                        "delta": {},
                        "logprobs": None,
                        "finish_reason": _finish(candidate),
                    }
                ],
            }
        )
    chunks[-1]["howhard"] = dict(extension)
    if request.stream_options is not None and request.stream_options.include_usage:
        chunks.append({**base, "choices": [], "usage": _usage(result)})
    return chunks


def _completion_logprobs(candidate: Candidate | None) -> dict[str, Any] | None:
    if candidate is None or candidate.completion.logprobs is None:
        return None
    values = list(candidate.completion.logprobs)
    return {
        "tokens": [""] * len(values),
        "token_logprobs": values,
        "top_logprobs": None,
        "text_offset": None,
    }


def completion_response(
    results: list[Result], request: CompletionRequest, extensions: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """A ``text_completion`` object (choices of prompt ``i`` come before those of ``i + 1``)."""
    choices: list[dict[str, Any]] = []
    prompt_tokens = completion_tokens = 0
    for result in results:
        for candidate in ranked(result, request.n):
            choices.append(
                {
                    "index": len(choices),
                    "text": "" if candidate is None else candidate.completion.text,
                    "logprobs": _completion_logprobs(candidate)
                    if request.wants_logprobs()
                    else None,
                    "finish_reason": _finish(candidate),
                }
            )
        prompt_tokens += result.usage.prompt_tokens
        completion_tokens += result.usage.completion_tokens
    first = results[0]
    return {
        "id": f"cmpl-{first.request_id}",
        "object": "text_completion",
        "created": int(time.time()),
        "model": request.model,
        "choices": choices,
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
        "howhard": dict(extensions[0]) if len(extensions) == 1 else [dict(e) for e in extensions],
    }


def completion_chunks(
    results: list[Result], request: CompletionRequest, extensions: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """The streamed form of ``completion_response``: one chunk per choice, then ``[DONE]``."""
    whole = completion_response(results, request, extensions)
    base = {k: whole[k] for k in ("id", "object", "created", "model")}
    chunks = [{**base, "choices": [choice]} for choice in whole["choices"]]
    chunks[-1]["howhard"] = whole["howhard"]
    if request.stream_options is not None and request.stream_options.include_usage:
        chunks.append({**base, "choices": [], "usage": whole["usage"]})
    return chunks
