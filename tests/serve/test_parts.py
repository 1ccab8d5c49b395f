"""The gateway's parts without a server: config, keys, limits, error mapping, policy, procedure."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from howhard import Scheduler
from howhard.backends import ScriptedBackend
from howhard.errors import (
    BackendRejected,
    BackendUnavailable,
    ConfigError,
    InvalidRequest,
    LedgerUnavailable,
    QueueFull,
    QuotaExceeded,
    RateLimited,
    RequestTimeout,
    SchedulerClosed,
)
from howhard.policies import UniformPolicy
from howhard.serve.config import ModelConfig, ServeConfig, TenantConfig, load_config
from howhard.serve.errors import ApiError, from_exception
from howhard.serve.keys import KeyRing, append_key, hash_key, new_key
from howhard.serve.limits import TenantLimiter
from howhard.serve.metrics import Calibration
from howhard.serve.policy import ServingPolicy, build_policy, gates_rounds
from howhard.serve.procedure import ProcedureChoice, build_verifier
from howhard.types import BudgetBounds, Request

ROOT = Path(__file__).resolve().parents[2]

BASE = """
[backends.fake]
kind = "scripted"

[models.toy]
backend = "fake"
policy = "uniform"

[tenants.team-a]
quota = { units = 10 }
"""


# ---------------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[server]\nport = -1\n", "ServeConfig.server.port"),
        ("[models.x]\nbackend = 'nowhere'\n", "models.x.backend = 'nowhere'"),
        ("[backends.b]\n", "exactly one of kind"),
        ("[backends.b]\nkind = 'openai'\n[models.m]\nbackend = 'b'\n", "needs base_url"),
        ("[server]\nhost = '0.0.0.0'\n", "reachable from other machines"),
        ("[tenants.t]\nrate_per_s = 0\n", "rate_per_s"),
        ("[[keys]]\ntenant = 'ghost'\nhash = 'sha256:" + "0" * 64 + "'\n", "keys[0].tenant"),
        ("[[keys]]\ntenant = 't'\nhash = 'md5:00'\n[tenants.t]\n", "64 lowercase hex"),
        ("models = 3\n", "ServeConfig.models"),
        ("[ledger]\nkind = 'redis'\n", "kind='redis' needs url"),
        ("[ledger]\nurl = 'redis://127.0.0.1:1/0'\n", "apply only to kind='redis'"),
        (
            "[ledger]\nkind = 'redis'\nurl = 'redis://h:1/0'\nfail_open = ['x']\n",
            "ledger.fail_open[0]",
        ),
        ("[ledger]\nkind = 'redis'\nurl = 'redis://h:1/0'\nlease_ttl_s = 0\n", "lease_ttl_s"),
        ("[server\n", "not valid TOML"),
    ],
)
def test_config_errors_name_the_field(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "serve.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=r"serve\.toml") as info:
        load_config(path)
    assert fragment in str(info.value)


def test_the_default_config_serves_the_embedded_model_on_loopback() -> None:
    config = load_config(None)
    assert config == ServeConfig()
    assert config.server.host == "127.0.0.1" and config.open_access
    assert config.backends["local"].kind == "vllm"
    model = config.models["smollm2"]
    assert (model.policy, model.procedure, model.verifier) == ("adaptive", "auto", "math")


# ---------------------------------------------------------------------- keys


def test_keys_add_prints_a_key_once_and_stores_only_its_hash(tmp_path: Path) -> None:
    config = tmp_path / "serve.toml"
    config.write_text("# my comment\n" + BASE)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "howhard", "keys"]
    added = subprocess.run(
        [*command, "add", "--config", str(config), "--tenant", "team-a", "--name", "ci"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=True,
    )
    key = added.stdout.strip()
    text = config.read_text()
    assert key.startswith("hh-") and key not in text
    assert text.startswith("# my comment\n")  # appended, the rest left as it was
    loaded = load_config(config)
    assert [k.hash for k in loaded.keys] == [hash_key(key)]
    assert KeyRing((k.hash, k.tenant) for k in loaded.keys).tenant(key) == "team-a"
    listed = subprocess.run(
        [*command, "list", "--config", str(config)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=True,
    )
    assert listed.stdout.startswith("team-a\tci\t") and key not in listed.stdout
    unknown = subprocess.run(
        [*command, "add", "--config", str(config), "--tenant", "nobody"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=False,
    )
    assert unknown.returncode == 2 and "tenant='nobody' is not configured" in unknown.stderr
    assert config.read_text() == text  # a refused key changes nothing


def test_a_key_ring_knows_only_its_keys() -> None:
    a, b = new_key(), new_key()
    ring = KeyRing([(hash_key(a), "team-a"), (hash_key(b), "team-b")])
    assert (ring.tenant(a), ring.tenant(b)) == ("team-a", "team-b")
    assert ring.tenant(a + "x") is None and ring.tenant("") is None
    assert len({new_key() for _ in range(100)}) == 100


def test_append_key_refuses_an_unknown_tenant(tmp_path: Path) -> None:
    config = tmp_path / "serve.toml"
    config.write_text(BASE)
    with pytest.raises(ConfigError, match=r"add a \[tenants\.other\] section"):
        append_key(config, "other")


# ---------------------------------------------------------------------- limits


def test_the_rate_limit_refills_at_its_rate_and_says_when_to_retry() -> None:
    now = [0.0]
    limiter = TenantLimiter({"t": TenantConfig(rate_per_s=2, burst=2)}, clock=lambda: now[0])
    assert limiter.acquire("t") is None and limiter.acquire("t") is None
    refused = limiter.acquire("t")
    assert refused is not None and refused.reason == "rate"
    assert refused.retry_after_s == pytest.approx(0.5)
    now[0] = 0.5
    assert limiter.acquire("t") is None
    assert limiter.acquire("other") is None  # tenants without limits are not limited


def test_the_concurrency_limit_frees_a_slot_on_release() -> None:
    limiter = TenantLimiter({"t": TenantConfig(max_concurrency=1)})
    assert limiter.acquire("t") is None
    refused = limiter.acquire("t")
    assert refused is not None and refused.reason == "concurrency"
    limiter.release("t")
    assert limiter.active("t") == 0 and limiter.acquire("t") is None


# ---------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("exc", "status", "retry_after"),
    [
        (InvalidRequest("max_tokens must be an integer >= 1, got 0"), 400, None),
        (QuotaExceeded("over", tenant="t"), 429, "60"),
        (QueueFull("full"), 503, "1"),
        (SchedulerClosed("closed"), 503, "5"),
        (RequestTimeout("late"), 504, None),
        (BackendRejected("too long"), 400, None),
        (RateLimited("slow down", retry_after=7.2), 503, "8"),
        (BackendUnavailable("down"), 503, "1"),
        (LedgerUnavailable("store down"), 503, "1"),
        (RuntimeError("secret detail"), 500, None),
    ],
)
def test_each_error_maps_to_its_status(
    exc: Exception, status: int, retry_after: str | None
) -> None:
    error = from_exception(exc, quota_window_s=60)
    assert error.status == status
    assert error.headers().get("retry-after") == retry_after
    if isinstance(exc, InvalidRequest):
        assert error.param == "max_tokens"
    if isinstance(exc, RuntimeError):
        assert b"secret" not in error.body()  # internals never leak to clients


def test_a_quota_without_window_sends_no_retry_after() -> None:
    assert from_exception(QuotaExceeded("over"), quota_window_s=None).headers() == {}
    assert isinstance(from_exception(ApiError(418, "x")), ApiError)


# ---------------------------------------------------------------------- policy and procedure


@pytest.mark.anyio
async def test_the_default_policy_runs_the_shipped_probe_and_reports_its_prediction() -> None:
    # The shipped λ probe on stand-in features (the real encoder is a 135M model): what is
    # tested is the wiring from the probe's prediction to the response, through a scheduler.
    policy = build_policy(ModelConfig(backend="local"), encoder=ScriptedBackend(hidden_size=576))
    requests = [Request(prompt=f"What is {k} + {k}?") for k in range(4)]
    async with Scheduler(
        backend=ScriptedBackend(), policy=policy, average_budget=4, max_budget=16, min_budget=1
    ) as scheduler:
        results = [await scheduler.submit_nowait(r, timeout_s=30) for r in requests]
    for request, result in zip(requests, results, strict=True):
        predicted = policy.take_prediction(request.id)
        assert predicted is not None and 0.0 <= predicted <= 1.0
        assert policy.take_prediction(request.id) is None  # handed on once
        assert 1 <= result.budget <= 16
    await policy.aclose()


@pytest.mark.anyio
async def test_the_round_gate_reads_the_probe_logit_the_policy_stage_recorded() -> None:
    from howhard.policies import OnlinePriorConfig

    model = ModelConfig(backend="local", procedure="sequential-best-of-k", max_budget=12)
    policy = build_policy(model, encoder=ScriptedBackend(hidden_size=576))
    assert gates_rounds(model) and policy.gate is not None
    requests = [Request(prompt=f"What is {k} * 3?", metadata={"max_budget": k}) for k in (2, 9)]
    requests.append(Request(prompt="What is 5 * 3?"))
    bounds = BudgetBounds(average_budget=12, max_budget=12, min_budget=1)
    # Gated: every request's budget is its cap; the gate decides how much of it is drawn.
    assert await policy.allocate(requests, 36, bounds) == [2, 9, 12]
    logits, _ = await policy.inner.probe.read(requests)  # type: ignore[attr-defined]
    mean = OnlinePriorConfig().z_mean
    for request, logit in zip(requests, logits, strict=True):
        assert policy.logit(request, mean) == pytest.approx(float(logit))
        assert policy.group(request) != "*"  # the probe's feature cluster
    assert policy.logit(Request(prompt="never allocated"), mean) == mean
    assert set(policy.stats()) >= {"rounds_pool", "rounds_price", "rounds_prior_strength"}
    await policy.aclose()
    uniform = build_policy(model.model_copy(update={"policy": "uniform"}))
    assert uniform.logit(requests[0], mean) == mean and uniform.group(requests[0]) == "*"
    assert uniform.group(Request(prompt="x", metadata={"group": "sql"})) == "sql"
    for ungated in ({"rounds_gate": "none"}, {"procedure": "best-of-k"}):
        assert build_policy(model.model_copy(update={**ungated, "policy": "uniform"})).gate is None


@pytest.mark.anyio
async def test_served_sequential_rounds_start_from_the_probe_logit_of_their_batch() -> None:
    # The whole served path in-process: the policy stage reads the probe, then each request's
    # first ask of the gate (before its feedback reaches the policy) finds that reading.
    from howhard.policies import OnlinePriorConfig

    model = ModelConfig(
        backend="local", procedure="sequential-best-of-k", average_budget=2, max_budget=8
    )
    policy = build_policy(model, encoder=ScriptedBackend(hidden_size=576))
    seen: dict[str, float] = {}
    recorded = policy.logit

    def logit(request: Request, default: float) -> float:
        seen[request.id] = recorded(request, default)
        return seen[request.id]

    policy.logit = logit  # type: ignore[method-assign]
    verifier, needs_reference = build_verifier("exact")
    procedure = ProcedureChoice(
        verifier,
        needs_reference=needs_reference,
        default="sequential-best-of-k",
        schedule=(1, 2),
        gate=policy.gate,
    )
    requests = [
        Request(prompt=f"What is {k} + {k}?", reference="4" if k == 2 else "0", metadata={})
        for k in range(6)
    ]
    async with Scheduler(
        backend=ScriptedBackend(lambda prompt, n, params: ["The answer is 4."] * n),
        policy=policy,
        procedure=procedure,
        average_budget=8,
        max_budget=8,
    ) as scheduler:
        results = [await scheduler.submit_nowait(r, timeout_s=30) for r in requests]
    logits, _ = await policy.inner.probe.read(requests)  # type: ignore[attr-defined]
    assert seen == {r.id: pytest.approx(float(z)) for r, z in zip(requests, logits, strict=True)}
    assert all(z != OnlinePriorConfig().z_mean for z in seen.values())
    assert results[2].metadata["stop_reason"] == "passed" and results[2].budget == 1
    stats = policy.stats()
    assert stats["rounds_admitted"] == 6 and stats["rounds_in_flight"] == 0
    assert stats["rounds_spent"] == sum(r.budget for r in results) <= 2 * 6
    await policy.aclose()


def test_auto_votes_without_a_reference_and_verifies_with_one() -> None:
    verifier, needs_reference = build_verifier("exact")
    choice = ProcedureChoice(verifier, needs_reference=needs_reference)
    assert choice.resolve(None, has_reference=False) == "self-consistency"
    assert choice.resolve(None, has_reference=True) == "best-of-k"
    assert choice.resolve("self-consistency", has_reference=True) == "self-consistency"
    # Rounds of 1, 2: the samples of one call and a prompt per round cover every procedure.
    assert [c.n for c in choice.plan(3)] == [1, 2] and list(choice.plan(0)) == []
    with pytest.raises(ConfigError, match="verifier='nope'"):
        build_verifier("nope")


def test_calibration_error_is_the_binned_gap() -> None:
    calibration = Calibration(bins=2)
    calibration.add(0.2, 0.0)
    calibration.add(0.2, 1.0)  # bin 0: predicted 0.2, observed 0.5
    calibration.add(0.9, 0.9)  # bin 1: exact
    assert calibration.error() == pytest.approx(2 / 3 * 0.3)


def test_serving_code_never_imports_training() -> None:
    code = (
        "import sys, howhard.serve, howhard.serve.app, howhard.serve.gateway\n"
        "import howhard.serve.server, howhard.commands.serve, howhard.commands.keys\n"
        "print(sorted(m for m in sys.modules if m.startswith('howhard.training')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    for module in (ROOT / "howhard" / "serve").glob("*.py"):
        assert "howhard.training" not in module.read_text(), module


@pytest.mark.anyio
async def test_the_default_policy_learns_from_verified_requests_and_reports_it() -> None:
    from howhard.procedures import BestOfK
    from howhard.scoring import ExactMatch

    policy = build_policy(ModelConfig(backend="local"), encoder=ScriptedBackend(hidden_size=576))
    async with Scheduler(
        backend=ScriptedBackend({"What is 2 + 2?": "The answer is 4."}),
        policy=policy,
        procedure=BestOfK(ExactMatch()),
        average_budget=2,
        max_budget=4,
    ) as scheduler:
        for _ in range(3):
            await scheduler.submit_nowait(
                Request(prompt="What is 2 + 2?", reference="4"), timeout_s=30
            )
    stats = policy.stats()
    assert stats["observations"] == 3 and stats["groups"] >= 1
    assert ServingPolicy(UniformPolicy()).stats() == {}
    await policy.aclose()
