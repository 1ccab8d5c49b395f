"""What this machine runs fast, detected once: the one place engines take dtype and threads from.

A bfloat16 matrix product is fast only where the CPU has AVX512-BF16 or AMX (or on a GPU); on an
AVX2-only CPU, torch's oneDNN kernels emulate it about 60 times slower than float32. So every local
engine (vLLM, transformers, the probe's encoder) resolves ``dtype="auto"`` through
:func:`choose_dtype`: bfloat16 where it is fast, float32 (float16 on a GPU without bf16)
otherwise; an explicit dtype always wins.

Detection reads ``/proc/cpuinfo`` (or asks torch where there is none) and honours the engines'
own instruction-set switches, so a faster CPU can stand in for a slower one::

    ATEN_CPU_CAPABILITY=avx2      torch's vectorised kernels stop at AVX2
    ONEDNN_MAX_CPU_ISA=AVX2       oneDNN (torch's and vLLM's matrix products) stops at AVX2

Both must be in the environment before torch is imported; vLLM's engine processes inherit them.

Threads: a vLLM engine on CPU binds its worker's OpenMP threads to cores of its own choosing (all
usable cores but one, kept for its scheduler process). :func:`torch_threads` gives in-process
torch work (the transformers backend, the encoder) the cores no live vLLM engine of this process
holds, so the two never oversubscribe the CPU; ``OMP_NUM_THREADS`` or an explicit
``num_threads`` wins.
"""

from __future__ import annotations

import contextlib
import functools
import os
import platform
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

__all__ = [
    "ISA_LEVELS",
    "Hardware",
    "choose_dtype",
    "claim_cpus",
    "detect",
    "engine_cpus",
    "from_flags",
    "release_cpus",
    "torch_threads",
    "vllm_cpu_plan",
]

Dtype = Literal["bfloat16", "float16", "float32"]

ISA_LEVELS = ("baseline", "avx2", "avx512", "avx512_bf16", "amx")
"""x86 levels that matter for speed, slowest first: ``avx512_bf16`` and ``amx`` run bf16 fast."""

LIMIT_SWITCHES = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")
"""Environment variables that cap the instruction set torch and oneDNN use."""

# ATEN_CPU_CAPABILITY values (torch/csrc: default, avx2, avx512) -> the level they cap at.
_ATEN_CAP = {"default": "baseline", "avx2": "avx2", "avx512": "amx"}
# oneDNN's cpu_isa names -> the level they cap at; ALL/DEFAULT and newer names cap nothing.
_ONEDNN_CAP = {
    "SSE41": "baseline",
    "AVX": "baseline",
    "AVX2": "avx2",
    "AVX2_VNNI": "avx2",
    "AVX2_VNNI_2": "avx2",
    "AVX512_CORE": "avx512",
    "AVX512_CORE_VNNI": "avx512",
    "AVX512_CORE_BF16": "avx512_bf16",
    "AVX512_CORE_FP16": "avx512_bf16",
    "AVX10_1_512": "avx512_bf16",
}


@dataclass(frozen=True, slots=True)
class Hardware:
    """What :func:`detect` found. Construct one directly to test a branch for another machine."""

    arch: str
    """``platform.machine()``: ``x86_64``, ``aarch64`` …"""
    cpu_isa: str
    """The CPU's own level (one of :data:`ISA_LEVELS` on x86; ``"arm_bf16"``/``"arm"``/``"other"``
    elsewhere)."""
    isa: str
    """The level engines will use: ``cpu_isa`` capped by the switches in :attr:`limits`."""
    cores: int
    """Physical cores this process may run on (affinity and cgroup quota): the threads that
    help a matrix product; hyperthreads share a core's vector units."""
    cpus: int = 0
    """Logical CPUs this process may run on (0: same as ``cores``)."""
    gpu: str | None = None
    """Name of CUDA device 0, or None."""
    gpu_bf16: bool = False
    """Whether that GPU computes bf16 natively."""
    limits: Mapping[str, str] = field(default_factory=dict)
    """The instruction-set switches set in the environment (see the module docstring)."""
    source: str = "cpuinfo"
    """Where the CPU flags came from: ``cpuinfo``, ``torch`` or ``none``."""

    @property
    def fast_bf16(self) -> bool:
        """Whether bfloat16 matrix products run at least as fast as float32 on this CPU."""
        if self.isa == "arm_bf16":
            return True
        return self.isa in ("avx512_bf16", "amx")


