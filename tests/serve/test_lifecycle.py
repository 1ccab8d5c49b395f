"""The gateway's lifecycle: live while the models load, ready once loaded; on SIGTERM it stops
accepting, lets in-flight requests finish within the grace period, then cancels and refunds what
is left (answered 503), closes the schedulers and backends, and exits 0.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import httpx
import pytest

from tests.serve.conftest import RunningGateway, gateway_process

CONFIG = """
[server]
drain_grace_s = {grace}

[backends.fake]
factory = "tests.serve.backends:make"
options = {{ slow_s = {slow} }}

[models.toy]
backend = "fake"
policy = "uniform"
average_budget = 1
max_budget = 1
batching = {{ max_batch_size = 8, max_wait_s = 0.0 }}

[tenants.main]
"""

SLOW = {"model": "toy", "messages": [{"role": "user", "content": "SLOW"}]}


def _send_slow(
    gateway: RunningGateway, count: int
) -> tuple[list[threading.Thread], list[httpx.Response]]:
    responses: list[httpx.Response] = []
    headers = {"authorization": f"Bearer {gateway.keys['main']}"}

    def one() -> None:
        responses.append(
            httpx.post(
                gateway.base_url + "/chat/completions", json=SLOW, headers=headers, timeout=60
            )
        )

    threads = [threading.Thread(target=one) for _ in range(count)]
    for thread in threads:
        thread.start()
    gateway.wait_until(
        f"{count} requests in flight",
        lambda: gateway.metric("howhard_tenant_reserved_units", tenant="main") == count,
    )
    return threads, responses


def test_sigterm_lets_in_flight_requests_finish(tmp_path: Path) -> None:
    with gateway_process(CONFIG.format(grace=30, slow=1.5), tmp_path, ["main"]) as gateway:
        threads, responses = _send_slow(gateway, 3)
        gateway.process.send_signal(signal.SIGTERM)
        for thread in threads:
            thread.join(timeout=60)
        code = gateway.process.wait(timeout=60)
        with pytest.raises(httpx.ConnectError):  # no longer accepting
            httpx.get(gateway.url + "/healthz", timeout=5)
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert code == 0
    log = gateway.tail()
    assert "gateway.draining" in log and "gateway.stopped" in log
    assert "spend={'main': 3}" in log  # all three were charged


def test_sigterm_cancels_and_refunds_what_outlives_the_grace(tmp_path: Path) -> None:
    with gateway_process(CONFIG.format(grace=0.5, slow=600), tmp_path, ["main"]) as gateway:
        threads, responses = _send_slow(gateway, 2)
        gateway.process.send_signal(signal.SIGTERM)
        for thread in threads:
            thread.join(timeout=60)
        code = gateway.process.wait(timeout=60)
    assert [r.status_code for r in responses] == [503, 503]
    assert all(r.headers["retry-after"] for r in responses)
    assert all(r.json()["error"]["code"] == "shutting_down" for r in responses)
    assert code == 0
    log = gateway.tail()
    assert "gateway.cancelling" in log
    assert "spend={'main': 0}" in log  # cancelled work was refunded, not charged


def test_live_while_loading_and_ready_once_loaded(tmp_path: Path) -> None:
    config = CONFIG.format(grace=1, slow=1).replace("{ slow_s = 1 }", "{ slow_s = 1, start_s = 3 }")
    with gateway_process(config, tmp_path, ["main"], wait_for="/healthz") as gateway:
        loading = httpx.get(gateway.url + "/readyz", timeout=5)
        early = httpx.post(
            gateway.base_url + "/chat/completions",
            json=SLOW,
            headers={"authorization": f"Bearer {gateway.keys['main']}"},
            timeout=5,
        )
        gateway.wait_until(
            "the models to load",
            lambda: httpx.get(gateway.url + "/readyz", timeout=5).status_code == 200,
        )
    assert loading.status_code == 503 and loading.json()["status"] == "starting"
    assert early.status_code == 503 and early.json()["error"]["code"] == "starting"
    assert early.headers["retry-after"] == "5"
