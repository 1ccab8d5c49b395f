"""A real ``howhard serve`` process on 127.0.0.1, one per test module, with scripted backends.

``gateway_process(config_text, tmp_path, tenants)`` writes the config, creates one API key per
tenant (through ``append_key``, as ``howhard keys add`` does), starts ``python -m howhard serve``
in its own session on a free port and waits for ``/readyz``. Leaving the block sends SIGTERM (the
graceful path under test elsewhere) and kills the process group if it does not exit.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio
import httpx
import pytest

from howhard.serve.keys import append_key

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RunningGateway:
    """A running ``howhard serve`` process."""

    url: str
    """Root URL (no /v1)."""
    keys: dict[str, str]
    """tenant -> API key."""
    process: subprocess.Popen[bytes]
    log: Path
    config: Path

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    def metric(self, name: str, **labels: str) -> float:
        """The current value of one Prometheus sample (0 when absent)."""
        text = httpx.get(self.url + "/metrics", timeout=10).text
        for line in text.splitlines():
            if not line.startswith(name + "{") and not line.startswith(name + " "):
                continue
            if all(f'{k}="{v}"' in line for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    def wait_until(self, condition: str, check: object, timeout_s: float = 20.0) -> None:
        """Poll ``check()`` (a readiness condition of the server, not a timing) until true."""
        deadline = time.monotonic() + timeout_s
        while not check():  # type: ignore[operator]
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {condition}:\n{self.tail()}")
            time.sleep(0.02)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def stop(process: subprocess.Popen[bytes], timeout_s: float = 30, *, group: bool = True) -> int:
    """SIGTERM the server (its whole process group, or only the server when not ``group``), then
    SIGKILL the group if it has not exited after ``timeout_s``."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            if group:
                os.killpg(process.pid, signal.SIGTERM)
            else:
                process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=timeout_s)
    return process.returncode


@contextlib.contextmanager
def gateway_process(
    config_text: str,
    tmp_path: Path,
    tenants: Sequence[str] = (),
    *,
    ready_timeout_s: float = 60,
    args: Sequence[str] = (),
    wait_for: str = "/readyz",
    ready_log: str | None = None,
    signal_group: bool = True,
) -> Iterator[RunningGateway]:
    """Run ``howhard serve`` on ``config_text`` until the block ends.

    Ready once ``wait_for`` answers 200 and, if given, ``ready_log`` is in the server's output.
    ``signal_group=False`` stops it by signalling the server alone (a Ray cluster it started
    must outlive the signal to be shut down by it); the group is killed after either way.
    """
    config = tmp_path / "serve.toml"
    config.write_text(config_text, encoding="utf-8")
    keys = {tenant: append_key(config, tenant, name="test") for tenant in tenants}
    port = free_port()
    log = tmp_path / "serve.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "howhard", "serve", "--config", str(config)]
    command += ["--port", str(port), *args]
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    gateway = RunningGateway(f"http://127.0.0.1:{port}", keys, process, log, config)
    try:
        deadline = time.monotonic() + ready_timeout_s
        while True:
            if process.poll() is not None:
                pytest.fail(f"howhard serve exited with {process.returncode}:\n{gateway.tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(gateway.url + wait_for, timeout=2).status_code == 200 and (
                    ready_log is None or ready_log in log.read_text(errors="replace")
                ):
                    break
            if time.monotonic() > deadline:
                pytest.fail(f"howhard serve not ready after {ready_timeout_s} s:\n{gateway.tail()}")
            time.sleep(0.05)  # polling a child process's readiness, not timing a test
        yield gateway
    finally:
        stop(process, group=signal_group)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # anything the server left behind


def ray_gateway_process(
    config_text: str,
    tmp_path: Path,
    *,
    replicas: str,
    tenants: Sequence[str] = (),
    ready_timeout_s: float = 180,
) -> contextlib.AbstractContextManager[RunningGateway]:
    """``howhard serve --ray`` on a local Ray cluster: ready once it reports ``replicas`` ready
    ("2 replicas", "1-2 replicas (autoscaling)"); stopped by signalling the server alone, which
    shuts down the cluster it started. ``tenants`` get one API key each, as for gateway_process."""
    return gateway_process(
        config_text,
        tmp_path,
        tenants,
        args=["--ray"],
        ready_timeout_s=ready_timeout_s,
        ready_log=f"on Ray Serve, {replicas}",
        signal_group=False,
    )


@contextlib.asynccontextmanager
async def abandoned_request(
    gateway: RunningGateway, tenant: str, body: object, until: str, check: object
) -> AsyncIterator[httpx.AsyncClient]:
    """Post ``body`` as ``tenant``, wait until ``check()`` says it is under way, yield a client
    of that tenant for more requests meanwhile, then go away without reading the answer (a
    client disconnect)."""
    headers = {"authorization": f"Bearer {gateway.keys[tenant]}"}
    async with (
        httpx.AsyncClient(base_url=gateway.base_url, headers=headers, timeout=60) as http,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(functools.partial(http.post, "/chat/completions", json=body))
        await anyio.to_thread.run_sync(gateway.wait_until, until, check)
        yield http
        tg.cancel_scope.cancel()  # the client goes away mid-request
