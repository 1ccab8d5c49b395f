"""``howhard demo``: adaptive best-of-k on the embedded model, live, against uniform best-of-k.

Held-out benchmark questions are submitted concurrently to a ``Scheduler`` whose policy is the
shipped λ probe with exact online allocation; every answer is checked by the question's
verifier. The same questions then run with sequential adaptive best-of-k (the same policy's
budgets as caps, sampled in rounds that stop at the first verified sample, unused units given
back; ``--no-sequential`` skips it) and with a uniform budget of the same total. A summary
compares accuracy, samples, tokens and wall time. While samples are generated, a live display
under the table shows each run's questions answered, the samples they used against what
uniform best-of-k draws for the same questions, the running saving, and the tokens generated.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import random
import sys
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

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
    add_backend_arguments(parser, default="vllm")
    parser.add_argument("--questions", type=int, default=24, help="held-out questions to answer")
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
    parser.add_argument(
        "--no-sequential",
        dest="sequential",
        action="store_false",
        help="skip the sequential adaptive best-of-k run (rounds of 1, 2, 4, 8 samples that "
        "stop at the first verified one)",
    )
    # The sequential run used to be opt-in; the old flag still parses.
    parser.add_argument("--sequential", action="store_true", help=argparse.SUPPRESS)
    parser.set_defaults(handler=run, sequential=True)


@dataclass(frozen=True, slots=True)
class _Outcome:
    """One policy's run over the questions."""

    name: str
    correct: int
    samples: int
    tokens: int
    wall_s: float
    latencies: tuple[float, ...] = ()
    """Seconds from submit to answer, per question."""
    rounds: tuple[int, ...] = ()
    """Backend calls (rounds) per question."""


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
    import anyio

    screen = _Screen(out)
    with _first_failure():
        async with anyio.create_task_group() as group:
            group.start_soon(screen.run)
            try:
                await _demo(args, screen)
            finally:
                group.cancel_scope.cancel()
    return 0


async def _demo(args: argparse.Namespace, screen: _Screen) -> None:
    from howhard.commands._factory import make_backend, parse_options
    from howhard.policies import default_policy
    from howhard.types import GenerationParams

    requests = held_out_requests(args.questions, args.seed)
    params = GenerationParams(max_tokens=args.max_tokens, temperature=args.temperature)
    screen.say(
        f"howhard demo: {len(requests)} held-out questions, {args.budget:g} samples per "
        f"question on average, backend {args.backend}"
    )
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
        screen.say(_hardware_line(backend))
        screen.phase("starting the model backend and the probe's encoder")
        # Exactly what is served: the probe, its encoder, its marginals map, online feedback,
        # every question answered (min_budget 1).
        policy = default_policy(probe=args.probe)
        predictor = policy.probe
        stack.push_async_callback(_close, predictor)
        # The engine starts (mostly in its own processes) while the encoder loads: start-up
        # costs the longer of the two rather than their sum. Both are warmed up, so the
        # timed phases below measure serving, not loading.
        await _together(
            lambda: backend.generate("Say hi.", n=1, params=params),
            lambda: predictor.read(requests[:1]),
        )
        from howhard.policies import UniformPolicy

        runs = ["adaptive", *(["sequential"] if args.sequential else [])]
        runs += [] if args.no_compare else ["uniform"]
        outcomes = []
        for name in runs:
            # The sequential run caps each request at the budget the same learning policy
            # gives it (it has seen the adaptive run's feedback by then).
            chosen = UniformPolicy() if name == "uniform" else policy
            outcomes.append(
                await _serve(name, backend, chosen, requests, policy, args, params, screen)
            )
        # Before the engines shut down, which takes seconds more.
        _summary(outcomes, len(requests), args.budget, screen)
        screen.phase("shutting the model backend down")


def _hardware_line(backend: Any) -> str:
    """One line saying what the local engines will run on, so a slow run explains itself."""
    from howhard import hardware

    machine = hardware.detect()
    line = f"hardware: {machine.isa}, {machine.cores} cores, bf16 "
    line += "fast" if machine.fast_bf16 else "slow (float32 is used unless asked otherwise)"
    if machine.gpu:
        line += f", GPU {machine.gpu}"
    dtype = getattr(backend, "dtype", None)  # local engines only
    if dtype is not None:
        line += f"; {type(backend).__name__} runs {dtype}"
    return line + " (howhard doctor explains)"


