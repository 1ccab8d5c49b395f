"""Two `howhard serve` replicas sharing one tenant's quota through `[ledger] kind = "redis"`.

Real processes, a real Valkey server: requests spread over both replicas can never spend more
than the quota, and each replica reports the shared spend.
"""

from __future__ import annotations

import anyio
import httpx
import pytest

from howhard.testing.valkey import LocalValkey
from tests.serve.conftest import RunningGateway, gateway_process

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

CONFIG = """
[backends.fake]
factory = "tests.serve.backends:make"

[models.toy]
backend = "fake"
policy = "uniform"
average_budget = 2
max_budget = 2
batching = {{ max_batch_size = 16, max_wait_s = 0.002 }}

[tenants.team]
quota = {{ units = 20 }}

[ledger]
kind = "redis"
url = "{url}"
key_prefix = "{prefix}"
"""


async def test_replicas_share_one_quota_exactly(
    valkey: LocalValkey, tmp_path_factory: pytest.TempPathFactory
) -> None:
    config = CONFIG.format(url=valkey.url, prefix="serve-replicas:")
    with (
        gateway_process(config, tmp_path_factory.mktemp("a"), ["team"]) as a,
        # The second replica reads the first one's file: the same tenants, keys and ledger.
        gateway_process(a.config.read_text(), tmp_path_factory.mktemp("b")) as b,
    ):
        statuses: list[int] = []

        async def ask(replica: RunningGateway, http: httpx.AsyncClient) -> None:
            response = await http.post(
                replica.base_url + "/chat/completions",
                json={"model": "toy", "messages": [{"role": "user", "content": "What is 2 * 3?"}]},
                headers={"authorization": f"Bearer {a.keys['team']}"},
            )
            statuses.append(response.status_code)

        async with httpx.AsyncClient(timeout=30) as http, anyio.create_task_group() as tg:
            for i in range(30):
                tg.start_soon(ask, (a, b)[i % 2], http)
        # 20 units at 2 per request: exactly 10 answered, whichever replica took them.
        assert sorted(set(statuses)) == [200, 429]
        assert statuses.count(200) == 10
        for replica in (a, b):
            assert replica.metric("howhard_tenant_settled_units", tenant="team") == 20
            assert replica.metric("howhard_tenant_reserved_units", tenant="team") == 0
