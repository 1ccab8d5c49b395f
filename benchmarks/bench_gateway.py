"""Gateway overhead: `howhard serve` over HTTP vs the same scheduler in-process, side by side.

Both sides run the same scheduler set-up: an instant ``ScriptedBackend``, a uniform budget of one
sample, self-consistency (the gateway's procedure for requests without a reference), batches of
up to 64 that close as soon as the queue is empty (``max_wait_s = 0``: the batching wait is
excluded, so what remains is overhead). The gateway runs as a real ``howhard serve`` process
(uvicorn, one tenant with an API key, so authentication, limits, validation, metrics and JSON are
all included); the load generator is a minimal keep-alive HTTP/1.1 client in this process, so
the client's own cost is small.

* **throughput** — closed loop: ``--connections`` clients send back to back; requests/s.
* **latency** — open loop at ``--rate`` requests/s (below capacity): p50 / p99 of each request's
  round trip; *added* = gateway p50 - in-process p50 at the same rate.
* ``--vllm`` adds a third column: a real vLLM OpenAI server on the embedded model (1 token per
  request), called directly and through the gateway (``kind = "openai"`` backend), so the
  gateway's added latency is also seen in front of a real engine. Run it under
  ``flock /tmp/howhard-heavy.lock``.
* ``--ray`` adds a row for the same gateway as ``--ray-replicas`` replicas on a local Ray Serve
  cluster (``howhard serve --ray``): Ray's HTTP proxy in front, each replica a whole gateway.

Targets on 2 cores: >= 2,000 requests/s through the gateway and <= 2 ms added p50.
Run: ``python benchmarks/bench_gateway.py`` (``--help`` for sizes). Other load on the machine
moves the numbers; compare the columns of one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import structlog

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from howhard import BatchingConfig, GenerationParams, Scheduler  # noqa: E402
from howhard.backends import ScriptedBackend  # noqa: E402
from howhard.procedures import SelfConsistency  # noqa: E402
from howhard.serve.keys import append_key  # noqa: E402

TARGET_RPS = 2_000
TARGET_ADDED_MS = 2.0

SCRIPTED = """
[backends.instant]
kind = "scripted"
options = { choices = ["The answer is 4."], record = false }

[models.toy]
backend = "instant"
policy = "uniform"
average_budget = 1
max_budget = 1
max_queue = 8192
max_concurrency = 64
max_tokens = 16
batching = { max_batch_size = 64, max_wait_s = 0.0 }

[tenants.bench]
"""

PROXY = """
[backends.vllm]
kind = "openai"
base_url = "{base_url}"
model = "smollm2"

[models.smollm2]
backend = "vllm"
policy = "uniform"
average_budget = 1
max_budget = 1
max_tokens = 1
batching = {{ max_batch_size = 64, max_wait_s = 0.0 }}

[tenants.bench]
"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Connection:
    """One keep-alive HTTP/1.1 connection sending the same POST (a minimal, cheap client)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def send(self, request: bytes) -> None:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = head[9:12]
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        body = await self.reader.readexactly(length)
        if status != b"200":
            raise RuntimeError(f"HTTP {status.decode()}: {body[:200]!r}")

    def close(self) -> None:
        self.writer.close()


def post(path: str, key: str, body: dict[str, object]) -> bytes:
    data = json.dumps(body).encode()
    return (
        f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer {key}\r\n"
        f"content-type: application/json\r\ncontent-length: {len(data)}\r\n\r\n"
    ).encode() + data


async def closed_loop(call: Callable[[], Awaitable[None]], callers: int, total: int) -> float:
    per_caller = max(1, total // callers)

    async def caller() -> None:
        for _ in range(per_caller):
            await call()

    start = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(callers)))
    return callers * per_caller / (time.perf_counter() - start)


async def open_loop(call: Callable[[], Awaitable[None]], rate: float, total: int) -> list[float]:
    latencies: list[float] = []

    async def one() -> None:
        start = time.perf_counter()
        await call()
        latencies.append(time.perf_counter() - start)

    tasks = []
    start = time.perf_counter()
    sent = 0
    while sent < total:
        due = min(total, int((time.perf_counter() - start) * rate) + 1)
        for _ in range(sent, due):
            tasks.append(asyncio.ensure_future(one()))
        sent = due
        await asyncio.sleep(0.001)
    await asyncio.gather(*tasks)
    return latencies


class Pool:
    """Idle keep-alive connections; a request takes one (opening another when none is idle)."""

    def __init__(self, port: int, request: bytes) -> None:
        self.port = port
        self.request = request
        self.idle: list[Connection] = []

    async def call(self) -> None:
        if self.idle:
            connection = self.idle.pop()
            try:
                await connection.send(self.request)
            except (asyncio.IncompleteReadError, ConnectionError):
                # The server closed it while idle (keep-alive timeout): nothing was processed.
                connection.close()
                connection = await Connection.open(self.port)
                await connection.send(self.request)
        else:
            connection = await Connection.open(self.port)
            await connection.send(self.request)
        self.idle.append(connection)

    def close(self) -> None:
        for connection in self.idle:
            connection.close()


def process_times(pid: int) -> tuple[float, float] | None:
    """CPU seconds used by ``pid``, and seconds it waited for a core while runnable (Linux)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        with open(f"/proc/{pid}/schedstat") as sched:
            waited = int(sched.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks, waited


def start_gateway(
    config_text: str, folder: Path, *, ray: bool = False
) -> tuple[subprocess.Popen[bytes], int, str]:
    config = folder / "serve.toml"
    config.write_text(config_text)
    key = append_key(config, "bench")
    port = free_port()
    command = [sys.executable, "-m", "howhard", "serve", "--config", str(config)]
    command += ["--port", str(port), *(["--ray"] if ray else [])]
    log = folder / "serve.log"
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=open(log, "wb") if ray else subprocess.DEVNULL,  # noqa: SIM115  # closed with it
        stderr=subprocess.STDOUT if ray else open(log, "wb"),  # noqa: SIM115
        start_new_session=True,
    )
    if ray:
        # Ready once every replica is: the command says so (any one replica answers /readyz).
        deadline = time.monotonic() + 180
        while "on Ray Serve" not in log.read_text(errors="replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"howhard serve --ray did not start: see {log}")
            time.sleep(0.2)
    wait_ready(f"http://127.0.0.1:{port}/readyz", process, 120)
    return process, port, key


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout_s: float) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[:4]} exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"not ready after {timeout_s} s: {url}")


