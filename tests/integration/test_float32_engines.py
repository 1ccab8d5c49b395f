"""On a CPU without fast bf16, dtype="auto" engines load float32 and answer.

The host's CPU is capped at AVX2 through the engines' own switches (``ATEN_CPU_CAPABILITY``,
``ONEDNN_MAX_CPU_ISA``), which must be set before torch is imported, so the engines run in a
child process; vLLM's engine processes inherit the switches.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

SCRIPT = """
import json, os, sys
sys.path.insert(0, os.getcwd())  # this checkout's howhard and tests, not an installed copy
import anyio
from howhard import hardware
from howhard.backends import TransformersBackend, VLLMBackend
from tests.integration.end_to_end import answer_arithmetic

def correct(results):
    return sum(r.chosen is not None and r.chosen.score == 1.0 for r in results)

async def main():
    machine = hardware.detect()
    out = {"isa": machine.isa, "cores": machine.cores, "auto": hardware.choose_dtype()}
    async with VLLMBackend(max_model_len=512) as engine:
        out["vllm_dtype"] = engine.dtype
        out["vllm_model_dtype"] = str(engine._engine.model_config.dtype)
        out["held"] = sorted(hardware.engine_cpus())
        out["encoder_threads"] = hardware.torch_threads()
        out["vllm_correct"] = correct(await answer_arithmetic(engine))
    out["held_after"] = sorted(hardware.engine_cpus())
    async with TransformersBackend(num_threads=1) as local:
        model, _, _ = local._load()
        out["transformers_dtype"] = str(next(model.parameters()).dtype)
        out["transformers_correct"] = correct(await answer_arithmetic(local))
    print("RESULT " + json.dumps(out))

if __name__ == "__main__":
    anyio.run(main, backend="asyncio")
"""


def test_auto_engines_load_float32_on_an_avx2_capped_cpu_and_answer(
    model_path: Path, tmp_path: Path
) -> None:
    pytest.importorskip("vllm")
    script = tmp_path / "float32_engines.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
    env.pop("OMP_NUM_THREADS", None)
    done = subprocess.run(
        [sys.executable, str(script)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=Path(__file__).resolve().parents[2],
    )
    line = next((t for t in done.stdout.splitlines() if t.startswith("RESULT ")), None)
    assert done.returncode == 0 and line is not None, done.stderr[-3000:]
    out = json.loads(line.removeprefix("RESULT "))
    assert out["isa"] in ("avx2", "baseline")
    assert out["auto"] == out["vllm_dtype"] == "float32"
    assert out["vllm_model_dtype"] == "torch.float32"
    assert out["transformers_dtype"] == "torch.float32"
    # Each question is right in 75-88% of samples, so best-of-4 misses one ~1 time in 1000.
    assert out["vllm_correct"] >= 2 and out["transformers_correct"] >= 2
    # While the engine ran, in-process torch work was kept off its cores.
    assert out["held"] and out["held_after"] == []
    assert out["encoder_threads"] == max(1, out["cores"] - len(out["held"]))
