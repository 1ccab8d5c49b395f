"""`howhard serve` grants sequential best-of-k rounds through the model's stream allocator.

A real gateway process with the scripted backend (``backends.py``: "What is A * B?" is answered
with the product, so a request whose reference is the product passes at its first sample and
one whose reference is anything else never passes). The model's ``rounds_gate`` is the default,
``"stream"``: every sequential request deposits ``average_budget`` units, each round is granted
by its value against the stream's price, and what a request does not draw goes back.
"""

from __future__ import annotations

from collections.abc import Iterator

import anyio
import httpx
import pytest

from tests.serve.conftest import RunningGateway, abandoned_request, gateway_process

CONFIG = """
[backends.fake]
factory = "tests.serve.backends:make"
options = { slow_s = 30.0 }

[models.seq]
backend = "fake"
policy = "uniform"
procedure = "sequential-best-of-k"
verifier = "exact"
average_budget = 2
max_budget = 16
max_concurrency = 8
batching = { max_batch_size = 8, max_wait_s = 0.002 }

[models.ungated]
backend = "fake"
policy = "uniform"
procedure = "sequential-best-of-k"
rounds_gate = "none"
verifier = "exact"
average_budget = 2
max_budget = 16

[models.stall]
backend = "fake"
policy = "uniform"
procedure = "sequential-best-of-k"
verifier = "exact"
rounds = [1]
average_budget = 4
max_budget = 8
max_concurrency = 1

[tenants.main]
"""

AVERAGE = 2.0


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    with gateway_process(CONFIG, tmp_path_factory.mktemp("rounds"), ("main",)) as running:
        yield running


STATS = ("pool", "spent", "price", "prior_strength", "prior_shift_spread", "admitted", "in_flight")


def gate_stats(gateway: RunningGateway, model: str = "seq") -> dict[str, float]:
    """The model's ``howhard_policy{stat="rounds_*"}`` gauges, as the scrape shows them."""
    return {n: gateway.metric("howhard_policy", model=model, stat=f"rounds_{n}") for n in STATS}


def question(i: int, *, passes: bool) -> dict[str, object]:
    product = i * 7
    return {
        "model": "seq",
        "messages": [{"role": "user", "content": f"What is {i} * 7?"}],
        "howhard": {"reference": str(product if passes else product + 1)},
    }


@pytest.mark.anyio
async def test_rounds_go_to_the_requests_worth_them_and_the_average_stays_exact(
    gateway: RunningGateway,
) -> None:
    before = gate_stats(gateway)
    answered = gateway.metric("howhard_requests_total", model="seq", outcome="answered")
    settled = gateway.metric("howhard_tenant_settled_units", tenant="main")
    bodies = [question(i, passes=i % 2 == 0) for i in range(64)]
    replies: dict[int, httpx.Response] = {}
    limit = anyio.Semaphore(8)  # a stream: about max_concurrency requests in flight
    headers = {"authorization": f"Bearer {gateway.keys['main']}"}
    async with httpx.AsyncClient(base_url=gateway.base_url, headers=headers, timeout=60) as http:

        async def ask(i: int) -> None:
            async with limit:
                assert i not in replies
                replies[i] = await http.post("/chat/completions", json=bodies[i])

        async with anyio.create_task_group() as tg:
            for i in range(len(bodies)):
                tg.start_soon(ask, i)
    assert sorted(replies) == list(range(64))
    assert all(r.status_code == 200 for r in replies.values()), [
        r.text for r in replies.values() if r.status_code != 200
    ]
    ext = {i: r.json()["howhard"] for i, r in replies.items()}
    passing = [ext[i] for i in range(0, 64, 2)]
    failing = [ext[i] for i in range(1, 64, 2)]
    assert all(e["stop_reason"] == "passed" and e["samples"] == 1 for e in passing)
    reasons = {e["stop_reason"] for e in failing}
    assert reasons <= {"not_worth", "no_units", "max_budget"}
    # Once the easy requests' deposits are spent, the price stops the hopeless ones early.
    assert sum(e["stop_reason"] == "not_worth" for e in failing) >= 8
    drawn = sum(e["samples"] for e in ext.values())
    # Never more than the average budget per request; the easy ones' units went to the others.
    assert drawn <= AVERAGE * 64
    assert sum(e["samples"] for e in failing) / len(failing) > AVERAGE
    after = gate_stats(gateway)
    assert after["admitted"] - before["admitted"] == 64 and after["in_flight"] == 0
    assert after["spent"] - before["spent"] == drawn
    assert after["pool"] >= 0
    assert after["pool"] - before["pool"] == AVERAGE * 64 - drawn
    assert after["price"] > 0
    # Every request resolved once, and the tenant was charged exactly what was drawn.
    assert (
        gateway.metric("howhard_requests_total", model="seq", outcome="answered") - answered == 64
    )
    assert gateway.metric("howhard_tenant_settled_units", tenant="main") - settled == drawn
    assert gateway.metric("howhard_tenant_reserved_units", tenant="main") == 0


