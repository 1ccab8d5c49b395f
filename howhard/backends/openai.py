"""Any OpenAI-compatible endpoint (vLLM, SGLang, llama.cpp, hosted APIs) as a howhard backend.

``generate(prompt, n=b)`` asks for all ``b`` samples in one call, so servers that share the
prompt's prefix across samples pay for it once. Servers differ in how faithfully they implement
the API, and this backend copes with the common deviations:

* a server that returns fewer choices than ``n`` (some silently ignore ``n``) gets the missing
  samples requested concurrently, and the usage includes every call;
* a server whose ``usage`` under-reports for ``n > 1`` (llama.cpp's server counts one choice)
  is corrected from per-choice token counts, which this backend obtains by asking for token
  log-probabilities whenever ``n > 1`` (``exact_token_counts``);
* openai's exceptions are translated at the boundary into howhard's error tree: rate limits
  (with the server's Retry-After), timeouts and 5xx/connection failures are retryable, other
  4xx are :class:`~howhard.errors.BackendRejected`.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import anyio
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from howhard.backends._options import parse_options
from howhard.errors import (
    BackendError,
    BackendRejected,
    BackendTimeout,
    BackendUnavailable,
    ConfigError,
    RateLimited,
    missing_extra,
)
from howhard.types import Completion, Generation, GenerationParams

if TYPE_CHECKING:
    import numpy.typing as npt

__all__ = ["OpenAIBackend", "OpenAIConfig", "translate_openai_error"]


class OpenAIConfig(BaseModel):
    """Options of :class:`OpenAIBackend`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    base_url: str = Field(description="Server root including /v1, e.g. http://127.0.0.1:8000/v1.")
    model: str = Field(min_length=1, description="Model name the server serves.")
    api_key: str = Field(default="EMPTY", description="Bearer token; local servers ignore it.")
    api: Literal["chat", "completions"] = Field(
        default="chat", description="chat: prompt is a user message; completions: raw text."
    )
    system_prompt: str | None = Field(
        default=None, description="System message for the chat API; None sends none."
    )
    timeout_s: float = Field(
        default=120.0,
        gt=0,
        le=7 * 24 * 3600,
        allow_inf_nan=False,
        description="Time limit of each HTTP call as a whole (connect, wait and body).",
    )
    max_retries: int = Field(
        default=0, ge=0, description="openai client's own retries; howhard retries by itself."
    )
    fill_missing: bool = Field(
        default=True, description="Request the samples a server left out of an n>1 reply."
    )
    fill_concurrency: int = Field(
        default=8, ge=1, description="Concurrent calls when filling missing samples."
    )
    exact_token_counts: bool = Field(
        default=True,
        description="Ask for logprobs when n>1 to count each choice's tokens exactly "
        "(servers' usage may cover one choice only).",
    )
    embedding_model: str | None = Field(
        default=None, description="Model for /v1/embeddings; None uses `model`."
    )
    extra_body: dict[str, Any] = Field(
        default_factory=dict, description="Extra JSON fields sent with every generation call."
    )


@dataclass(frozen=True, slots=True)
class _Reply:
    """One HTTP call's choices and reported usage."""

    completions: list[Completion]
    prompt_tokens: int
    reported_completion_tokens: int