def stop(process: subprocess.Popen[bytes], *, group: bool = True) -> None:
    """SIGTERM (the process group, or with ``group=False`` the process alone: a Ray cluster it
    started must outlive the signal to be shut down by it), SIGKILL the group after 60 s."""
    if process.poll() is None:
        if group:
            os.killpg(process.pid, signal.SIGTERM)
        else:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


async def http_side(
    port: int, request: bytes, args: argparse.Namespace, pid: int
) -> tuple[float, list[float], str]:
    pool = Pool(port, request)
    for _ in range(50):
        await pool.call()  # warm up
    before, start = process_times(pid), time.perf_counter()
    rps = await closed_loop(pool.call, args.connections, args.requests)
    after, elapsed = process_times(pid), time.perf_counter() - start
    latencies = await open_loop(pool.call, args.rate, args.latency_requests)
    pool.close()
    note = "server CPU: n/a"
    if before is not None and after is not None:
        cpu, waited = after[0] - before[0], after[1] - before[1]
        served = rps * elapsed
        # One core's worth: what the gateway sustains per second of its own CPU time, the fair
        # figure when other jobs share the machine (it waited for a core `waited` seconds).
        note = (
            f"server process: {served / cpu:,.0f} req per CPU-second "
            f"({cpu:.1f} s CPU, {waited / elapsed:.0%} of the wall time waiting for a core)"
        )
    return rps, latencies, note


async def in_process_side(args: argparse.Namespace) -> tuple[float, list[float]]:
    async with Scheduler(
        backend=ScriptedBackend(choices=["The answer is 4."], record=False),
        procedure=SelfConsistency(),
        average_budget=1,
        max_budget=1,
        min_budget=1,
        batching=BatchingConfig(max_batch_size=64, max_wait_s=0.0),
        max_queue=8192,
        max_concurrency=64,
        params=GenerationParams(max_tokens=16),
    ) as scheduler:

        async def call() -> None:
            await scheduler.submit_nowait("What is 2 + 2?", tenant="bench")

        for _ in range(50):
            await call()
        rps = await closed_loop(call, args.connections, args.requests)
        latencies = await open_loop(call, args.rate, args.latency_requests)
    return rps, latencies


def row(name: str, rps: float | None, latencies: list[float]) -> str:
    p50, p99 = percentile(latencies, 0.5) * 1e3, percentile(latencies, 0.99) * 1e3
    throughput = "-" if rps is None else f"{rps:,.0f}"
    return f"{name:<34} {throughput:>10} {p50:>8.2f} {p99:>8.2f}"