def test_the_metrics_show_the_round_gate(gateway: RunningGateway) -> None:
    text = httpx.get(gateway.url + "/metrics", timeout=10).text
    for stat in STATS:
        assert f'howhard_policy{{model="seq",stat="rounds_{stat}"}}' in text, stat
    # rounds_gate = "none": no stream allocator, no figures.
    assert 'model="ungated",stat="rounds_' not in text


def test_a_gated_model_refuses_other_procedures_naming_the_fix(gateway: RunningGateway) -> None:
    body = {**question(2, passes=True), "howhard": {"reference": "14", "procedure": "best-of-k"}}
    headers = {"authorization": f"Bearer {gateway.keys['main']}"}
    reply = httpx.post(gateway.base_url + "/chat/completions", json=body, headers=headers)
    assert reply.status_code == 400
    error = reply.json()["error"]
    assert error["param"] == "howhard.procedure" and "rounds_gate" in error["message"]


def test_without_the_gate_a_hopeless_request_runs_to_its_budget(gateway: RunningGateway) -> None:
    body = {**question(3, passes=False), "model": "ungated", "howhard": {"reference": "0"}}
    headers = {"authorization": f"Bearer {gateway.keys['main']}"}
    reply = httpx.post(gateway.base_url + "/chat/completions", json=body, headers=headers)
    assert reply.status_code == 200
    assert reply.json()["howhard"]["stop_reason"] == "max_budget"


@pytest.mark.anyio
async def test_a_disconnected_request_gives_its_undrawn_units_back(
    gateway: RunningGateway,
) -> None:
    before = gate_stats(gateway, "stall")
    disconnects = gateway.metric("howhard_client_disconnects_total", model="stall", tenant="main")
    body = {
        "model": "stall",
        "messages": [{"role": "user", "content": "STALL What is 6 * 7?"}],
        "howhard": {"reference": "0"},
    }
    # Its first round (1 sample) comes back failed; its second is granted and stuck.
    async with abandoned_request(
        gateway,
        "main",
        body,
        "the second round to be granted",
        lambda: gate_stats(gateway, "stall")["spent"] - before["spent"] == 2,
    ):
        assert gate_stats(gateway, "stall")["in_flight"] == before["in_flight"] + 1
    gateway.wait_until(
        "the disconnect to be noticed",
        lambda: (
            gateway.metric("howhard_client_disconnects_total", model="stall", tenant="main")
            == disconnects + 1
        ),
    )
    after = gate_stats(gateway, "stall")
    # Only the first round's sample was drawn; the stuck round's unit is back in the pool.
    assert after["spent"] - before["spent"] == 1
    assert after["pool"] - before["pool"] == 4 - 1
    assert after["admitted"] - before["admitted"] == 1 and after["in_flight"] == 0
