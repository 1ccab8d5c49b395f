"""Running several gateways: the [ledger] and [deployment] config, replicas sharing one store,
each replica's own budget carry, and the Ray Serve application built from a config (no cluster;
``test_ray.py`` runs one)."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import anyio
import pytest

from howhard import Scheduler
from howhard.backends import ScriptedBackend
from howhard.errors import ConfigError
from howhard.ledger import InMemoryLedger
from howhard.policies import UniformPolicy
from howhard.serve.config import ServeConfig
from howhard.serve.gateway import Gateway

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]

QUOTA = {"team-a": {"quota": {"units": 10}}}


def _config(**extra: Any) -> ServeConfig:
    return ServeConfig(
        backends={"fake": {"kind": "scripted"}},
        models={"toy": {"backend": "fake", "policy": "uniform", "average_budget": 2}},
        **extra,
    )


# ---------------------------------------------------------------------- config


def test_several_replicas_need_a_shared_store_for_quotas() -> None:
    with pytest.raises(
        ConfigError, match=r"up to 2 replicas.*\['team-a'\].*ledger.kind = \"redis\""
    ):
        _config(tenants=QUOTA, deployment={"replicas": 2})
    with pytest.raises(ConfigError, match="up to 3 replicas"):
        _config(tenants=QUOTA, deployment={"autoscaling": {"max_replicas": 3}})
    # One replica, no quotas to share, or a shared store: all fine.
    _config(tenants=QUOTA, deployment={"replicas": 1})
    _config(tenants={"team-a": {}}, deployment={"replicas": 2})
    shared = {"kind": "redis", "url": "redis://127.0.0.1:6379/0"}
    assert _config(tenants=QUOTA, ledger=shared, deployment={"replicas": 4}).ledger.shared


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (
            {"deployment": {"autoscaling": {"min_replicas": 3, "max_replicas": 2}}},
            r"ServeConfig.deployment: autoscaling.min_replicas \(3\) must be <= "
            r"autoscaling.max_replicas \(2\)",
        ),
        ({"deployment": {"replicas": 0}}, "deployment.replicas"),
        ({"deployment": {"cpus_per_replica": -1}}, "deployment.cpus_per_replica"),
        ({"ledger": {"kind": "etcd"}}, "ledger.kind"),
    ],
)
def test_bad_deployment_and_ledger_sections_name_the_field(
    extra: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(ConfigError, match=fragment):
        _config(**extra)


# ---------------------------------------------------------------------- the stream budget


async def test_each_replica_carry_keeps_its_average_exact_under_uneven_traffic() -> None:
    """Two schedulers (as two replicas) on one ledger: one sees a trickle of single requests,
    the other bursts of every size. Each one's carry turns B = 2.5 into exact integer batch
    totals, so each grants floor(B * n) units for its n requests, and together they are within
    one unit per replica of B times all requests."""
    average = 2.5
    ledger = InMemoryLedger()
    replicas = [
        Scheduler(
            backend=ScriptedBackend(),
            policy=UniformPolicy(),
            average_budget=average,
            max_budget=8,
            ledger=ledger,
        )
        for _ in range(2)
    ]
    granted: list[list[int]] = [[], []]
    async with replicas[0], replicas[1]:

        async def one(replica: int, prompt: str) -> None:
            result = await replicas[replica].submit(prompt, tenant="team-a")
            granted[replica].append(result.budget)

        for i in range(3):  # a trickle: batches of one
            await one(0, f"trickle {i}")
        for size in (1, 7, 2, 13, 5, 33):  # bursts: batches of many sizes
            async with anyio.create_task_group() as tg:
                for i in range(size):
                    tg.start_soon(one, 1, f"burst {size} {i}")
    n = [len(g) for g in granted]
    assert n == [3, 61]
    assert [sum(g) for g in granted] == [math.floor(average * k) for k in n]  # [7, 152]
    spent = (await ledger.snapshot())["team-a"].settled.units
    assert spent == 7 + 152
    assert average * sum(n) - len(n) < spent <= average * sum(n)


# ---------------------------------------------------------------------- the Ray application


def test_the_ray_application_carries_the_deployment_section() -> None:
    from howhard.deploy.ray import DEPLOYMENT_NAME, application

    config = _config(deployment={"replicas": 3, "cpus_per_replica": 0.5, "gpus_per_replica": 1})
    deployment = application(config)._bound_deployment
    assert deployment.name == DEPLOYMENT_NAME
    assert deployment.num_replicas == 3
    assert deployment.ray_actor_options == {"num_cpus": 0.5, "num_gpus": 1.0}
    assert deployment.max_ongoing_requests == 256
    # Replicas rebuild the same validated config from the data they are sent.
    assert ServeConfig(**deployment.init_args[0]) == config

    scaling = {"min_replicas": 2, "max_replicas": 5, "target_ongoing_requests": 8}
    deployment = application(_config(deployment={"autoscaling": scaling}))._bound_deployment
    autoscaling = deployment._deployment_config.autoscaling_config
    assert (autoscaling.min_replicas, autoscaling.max_replicas) == (2, 5)
    assert autoscaling.target_ongoing_requests == 8


def test_the_serve_run_builder_reads_a_config_file(tmp_path: Path) -> None:
    from howhard.deploy.ray import app

    path = tmp_path / "serve.toml"
    path.write_text(
        "[backends.fake]\nkind = 'scripted'\n[models.toy]\nbackend = 'fake'\n"
        "[deployment]\nreplicas = 2\n",
        encoding="utf-8",
    )
    assert app({"config": str(path)})._bound_deployment.num_replicas == 2
    with pytest.raises(ConfigError, match=r"unknown application arguments \['replicas'\]"):
        app({"config": str(path), "replicas": "3"})
    with pytest.raises(ConfigError, match="does not exist"):
        app({"config": str(tmp_path / "missing.toml")})


def test_the_readmes_ray_config_is_valid() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Replicas on Ray Serve", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```toml\n(.*?)```", section, flags=re.S)
    config = ServeConfig(**tomllib.loads(block))
    assert config.deployment.replicas == 2 and config.ledger.kind == "redis"
    assert config.backends["vllm"].kind == "openai"


async def test_a_replica_is_unhealthy_once_a_started_gateways_scheduler_stops() -> None:
    from howhard.deploy.ray import GatewayReplica

    config = _config()
    replica = GatewayReplica(config.model_dump(mode="json"))
    replica.check_health()  # not built yet: Ray is still starting it
    async with Gateway(config) as gateway:
        replica._gateway = gateway  # what __serve_build_asgi_app__ records inside Ray
        replica.check_health()
        await gateway.model("toy").scheduler.aclose()
        with pytest.raises(RuntimeError, match="scheduler of this gateway replica stopped"):
            replica.check_health()
        gateway.begin_drain()
        replica.check_health()  # draining: finishing its work, not broken


def _serve_ray(
    tmp_path: Path, *args: str, pythonpath: str = ""
) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "serve.toml"
    config.write_text("[backends.fake]\nkind = 'scripted'\n[models.toy]\nbackend = 'fake'\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (pythonpath, str(ROOT)) if p)}
    command = [sys.executable, "-m", "howhard", "serve", "--ray", "--config", str(config), *args]
    return subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_serve_ray_without_ray_installed_names_the_extra(tmp_path: Path) -> None:
    blocked = tmp_path / "blocked" / "ray"
    blocked.mkdir(parents=True)
    (blocked / "__init__.py").write_text("raise ImportError('ray is not installed here')\n")
    done = _serve_ray(tmp_path, pythonpath=str(blocked.parent))
    assert done.returncode == 1
    assert "needs Ray Serve: pip install 'howhard[ray]'" in done.stderr


def test_serve_ray_refuses_port_zero_before_starting_a_cluster(tmp_path: Path) -> None:
    done = _serve_ray(tmp_path, "--port", "0")
    assert done.returncode == 2  # a usage error
    assert "server.port = 0 is not supported with --ray" in done.stderr
    assert "Started a local Ray instance" not in done.stderr