def _level(flags: frozenset[str]) -> str:
    if "amx_bf16" in flags:
        return "amx"
    if "avx512_bf16" in flags:
        return "avx512_bf16"
    if {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= flags:
        return "avx512"
    if {"avx2", "fma"} <= flags:
        return "avx2"
    return "baseline"


def _cap(level: str, env: Mapping[str, str]) -> str:
    """``level`` lowered to what ``env``'s switches allow."""
    caps = [_ATEN_CAP.get(env.get("ATEN_CPU_CAPABILITY", "").strip().lower())]
    onednn = env.get("ONEDNN_MAX_CPU_ISA") or env.get("DNNL_MAX_CPU_ISA") or ""
    caps.append(_ONEDNN_CAP.get(onednn.strip().upper()))
    index = ISA_LEVELS.index(level)
    for cap in caps:
        if cap is not None:
            index = min(index, ISA_LEVELS.index(cap))
    return ISA_LEVELS[index]


def from_flags(
    flags: frozenset[str] | set[str],
    *,
    arch: str = "x86_64",
    cores: int = 1,
    cpus: int = 0,
    env: Mapping[str, str] | None = None,
    gpu: str | None = None,
    gpu_bf16: bool = False,
    source: str = "cpuinfo",
) -> Hardware:
    """Describe a machine from its CPU flags (as ``/proc/cpuinfo`` spells them) and environment."""
    env = os.environ if env is None else env
    flags = frozenset(flags)
    limits = {k: env[k] for k in LIMIT_SWITCHES if env.get(k)}
    if arch in ("x86_64", "AMD64", "i686", "x86"):
        cpu_isa = _level(flags)
        isa = _cap(cpu_isa, env)
    elif arch in ("aarch64", "arm64"):
        cpu_isa = isa = "arm_bf16" if "bf16" in flags else "arm"
    else:
        cpu_isa = isa = "other"
    return Hardware(
        arch=arch,
        cpu_isa=cpu_isa,
        isa=isa,
        cores=max(1, cores),
        cpus=max(cores, cpus),
        gpu=gpu,
        gpu_bf16=gpu_bf16,
        limits=limits,
        source=source,
    )


def _cpuinfo_flags() -> frozenset[str] | None:
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):  # x86 / ARM spelling
            return frozenset(value.split())
    return None


def _torch_flags() -> frozenset[str] | None:
    try:
        import torch
    except ImportError:
        return None
    checks = {
        "avx2": "_is_avx2_supported",
        "avx512f": "_is_avx512_supported",
        "avx512_bf16": "_is_avx512_bf16_supported",
        "amx_bf16": "_is_amx_tile_supported",
    }
    flags = {flag for flag, name in checks.items() if getattr(torch.cpu, name, lambda: False)()}
    if "avx2" in flags:
        flags.add("fma")
    if "avx512f" in flags:
        flags |= {"avx512bw", "avx512vl", "avx512dq"}
    return frozenset(flags)


