"""The demo's path, measured per dtype: model load, probe encoding, generation of its workload.

For every dtype the host can run (bfloat16 and float32 on CPU), side by side in one run:
  * ``matmul``: one-thread 1024x1024 matrix product, GFLOP/s (what decides the dtype),
  * the probe's encoder (``TransformersBackend``, as the shipped probe records it): load time,
    and encoding the demo's prompts at the probe's layer alone and beside a live vLLM engine
    (threads from ``howhard.hardware.torch_threads``, and with every core for comparison),
  * the vLLM engine: start time, and the demo's generation workload — its held-out questions,
    ``--samples`` each (the demo's average budget), all submitted at once, <= 32 tokens,
    T = 0.7 — as wall time and generated tokens/s,
and which dtype ``dtype="auto"`` picks. On a CPU with AVX-512 the same runs again in a child
process whose torch and oneDNN are capped at AVX2 (``ATEN_CPU_CAPABILITY=avx2
ONEDNN_MAX_CPU_ISA=AVX2``, inherited by vLLM's engine processes); ``howhard.hardware`` says how
faithful that stand-in for an AVX2-only CPU is. Each setting runs in its own process, because
the switches only act before torch is imported.

    python benchmarks/bench_demo.py                   # native and AVX2-capped, bf16 and fp32
    python benchmarks/bench_demo.py --settings native --dtypes float32 --questions 8
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

AVX2 = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
SETTINGS = {"native": {}, "avx2": AVX2}
DTYPES = ("bfloat16", "float32")


def _matmul_gflops(dtype_name: str, seconds: float = 1.0) -> float:
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        dtype = getattr(torch, dtype_name)
        a, b = torch.randn(1024, 1024, dtype=dtype), torch.randn(1024, 1024, dtype=dtype)
        a @ b
        reps, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            a @ b
            reps += 1
        return 2 * 1024**3 * reps / (time.perf_counter() - started) / 1e9
    finally:
        torch.set_num_threads(threads)


async def _timed(call: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    result = await call
    return time.perf_counter() - started, result


async def _one_dtype(dtype: str, args: argparse.Namespace) -> dict[str, Any]:
    import anyio

    from howhard import hardware
    from howhard.backends import TransformersBackend, VLLMBackend
    from howhard.commands.demo import DEFAULT_PROBE, held_out_requests
    from howhard.models import default_model_path
    from howhard.types import GenerationParams

    model = default_model_path()
    layer = int(json.loads((DEFAULT_PROBE / "probe.json").read_text())["encoder"]["layer"])
    requests = held_out_requests(args.questions, 0)
    prompts = [r.prompt for r in requests]
    row: dict[str, Any] = {"dtype": dtype, "matmul_gflops": _matmul_gflops(dtype)}

    encoder = TransformersBackend(model, dtype=dtype)
    row["encoder_load_s"], _ = await _timed(encoder.start())
    await encoder.encode(prompts[:1], layer=layer)  # warm-up: first-call allocations
    row["encode_alone_s"], _ = await _timed(encoder.encode(prompts, layer=layer))

    vllm = VLLMBackend(model, dtype=dtype)
    try:
        row["engine_start_s"], _ = await _timed(vllm.start())
        params = GenerationParams(max_tokens=args.max_tokens, temperature=0.7)
        await vllm.generate("Say hi.", n=1, params=params)  # the demo's warm-up call
        row["encoder_threads_beside_engine"] = hardware.torch_threads()
        row["encode_beside_s"], _ = await _timed(encoder.encode(prompts, layer=layer))
        cores = hardware.detect().cores
        if cores > 1 and row["encoder_threads_beside_engine"] not in (None, cores):
            every_core = TransformersBackend(model, dtype=dtype, num_threads=cores)
            await every_core.start()
            await every_core.encode(prompts[:1], layer=layer)
            row["encode_beside_every_core_s"], _ = await _timed(
                every_core.encode(prompts, layer=layer)
            )
            await every_core.aclose()
        tokens: list[int] = []

        async def one(prompt: str) -> None:
            generation = await vllm.generate(prompt, n=args.samples, params=params)
            tokens.append(generation.completion_tokens)

        started = time.perf_counter()
        async with anyio.create_task_group() as group:
            for prompt in prompts:
                group.start_soon(one, prompt)
        row["generate_s"] = time.perf_counter() - started
        row["tokens"] = sum(tokens)
        row["tokens_per_s"] = row["tokens"] / row["generate_s"]
    finally:
        await vllm.aclose()
        await encoder.aclose()
    return row


def _worker(args: argparse.Namespace) -> None:
    """Measure every dtype in this process (the setting's switches are already in its env)."""
    import anyio

    from howhard import hardware

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    machine = hardware.detect()
    out: dict[str, Any] = {
        "isa": machine.isa,
        "cpu_isa": machine.cpu_isa,
        "cores": machine.cores,
        "auto": hardware.choose_dtype("auto"),
        "rows": [],
    }
    for dtype in args.dtypes:
        print(f"  {args.setting}: {dtype} ...", file=sys.stderr, flush=True)
        out["rows"].append(anyio.run(_one_dtype, dtype, args, backend="asyncio"))
    print("RESULT " + json.dumps(out), flush=True)


def _run_setting(name: str, args: argparse.Namespace) -> dict[str, Any]:
    command = [sys.executable, __file__, "--worker", "--setting", name]
    command += ["--dtypes", ",".join(args.dtypes), "--questions", str(args.questions)]
    command += ["--samples", str(args.samples), "--max-tokens", str(args.max_tokens)]
    env = {**os.environ, **SETTINGS[name]}
    print(f"measuring {name} {SETTINGS[name] or ''} ...", file=sys.stderr, flush=True)
    done = subprocess.run(command, env=env, stdout=subprocess.PIPE, text=True, check=True)
    line = next(t for t in done.stdout.splitlines() if t.startswith("RESULT "))
    result: dict[str, Any] = json.loads(line.removeprefix("RESULT "))
    return result


def _header(args: argparse.Namespace) -> None:
    print(
        f"\nhowhard demo's path: {args.questions} held-out questions x n={args.samples}, "
        f"<= {args.max_tokens} tokens, T=0.7, all at once; probe encoder at the shipped layer"
    )
    head = (
        f"{'setting':<22}{'dtype':<10}{'matmul':>8}{'enc load':>10}{'encode':>8}"
        f"{'beside':>8}{'(all cores)':>12}{'start':>7}{'generate':>10}{'tokens':>8}{'tok/s':>8}"
    )
    print(head)
    print(f"{'':<22}{'':<10}{'GFLOP/s':>8}{'s':>10}{'s':>8}{'s':>8}{'s':>12}{'s':>7}{'s':>10}")


def _rows(name: str, result: dict[str, Any]) -> None:
    """Print one setting's rows (as soon as it is measured, so a later failure keeps them)."""
    label = f"{name} ({result['isa']})"
    for row in result["rows"]:
        auto = "*" if row["dtype"] == result["auto"] else ""
        every = row.get("encode_beside_every_core_s")
        print(
            f"{label:<22}{row['dtype'] + auto:<10}{row['matmul_gflops']:>8.1f}"
            f"{row['encoder_load_s']:>10.1f}{row['encode_alone_s']:>8.1f}"
            f"{row['encode_beside_s']:>8.1f}{'-' if every is None else f'{every:.1f}':>12}"
            f"{row['engine_start_s']:>7.1f}{row['generate_s']:>10.1f}{row['tokens']:>8}"
            f"{row['tokens_per_s']:>8.1f}",
            flush=True,
        )
        label = ""
    rates = {row["dtype"]: row["tokens_per_s"] for row in result["rows"]}
    if {"bfloat16", "float32"} <= set(rates):
        ratio = rates["float32"] / rates["bfloat16"]
        print(f"{'':<22}float32 / bfloat16 generation: {ratio:.2f}x (auto: {result['auto']})")


def _footer(settings: list[str]) -> None:
    print("* = what dtype='auto' picks in that setting; 'beside' = encoding while the engine is up")
    if "avx2" in settings:
        print(
            "avx2 = the CPU capped by ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2: torch's "
            "kernels and oneDNN's matrix products (vLLM's linear layers too) stop at AVX2, so "
            "bf16 is as slow as on an AVX2 CPU; vLLM still loads its AVX512-BF16 kernel library "
            "(chosen from CPUID) for attention and norms, and float32 products run about as fast "
            "capped as uncapped (compare the matmul column), so the avx2 float32 figures are an "
            "upper bound for a real AVX2 CPU."
        )


def _parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--settings",
        type=lambda text: [t.strip() for t in text.split(",") if t.strip()],
        default=None,
        help="comma-separated subset of native,avx2 (default: both where the CPU has AVX-512)",
    )
    parser.add_argument(
        "--dtypes",
        type=lambda text: [t.strip() for t in text.split(",") if t.strip()],
        default=list(DTYPES),
        help="comma-separated dtypes to compare",
    )
    parser.add_argument("--questions", type=int, default=32, help="the demo's default: 32")
    parser.add_argument("--samples", type=int, default=4, help="the demo's average budget: 4")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--setting", default="native", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = _parse(argv)
    if args.worker:
        _worker(args)
        return
    from howhard import hardware

    settings = args.settings
    if settings is None:
        # Capping at AVX2 changes nothing on a CPU that has no more than AVX2.
        level = hardware.detect().cpu_isa
        above_avx2 = level in hardware.ISA_LEVELS[2:]
        settings = ["native", "avx2"] if above_avx2 else ["native"]
    unknown = sorted(set(settings) - set(SETTINGS))
    if unknown:
        raise SystemExit(f"--settings: unknown {unknown}; choose from {', '.join(SETTINGS)}")
    _header(args)
    for name in settings:
        _rows(name, _run_setting(name, args))
    _footer(settings)


if __name__ == "__main__":
    main()
