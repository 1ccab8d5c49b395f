"""Real components for integration tests: the default model, vLLM engines and servers.

Servers run as child processes on 127.0.0.1 with free ports, are waited for on ``/health``, and
are stopped by their process group (SIGTERM, then SIGKILL) when the module that uses them ends,
whatever happens. Engines and servers are shared by all tests of a module: each module is one
backend, so only one heavy component runs at a time on small machines.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from howhard.models import default_gguf_path, default_model_path

# Real components: no hub downloads, a small KV cache, loopback only.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
os.environ.setdefault("VLLM_HOST_IP", "127.0.0.1")

MODEL_NAME = "smollm2"


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def model_path() -> Path:
    """The embedded default model as a safetensors folder (prepared once per machine)."""
    return default_model_path()


@pytest.fixture(scope="session")
def gguf_path() -> Path:
    """The embedded default model as the GGUF file llama.cpp serves."""
    return default_gguf_path()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def session_members(sid: int) -> list[int]:
    """Processes of session ``sid`` (the server and everything it spawned)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


@dataclass(frozen=True)
class Server:
    """A running OpenAI-compatible server process."""

    base_url: str
    """Root including /v1."""
    model: str
    pid: int
    log: Path


def _stop(process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    if process.poll() is not None:
        return
    # The server runs in its own session, so its process group holds its workers too.
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=timeout)


@dataclass
class ServerProcess:
    """Starts ``command`` and waits until ``GET {root}/health`` answers 200."""

    command: list[str]
    port: int
    log: Path
    ready_timeout_s: float = 300

    def __enter__(self) -> subprocess.Popen[bytes]:
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(
                self.command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        try:
            self._wait_ready()
        except BaseException:
            _stop(self.process)
            raise
        return self.process

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout_s
        url = f"http://127.0.0.1:{self.port}/health"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = self.log.read_text(errors="replace")[-3000:]
                pytest.fail(f"{self.command[:4]} exited with {self.process.returncode}:\n{tail}")
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)  # polling a child process's readiness, not timing a test
        tail = self.log.read_text(errors="replace")[-3000:]
        pytest.fail(f"server not ready on {url} after {self.ready_timeout_s} s:\n{tail}")

    def __exit__(self, *exc_info: object) -> None:
        _stop(self.process)


def _vllm_server(
    model_path: Path, tmp_path_factory: pytest.TempPathFactory, *options: str
) -> ServerProcess:
    port = free_port()
    log = tmp_path_factory.mktemp("vllm-server") / "server.log"
    command = [sys.executable, "-m", "vllm.entrypoints.openai.api_server"]
    command += ["--model", str(model_path), "--host", "127.0.0.1", "--port", str(port)]
    command += ["--served-model-name", MODEL_NAME, "--max-model-len", "1024", "--enforce-eager"]
    return ServerProcess([*command, *options], port, log)


@pytest.fixture(scope="module")
def vllm_server(model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """vLLM's OpenAI-compatible server on the default model."""
    pytest.importorskip("vllm")
    from howhard.hardware import choose_dtype

    # bfloat16 only where this CPU runs it fast; elsewhere it is ~7x slower than float32.
    server = _vllm_server(model_path, tmp_path_factory, "--dtype", choose_dtype())
    with server as process:
        yield Server(f"http://127.0.0.1:{server.port}/v1", MODEL_NAME, process.pid, server.log)


@pytest.fixture(scope="module")
def vllm_pooling_server(
    model_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """vLLM's server as a LAST-token, un-normalised float32 embedding model (/v1/embeddings)."""
    pytest.importorskip("vllm")
    pooler = '{"pooling_type": "LAST", "use_activation": false}'
    server = _vllm_server(
        model_path,
        tmp_path_factory,
        *("--dtype", "float32", "--runner", "pooling", "--convert", "embed"),
        *("--pooler-config", pooler),
    )
    with server as process:
        yield Server(f"http://127.0.0.1:{server.port}/v1", MODEL_NAME, process.pid, server.log)


@pytest.fixture(scope="module")
def llamacpp_server(gguf_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """llama.cpp's OpenAI-compatible server (xllamacpp) on the default model, one thread."""
    pytest.importorskip("xllamacpp")
    port = free_port()
    log = tmp_path_factory.mktemp("llamacpp-server") / "server.log"
    script = Path(__file__).with_name("llamacpp_server.py")
    command = [sys.executable, str(script), "--model", str(gguf_path), "--port", str(port)]
    command += ["--alias", MODEL_NAME, "--threads", "1"]
    with ServerProcess(command, port, log, ready_timeout_s=120) as process:
        yield Server(f"http://127.0.0.1:{port}/v1", MODEL_NAME, process.pid, log)


@pytest.fixture(scope="module")
async def vllm_backend(model_path: Path) -> AsyncIterator[object]:
    """An in-process vLLM engine plus its pooling engine, shared by a module's tests."""
    pytest.importorskip("vllm")
    from howhard.backends import VLLMBackend

    backend = VLLMBackend(model_path, encoder=True, max_model_len=1024)
    await backend.start()
    try:
        yield backend
    finally:
        await backend.aclose()