def main(args: argparse.Namespace) -> None:
    body = {"model": "toy", "messages": [{"role": "user", "content": "What is 2 + 2?"}]}
    with tempfile.TemporaryDirectory() as folder:
        process, port, key = start_gateway(SCRIPTED, Path(folder))
        try:
            cpu_before = os.times()
            http_rps, http_lat, server_note = asyncio.run(
                http_side(port, post("/v1/chat/completions", key, body), args, process.pid)
            )
            client_cpu = sum(os.times()[:2]) - sum(cpu_before[:2])
        finally:
            stop(process)
    inproc_rps, inproc_lat = asyncio.run(in_process_side(args))
    added = (percentile(http_lat, 0.5) - percentile(inproc_lat, 0.5)) * 1e3
    print(
        f"instant ScriptedBackend, budget 1, self-consistency, max_wait 0; "
        f"{args.connections} connections (closed loop), latency at {args.rate:,.0f} req/s offered"
    )
    header = f"{'':<34} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8}"
    print(header)
    print("-" * len(header))
    print(row("scheduler in-process (submit)", inproc_rps, inproc_lat))
    print(row("gateway over HTTP (howhard serve)", http_rps, http_lat))
    if args.ray:
        ray_rps, ray_lat = ray_side(body, args)
        print(row(f"Ray Serve, {args.ray_replicas} replicas (--ray)", ray_rps, ray_lat))
    print(
        f"gateway: {http_rps:,.0f} req/s (target >= {TARGET_RPS:,}: "
        f"{'met' if http_rps >= TARGET_RPS else 'NOT met'}); added p50 {added:.2f} ms "
        f"(target <= {TARGET_ADDED_MS} ms: {'met' if added <= TARGET_ADDED_MS else 'NOT met'})"
    )
    print(server_note)
    print(f"load generator CPU during the HTTP runs: {client_cpu:.1f} s")
    if args.vllm:
        vllm_side(args)
    print(f"load average while running: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


def ray_side(body: dict[str, object], args: argparse.Namespace) -> tuple[float, list[float]]:
    """The scripted gateway as ``--ray-replicas`` Ray Serve replicas on a local cluster."""
    deployment = (
        f"\n[deployment]\nreplicas = {args.ray_replicas}\n"
        f"cpus_per_replica = {1 / args.ray_replicas}\nnum_cpus = {os.cpu_count()}\n"
    )
    with tempfile.TemporaryDirectory() as folder:
        process, port, key = start_gateway(SCRIPTED + deployment, Path(folder), ray=True)
        try:
            rps, latencies, _ = asyncio.run(
                http_side(port, post("/v1/chat/completions", key, body), args, process.pid)
            )
        finally:
            stop(process, group=False)
    return rps, latencies


def vllm_side(args: argparse.Namespace) -> None:
    from howhard.models import default_model_path

    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "1"}
    env["VLLM_HOST_IP"] = "127.0.0.1"
    command = [sys.executable, "-m", "vllm.entrypoints.openai.api_server"]
    command += ["--model", str(default_model_path()), "--host", "127.0.0.1", "--port", str(port)]
    command += ["--served-model-name", "smollm2", "--max-model-len", "1024", "--enforce-eager"]
    with tempfile.TemporaryDirectory() as folder:
        log = open(Path(folder) / "vllm.log", "wb")  # noqa: SIM115  # closed below
        server = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        try:
            wait_ready(f"http://127.0.0.1:{port}/health", server, 300)
            direct_body = {
                "model": "smollm2",
                "messages": [{"role": "user", "content": "What is 2 + 2?"}],
                "max_tokens": 1,
            }
            direct = post("/v1/chat/completions", "unused", direct_body)
            gateway, gport, key = start_gateway(
                PROXY.format(base_url=f"http://127.0.0.1:{port}/v1"), Path(folder)
            )
            try:
                through = post("/v1/chat/completions", key, direct_body)

                async def measure(p: int, request: bytes) -> list[float]:
                    pool = Pool(p, request)
                    for _ in range(5):
                        await pool.call()
                    latencies = await open_loop(pool.call, args.vllm_rate, args.vllm_requests)
                    pool.close()
                    return latencies

                # Alternate the two so drift in the machine's load hits both alike.
                direct_lat: list[float] = []
                gateway_lat: list[float] = []
                for _ in range(2):
                    direct_lat += asyncio.run(measure(port, direct))
                    gateway_lat += asyncio.run(measure(gport, through))
            finally:
                stop(gateway)
        finally:
            stop(server)
            log.close()
    added = (percentile(gateway_lat, 0.5) - percentile(direct_lat, 0.5)) * 1e3
    print(f"\nreal engine: vLLM OpenAI server, embedded model, 1 token, {args.vllm_rate} req/s")
    print(row("vLLM server directly", None, direct_lat))
    print(row("gateway -> vLLM server", None, gateway_lat))
    print(f"added by the gateway in front of vLLM: p50 {added:.2f} ms")


if __name__ == "__main__":
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--latency-requests", type=int, default=5_000)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--vllm", action="store_true", help="also compare with a vLLM server")
    parser.add_argument("--ray", action="store_true", help="also the gateway on Ray Serve")
    parser.add_argument("--ray-replicas", type=int, default=2)
    parser.add_argument("--vllm-rate", type=float, default=2.0)
    parser.add_argument("--vllm-requests", type=int, default=20)
    main(parser.parse_args())