def _usable_cpus() -> tuple[int, int]:
    """(physical cores, logical CPUs) this process may use."""
    ids = _cpu_ids()
    cores = len({_topology(cpu)[1:] for cpu in ids}) or len(ids)
    cpus = len(ids)
    # A container's CPU quota (cgroup v2 "cpu.max": QUOTA PERIOD) caps what affinity shows.
    with contextlib.suppress(OSError, ValueError):
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            limit = max(1, int(quota) // int(period))
            cores, cpus = min(cores, limit), min(cpus, limit)
    return max(1, cores), max(1, cpus)


def _gpu() -> tuple[str | None, bool]:
    # Importing torch costs seconds; skip it on machines with no GPU device node at all.
    nodes = ("/dev/nvidia0", "/dev/nvidiactl", "/dev/kfd")
    if "torch" not in sys.modules and not any(os.path.exists(p) for p in nodes):
        return None, False
    try:
        import torch
    except ImportError:
        return None, False
    if not torch.cuda.is_available():
        return None, False
    return str(torch.cuda.get_device_name(0)), bool(torch.cuda.is_bf16_supported())


@functools.cache
def detect() -> Hardware:
    """Detect this machine once (cached for the process); cheap, and imports torch only if needed.

    CPU flags come from ``/proc/cpuinfo`` where it exists, else from torch; the GPU from torch,
    only where a GPU device node exists. The instruction-set switches in the environment at the
    first call are honoured (see the module docstring).
    """
    flags, source = _cpuinfo_flags(), "cpuinfo"
    if flags is None:
        flags, source = _torch_flags(), "torch"
    if flags is None:
        flags, source = frozenset(), "none"
    gpu, gpu_bf16 = _gpu()
    cores, cpus = _usable_cpus()
    return from_flags(
        flags,
        arch=platform.machine(),
        cores=cores,
        cpus=cpus,
        gpu=gpu,
        gpu_bf16=gpu_bf16,
        source=source,
    )


def choose_dtype(requested: str = "auto", *, device: str = "cpu") -> str:
    """The dtype an engine on ``device`` should load: ``requested`` unless it is ``"auto"``.

    ``"auto"``: bfloat16 where bf16 is fast (AVX512-BF16/AMX CPUs, GPUs with bf16), float16 on a
    GPU without bf16, float32 on every other CPU.
    """
    if requested != "auto":
        return requested
    hardware = detect()
    if device.startswith("cuda"):
        return "bfloat16" if hardware.gpu_bf16 or hardware.gpu is None else "float16"
    if device == "cpu":
        return "bfloat16" if hardware.fast_bf16 else "float32"
    return "float32"


@dataclass(frozen=True, slots=True)
class VLLMCPUPlan:
    """How a vLLM engine on this CPU will place its worker's threads."""

    worker_threads: int
    """OpenMP threads of the engine's worker process."""
    cpus: frozenset[int]
    """CPU ids the worker binds to (empty when binding is off)."""
    explicit: bool
    """Whether ``VLLM_CPU_OMP_THREADS_BIND`` was set by the user."""


def _cpu_ids() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return list(range(os.cpu_count() or 1))


def _topology(cpu: int) -> tuple[str, str, str]:
    """(NUMA node, package, core) of a CPU from sysfs; empty strings where unknown."""
    base = Path(f"/sys/devices/system/cpu/cpu{cpu}")
    node = next((p.name for p in base.glob("node[0-9]*")), "") if base.exists() else ""
    parts = []
    for name in ("physical_package_id", "core_id"):
        try:
            parts.append((base / "topology" / name).read_text().strip())
        except OSError:
            parts.append(str(cpu) if name == "core_id" else "")
    return node, parts[0], parts[1]


def _parse_cpu_list(text: str) -> frozenset[int]:
    ids: set[int] = set()
    for part in text.split(","):
        low, _, high = part.strip().partition("-")
        if low.isdigit():
            ids.update(range(int(low), int(high or low) + 1))
    return frozenset(ids)


def vllm_cpu_plan(env: Mapping[str, str] | None = None) -> VLLMCPUPlan:
    """Where vLLM 0.32's CPU engine will run its worker, from the same variables it reads.

    ``VLLM_CPU_OMP_THREADS_BIND=auto`` (its default) binds one thread per physical core of the
    first NUMA node except ``VLLM_CPU_NUM_OF_RESERVED_CPU`` (default 1, kept for its scheduler
    process); a CPU list (``0-3``) binds those CPUs; ``nobind`` leaves OpenMP to
    ``OMP_NUM_THREADS``.
    """
    env = os.environ if env is None else env
    bind = env.get("VLLM_CPU_OMP_THREADS_BIND", "auto").strip() or "auto"
    if bind == "nobind":
        threads = int(env.get("OMP_NUM_THREADS") or detect().cores)
        return VLLMCPUPlan(threads, frozenset(), explicit=True)
    if bind != "auto":
        cpus = _parse_cpu_list(bind.split("|")[0])
        return VLLMCPUPlan(len(cpus), cpus, explicit=True)
    ids = _cpu_ids()
    first_node = _topology(ids[0])[0] if ids else ""
    per_core: dict[tuple[str, str], int] = {}
    for cpu in ids:
        node, package, core = _topology(cpu)
        if node == first_node:
            per_core[(package, core)] = cpu  # the last sibling of each core, as vLLM picks
    chosen = sorted(per_core.values())
    reserved = int(env.get("VLLM_CPU_NUM_OF_RESERVED_CPU") or 1)
    # vLLM keeps every chosen CPU when reserving would leave it none.
    kept = chosen if len(chosen) <= reserved else chosen[: len(chosen) - reserved]
    return VLLMCPUPlan(len(kept), frozenset(kept), explicit=False)


_claims: dict[int, frozenset[int]] = {}
_claims_lock = threading.Lock()


def claim_cpus(owner: object, cpus: frozenset[int]) -> None:
    """Record that ``owner`` (an engine of this process) keeps ``cpus`` busy until released."""
    with _claims_lock:
        _claims[id(owner)] = cpus


def release_cpus(owner: object) -> None:
    """Forget ``owner``'s claim (idempotent)."""
    with _claims_lock:
        _claims.pop(id(owner), None)


def engine_cpus() -> frozenset[int]:
    """CPUs the live engines of this process have claimed (see :func:`claim_cpus`)."""
    with _claims_lock:
        return frozenset().union(*_claims.values())


def torch_threads(
    requested: int | None = None, *, held: frozenset[int] | None = None
) -> int | None:
    """Threads for torch work in this process; None means leave torch's own default alone.

    An explicit ``requested`` count wins, then ``OMP_NUM_THREADS``. While a vLLM engine of this
    process holds cores (``held``: those, default the live claims of :func:`claim_cpus`), the
    cores it leaves (at least one), so the two never oversubscribe the CPU; otherwise torch's
    default (one thread per physical core).
    """
    if requested is not None:
        return requested
    held = engine_cpus() if held is None else held
    if os.environ.get("OMP_NUM_THREADS") or not held:
        return None
    return max(1, detect().cores - len(held))
