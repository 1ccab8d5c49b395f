"""Collect training data for difficulty probes: m scored samples per request, resumably.

For every request the backend draws ``samples`` completions (one ``generate(n=samples)`` call, so
engines share the prompt's prefill), the scorer rewards each, and the request is appended to the
dataset folder (see :mod:`howhard.training.dataset`). Backend calls go through the same
:class:`~howhard.procedures.RetryingCaller` as serving, so transient failures (timeouts, rate
limits, a server restarting) are retried with backoff. Requests already in the folder are
skipped, so an interrupted run is continued by running the same command again.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import anyio
import anyio.lowlevel
import structlog

from howhard.backends.base import Backend
from howhard.config import RetryConfig
from howhard.errors import BackendError, ConfigError, HowhardError, ScoringError
from howhard.procedures.caller import RetryingCaller
from howhard.scoring import Scorer
from howhard.training.dataset import DatasetWriter, request_row
from howhard.types import Completion, GenerationParams, Request

__all__ = ["CollectSummary", "collect"]

log = structlog.get_logger("howhard.collect")

_RETRY = RetryConfig()


@dataclass(frozen=True, slots=True, kw_only=True)
class CollectSummary:
    """What one ``collect`` run did."""

    out: Path
    requested: int
    """Requests given to this run."""
    skipped: int
    """Requests already finished by an earlier run."""
    completed: int
    """Requests finished by this run."""
    failed: tuple[str, ...]
    """Ids whose backend or scorer failed; they are retried by the next run."""
    samples: int
    completion_tokens: int
    elapsed_s: float


class _Progress(Protocol):
    def advance(self, samples: int, tokens: int) -> None: ...
    def close(self) -> None: ...


class _NoProgress:
    def advance(self, samples: int, tokens: int) -> None:
        pass

    def close(self) -> None:
        pass


class _RichProgress:
    """A rich progress bar: requests done, requests/s, samples and tokens per second, ETA."""

    def __init__(self, total: int, done: int) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._start = time.monotonic()
        self._samples = 0
        self._tokens = 0
        self._progress = Progress(
            TextColumn("collect"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            transient=False,
        )
        self._task = self._progress.add_task("collect", total=total, completed=done, rate="")
        self._progress.start()

    def advance(self, samples: int, tokens: int) -> None:
        self._samples += samples
        self._tokens += tokens
        elapsed = max(time.monotonic() - self._start, 1e-9)
        rate = f"{self._samples / elapsed:.1f} samples/s {self._tokens / elapsed:.0f} tok/s"
        self._progress.update(self._task, advance=1, rate=rate)

    def close(self) -> None:
        self._progress.stop()


class _LogProgress:
    """Fallback without rich: a log line at most every 10 s with throughput and ETA."""

    def __init__(self, total: int, done: int) -> None:
        self._total, self._done, self._new = total, done, 0
        self._start = self._last = time.monotonic()
        self._samples = self._tokens = 0

    def advance(self, samples: int, tokens: int) -> None:
        self._done += 1
        self._new += 1
        self._samples += samples
        self._tokens += tokens
        now = time.monotonic()
        if now - self._last < 10 and self._done < self._total:
            return
        self._last = now
        elapsed = max(now - self._start, 1e-9)
        eta = (self._total - self._done) * elapsed / self._new
        log.info(
            "progress",
            done=self._done,
            total=self._total,
            samples_per_s=round(self._samples / elapsed, 2),
            tokens_per_s=round(self._tokens / elapsed, 1),
            eta_s=round(eta),
        )

    def close(self) -> None:
        pass


def _progress(enabled: bool, total: int, done: int) -> _Progress:
    if not enabled:
        return _NoProgress()
    try:
        import rich.progress  # noqa: F401
    except ImportError:
        return _LogProgress(total, done)
    if not sys.stderr.isatty() and not os.environ.get("HOWHARD_FORCE_PROGRESS"):
        return _LogProgress(total, done)
    return _RichProgress(total, done)


async def _sample(
    caller: RetryingCaller, request: Request, samples: int
) -> tuple[list[Completion], int]:
    """Draw exactly ``samples`` completions, topping up from servers that ignore ``n``."""
    completions: list[Completion] = []
    prompt_tokens = 0
    while len(completions) < samples:
        generation = await caller.generate(request.prompt, n=samples - len(completions))
        if not generation.completions:
            raise BackendError(
                f"backend {caller.backend.model!r} returned no completions for request "
                f"{request.id!r}"
            )
        prompt_tokens = prompt_tokens or generation.prompt_tokens
        completions.extend(generation.completions)
    return completions[:samples], prompt_tokens


async def _score(scorer: Scorer, request: Request, completions: list[Completion]) -> list[float]:
    rewards = await scorer.score(request, completions)
    if len(rewards) != len(completions):
        raise ScoringError(
            f"scorer {type(scorer).__name__} returned {len(rewards)} rewards for "
            f"{len(completions)} completions of request {request.id!r}"
        )
    out = [float(r) for r in rewards]
    if not all(math.isfinite(r) for r in out):
        raise ScoringError(
            f"scorer {type(scorer).__name__} returned a non-finite reward for {request.id!r}"
        )
    return out


async def collect(
    requests: Sequence[Request],
    backend: Backend,
    scorer: Scorer,
    *,
    samples: int,
    params: GenerationParams,
    out: str | os.PathLike[str],
    concurrency: int = 8,
    resume: bool = True,
    progress: bool = True,
    scorer_name: str | None = None,
    command: Sequence[str] | None = None,
    retry: RetryConfig | None = None,
) -> CollectSummary:
    """Sample and score ``samples`` completions per request and append them to the dataset ``out``.

    Up to ``concurrency`` requests are in flight at once. With ``resume`` (the default) requests
    already finished in ``out`` are skipped; without it ``out`` must not hold a dataset yet. A
    request whose backend or scorer fails is logged and left unfinished, so the next run retries
    it; any other exception (a bug, cancellation) stops the run, keeping every finished row.
    ``scorer_name`` and ``command`` are recorded in the manifest. ``retry`` governs retries of
    transient backend failures (default: :class:`~howhard.config.RetryConfig`'s defaults).
    """
    if not isinstance(samples, int) or samples < 1:
        raise ConfigError(f"samples must be an integer >= 1, got {samples!r}")
    if not isinstance(concurrency, int) or concurrency < 1:
        raise ConfigError(f"concurrency must be an integer >= 1, got {concurrency!r}")
    duplicates = [i for i, count in Counter(r.id for r in requests).items() if count > 1]
    if duplicates:
        # Both copies would be sampled and appended, leaving two sample sets under one id.
        raise ConfigError(
            f"requests contain duplicate id {duplicates[0]!r}; give every request a unique id"
        )
    manifest: dict[str, Any] = {
        "model": backend.model,
        "backend": type(backend).__name__,
        "scorer": scorer_name or type(scorer).__name__,
        "samples": samples,
        "params": {
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "stop": list(params.stop),
        },
        "runs": [
            {
                "command": list(command) if command is not None else None,
                "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "requests": len(requests),
            }
        ],
    }
    writer = DatasetWriter(out, manifest, resume=resume, requests=requests)
    todo = [r for r in requests if r.id not in writer.finished]
    skipped = len(requests) - len(todo)
    failed: list[str] = []
    totals = {"completed": 0, "samples": 0, "tokens": 0}
    bar = _progress(progress, total=len(requests), done=skipped)
    limiter = anyio.Semaphore(concurrency)
    start = time.monotonic()

    async def run_one(request: Request) -> None:
        try:
            # A task spawned just before the group was cancelled must not start new work.
            await anyio.lowlevel.checkpoint()
            caller = RetryingCaller(backend, params, retry=retry or _RETRY, log=log)
            completions, prompt_tokens = await _sample(caller, request, samples)
            rewards = await _score(scorer, request, completions)
        except HowhardError as exc:
            if not isinstance(exc, BackendError | ScoringError):
                raise
            failed.append(request.id)
            log.warning("request_failed", id=request.id, error=f"{type(exc).__name__}: {exc}")
            return
        finally:
            limiter.release()
        tokens = [c.tokens for c in completions]
        rows = [
            {
                "id": request.id,
                "sample": j,
                "text": c.text,
                "reward": rewards[j],
                "tokens": c.tokens,
                "finish_reason": c.finish_reason,
            }
            for j, c in enumerate(completions)
        ]
        writer.append(request_row(request, rewards, tokens, prompt_tokens), rows)
        totals["completed"] += 1
        totals["samples"] += len(completions)
        totals["tokens"] += sum(tokens)
        bar.advance(len(completions), sum(tokens))

    try:
        async with anyio.create_task_group() as tg:
            for request in todo:
                # Acquire before spawning so at most `concurrency` tasks exist at a time.
                await limiter.acquire()
                tg.start_soon(run_one, request, name=f"collect:{request.id}")
    finally:
        bar.close()
    summary = CollectSummary(
        out=writer.path,
        requested=len(requests),
        skipped=skipped,
        completed=totals["completed"],
        failed=tuple(failed),
        samples=totals["samples"],
        completion_tokens=totals["tokens"],
        elapsed_s=time.monotonic() - start,
    )
    log.info(
        "collect_done",
        out=str(summary.out),
        completed=summary.completed,
        skipped=summary.skipped,
        failed=len(summary.failed),
        elapsed_s=round(summary.elapsed_s, 2),
    )
    return summary
