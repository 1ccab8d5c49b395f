"""`howhard serve` with no config: the embedded model on in-process vLLM with the shipped probe.

One end-to-end check: the official openai client asks two questions (one with a reference, so
best-of-k with the verifier; one without, so self-consistency), the responses carry the probe's
prediction, and SIGTERM shuts the gateway down with no engine process left behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import free_port, session_members

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


def test_serve_with_no_arguments_answers_with_the_embedded_model(tmp_path: Path) -> None:
    pytest.importorskip("vllm")
    from openai import OpenAI

    port = free_port()
    log = tmp_path / "serve.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "howhard", "serve", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 420
        while True:
            if process.poll() is not None:
                pytest.fail(f"howhard serve exited:\n{log.read_text()[-4000:]}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, log.read_text()[-4000:]
            time.sleep(1)  # polling a child process's readiness, not timing a test
        assert len(session_members(process.pid)) > 1, "vLLM's engine runs in its own process"

        client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0)
        assert [m.id for m in client.models.list()] == ["smollm2"]
        verified = client.chat.completions.create(
            model="smollm2",
            messages=[{"role": "user", "content": "What is 2 + 3? Answer with just the number."}],
            max_tokens=24,
            extra_body={"howhard": {"reference": "5"}},
            timeout=300,
        )
        voted = client.chat.completions.create(
            model="smollm2",
            messages=[{"role": "user", "content": "What is the capital of France?"}],
            max_tokens=24,
            timeout=300,
        )
        for response, procedure in ((verified, "best-of-k"), (voted, "self-consistency")):
            extension = response.model_extra["howhard"]
            assert extension["procedure"] == procedure
            assert 0.0 <= extension["predicted_success"] <= 1.0  # the shipped λ probe ran
            assert 1 <= extension["budget"] <= 16
            assert extension["samples"] == extension["budget"]
            assert response.choices[0].message.content
            assert response.usage.completion_tokens >= extension["samples"]
        assert verified.model_extra["howhard"]["score"] in (0.0, 1.0)  # a verifier's verdict
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        assert 'howhard_samples_total{model="smollm2",tenant="default"}' in metrics
        assert "howhard_probe_calibration_error" in metrics

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=120) == 0, log.read_text()[-4000:]
        gone = time.monotonic() + 30
        while session_members(process.pid) and time.monotonic() < gone:
            time.sleep(0.5)  # engine processes exit right after their parent
        assert session_members(process.pid) == [], "an engine process outlived the gateway"
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
