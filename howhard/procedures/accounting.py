"""Accounting: what a backend reports is checked and bounded before anything is charged.

A backend's usage figures are untrusted input. :func:`check_generation` applies the rules the
retrying caller charges by, one call at a time:

- **Invalid figures fail the call.** Token counts must be non-negative integers (not ``bool``,
  not fractional, not NaN/inf, not strings or ``None``); completions must be
  :class:`~howhard.types.Completion` objects with ``str`` text and real logprobs. Anything else
  is a :class:`~howhard.errors.BackendError`, and the caller charges that call's worst case
  (its prompt bound and ``n * max_tokens``), which the ledger caps at the reservation.
- **Over-reports are bounded, not trusted** (tolerance: none). Completions beyond the ``n``
  asked for are dropped (no answer may come from a sample nobody asked for); a sample counts at
  most ``max_tokens`` tokens and keeps at most ``max_tokens`` logprob entries; prompt tokens
  count at most the prompt's bound (:func:`prompt_token_bound`). Each bound applied is reported
  so the caller can flag it.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import NamedTuple

from howhard.errors import BackendError
from howhard.types import Completion, Generation

__all__ = ["Checked", "check_generation", "prompt_token_bound"]


def prompt_token_bound(prompt: str, overhead_tokens: int) -> int:
    """Most tokens ``prompt`` can take: its UTF-8 bytes plus a chat template's ``overhead``.

    No tokenizer makes more tokens than bytes (byte-level BPE falls back to one per byte).
    """
    return len(prompt.encode("utf-8", "surrogatepass")) + overhead_tokens


class Checked(NamedTuple):
    """One call's generation after the rules, and what they bounded."""

    generation: Generation
    """The generation as charged: at most ``n`` completions, each within ``max_tokens``."""
    prompt_tokens: int
    completion_tokens: int
    clamped: tuple[str, ...]
    """One line per figure that was over its bound (empty for an honest backend)."""


def _count(value: object, what: str, model: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise BackendError(
            f"backend {model!r} reported {what} = {value!r} ({type(value).__name__}); "
            "token counts must be integers >= 0"
        )
    count = int(value)
    if count < 0:
        raise BackendError(
            f"backend {model!r} reported {what} = {count}; token counts must be integers >= 0"
        )
    return count


def _logprobs(value: object, model: str) -> tuple[float, ...] | None:
    if value is None:
        return None
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise BackendError(
            f"backend {model!r} reported logprobs {value!r}; logprobs are a sequence of floats"
        )
    out = []
    for entry in value:
        if isinstance(entry, bool) or not isinstance(entry, numbers.Real):
            raise BackendError(
                f"backend {model!r} reported a logprob {entry!r} ({type(entry).__name__}); "
                "logprobs are floats"
            )
        out.append(float(entry))
    return tuple(out)


def _within_bounds(
    generation: object, n: int, max_tokens: int, prompt_limit: int | None
) -> Checked | None:
    """The reply as it is when every figure is plainly valid and within bounds, else ``None``.

    The hot path: an honest backend's reply is checked with a few type tests per sample and
    handed on unchanged; anything unusual goes through the full rules.
    """
    if type(generation) is not Generation:
        return None
    prompt_tokens = generation.prompt_tokens
    if type(prompt_tokens) is not int or prompt_tokens < 0:
        return None
    if prompt_limit is not None and prompt_tokens > prompt_limit:
        return None
    completions = generation.completions
    if type(completions) is not tuple or len(completions) > n:
        return None
    total = 0
    for completion in completions:
        if type(completion) is not Completion or type(completion.text) is not str:
            return None
        tokens = completion.tokens
        if type(tokens) is not int or not 0 <= tokens <= max_tokens:
            return None
        logprobs = completion.logprobs
        if logprobs is not None and (type(logprobs) is not tuple or len(logprobs) > max_tokens):
            return None
        total += tokens
    return Checked(generation, prompt_tokens, total, ())


def check_generation(
    generation: object, *, n: int, max_tokens: int, prompt_limit: int | None, model: str
) -> Checked:
    """Validate and bound one ``generate(prompt, n=n)`` reply (see the module docstring).

    Raises ``BackendError`` for invalid figures; returns the bounded generation otherwise.
    """
    honest = _within_bounds(generation, n, max_tokens, prompt_limit)
    if honest is not None:
        return honest
    if not isinstance(generation, Generation):
        raise BackendError(
            f"backend {model!r} returned {type(generation).__name__}, not a Generation; "
            "Backend.generate must return howhard.types.Generation"
        )
    clamped: list[str] = []
    prompt_tokens = _count(generation.prompt_tokens, "prompt_tokens", model)
    if prompt_limit is not None and prompt_tokens > prompt_limit:
        clamped.append(f"prompt_tokens {prompt_tokens} > bound {prompt_limit}")
        prompt_tokens = prompt_limit
    completions = generation.completions
    if isinstance(completions, str | bytes) or not isinstance(completions, Sequence):
        raise BackendError(
            f"backend {model!r} returned completions {completions!r}; "
            "Generation.completions is a tuple of Completion"
        )
    if len(completions) > n:
        clamped.append(f"{len(completions)} completions for n={n} (the surplus dropped)")
        completions = completions[:n]
    kept: list[Completion] = []
    changed = bool(clamped) or type(generation.completions) is not tuple
    completion_tokens = 0
    for completion in completions:
        if not isinstance(completion, Completion) or not isinstance(completion.text, str):
            raise BackendError(
                f"backend {model!r} returned a completion {completion!r}; each must be a "
                "howhard.types.Completion with str text"
            )
        tokens = _count(completion.tokens, "a completion's tokens", model)
        logprobs = _logprobs(completion.logprobs, model)
        if tokens > max_tokens:
            clamped.append(f"a completion of {tokens} tokens > max_tokens={max_tokens}")
            tokens = max_tokens
        if logprobs is not None and len(logprobs) > max_tokens:
            clamped.append(f"{len(logprobs)} logprob entries > max_tokens={max_tokens}")
            logprobs = logprobs[:max_tokens]
        if (
            tokens != completion.tokens
            or type(completion.tokens) is not int
            or logprobs != completion.logprobs
            or type(completion) is not Completion
        ):
            changed = True
            completion = Completion(
                text=completion.text,
                tokens=tokens,
                logprobs=logprobs,
                finish_reason=completion.finish_reason
                if isinstance(completion.finish_reason, str)
                else None,
            )
        kept.append(completion)
        completion_tokens += tokens
    if changed or prompt_tokens != generation.prompt_tokens:
        generation = Generation(
            completions=tuple(kept),
            prompt_tokens=prompt_tokens,
            model=generation.model if isinstance(generation.model, str) else model,
            latency_s=generation.latency_s,
        )
    return Checked(generation, prompt_tokens, completion_tokens, tuple(clamped))
