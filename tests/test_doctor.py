"""`howhard doctor` reports what each engine will use here, and warns where a setting is slow."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from howhard.cli import main
from tests.conftest import ForceHardware


@pytest.fixture(autouse=True)
def _plain_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No thread, ISA or KV-cache settings unless a test sets them."""
    for name in (
        "OMP_NUM_THREADS",
        "VLLM_CPU_OMP_THREADS_BIND",
        "VLLM_CPU_NUM_OF_RESERVED_CPU",
        "VLLM_CPU_KVCACHE_SPACE",
        "ATEN_CPU_CAPABILITY",
        "ONEDNN_MAX_CPU_ISA",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("howhard.commands.doctor._load_average", lambda: 0.1)


def _doctor(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[str, list[str]]:
    assert main(["doctor", *args]) == 0
    out = capsys.readouterr().out
    warnings = [line.strip()[2:] for line in out.splitlines() if line.strip().startswith("! ")]
    return out, warnings


def _row(out: str, section: str, key: str) -> str:
    """The value of ``key`` in the report's ``section`` (rows are ``"  KEY<14 VALUE"``)."""
    current = None
    for line in out.splitlines():
        if not line.startswith(" "):
            current = line.strip()
        elif current == section and line[2:16].strip() == key:
            return line[16:]
    raise AssertionError(f"no {key!r} in section {section!r} of:\n{out}")


@pytest.mark.parametrize(
    ("fast_bf16", "bf16", "dtype"),
    [
        (False, "slow here: float32 is used instead", "float32"),
        (True, "fast (AVX512-BF16/AMX)", "bfloat16"),
    ],
)
def test_every_engine_gets_the_dtype_the_cpu_runs_fast(
    capsys: pytest.CaptureFixture[str],
    force_hardware: ForceHardware,
    fast_bf16: bool,
    bf16: str,
    dtype: str,
) -> None:
    force_hardware(fast_bf16=fast_bf16)
    out, warnings = _doctor(capsys)
    assert _row(out, "machine", "bf16") == bf16
    assert f"dtype {dtype} (auto)" in _row(out, "engines", "vllm")
    assert f"dtype {dtype} (auto)" in _row(out, "engines", "transformers")
    assert not [w for w in warnings if "dtype=" in w]


def test_explicit_bf16_on_a_cpu_without_fast_bf16_is_warned_about(
    capsys: pytest.CaptureFixture[str], force_hardware: ForceHardware
) -> None:
    force_hardware(fast_bf16=False)
    out, warnings = _doctor(capsys, "--dtype", "bfloat16")
    assert "dtype bfloat16 (as passed)" in _row(out, "engines", "vllm")
    assert any(w.startswith("dtype=bfloat16 on this avx2 CPU") and "float32" in w for w in warnings)
    force_hardware(fast_bf16=True)
    _, warnings = _doctor(capsys, "--dtype", "bfloat16")
    assert not [w for w in warnings if "dtype=" in w]


def test_a_gpu_is_reported_with_its_dtype(
    capsys: pytest.CaptureFixture[str], force_hardware: ForceHardware
) -> None:
    force_hardware(fast_bf16=False, gpu="NVIDIA H200", gpu_bf16=True)
    out, warnings = _doctor(capsys)
    assert "NVIDIA H200 (bf16 yes)" in _row(out, "machine", "gpu")
    assert "dtype bfloat16 (auto) on the GPU" in _row(out, "engines", "vllm")
    assert not [w for w in warnings if "VLLM_CPU_KVCACHE_SPACE" in w]  # CPU-only setting


def test_kv_cache_and_thread_settings(
    capsys: pytest.CaptureFixture[str],
    force_hardware: ForceHardware,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    force_hardware(fast_bf16=False, cores=2)
    out, warnings = _doctor(capsys)
    assert any(w.startswith("VLLM_CPU_KVCACHE_SPACE is unset") for w in warnings)
    assert "torch threads 2 alone, 1 beside a vLLM engine" in _row(out, "engines", "transformers")
    assert not [w for w in warnings if "threads" in w or "oversubscribes" in w]

    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "2")
    monkeypatch.setenv("OMP_NUM_THREADS", "8")
    out, warnings = _doctor(capsys)
    assert "KV cache 2 GiB (VLLM_CPU_KVCACHE_SPACE)" in _row(out, "engines", "vllm")
    assert not [w for w in warnings if "VLLM_CPU_KVCACHE_SPACE is unset" in w]
    assert any(w.startswith("OMP_NUM_THREADS=8 on 2 usable cores") for w in warnings)
    assert any("oversubscribes 2 cores" in w for w in warnings)

    monkeypatch.delenv("OMP_NUM_THREADS")
    _, warnings = _doctor(capsys, "--threads", "3")
    assert any(w.startswith("--threads=3 on 2 usable cores") for w in warnings)


def test_an_isa_cap_in_the_environment_is_reported_and_warned_about(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from howhard import hardware

    flags = {"avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512_bf16"}
    capped = hardware.from_flags(flags, cores=2, env={"ONEDNN_MAX_CPU_ISA": "AVX2"})
    monkeypatch.setattr(hardware, "detect", lambda: capped)
    out, warnings = _doctor(capsys)
    assert "avx2 (the CPU has avx512_bf16)" in _row(out, "machine", "isa")
    assert "ONEDNN_MAX_CPU_ISA=AVX2" in _row(out, "machine", "isa limits")
    assert "dtype float32 (auto)" in _row(out, "engines", "vllm")
    assert any(w.startswith("ONEDNN_MAX_CPU_ISA=AVX2 caps this avx512_bf16 CPU") for w in warnings)


def test_the_model_cache_and_an_unprepared_default_model(
    capsys: pytest.CaptureFixture[str],
    force_hardware: ForceHardware,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    force_hardware(fast_bf16=True)
    monkeypatch.setenv("HOWHARD_CACHE_DIR", str(tmp_path))
    out, warnings = _doctor(capsys)
    assert f"{tmp_path} (HOWHARD_CACHE_DIR)" in _row(out, "model", "cache")
    assert "not prepared yet" in _row(out, "model", "default")
    assert any("python -m howhard.models" in w for w in warnings)
    assert not any(tmp_path.iterdir())  # reporting prepared nothing


def test_a_bad_thread_count_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", "--threads", "0"]) == 2
    assert "threads must be >= 1, got 0" in capsys.readouterr().err


def test_doctor_starts_no_engine() -> None:
    code = (
        "import sys\nfrom howhard.cli import main\nmain(['doctor'])\n"
        "print('engine modules:', sorted(m for m in ('vllm', 'transformers') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert done.stdout.strip().splitlines()[-1] == "engine modules: []"
    assert "versions" in done.stdout and "engines" in done.stdout
