"""The hardware probe: instruction-set levels and caps, the dtype choice, the thread policy."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from howhard import hardware
from howhard.hardware import choose_dtype, from_flags
from tests.conftest import ForceHardware

AVX2 = {"avx", "avx2", "fma", "sse4_2"}
AVX512 = AVX2 | {"avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512cd"}
AVX512_BF16 = AVX512 | {"avx512_bf16", "avx512_vnni"}
AMX = AVX512_BF16 | {"amx_bf16", "amx_tile", "amx_int8"}


@pytest.mark.parametrize(
    ("flags", "level", "fast"),
    [
        (AVX2, "avx2", False),
        (AVX512, "avx512", False),  # AVX-512 without BF16 converts bf16 in software
        (AVX512_BF16, "avx512_bf16", True),
        (AMX, "amx", True),
        ({"sse4_2"}, "baseline", False),
    ],
)
def test_cpu_flags_give_the_level_and_whether_bf16_is_fast(
    flags: set[str], level: str, fast: bool
) -> None:
    machine = from_flags(flags, env={})
    assert (machine.cpu_isa, machine.isa, machine.fast_bf16) == (level, level, fast)
    assert machine.limits == {}


@pytest.mark.parametrize(
    ("env", "level"),
    [
        ({"ONEDNN_MAX_CPU_ISA": "AVX2"}, "avx2"),
        ({"ONEDNN_MAX_CPU_ISA": "avx512_core"}, "avx512"),
        ({"DNNL_MAX_CPU_ISA": "AVX2_VNNI"}, "avx2"),
        ({"ATEN_CPU_CAPABILITY": "avx2"}, "avx2"),
        ({"ATEN_CPU_CAPABILITY": "default"}, "baseline"),
        ({"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16"}, "avx2"),
        ({"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16"}, "avx512_bf16"),
        ({"ONEDNN_MAX_CPU_ISA": "ALL", "ATEN_CPU_CAPABILITY": "avx512"}, "amx"),
        ({"ONEDNN_MAX_CPU_ISA": "NOT_AN_ISA"}, "amx"),  # what oneDNN ignores, we ignore
    ],
)
def test_the_engines_own_switches_cap_the_level(env: dict[str, str], level: str) -> None:
    machine = from_flags(AMX, env=env)
    assert machine.cpu_isa == "amx"
    assert machine.isa == level
    assert machine.fast_bf16 is (level in ("avx512_bf16", "amx"))
    assert dict(machine.limits) == env


def test_a_cap_never_raises_the_level() -> None:
    machine = from_flags(AVX2, env={"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_AMX"})
    assert machine.isa == "avx2" and not machine.fast_bf16


def test_arm_bf16_comes_from_the_features_line() -> None:
    assert from_flags({"fp", "asimd", "bf16"}, arch="aarch64", env={}).fast_bf16
    assert not from_flags({"fp", "asimd"}, arch="aarch64", env={}).fast_bf16


def test_auto_is_bf16_only_where_bf16_is_fast(force_hardware: ForceHardware) -> None:
    force_hardware(fast_bf16=True)
    assert choose_dtype("auto") == "bfloat16"
    force_hardware(fast_bf16=False)
    assert choose_dtype("auto") == "float32"
    assert choose_dtype() == "float32"


def test_an_explicit_dtype_always_wins(force_hardware: ForceHardware) -> None:
    force_hardware(fast_bf16=False)
    assert choose_dtype("bfloat16") == "bfloat16"
    force_hardware(fast_bf16=True)
    assert choose_dtype("float32") == "float32"
    assert choose_dtype("float16", device="cuda") == "float16"


def test_on_a_gpu_auto_is_bf16_where_supported_else_float16(force_hardware: ForceHardware) -> None:
    force_hardware(fast_bf16=False, gpu="NVIDIA H200", gpu_bf16=True)
    assert choose_dtype("auto", device="cuda") == "bfloat16"
    assert choose_dtype("auto", device="cpu") == "float32"  # the CPU is still an AVX2 CPU
    force_hardware(fast_bf16=True, gpu="Tesla T4", gpu_bf16=False)
    assert choose_dtype("auto", device="cuda:0") == "float16"


def _run(code: str, **env: str) -> str:
    import os

    environment = {k: v for k, v in os.environ.items() if k not in hardware.LIMIT_SWITCHES}
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**environment, **env},
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    return done.stdout.strip()


@pytest.mark.skipif(not Path("/proc/cpuinfo").exists(), reason="needs /proc/cpuinfo")
def test_detection_is_cached_and_does_not_import_torch() -> None:
    if any(Path(p).exists() for p in ("/dev/nvidia0", "/dev/nvidiactl", "/dev/kfd")):
        pytest.skip("a GPU device node makes the probe ask torch about the GPU")
    code = (
        "import sys; from howhard import hardware\n"
        "first = hardware.detect()\n"
        "print(first is hardware.detect(), 'torch' in sys.modules, first.source)"
    )
    assert _run(code) == "True False cpuinfo"


def test_detection_honours_the_switches_in_the_environment() -> None:
    code = "from howhard import hardware; m = hardware.detect(); print(m.isa, m.fast_bf16)"
    native = _run(code).split()
    if native[0] not in ("avx512", "avx512_bf16", "amx"):
        pytest.skip(f"this CPU is {native[0]}: capping it at AVX2 changes nothing")
    capped = _run(code, ATEN_CPU_CAPABILITY="avx2", ONEDNN_MAX_CPU_ISA="AVX2")
    assert capped == "avx2 False"
    assert (
        _run(
            "from howhard import hardware; print(hardware.choose_dtype())",
            ONEDNN_MAX_CPU_ISA="AVX2",
        )
        == "float32"
    )


def test_vllm_plan_follows_its_environment_variables(force_hardware: ForceHardware) -> None:
    force_hardware(fast_bf16=False)
    explicit = hardware.vllm_cpu_plan({"VLLM_CPU_OMP_THREADS_BIND": "0-2,5"})
    assert (explicit.worker_threads, explicit.cpus, explicit.explicit) == (4, {0, 1, 2, 5}, True)
    nobind = hardware.vllm_cpu_plan({"VLLM_CPU_OMP_THREADS_BIND": "nobind", "OMP_NUM_THREADS": "3"})
    assert (nobind.worker_threads, nobind.cpus) == (3, frozenset())


def test_vllm_auto_binding_keeps_one_thread_per_core_and_reserves_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Two cores with two hyperthreads each (CPUs 0/2 and 1/3), one NUMA node, as vLLM sees them.
    topology = {0: ("node0", "0", "0"), 1: ("node0", "0", "1"), 2: ("node0", "0", "0")}
    topology[3] = ("node0", "0", "1")
    monkeypatch.setattr(hardware, "_cpu_ids", lambda: [0, 1, 2, 3])
    monkeypatch.setattr(hardware, "_topology", topology.__getitem__)
    plan = hardware.vllm_cpu_plan({})
    assert (plan.worker_threads, plan.cpus, plan.explicit) == (1, {2}, False)
    none_reserved = hardware.vllm_cpu_plan({"VLLM_CPU_NUM_OF_RESERVED_CPU": "0"})
    assert none_reserved.cpus == {2, 3}
    monkeypatch.setattr(hardware, "_cpu_ids", lambda: [0])
    assert hardware.vllm_cpu_plan({}).cpus == {0}  # vLLM keeps a lone core rather than none


def test_torch_threads_leave_the_cores_a_vllm_engine_holds(
    force_hardware: ForceHardware, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    force_hardware(fast_bf16=False, cores=4)
    engine = object()
    assert hardware.torch_threads() is None  # alone: torch's own default
    hardware.claim_cpus(engine, frozenset({0, 1, 2}))
    try:
        assert hardware.engine_cpus() == {0, 1, 2}
        assert hardware.torch_threads() == 1
        assert hardware.torch_threads(3) == 3  # an explicit count wins
        monkeypatch.setenv("OMP_NUM_THREADS", "2")
        assert hardware.torch_threads() is None  # so does OMP_NUM_THREADS (torch reads it)
        monkeypatch.delenv("OMP_NUM_THREADS")
        assert hardware.torch_threads(held=frozenset({0})) == 3
    finally:
        hardware.release_cpus(engine)
    hardware.release_cpus(engine)  # idempotent
    assert hardware.engine_cpus() == frozenset()
    assert hardware.torch_threads() is None