class OpenAIBackend:
    """An OpenAI-compatible HTTP endpoint, implementing ``Backend`` and ``Encoder``.

    ``http_client`` may be an ``httpx2.AsyncClient`` (the HTTP library openai uses), e.g. one
    with an in-process ASGI transport for tests.
    """

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        http_client: Any = None,
        **options: Any,
    ) -> None:
        self.config = parse_options(
            OpenAIConfig, "OpenAIBackend", {"base_url": base_url, "model": model, **options}
        )
        try:
            import openai
        except ImportError as exc:
            raise missing_extra("openai", "openai") from exc
        self._client = openai.AsyncOpenAI(
            base_url=self.config.base_url,
            api_key=self.config.api_key,
            timeout=self.config.timeout_s,
            max_retries=self.config.max_retries,
            http_client=http_client,
        )
        self._closed = False

    @property
    def model(self) -> str:
        """The served model name."""
        return self.config.model

    async def __aenter__(self) -> OpenAIBackend:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def generate(self, prompt: str, *, n: int, params: GenerationParams) -> Generation:
        """Sample ``n`` completions in one call, filling in any the server left out.

        With ``temperature=0`` the server decodes once and the sample is repeated ``n`` times.
        """
        if not isinstance(n, int) or n < 1:
            raise ConfigError(f"n must be an integer >= 1, got {n!r}")
        if self._closed:
            raise BackendUnavailable("this OpenAIBackend is closed; create a new one")
        started = time.monotonic()
        if params.temperature == 0 and n > 1:
            # Greedy samples are all alike, and some servers (vLLM) reject n > 1 without
            # sampling: decode once and repeat it.
            once = await self._call(prompt, 1, params, seed=params.seed)
            replies = [
                _Reply(once.completions * n, once.prompt_tokens, once.reported_completion_tokens)
            ]
        else:
            replies = [await self._call(prompt, n, params, seed=params.seed)]
        first = replies[0]
        missing = n - len(first.completions)
        if missing > 0 and self.config.fill_missing:
            replies += await self._fill(prompt, missing, params)
        completions = [c for reply in replies for c in reply.completions][:n]
        if len(completions) < n:
            raise BackendUnavailable(
                f"{self.config.base_url} returned {len(completions)} of n={n} samples and "
                "fill_missing is off; enable it or ask for fewer samples"
            )
        if not params.logprobs:
            completions = [_without_logprobs(c) for c in completions]
        return Generation(
            completions=tuple(completions),
            prompt_tokens=sum(reply.prompt_tokens for reply in replies),
            model=self.model,
            latency_s=time.monotonic() - started,
        )

    async def _fill(self, prompt: str, missing: int, params: GenerationParams) -> list[_Reply]:
        replies: list[_Reply] = []
        limiter = anyio.CapacityLimiter(self.config.fill_concurrency)

        async def one(index: int) -> None:
            # Distinct seeds, or a seeded server would return the same sample every time.
            seed = None if params.seed is None else params.seed + 1 + index
            async with limiter:
                replies.append(await self._call(prompt, 1, params, seed=seed))

        try:
            async with anyio.create_task_group() as group:
                for index in range(missing):
                    group.start_soon(one, index)
        except BaseExceptionGroup as group_error:
            # Surface one typed error (the first), as a single call would.
            first = group_error.exceptions[0]
            if isinstance(first, BackendError):
                raise first from group_error
            raise
        return replies

    async def _call(
        self, prompt: str, n: int, params: GenerationParams, *, seed: int | None
    ) -> _Reply:
        want_logprobs = params.logprobs or (n > 1 and self.config.exact_token_counts)
        common: dict[str, Any] = {
            "model": self.config.model,
            "n": n,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "max_tokens": params.max_tokens,
        }
        if params.stop:
            common["stop"] = list(params.stop)
        if seed is not None:
            common["seed"] = seed
        if self.config.extra_body:
            common["extra_body"] = dict(self.config.extra_body)
        prompt_bytes = len(prompt.encode("utf-8", "surrogatepass"))
        if self.config.api == "chat":
            messages: list[Any] = [{"role": "user", "content": prompt}]
            if self.config.system_prompt is not None:
                messages.insert(0, {"role": "system", "content": self.config.system_prompt})
                prompt_bytes += len(self.config.system_prompt.encode())
            if want_logprobs:
                # top_logprobs=1, not 0: llama.cpp's server returns no logprobs at all for 0.
                common["logprobs"] = True
                common["top_logprobs"] = 1
            create: Any = lambda: self._client.chat.completions.create(  # noqa: E731
                messages=messages, **common
            )
        else:
            if want_logprobs:
                common["logprobs"] = 1  # the sampled token's logprob comes with the top 1
            create = lambda: self._client.completions.create(prompt=prompt, **common)  # noqa: E731
        # timeout_s is a limit on the whole call: the client's own timeout bounds each read,
        # so a server dripping its body a byte at a time would hold the call open forever.
        with anyio.move_on_after(self.config.timeout_s) as limit:
            try:
                response = await create()
            except Exception as exc:
                raise _translated(exc, self.config.base_url) from exc
        if limit.cancelled_caught:
            raise self._too_slow()
        try:
            parse = _chat_choice if self.config.api == "chat" else _text_choice
            completions = [parse(c, params.max_tokens) for c in _ordered(response.choices)]
            usage = response.usage
            if usage is None:
                # No usage: the work was done and must be paid for, so count it at its most
                # (the prompt's bytes; per choice its logprobs, else max_tokens).
                prompt_tokens = prompt_bytes
                reported = sum(
                    c.tokens if c.logprobs is not None else params.max_tokens for c in completions
                )
                completions = [
                    c if c.logprobs is not None else _with_tokens(c, params.max_tokens)
                    for c in completions
                ]
                return _Reply(completions, prompt_tokens, reported)
            reported = _reported(usage.completion_tokens, "completion_tokens")
            prompt_tokens = _reported(usage.prompt_tokens, "prompt_tokens")
        except (AttributeError, TypeError, ValueError) as exc:
            # The openai client parses lazily: a 200 whose body lacks the expected fields
            # surfaces only here. It is the server's fault, so it is a BackendError.
            raise BackendError(
                f"{self.config.base_url} sent a malformed {self.config.api} response ({exc!r})"
            ) from exc
        counted = _count_tokens(completions, reported)
        # A choice counts at most max_tokens, whatever usage claims (completion_tokens = 1e12).
        counted = [
            c if c.tokens <= params.max_tokens else _with_tokens(c, params.max_tokens)
            for c in counted
        ]
        return _Reply(counted, prompt_tokens, reported)

    async def encode(self, prompts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embeddings of ``prompts`` (raw text) from ``/v1/embeddings``: ``(n, dim)`` float32."""
        if isinstance(prompts, str) or not prompts:
            raise ConfigError(f"prompts must be a non-empty sequence of strings, got {prompts!r}")
        with anyio.move_on_after(self.config.timeout_s) as limit:
            try:
                response = await self._client.embeddings.create(
                    model=self.config.embedding_model or self.config.model,
                    input=list(prompts),
                    encoding_format="float",
                )
            except Exception as exc:
                raise _translated(exc, self.config.base_url) from exc
        if limit.cancelled_caught:
            raise self._too_slow()
        try:
            rows = sorted(response.data, key=lambda item: item.index)
            array = np.asarray([row.embedding for row in rows], dtype=np.float32)
        except (AttributeError, TypeError, ValueError) as exc:
            raise BackendError(
                f"{self.config.base_url} sent a malformed embeddings response ({exc!r})"
            ) from exc
        if array.ndim != 2 or array.shape[0] != len(prompts):
            # Fewer (or ragged) rows would shift every later feature onto the wrong request.
            raise BackendError(
                f"{self.config.base_url} returned embeddings of shape {array.shape} for "
                f"{len(prompts)} inputs; expected one vector per input"
            )
        return array

    def _too_slow(self) -> BackendTimeout:
        return BackendTimeout(
            f"{self.config.base_url} did not answer within timeout_s={self.config.timeout_s} "
            "(the whole call, body included); raise timeout_s or check the server"
        )

    async def aclose(self) -> None:
        """Close the HTTP connections. Idempotent."""
        if not self._closed:
            self._closed = True
            with anyio.CancelScope(shield=True):
                await self._client.close()


def _count_tokens(completions: list[Completion], reported: int) -> list[Completion]:
    """Give every choice its token count, trusting per-choice logprobs over ``usage``.

    Per-choice logprobs count exactly (and so correct servers that report one choice's usage
    for n>1). Some servers leave the end-of-sequence token out of the logprobs but count it in
    usage; that difference is credited to the choices that stopped. Without logprobs, a single
    choice takes the reported count, and several share it in proportion to their text length.
    """
    if all(c.logprobs is not None for c in completions):
        missing = reported - sum(c.tokens for c in completions)
        if missing <= 0:
            return completions
        counted = []
        for completion in completions:
            extra = 1 if missing > 0 and completion.finish_reason == "stop" else 0
            missing -= extra
            counted.append(_with_tokens(completion, completion.tokens + extra))
        return counted
    if len(completions) == 1:
        return [_with_tokens(completions[0], reported)]
    lengths = [max(len(c.text), 1) for c in completions]
    total = sum(lengths)
    return [
        _with_tokens(c, max(round(reported * length / total), 1))
        for c, length in zip(completions, lengths, strict=True)
    ]


def _ordered(choices: Sequence[Any]) -> list[Any]:
    return sorted(choices, key=lambda choice: getattr(choice, "index", 0) or 0)


def _reported(value: Any, field: str) -> int:
    """A usage figure as an int >= 0, or ``ValueError`` (a malformed response)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ValueError(f"usage.{field} = {value!r} is not a count of tokens")
    if isinstance(value, float) and not value.is_integer():
        raise ValueError(f"usage.{field} = {value!r} is not a whole number of tokens")
    return int(value)


def _translated(exc: Exception, base_url: str) -> BackendError:
    """``exc`` from the openai client as howhard's error (non-JSON bodies and the like too)."""
    error = translate_openai_error(exc)
    if error is not None:
        return error
    return BackendError(f"{base_url} sent a response the client could not read ({exc!r})")


def _chat_choice(choice: Any, max_tokens: int) -> Completion:
    content = choice.logprobs.content if choice.logprobs is not None else None
    # More entries than max_tokens cannot be true of this call: keep the first max_tokens.
    logprobs = (
        tuple(float(t.logprob) for t in content[:max_tokens]) if content is not None else None
    )
    return Completion(
        text=choice.message.content or "",
        tokens=len(logprobs) if logprobs is not None else 0,
        logprobs=logprobs,
        finish_reason=choice.finish_reason,
    )


def _text_choice(choice: Any, max_tokens: int) -> Completion:
    values = choice.logprobs.token_logprobs if choice.logprobs is not None else None
    logprobs = None
    if values is not None:
        logprobs = tuple(float(v) if v is not None else 0.0 for v in values[:max_tokens])
    return Completion(
        text=choice.text or "",
        tokens=len(logprobs) if logprobs is not None else 0,
        logprobs=logprobs,
        finish_reason=choice.finish_reason,
    )


def _with_tokens(completion: Completion, tokens: int) -> Completion:
    return Completion(
        text=completion.text,
        tokens=tokens,
        logprobs=completion.logprobs,
        finish_reason=completion.finish_reason,
    )


def _without_logprobs(completion: Completion) -> Completion:
    if completion.logprobs is None:
        return completion
    return Completion(
        text=completion.text,
        tokens=completion.tokens,
        logprobs=None,
        finish_reason=completion.finish_reason,
    )


def _retry_after(headers: Any) -> float | None:
    """Seconds from a Retry-After (seconds or HTTP date) or retry-after-ms header."""
    if headers is None:
        return None
    milliseconds = headers.get("retry-after-ms")
    if milliseconds:
        try:
            return max(float(milliseconds) / 1000.0, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def translate_openai_error(exc: BaseException) -> BackendError | None:
    """Map an ``openai`` exception onto howhard's tree; ``None`` if it is not one of openai's.

    429 → :class:`RateLimited` (with Retry-After), timeouts and 408 → :class:`BackendTimeout`,
    5xx and connection failures → :class:`BackendUnavailable`, other 4xx →
    :class:`BackendRejected`.
    """
    import openai

    if isinstance(exc, openai.APITimeoutError):  # a subclass of APIConnectionError
        return BackendTimeout(f"OpenAI-compatible call timed out: {exc}")
    if isinstance(exc, openai.APIConnectionError):
        return BackendUnavailable(f"cannot reach the OpenAI-compatible server: {exc}")
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        message = f"server answered HTTP {status}: {exc.message}"
        if status == 429:
            return RateLimited(message, retry_after=_retry_after(exc.response.headers))
        if status == 408:
            return BackendTimeout(message)
        if status >= 500:
            return BackendUnavailable(message)
        return BackendRejected(message)
    if isinstance(exc, openai.OpenAIError):
        return BackendUnavailable(f"OpenAI-compatible server failed: {exc}")
    return None
