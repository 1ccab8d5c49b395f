"""``howhard demo``: adaptive best-of-k on the embedded model, live, against uniform best-of-k.

Held-out benchmark questions are submitted concurrently to a ``Scheduler`` whose policy is the
shipped λ probe with exact online allocation; every answer is checked by the question's
verifier. The same questions then run with a uniform budget of the same total, and a summary
compares accuracy, samples, tokens and wall time.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np

__all__ = ["DEFAULT_PROBE", "register", "run"]

DEFAULT_PROBE = Path(__file__).resolve().parent.parent / "assets" / "lambda-probe"
"""The λ probe shipped with the package (trained on the benchmark's train split)."""


def register(subparsers: Any) -> None:
    """Add the ``demo`` subcommand."""
    from howhard.commands._factory import add_backend_arguments

    parser: argparse.ArgumentParser = subparsers.add_parser(
        "demo",
        help="watch adaptive best-of-k answer held-out questions, against uniform best-of-k",
        description=__doc__,
    )
    add_backend_arguments(parser)
    parser.set_defaults(backend="vllm")
    parser.add_argument("--questions", type=int, default=32, help="held-out questions to answer")
    parser.add_argument(
        "--budget", type=float, default=4.0, help="average samples per question (default 4)"
    )
    parser.add_argument("--max-budget", type=int, default=16, help="most samples per question")
    parser.add_argument("--probe", type=Path, default=DEFAULT_PROBE, help="λ probe checkpoint")
    parser.add_argument("--seed", type=int, default=0, help="which held-out questions to draw")
    parser.add_argument("--max-tokens", type=int, default=32, help="token cap per sample")
    parser.add_argument("--temperature", type=float, default=0.7, help="sampling temperature")
    parser.add_argument(
        "--no-compare", action="store_true", help="skip the uniform best-of-k comparison run"
    )
    parser.set_defaults(handler=run)


@dataclass(frozen=True, slots=True)
class _Outcome:
    """One policy's run over the questions."""

    name: str
    correct: int
    samples: int
    tokens: int
    wall_s: float


def held_out_requests(count: int, seed: int) -> list[Any]:
    """``count`` test-split questions (never trained on) as verifiable ``Request``s."""
    from howhard.tasks import build_splits, question_id
    from howhard.types import Request

    test = build_splits()["test"]
    if not 1 <= count <= len(test):
        from howhard.errors import ConfigError

        raise ConfigError(f"questions must be in [1, {len(test)}], got {count}")
    picked = random.Random(seed).sample(test, count)
    return [
        Request(
            prompt=q.prompt,
            id=question_id(q),
            reference=q.reference,
            metadata={"family": q.family, "level": q.level},
        )
        for q in picked
    ]


def run(args: argparse.Namespace) -> int:
    """Run the demo; exit code 0 when every request resolved."""
    import anyio

    from howhard.errors import ConfigError

    if not 0 < args.budget <= args.max_budget:
        raise ConfigError(f"budget must be in (0, max_budget={args.max_budget}], got {args.budget}")
    if not args.probe.exists():
        raise ConfigError(f"probe={str(args.probe)!r} does not exist; pass --probe PATH")
    _quiet_logs()
    return anyio.run(_main, args, sys.stdout, backend="asyncio")


def _quiet_logs() -> None:
    """The demo prints its own table; engine start-up logs and per-request events would bury it.

    The environment variables are defaults only (a user's own setting wins) and are read by the
    engine processes vLLM spawns, which is why they are set rather than configured in-process.
    """
    import logging
    import os

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")
    # Library deprecation notices (torch, vLLM) in spawned engine processes, not ours to fix.
    os.environ.setdefault("PYTHONWARNINGS", "ignore::FutureWarning,ignore::DeprecationWarning")


async def _main(args: argparse.Namespace, out: TextIO) -> int:
    from howhard.commands._factory import make_backend, parse_options
    from howhard.probes import ProbePredictor
    from howhard.types import GenerationParams

    requests = held_out_requests(args.questions, args.seed)
    params = GenerationParams(max_tokens=args.max_tokens, temperature=args.temperature)
    _say(
        out,
        f"howhard demo: {len(requests)} held-out questions, {args.budget:g} samples per "
        f"question on average, backend {args.backend}",
    )
    _say(out, "loading the model and the λ probe (first run prepares the model, ~1 min) ...")
    async with contextlib.AsyncExitStack() as stack:
        # Each is closed (shielded, last opened first) even if the other fails to load or
        # close: a vLLM backend left unclosed leaves its engine processes running.
        backend = make_backend(
            args.backend,
            model=args.model,
            base_url=args.base_url,
            options=parse_options(args.backend_option, flag="--backend-option"),
        )
        stack.push_async_callback(_close, backend)
        predictor = ProbePredictor.load(args.probe)
        stack.push_async_callback(_close, predictor)
        predicted = np.asarray(await predictor.scores(requests), dtype=np.float64)
        await backend.generate("Say hi.", n=1, params=params)  # warm up before timing anything
        adaptive = await _serve(
            "adaptive",
            backend,
            _adaptive_policy(predictor),
            requests,
            predicted,
            args,
            params,
            out,
        )
        outcomes = [adaptive]
        if not args.no_compare:
            from howhard.policies import UniformPolicy

            uniform = await _serve(
                "uniform",
                backend,
                UniformPolicy(),
                requests,
                predicted,
                args,
                params,
                out,
            )
            outcomes.append(uniform)
    _summary(outcomes, len(requests), args.budget, out)
    return 0


async def _close(resource: Any) -> None:
    import anyio

    with anyio.CancelScope(shield=True):
        await resource.aclose()


def _adaptive_policy(predictor: Any) -> Any:
    from howhard.policies import AdaptivePolicy, OnlineAllocator

    # The budget bounds come from the Scheduler (--budget, --max-budget), once.
    return AdaptivePolicy(predictor, OnlineAllocator())


async def _serve(
    name: str,
    backend: Any,
    policy: Any,
    requests: list[Any],
    predicted: np.ndarray[Any, Any],
    args: argparse.Namespace,
    params: Any,
    out: TextIO,
) -> _Outcome:
    import anyio

    from howhard import BatchingConfig, Scheduler
    from howhard.procedures import BestOfK
    from howhard.tasks import TaskScorer, family
    from howhard.tasks.extract import mentions

    n = len(requests)
    title = (
        "adaptive: λ probe + exact online allocation"
        if name == "adaptive"
        else f"uniform best-of-k at the same total budget ({args.budget:g} per question)"
    )
    _say(out, f"\n== {title}  (λ: the probe's predicted single-sample success)")
    _say(out, f"{'':>8} {'question':<46} {'λ':>5} {'budget':>6}  {'answer':<18} ok")
    done = 0
    correct = 0
    samples = 0
    tokens = 0
    started = time.monotonic()
    scheduler = Scheduler(
        backend=backend,
        policy=policy,
        procedure=BestOfK(TaskScorer()),
        average_budget=args.budget,
        max_budget=args.max_budget,
        batching=BatchingConfig(max_batch_size=n, max_wait_s=0.5),
        params=params,
    )

    async def one(index: int) -> None:
        nonlocal done, correct, samples, tokens
        request = requests[index]
        result = await scheduler.submit(request)
        ok = result.chosen is not None and result.chosen.score >= 1.0
        answer = "(abstained)"
        if result.chosen is not None:
            text = result.chosen.completion.text
            answer = family(request.metadata["family"]).answer(text, request.prompt) or text
            stated = [a for a in request.reference.split("|") if mentions(text, a)]
            if ok and stated:
                answer = stated[0]  # verified by mention: show the words the reply used
        done += 1
        correct += ok
        samples += result.usage.units
        tokens += result.usage.completion_tokens
        _say(
            out,
            f"[{done:>2}/{n:<2}] {_clip(request.prompt, 46):<46} {predicted[index]:>5.2f} "
            f"{result.budget:>6}  {_clip(answer, 18):<18} {'✓' if ok else '✗'}",
        )

    async with scheduler, anyio.create_task_group() as tg:
        for i in range(n):
            tg.start_soon(one, i)
    wall = time.monotonic() - started
    _say(out, f"{name}: {correct}/{n} correct, {samples} samples, {tokens} tokens, {wall:.1f} s")
    return _Outcome(name, correct, samples, tokens, wall)


def _summary(outcomes: list[_Outcome], n: int, budget: float, out: TextIO) -> None:
    _say(
        out,
        f"\n== summary ({n} questions, total budget {int(budget * n)} samples; adaptive wall "
        "time includes encoding the prompts for the probe)",
    )
    _say(out, f"{'policy':<10} {'accuracy':>12} {'samples':>8} {'tokens':>8} {'wall':>8}")
    for o in outcomes:
        _say(
            out,
            f"{o.name:<10} {o.correct:>4}/{n:<3} {o.correct / n:>4.0%} {o.samples:>8} "
            f"{o.tokens:>8} {o.wall_s:>7.1f}s",
        )
    if len(outcomes) == 2:
        a, u = outcomes
        _say(
            out,
            f"adaptive answered {a.correct - u.correct:+d} questions vs uniform, using "
            f"{a.samples - u.samples:+d} samples and {a.tokens - u.tokens:+d} tokens.",
        )


def _clip(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _say(out: TextIO, line: str) -> None:
    out.write(line + "\n")
    out.flush()
