"""An in-process stand-in backend that answers from a script, for tests, examples and benchmarks.

Like httpx's ``MockTransport(handler)``, ``ScriptedBackend`` ships inside the library so users can
test their policies, procedures and quotas without a model. It is *not* a model: every answer
comes from the handler, mapping or seeded choice you give it. It also injects the failures a real
server produces (timeouts, rate limits, outages, rejections) on a script or at a seeded rate.

Token counts are whitespace tokens (``len(text.split())``) — deterministic and good enough for
quota tests; a completion longer than ``max_tokens`` words is cut there with
``finish_reason="length"``, so the ledger's worst case (``n * max_tokens``) always holds.
"""

from __future__ import annotations

import copy
import inspect
import random
import zlib
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

import anyio

from howhard.errors import (
    BackendTimeout,
    BackendUnavailable,
    ConfigError,
    InvalidRequest,
    RateLimited,
)
from howhard.types import Completion, Generation, GenerationParams

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = ["Fault", "Handler", "ScriptedBackend", "ScriptedCall"]

Handler: TypeAlias = Callable[
    [str, int, GenerationParams], "Sequence[str] | Awaitable[Sequence[str]]"
]
"""``(prompt, n, params) -> n texts`` (sync or async; an async handler can wait on test events)."""

Fault: TypeAlias = "BaseException | type[BaseException] | None"
"""One scripted call outcome: an exception (instance or class) to raise, or ``None`` to answer."""

_DEFAULT_CHOICES = tuple(f"The answer is {k}." for k in range(10))
_DEFAULT_FAULTS: tuple[BaseException, ...] = (
    BackendTimeout("scripted timeout"),
    RateLimited("scripted rate limit", retry_after=0.0),
    BackendUnavailable("scripted outage"),
)


@dataclass(frozen=True, slots=True)
class ScriptedCall:
    """One recorded ``generate`` call, for assertions in tests."""

    prompt: str
    n: int
    params: GenerationParams
    error: BaseException | None
    """The injected failure, or ``None`` if the call answered."""


def _tokens(text: str) -> int:
    return len(text.split())


def _truncate(text: str, max_tokens: int) -> tuple[str, int, str]:
    words = text.split()
    if len(words) <= max_tokens:
        return text, len(words), "stop"
    return " ".join(words[:max_tokens]), max_tokens, "length"


def _stable_seed(*parts: object) -> int:
    return zlib.crc32("\x1f".join(map(str, parts)).encode())


