"""Prefix sharing, measured: one ``generate(n=b)`` call vs ``b`` separate calls, per backend.

For b samples of one prompt, prints generated tokens per second of
  * one call with ``n=b`` (the prompt is prefilled once and the b samples decode together),
  * b calls with ``n=1`` one after another (what a naive client does),
  * b calls with ``n=1`` issued concurrently (lets a batching server merge them),
side by side, with the ratios. Rounds alternate the three modes so background load drifts
affect them alike; the median round is reported. Target: one n=b call >= 2x the b sequential
calls on vLLM.

    python benchmarks/bench_backends.py                       # every backend installed here
    python benchmarks/bench_backends.py --backends vllm --samples 8 --rounds 3
    python benchmarks/bench_backends.py --backends openai --openai-url http://host:8000/v1 \\
        --openai-model NAME
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import socket
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from howhard.backends import Backend
from howhard.models import default_gguf_path, default_model_path
from howhard.types import GenerationParams

PROMPT = "Explain in a few sentences why the sky is blue."
ALL = ("transformers", "vllm", "llamacpp", "openai")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def _llamacpp(threads: int, parallel: int) -> AsyncIterator[Backend]:
    """llama.cpp's server (xllamacpp) in this process, serving the default model's GGUF."""
    import httpx
    import xllamacpp

    from howhard.backends import OpenAIBackend

    port = _free_port()
    params = xllamacpp.CommonParams()
    params.model.path = str(default_gguf_path())
    params.model_alias = ["smollm2"]
    params.hostnames = ["127.0.0.1"]
    params.port = port
    params.n_parallel = parallel
    params.n_ctx = 1024 * parallel
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads
    server = xllamacpp.Server(params)
    try:
        async with httpx.AsyncClient() as client:
            with anyio.fail_after(120):
                while True:
                    with contextlib.suppress(httpx.HTTPError):
                        if (await client.get(f"http://127.0.0.1:{port}/health")).status_code == 200:
                            break
                    await anyio.sleep(0.2)
        async with OpenAIBackend(base_url=f"http://127.0.0.1:{port}/v1", model="smollm2") as b:
            yield b
    finally:
        del server


@contextlib.asynccontextmanager
async def _open(name: str, args: argparse.Namespace) -> AsyncIterator[Backend]:
    if name == "transformers":
        from howhard.backends import TransformersBackend

        async with TransformersBackend(default_model_path(), num_threads=args.threads) as b:
            yield b
    elif name == "vllm":
        from howhard.backends import VLLMBackend

        async with VLLMBackend(default_model_path(), max_model_len=1024) as b:
            yield b
    elif name == "llamacpp":
        async with _llamacpp(args.threads, args.samples) as b:
            yield b
    else:
        from howhard.backends import OpenAIBackend

        async with OpenAIBackend(base_url=args.openai_url, model=args.openai_model) as b:
            yield b


def _available(name: str, args: argparse.Namespace) -> str | None:
    """None if the backend can run here, else why not."""
    needs = {"transformers": "transformers", "vllm": "vllm", "llamacpp": "xllamacpp"}
    if name == "openai":
        return None if args.openai_url else "no --openai-url given"
    if importlib.util.find_spec(needs[name]) is None:
        return f"{needs[name]} is not installed"
    return None


async def _timed(call: Callable[[], Awaitable[int]]) -> float:
    started = time.perf_counter()
    tokens = await call()
    return tokens / (time.perf_counter() - started)


async def _measure(backend: Backend, args: argparse.Namespace) -> dict[str, float]:
    b = args.samples
    params = GenerationParams(max_tokens=args.max_tokens, temperature=0.7)

    async def one_call() -> int:
        return (await backend.generate(PROMPT, n=b, params=params)).completion_tokens

    async def sequential() -> int:
        total = 0
        for _ in range(b):
            total += (await backend.generate(PROMPT, n=1, params=params)).completion_tokens
        return total

    async def concurrent() -> int:
        totals: list[int] = []

        async def single() -> None:
            totals.append((await backend.generate(PROMPT, n=1, params=params)).completion_tokens)

        async with anyio.create_task_group() as group:
            for _ in range(b):
                group.start_soon(single)
        return sum(totals)

    await one_call()  # warm-up: lazy loading, first-call compilation, caches
    modes = {"one": one_call, "sequential": sequential, "concurrent": concurrent}
    rates: dict[str, list[float]] = {mode: [] for mode in modes}
    for _ in range(args.rounds):
        for mode, call in modes.items():
            rates[mode].append(await _timed(call))
    return {mode: statistics.median(values) for mode, values in rates.items()}


async def main(args: argparse.Namespace) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    rows: list[tuple[str, dict[str, float] | str]] = []
    for name in args.backends:
        reason = _available(name, args)
        if reason is not None:
            rows.append((name, f"skipped: {reason}"))
            continue
        print(f"measuring {name} ...", file=sys.stderr, flush=True)
        async with _open(name, args) as backend:
            rows.append((name, await _measure(backend, args)))

    b = args.samples
    print(
        f"\n{b} samples of one prompt, max_tokens={args.max_tokens}, T=0.7, "
        f"median of {args.rounds} rounds (generated tokens/s)"
    )
    header = f"{'backend':<13}{'n=' + str(b) + ' call':>12}{str(b) + ' sequential':>15}"
    header += f"{'ratio':>8}{str(b) + ' concurrent':>15}{'ratio':>8}"
    print(header)
    for name, result in rows:
        if isinstance(result, str):
            print(f"{name:<13}{result}")
            continue
        one, seq, conc = result["one"], result["sequential"], result["concurrent"]
        print(
            f"{name:<13}{one:>12.1f}{seq:>15.1f}{one / seq:>7.2f}x{conc:>15.1f}{one / conc:>7.2f}x"
        )


def _parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--backends",
        type=lambda text: [t.strip() for t in text.split(",") if t.strip()],
        default=list(ALL),
        help=f"comma-separated subset of {','.join(ALL)}",
    )
    parser.add_argument("--samples", type=int, default=8, help="b, samples of the prompt")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (local, llama.cpp)")
    parser.add_argument("--openai-url", default=None, help="an OpenAI-compatible /v1 root")
    parser.add_argument("--openai-model", default="default")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.backends) - set(ALL))
    if unknown:
        parser.error(f"--backends: unknown {unknown}; choose from {', '.join(ALL)}")
    return args


if __name__ == "__main__":
    anyio.run(main, _parse())
