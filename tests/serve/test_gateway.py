"""`howhard serve` over real HTTP: the official openai client (sync and async, streaming and
not), curl and the README's examples against a uvicorn process with a scripted backend.

The scripted backend computes its replies from the prompt it receives (``backends.py``): products
("What is 17 * 23?" -> "391") and follow-ups that need the conversation ("Add 9 to your previous
answer." -> previous + 9), so each test checks what reached the backend through the gateway.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest
from openai import AsyncOpenAI, OpenAI

from tests.serve.conftest import ROOT, RunningGateway, abandoned_request, gateway_process

CONFIG = """
[server]
max_body_bytes = 4096

[backends.fake]
factory = "tests.serve.backends:make"
options = { slow_s = 30.0 }

[models.toy]
backend = "fake"
policy = "uniform"
verifier = "exact"
average_budget = 2
max_budget = 8
batching = { max_batch_size = 64, max_wait_s = 0.002 }

[models.narrow]
backend = "fake"
policy = "uniform"
average_budget = 1
max_budget = 1
max_queue = 1
max_concurrency = 1
batching = { max_batch_size = 1, max_wait_s = 0.0 }

[tenants.main]
[tenants.alpha]
quota = { units = 100 }
[tenants.beta]
quota = { units = 1000000 }
[tenants.limited]
rate_per_s = 0.01
burst = 1
[tenants.single]
max_concurrency = 1
[tenants.windowed]
quota = { units = 2, window_s = 60 }
"""

TENANTS = ("main", "alpha", "beta", "limited", "single", "windowed")
QUESTION = [{"role": "user", "content": "What is 17 * 23?"}]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    with gateway_process(CONFIG, tmp_path_factory.mktemp("gateway"), TENANTS) as running:
        yield running


def client(gateway: RunningGateway, tenant: str = "main") -> OpenAI:
    # No retries: the tests check the statuses the gateway answers, not the client's patience.
    return OpenAI(base_url=gateway.base_url, api_key=gateway.keys[tenant], max_retries=0)


def post(
    gateway: RunningGateway, body: object, tenant: str = "main", **kwargs: object
) -> httpx.Response:
    headers = {"authorization": f"Bearer {gateway.keys[tenant]}"}
    return httpx.post(
        gateway.base_url + "/chat/completions", json=body, headers=headers, timeout=30, **kwargs
    )


# ---------------------------------------------------------------------- the openai client


def test_models_lists_every_served_model(gateway: RunningGateway) -> None:
    assert sorted(m.id for m in client(gateway).models.list()) == ["narrow", "toy"]


def test_chat_completion_with_the_sync_client(gateway: RunningGateway) -> None:
    response = client(gateway).chat.completions.create(model="toy", messages=QUESTION)

    assert response.choices[0].message.content == "391"
    assert response.choices[0].finish_reason == "stop"
    extension = response.model_extra["howhard"]
    assert extension["procedure"] == "self-consistency"  # no reference: majority vote
    assert extension["budget"] == 2 and extension["samples"] == 2
    assert extension["rounds"] == 1 and extension["stop_reason"] == "budget_spent"
    assert extension["tenant"] == "main"
    # Usage is what the tenant was charged: both samples ("391" is one token to this backend).
    assert response.usage.completion_tokens == 2
    assert response.usage.total_tokens == extension["tokens"]["total"]


def test_chat_streaming_with_the_sync_client(gateway: RunningGateway) -> None:
    stream = client(gateway).chat.completions.create(
        model="toy", messages=QUESTION, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "391"
    finished = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finished[-1].choices[0].finish_reason == "stop"
    assert finished[-1].model_extra["howhard"]["samples"] == 2
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 2


@pytest.mark.anyio
async def test_async_client_streaming_and_not(gateway: RunningGateway) -> None:
    async with AsyncOpenAI(
        base_url=gateway.base_url, api_key=gateway.keys["main"], max_retries=0
    ) as aclient:
        plain = await aclient.chat.completions.create(
            model="toy", messages=[{"role": "user", "content": "What is 12 * 12?"}]
        )
        stream = await aclient.chat.completions.create(
            model="toy", messages=[{"role": "user", "content": "What is 11 * 11?"}], stream=True
        )
        streamed = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert plain.choices[0].message.content == "144"
    assert streamed == "121"


def test_completions_answer_each_prompt(gateway: RunningGateway) -> None:
    response = client(gateway).completions.create(
        model="toy", prompt=["What is 2 * 3?", "What is 4 * 5?"], max_tokens=8
    )
    assert [c.text for c in response.choices] == ["6", "20"]
    assert len(response.model_extra["howhard"]) == 2


def test_a_reference_runs_best_of_k_with_the_verifier(gateway: RunningGateway) -> None:
    right = client(gateway).chat.completions.create(
        model="toy", messages=QUESTION, extra_body={"howhard": {"reference": "391"}}
    )
    wrong = client(gateway).chat.completions.create(
        model="toy", messages=QUESTION, extra_body={"howhard": {"reference": "390"}}
    )
    assert right.model_extra["howhard"]["procedure"] == "best-of-k"
    assert right.model_extra["howhard"]["score"] == 1.0
    assert wrong.model_extra["howhard"]["score"] == 0.0  # the verifier really compared


def test_max_budget_caps_the_samples_and_n_returns_ranked_choices(gateway: RunningGateway) -> None:
    capped = client(gateway).chat.completions.create(
        model="toy", messages=QUESTION, extra_body={"howhard": {"max_budget": 1, "priority": 3}}
    )
    several = client(gateway).chat.completions.create(model="toy", messages=QUESTION, n=2)
    assert capped.model_extra["howhard"]["budget"] == 1
    assert capped.model_extra["howhard"]["samples"] == 1
    assert [c.index for c in several.choices] == [0, 1]
    assert all(c.message.content == "391" for c in several.choices)


def test_sampling_parameters_reach_the_backend(gateway: RunningGateway) -> None:
    # The backend echoes prompts containing ECHO; max_tokens cuts the echo (whitespace tokens).
    response = client(gateway).chat.completions.create(
        model="toy",
        messages=[{"role": "user", "content": "ECHO one two three four five six"}],
        max_tokens=3,
    )
    assert response.choices[0].message.content == "ECHO one two"
    assert response.choices[0].finish_reason == "length"


# ---------------------------------------------------------------------- README examples


def _readme_block(language: str, marker: str) -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Serve over HTTP", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(rf"```{language}\n(.*?)```", section, flags=re.S)
    matching = [b for b in blocks if marker in b]
    assert matching, f"README's 'Serve over HTTP' has no {language} block with {marker!r}"
    return matching[0]


def _readme_env(gateway: RunningGateway) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "HOWHARD_URL": gateway.base_url,
        "HOWHARD_KEY": gateway.keys["main"],
        "HOWHARD_MODEL": "toy",
    }


def test_readme_curl_example(gateway: RunningGateway) -> None:
    script = _readme_block("bash", "curl ")
    out = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        env=_readme_env(gateway),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    body = json.loads(out.stdout)
    assert body["choices"][0]["message"]["content"] == "391"
    assert body["howhard"]["procedure"] == "best-of-k"
    assert body["howhard"]["score"] == 1.0


def test_readme_agent_example_completes_a_multi_turn_task(gateway: RunningGateway) -> None:
    script = _readme_block("python", "Agent(")
    out = subprocess.run(
        [sys.executable, "-c", script],
        env=_readme_env(gateway),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    # Turn 2 is right only if the agent framework sent turn 1's answer back through the gateway.
    assert out.stdout.split() == ["391", "400"]


# ---------------------------------------------------------------------- auth

INVALID_KEY = "missing or invalid API key; send 'Authorization: Bearer <key>'"


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer hh-not-a-key", "Basic {key}", "Bearer", "bearer x {key}", "{key}"],
    ids=["missing", "unknown", "wrong-scheme", "empty", "extra-words", "no-scheme"],
)
def test_requests_without_a_valid_key_get_the_same_401(
    gateway: RunningGateway, authorization: str | None
) -> None:
    headers = {}
    if authorization is not None:
        headers["authorization"] = authorization.format(key=gateway.keys["main"])
    chat = httpx.post(
        gateway.base_url + "/chat/completions",
        json={"model": "toy", "messages": QUESTION},
        headers=headers,
        timeout=10,
    )
    models = httpx.get(gateway.base_url + "/models", headers=headers, timeout=10)
    for response in (chat, models):
        assert response.status_code == 401
        assert response.json()["error"] == {
            "message": INVALID_KEY,
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_api_key",
        }


# ---------------------------------------------------------------------- error statuses


@pytest.mark.parametrize(
    ("body", "param", "fragment"),
    [
        ({"model": "toy", "messages": QUESTION, "temperature": 9}, "temperature", "less than"),
        ({"model": "toy", "messages": []}, "messages", "at least 1"),
        ({"model": "toy", "messages": [{"role": "user", "content": "  "}]}, "messages", "text"),
        (
            {"model": "toy", "messages": QUESTION, "howhard": {"max_budget": 99}},
            "howhard.max_budget",
            "[1, 8]",
        ),
        ({"model": "toy", "messages": QUESTION, "howhard": {"bogus": 1}}, "howhard.bogus", "Extra"),
        (
            {"model": "toy", "messages": QUESTION, "howhard": {"procedure": "best-of-k"}},
            "howhard.reference",
            "required",
        ),
        ({"model": "toy", "messages": QUESTION, "max_tokens": 10**6}, "max_tokens", "<= 4096"),
        (
            {"model": "toy", "messages": QUESTION, "tools": [{"type": "function"}]},
            "tools",
            "at most 0 items",
        ),
    ],
    ids=[
        "temperature",
        "no-messages",
        "blank-prompt",
        "max-budget",
        "unknown-ext",
        "no-ref",
        "max-tokens",
        "tools",
    ],
)
def test_invalid_requests_get_400_naming_the_field(
    gateway: RunningGateway, body: dict[str, object], param: str, fragment: str
) -> None:
    response = post(gateway, body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert fragment in error["message"]


def test_malformed_json_gets_400(gateway: RunningGateway) -> None:
    response = httpx.post(
        gateway.base_url + "/chat/completions",
        content=b"{not json",
        headers={"authorization": f"Bearer {gateway.keys['main']}"},
        timeout=10,
    )
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["error"]["message"]


def test_unknown_model_and_route_get_404(gateway: RunningGateway) -> None:
    model = post(gateway, {"model": "gpt-9", "messages": QUESTION})
    route = httpx.get(gateway.base_url + "/nowhere", timeout=10)
    assert model.status_code == 404
    assert model.json()["error"]["code"] == "model_not_found"
    assert "toy" in model.json()["error"]["message"]
    assert route.status_code == 404 and route.json()["error"]["code"] == "not_found"


def test_a_body_over_the_limit_gets_413(gateway: RunningGateway) -> None:
    response = post(
        gateway, {"model": "toy", "messages": [{"role": "user", "content": "x" * 5000}]}
    )
    assert response.status_code == 413
    assert "max_body_bytes = 4096" in response.json()["error"]["message"]


def test_rate_limit_gets_429_with_retry_after(gateway: RunningGateway) -> None:
    first = post(gateway, {"model": "toy", "messages": QUESTION}, tenant="limited")
    second = post(gateway, {"model": "toy", "messages": QUESTION}, tenant="limited")
    assert first.status_code == 200
    assert second.status_code == 429
    assert second.json()["error"]["code"] == "rate_limit"
    assert int(second.headers["retry-after"]) >= 1


def test_quota_exhaustion_gets_429_with_retry_after_the_window(gateway: RunningGateway) -> None:
    first = post(gateway, {"model": "toy", "messages": QUESTION}, tenant="windowed")
    second = post(gateway, {"model": "toy", "messages": QUESTION}, tenant="windowed")
    assert first.status_code == 200
    assert second.status_code == 429
    assert second.json()["error"]["type"] == "insufficient_quota"
    assert second.headers["retry-after"] == "60"


def test_a_deadline_gets_504(gateway: RunningGateway) -> None:
    response = post(
        gateway,
        {
            "model": "toy",
            "messages": [{"role": "user", "content": "SLOW"}],
            "howhard": {"timeout_s": 0.2},
        },
    )
    assert response.status_code == 504
    assert "timeout_s=0.2" in response.json()["error"]["message"]


@pytest.mark.anyio
async def test_a_full_queue_gets_503_with_retry_after(gateway: RunningGateway) -> None:
    # 'narrow': one worker, one allocated batch waiting, one batch being allocated, a queue of
    # one: slow requests fill it, and one more is refused at once rather than queued.
    slow = {"model": "narrow", "messages": [{"role": "user", "content": "SLOW"}]}
    headers = {"authorization": f"Bearer {gateway.keys['main']}"}
    statuses: list[int] = []
    refused = anyio.Event()
    async with httpx.AsyncClient(base_url=gateway.base_url, headers=headers, timeout=60) as http:

        async def one() -> None:
            response = await http.post("/chat/completions", json=slow)
            statuses.append(response.status_code)
            if response.status_code == 503:
                assert response.json()["error"]["code"] == "queue_full"
                assert response.headers["retry-after"] == "1"
                refused.set()

        async with anyio.create_task_group() as tg:
            for _ in range(8):
                tg.start_soon(one)
            with anyio.fail_after(20):
                await refused.wait()
            tg.cancel_scope.cancel()  # disconnects the slow ones: they are cancelled, refunded
    assert 503 in statuses
    gateway.wait_until(
        "the cancelled requests to leave",
        lambda: gateway.metric("howhard_in_flight", model="narrow") == 0,
    )


# ---------------------------------------------------------------------- tenants


@pytest.mark.anyio
async def test_quota_isolation_under_500_concurrent_requests(gateway: RunningGateway) -> None:
    async def burst(tenant: str, count: int) -> list[object]:
        async with AsyncOpenAI(
            base_url=gateway.base_url, api_key=gateway.keys[tenant], max_retries=0, timeout=60
        ) as aclient:
            outcomes: list[object] = []

            async def one(i: int) -> None:
                try:
                    outcomes.append(
                        await aclient.chat.completions.create(
                            model="toy", messages=[{"role": "user", "content": f"What is {i} * 2?"}]
                        )
                    )
                except Exception as exc:
                    outcomes.append(exc)

            async with anyio.create_task_group() as tg:
                for i in range(count):
                    tg.start_soon(one, i)
            return outcomes

    results: dict[str, list[object]] = {}

    async def run(tenant: str) -> None:
        results[tenant] = await burst(tenant, 250)

    async with anyio.create_task_group() as tg:
        tg.start_soon(run, "alpha")
        tg.start_soon(run, "beta")

    from openai import RateLimitError

    alpha_ok = [r for r in results["alpha"] if not isinstance(r, Exception)]
    alpha_refused = [r for r in results["alpha"] if isinstance(r, RateLimitError)]
    assert len(alpha_ok) + len(alpha_refused) == 250, [
        r
        for r in results["alpha"]
        if isinstance(r, Exception) and not isinstance(r, RateLimitError)
    ][:3]
    units = sum(r.model_extra["howhard"]["budget"] for r in alpha_ok)  # type: ignore[attr-defined]
    assert 0 < units <= 100  # alpha spent its quota exactly once, never more
    assert all(e.body["code"] == "quota_exceeded" for e in alpha_refused)  # type: ignore[index]
    # beta, served at the same moment, lost nothing to alpha.
    assert all(not isinstance(r, Exception) for r in results["beta"]), results["beta"][:3]
    assert gateway.metric("howhard_tenant_settled_units", tenant="alpha") == units
    assert gateway.metric("howhard_tenant_reserved_units", tenant="alpha") == 0
    assert gateway.metric("howhard_quota_rejections_total", model="toy", tenant="alpha") == len(
        alpha_refused
    )


@pytest.mark.anyio
async def test_client_disconnect_cancels_and_refunds_and_concurrency_is_limited(
    gateway: RunningGateway,
) -> None:
    slow = {"model": "toy", "messages": [{"role": "user", "content": "SLOW"}]}
    disconnects = gateway.metric("howhard_client_disconnects_total", model="toy", tenant="single")
    async with abandoned_request(
        gateway,
        "single",
        slow,
        "the slow request to reserve its budget",
        lambda: gateway.metric("howhard_tenant_reserved_units", tenant="single") == 2,
    ) as http:
        # The tenant's one concurrent request is taken: another is refused.
        second = await http.post("/chat/completions", json=slow)
        assert second.status_code == 429
        assert second.json()["error"]["code"] == "concurrency_limit"
    gateway.wait_until(
        "the disconnect to be noticed",
        lambda: (
            gateway.metric("howhard_client_disconnects_total", model="toy", tenant="single")
            == disconnects + 1
        ),
    )
    # Refunded: nothing reserved, nothing settled, and the concurrency slot is free again.
    assert gateway.metric("howhard_tenant_reserved_units", tenant="single") == 0
    assert gateway.metric("howhard_tenant_settled_units", tenant="single") == 0
    assert post(gateway, {"model": "toy", "messages": QUESTION}, tenant="single").status_code == 200


def test_health_readiness_and_metrics(gateway: RunningGateway) -> None:
    assert httpx.get(gateway.url + "/healthz", timeout=10).json() == {"status": "ok"}
    assert httpx.get(gateway.url + "/readyz", timeout=10).json()["status"] == "ready"
    text = httpx.get(gateway.url + "/metrics", timeout=10).text
    for family in (
        "howhard_queue_depth",
        "howhard_batch_size_bucket",
        "howhard_budget_bucket",
        "howhard_samples_total",
        "howhard_tokens_total",
        "howhard_request_seconds_bucket",
        "howhard_queue_wait_seconds_bucket",
        "howhard_generation_seconds_bucket",
        "howhard_rounds_bucket",
        "howhard_http_requests_total",
    ):
        assert family in text, family
    assert not Path(gateway.config).read_text().count("hh-"), "a raw key was written to the config"