class ScriptedBackend:
    """A scripted stand-in implementing ``Backend`` (and ``Encoder``); answers without a model.

    ``handler`` decides the texts: a callable ``(prompt, n, params) -> texts`` (sync or async),
    a mapping ``prompt -> text or texts`` (a sequence is cycled through the ``n`` samples; prompts
    missing from the mapping fall back to ``choices``), or ``None`` for a seeded random choice
    from ``choices``. Faults are taken first from ``faults`` (one entry per call, in order,
    ``None`` = answer normally), then at random with probability ``fault_rate`` from
    ``fault_errors``. ``latency_s`` > 0 sleeps (anyio) before answering; 0 answers instantly.
    """

    def __init__(
        self,
        handler: Handler | Mapping[str, str | Sequence[str]] | None = None,
        *,
        model: str = "scripted",
        choices: Sequence[str] = _DEFAULT_CHOICES,
        seed: int = 0,
        latency_s: float = 0.0,
        faults: Iterable[Fault] = (),
        fault_rate: float = 0.0,
        fault_errors: Sequence[BaseException | type[BaseException]] = _DEFAULT_FAULTS,
        hidden_size: int = 16,
        record: bool = True,
    ) -> None:
        if latency_s < 0:
            raise ConfigError(f"latency_s must be >= 0, got {latency_s!r}")
        if not 0.0 <= fault_rate <= 1.0:
            raise ConfigError(f"fault_rate must be in [0, 1], got {fault_rate!r}")
        if fault_rate > 0 and not fault_errors:
            raise ConfigError("fault_errors must not be empty when fault_rate > 0")
        if not choices:
            raise ConfigError("choices must not be empty; pass at least one answer text")
        if hidden_size < 1:
            raise ConfigError(f"hidden_size must be >= 1, got {hidden_size!r}")
        self._handler = handler
        self._model = model
        self._choices = tuple(choices)
        self._rng = random.Random(seed)
        self._seed = seed
        self._latency_s = latency_s
        self._script: Iterator[Fault] = iter(faults)
        self._fault_rate = fault_rate
        self._fault_errors = tuple(fault_errors)
        self._hidden_size = hidden_size
        self._record = record
        self.calls: list[ScriptedCall] = []
        """Every ``generate`` call in order (empty when ``record=False``)."""
        self.closed = False
        """Whether ``aclose()`` was called."""

    @property
    def model(self) -> str:
        """The model name this stand-in reports (used for pricing and logs)."""
        return self._model

    def _next_fault(self) -> BaseException | None:
        fault = next(self._script, None)
        if fault is None and self._fault_rate > 0 and self._rng.random() < self._fault_rate:
            fault = self._rng.choice(self._fault_errors)
        if fault is None:
            return None
        if isinstance(fault, type):
            return fault(f"scripted {fault.__name__}")
        # A fresh copy per raise keeps tracebacks from accumulating on one shared instance.
        return copy.copy(fault)

    async def _texts(self, prompt: str, n: int, params: GenerationParams) -> list[str]:
        handler = self._handler
        if callable(handler):
            out = handler(prompt, n, params)
            if inspect.isawaitable(out):
                out = await out
            texts = list(out)
            if len(texts) != n:
                raise ConfigError(
                    f"ScriptedBackend handler returned {len(texts)} texts for n={n}; "
                    "return exactly n"
                )
            return texts
        if handler is not None and prompt in handler:
            scripted = handler[prompt]
            options = [scripted] if isinstance(scripted, str) else list(scripted)
            return [options[i % len(options)] for i in range(n)]
        return [self._rng.choice(self._choices) for _ in range(n)]

    async def generate(self, prompt: str, *, n: int, params: GenerationParams) -> Generation:
        """Answer ``n`` samples of ``prompt`` from the script, or raise the scripted fault."""
        if self.closed:
            raise BackendUnavailable("ScriptedBackend is closed; create a new one")
        if not isinstance(n, int) or n < 1:
            raise InvalidRequest(f"n must be an integer >= 1, got {n!r}")
        fault = self._next_fault()
        if self._record:
            self.calls.append(ScriptedCall(prompt, n, params, fault))
        if self._latency_s > 0:
            await anyio.sleep(self._latency_s)
        if fault is not None:
            raise fault
        completions = []
        for text in await self._texts(prompt, n, params):
            cut, tokens, reason = _truncate(text, params.max_tokens)
            logprobs = self._logprobs(cut, tokens) if params.logprobs else None
            completions.append(
                Completion(text=cut, tokens=tokens, logprobs=logprobs, finish_reason=reason)
            )
        return Generation(
            completions=tuple(completions),
            prompt_tokens=_tokens(prompt),
            model=self._model,
            latency_s=self._latency_s,
        )

    def _logprobs(self, text: str, tokens: int) -> tuple[float, ...]:
        # Deterministic in the text, so equal texts get equal scores across calls.
        rng = random.Random(_stable_seed(self._seed, text))
        return tuple(-rng.random() * 2.0 for _ in range(tokens))

    async def encode(self, prompts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Deterministic pseudo-features ``(len(prompts), hidden_size)`` seeded by each prompt."""
        import numpy as np

        out = np.empty((len(prompts), self._hidden_size), dtype=np.float32)
        for i, prompt in enumerate(prompts):
            rng = np.random.default_rng(_stable_seed(self._seed, prompt))
            out[i] = rng.standard_normal(self._hidden_size, dtype=np.float32)
        return out

    async def aclose(self) -> None:
        """Mark the backend closed; later ``generate`` calls raise ``BackendUnavailable``."""
        self.closed = True