async def _together(*calls: Callable[[], Coroutine[Any, Any, object]]) -> None:
    """Await ``calls`` concurrently (a failure cancels the others)."""
    import anyio

    with _first_failure():
        async with anyio.create_task_group() as group:
            for call in calls:
                group.start_soon(call)


@contextlib.contextmanager
def _first_failure() -> Iterator[None]:
    """Raise a task group's first failure as itself, so the CLI reports a ConfigError as one."""
    try:
        yield
    except BaseExceptionGroup as failures:
        first = failures.exceptions[0]
        raise first from first.__cause__


async def _close(resource: Any) -> None:
    import anyio

    with anyio.CancelScope(shield=True):
        await resource.aclose()


async def _serve(
    name: str,
    backend: Any,
    policy: Any,
    requests: list[Any],
    predicted: Any,
    args: argparse.Namespace,
    params: Any,
    screen: _Screen,
) -> _Outcome:
    import anyio

    from howhard import BatchingConfig, RoundsConfig, Scheduler
    from howhard.procedures import BestOfK, SequentialBestOfK
    from howhard.tasks import TaskScorer, family
    from howhard.tasks.extract import mentions

    n = len(requests)
    titles = {
        "adaptive": "adaptive: default_policy() (λ probe, marginals map, learns from the verifier)",
        "sequential": "sequential adaptive: the same policy's budgets as caps, rounds of 1, 2, 4, "
        "8 stopping at the first verified sample",
        "uniform": f"uniform best-of-k at the same total budget ({args.budget:g} per question)",
    }
    screen.say(f"\n== {titles[name]}  (λ: the probe's predicted single-sample success)")
    screen.say(f"{'':>8} {'question':<46} {'λ':>5} {'budget':>6}  {'answer':<18} ok")
    procedure: Any = BestOfK(TaskScorer())
    if name == "sequential":
        schedule = RoundsConfig(schedule=(1, 2, 4, 8), max_budget=args.max_budget)
        procedure = SequentialBestOfK(TaskScorer(), config=schedule)
    counter = getattr(backend, "tokens_generated", None)  # local engines count as they go
    screen.phase(
        name,
        total=n,
        tokens=None if counter is None else (lambda: int(backend.tokens_generated)),
        uniform=args.budget,
    )
    procedure = _Counting(procedure, screen.drawn)
    done = 0
    correct = 0
    samples = 0
    tokens = 0
    latencies: list[float] = []
    rounds: list[int] = []
    started = time.monotonic()
    scheduler = Scheduler(
        backend=backend,
        policy=policy,
        procedure=procedure,
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
        latencies.append(result.latency_s)
        rounds.append(int(result.metadata.get("rounds", 0 if result.abstained else 1)))
        samples += result.usage.units
        tokens += result.usage.completion_tokens
        screen.progress(done, samples, tokens)
        λ = predicted.predictions.get(request.id, float("nan"))
        granted = result.metadata.get("granted_budget")
        # A sequential request shows the samples it used of the budget it was granted.
        budget = f"{result.budget}/{granted}" if granted is not None else str(result.budget)
        screen.say(
            f"[{done:>2}/{n:<2}] {_clip(request.prompt, 46):<46} {λ:>5.2f} "
            f"{budget:>6}  {_clip(answer, 18):<18} {'✓' if ok else '✗'}",
        )

    async with scheduler, anyio.create_task_group() as tg:
        for i in range(n):
            tg.start_soon(one, i)
    wall = time.monotonic() - started
    screen.phase(None)
    uniform = math.floor(args.budget * n)
    versus = (
        "" if name == "uniform" else f" (uniform best-of-k: {uniform}, {_share(samples, uniform)})"
    )
    screen.say(
        f"{name}: {correct}/{n} correct, {samples} samples{versus}, {tokens} tokens, {wall:.1f} s"
    )
    return _Outcome(name, correct, samples, tokens, wall, tuple(latencies), tuple(rounds))


class _Counting:
    """A procedure that reports every sample drawn as it comes back (for the live display)."""

    def __init__(self, inner: Any, drawn: Callable[[int], None]) -> None:
        self.inner = inner
        self._drawn = drawn

    def plan(self, budget: int) -> Any:
        return self.inner.plan(budget)

    async def run(self, request: Any, budget: int, context: Any) -> Any:
        return await self.inner.run(request, budget, _CountingContext(context, self._drawn))


class _CountingContext:
    """The procedure's context, counting the samples each call returns."""

    def __init__(self, inner: Any, drawn: Callable[[int], None]) -> None:
        self._inner = inner
        self._drawn = drawn

    @property
    def backend(self) -> Any:
        return self._inner.backend

    @property
    def params(self) -> Any:
        return self._inner.params

    async def generate(self, prompt: str, *, n: int, backend: Any = None) -> Any:
        generation = await self._inner.generate(prompt, n=n, backend=backend)
        self._drawn(min(n, len(generation.completions)))
        return generation


def _summary(outcomes: list[_Outcome], n: int, budget: float, screen: _Screen) -> None:
    screen.say(
        f"\n== summary ({n} questions, total budget {int(budget * n)} samples; adaptive wall "
        "time includes encoding the prompts for the probe)",
    )
    screen.say(
        f"{'policy':<10} {'accuracy':>12} {'samples':>8} {'saved':>6} {'tokens':>8} {'wall':>8} "
        f"{'latency p50/p99':>16} {'rounds p50/p99':>15}"
    )
    import numpy as np

    uniform = math.floor(budget * n)
    for o in outcomes:
        lat = np.percentile(o.latencies, [50, 99]) if o.latencies else (0.0, 0.0)
        rnd = np.percentile(o.rounds, [50, 99]) if o.rounds else (0.0, 0.0)
        saved = f"{1 - o.samples / uniform:.0%}" if uniform else "n/a"
        screen.say(
            f"{o.name:<10} {o.correct:>4}/{n:<3} {o.correct / n:>4.0%} {o.samples:>8} "
            f"{saved:>6} {o.tokens:>8} {o.wall_s:>7.1f}s {f'{lat[0]:.1f}/{lat[1]:.1f} s':>16} "
            f"{f'{rnd[0]:.0f}/{rnd[1]:.0f}':>15}",
        )
    by_name = {o.name: o for o in outcomes}
    u = by_name.get("uniform")
    for name in ("adaptive", "sequential"):
        a = by_name.get(name)
        if a is not None and u is not None:
            screen.say(
                f"{name} answered {a.correct - u.correct:+d} questions vs uniform, using "
                f"{a.samples - u.samples:+d} samples ({_share(a.samples, u.samples)}) and "
                f"{a.tokens - u.tokens:+d} tokens.",
            )


def _share(samples: int, baseline: int) -> str:
    return f"{samples / baseline - 1:+.0%}" if baseline else "n/a"


class _Screen:
    """The demo's output: the table's lines, and below them a live display of the runs.

    The live display says what is running now (start-up, or a run with its questions answered,
    the samples they used against what uniform best-of-k draws for the same questions, the
    running saving, the samples drawn in all and the tokens generated so far) and for how long,
    so a slow machine never looks stuck; finished runs keep their last line above it. On a
    terminal with rich installed it is redrawn in place four times a second; elsewhere the
    current line is printed whenever nothing else was printed for 15 s.
    """

    quiet_s = 15.0

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self._label: str | None = None
        self._total = 0
        self._uniform: float | None = None
        self._counts = (0, 0, 0)  # answered, samples they used, tokens
        self._drawn = 0
        self._tokens: Callable[[], int] | None = None
        self._tokens_at_start = 0
        self._since = time.monotonic()
        self._last_line = time.monotonic()
        self._rows: list[tuple[str, ...]] = []
        self._live: Any = None

    def say(self, line: str) -> None:
        """Print one line of the table (above the live display)."""
        if self._live is not None:
            self._live.console.print(
                line, markup=False, highlight=False, emoji=False, soft_wrap=True
            )
        else:
            self.out.write(line + "\n")
            self.out.flush()
        self._last_line = time.monotonic()

    def phase(
        self,
        label: str | None,
        *,
        total: int = 0,
        tokens: Callable[[], int] | None = None,
        uniform: float | None = None,
    ) -> None:
        """Start timing a new activity (None: nothing running); counts start from zero.

        ``tokens`` reads a backend's running count of generated tokens (``tokens_generated``),
        which moves at every decoding step; without it tokens are counted as answers arrive.
        ``uniform``: the samples per question uniform best-of-k draws, for the saving.
        """
        if self._label is not None and self._total:
            self._rows.append((f"✓ {self._label}", *self._figures()))
        self._label, self._total, self._counts = label, total, (0, 0, 0)
        self._uniform = uniform
        self._drawn = 0
        self._tokens = tokens
        self._tokens_at_start = tokens() if tokens is not None else 0
        self._since = time.monotonic()

    def progress(self, answered: int, samples: int, tokens: int) -> None:
        """Record the running phase's totals so far: questions answered, the samples they
        used, the tokens they generated."""
        self._counts = (answered, samples, tokens)

    def drawn(self, samples: int) -> None:
        """Count samples a backend call returned (answered questions or not)."""
        self._drawn += samples

    def _figures(self) -> tuple[str, ...]:
        """The running phase's columns: answered, samples, uniform, saving, drawn, tokens, time."""
        elapsed = f"{time.monotonic() - self._since:.0f} s"
        answered, samples, tokens = self._counts
        if self._tokens is not None:
            tokens = self._tokens() - self._tokens_at_start
        uniform = saving = ""
        if self._uniform is not None and answered:
            uniform = str(math.floor(self._uniform * answered))
            saving = _share(samples, int(uniform))
        drawn = str(max(self._drawn, samples))
        done = f"{answered}/{self._total}"
        return done, str(samples), uniform, saving, drawn, str(tokens), elapsed

    def status(self) -> str:
        """The running phase's line ('' when nothing is running)."""
        if self._label is None:
            return ""
        if not self._total:
            return f"… {self._label}: {time.monotonic() - self._since:.0f} s"
        done, samples, uniform, saving, drawn, tokens, elapsed = self._figures()
        line = f"{self._label}: {done} answered, {samples} samples"
        if uniform:
            line += f" (uniform: {uniform}, {saving})"
        if int(drawn) > int(samples):
            line += f", {drawn} drawn"
        return f"… {line}, {tokens} tokens, {elapsed}"

    def display(self) -> Any:
        """What the live display shows (rich): finished runs' last figures, then the running
        run's, as a table; a start-up phase as one line."""
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        table = Table(box=None, pad_edge=False, style="dim", header_style="dim")
        for column in ("run", "answered", "samples", "uniform", "saving", "drawn", "tokens", ""):
            table.add_column(column, justify="left" if column == "run" else "right")
        for row in self._rows:
            table.add_row(*row, style="dim")
        if self._label is not None and self._total:
            table.add_row(f"… {self._label}", *self._figures())
        parts: list[Any] = [table] if table.row_count else []
        if self._label is not None and not self._total:
            parts.append(Text(self.status(), style="dim"))
        return Group(*parts)

    async def run(self) -> None:
        """Keep the live display up to date until cancelled."""
        import anyio

        try:
            from rich.console import Console
            from rich.live import Live

            live_display = self.out.isatty()
        except ImportError:  # rich is the optional `cli` extra
            live_display = False
        if not live_display:
            while True:
                await anyio.sleep(1)
                if self.status() and time.monotonic() - self._last_line >= self.quiet_s:
                    self.say(self.status())
        console = Console(file=self.out)
        with Live(console=console, auto_refresh=False, transient=True) as live:
            self._live = live
            try:
                while True:
                    live.update(self.display(), refresh=True)
                    await anyio.sleep(0.25)
            finally:
                self._live = None


def _clip(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"
