"""The shared quota store: one tenant's quota spent by any number of processes, on Valkey or Redis.

:class:`RedisLedger` implements the storage port (:class:`howhard.ledger.Ledger`) on a
Redis-protocol server through the ``redis`` client's asyncio API (``pip install
'howhard[redis]'``). Every operation is one Lua script (:mod:`howhard.ledger.scripts`), atomic
on the server, so replicas on several machines can never push a tenant past its quota. What it
adds to the port:

- **Leases.** A reservation is a lease that expires ``lease_ttl_s`` after it was last renewed;
  the store renews its own open leases in the background (every third of the TTL) while it is
  open. A process that dies stops renewing, and its holds are released by the next operation
  on that tenant once they expire. Settling or refunding a lease that is closed or lapsed
  changes nothing (a retried settle gets the first charge back), so nothing is charged twice.
- **The server's clock.** Windows and leases are timed by the server's ``TIME``, so replicas
  whose clocks disagree still agree on the window.
- **Fail closed.** When the server cannot be reached (after ``retries`` quick retries, each
  bounded by ``timeout_s``), ``reserve`` raises :class:`~howhard.errors.LedgerUnavailable`:
  nothing runs unpaid. Tenants listed in ``fail_open`` are let through instead, uncounted
  (their usage during the outage is not recorded). A request already running when the server
  went away has its hold on the server; its settle is queued and replayed once the server is
  back (before its lease lapses). Scripts are idempotent per lease id, so the client's retries
  and replays never reserve or charge twice.
- **An audit.** :meth:`RedisLedger.audit` reads, from the server, the most a tenant ever held
  at once (window plus open holds), the leases still on the server and how many lapsed.

A lease that lapses while its request still runs (its replica was cut off from the server for
longer than ``lease_ttl_s``) is not charged when it settles: its hold was released and others
may have used it, so charging it then could push the tenant past its quota. The tenant gets
that work free, and the scheduler logs the shortfall (``ledger.overrun``); choose a TTL longer
than the outages you expect.

Every replica must be configured with the same quotas (each passes its own to the scripts).
Spend lives on the server: give it persistence (``appendonly yes``) if quotas must survive its
restart. One server (or a primary with replicas) is supported, not Redis Cluster.

::

    quotas = {"team-a": QuotaConfig(units=1000, window_s=3600)}
    async with RedisLedger("redis://127.0.0.1:6379/0", quotas) as ledger:
        async with Scheduler(backend=..., ledger=ledger, average_budget=4.0) as scheduler:
            ...
"""

from __future__ import annotations

import contextlib
import math
import os
import secrets
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import anyio
from anyio.abc import TaskGroup

from howhard.config import QuotaConfig
from howhard.errors import (
    ConfigError,
    LedgerUnavailable,
    QuotaExceeded,
    UnknownTenant,
    UsageError,
    missing_extra,
)
from howhard.ledger import scripts as scripts
from howhard.ledger.pipeline import ScriptPipeline
from howhard.ledger.rules import (
    Amount,
    Hold,
    QuotaTable,
    charge,
    choose,
    cost_limit_micros,
    over_quota_message,
)
from howhard.ledger.store import Ledger, Reservation, TenantSpend

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["LeaseAudit", "RedisLedger"]

_RENEW_CHUNK = 500
"""Most leases one renewal script extends."""

_FAIL_OPEN = "open-"
"""Id prefix of reservations granted without the server (fail-open tenants in an outage)."""


@dataclass(frozen=True, slots=True)
class LeaseAudit:
    """What the server says about one tenant's holds (for operators and tests)."""

    peak_units: int
    """The most units ever held at once: settled in the window plus open holds."""
    peak_tokens: int
    """The same for tokens (prompt plus completion)."""
    peak_cost_micros: int
    """The same for money, in micro-units."""
    open_leases: int
    """Leases on the server not yet settled, refunded or expired."""
    expired: int
    """Leases that lapsed because their holder stopped renewing them (it died or was cut off)."""


def _amount(text: str) -> Amount:
    units, prompt, completion, micros = (int(x) for x in text.split(","))
    return Amount(units, prompt, completion, micros)


def _redacted(url: str) -> str:
    """``url`` without its password, for error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname}"
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


class RedisLedger(Ledger):
    """A ledger on a Valkey/Redis server, shared by every process that opens the same prefix.

    ``url`` is the server (``redis://[:password@]host:port/db``, or ``rediss://`` for TLS);
    ``quotas`` and ``default_quota`` work as for :class:`~howhard.ledger.InMemoryLedger` (with
    neither, every tenant is unlimited and tracked). Use it as an async context manager: it
    connects and renews its leases while open. See the module docstring for the semantics.
    """

    def __init__(
        self,
        url: str,
        quotas: Mapping[str, QuotaConfig] | None = None,
        *,
        default_quota: QuotaConfig | None = None,
        lease_ttl_s: float = 30.0,
        key_prefix: str = "howhard:ledger:",
        fail_open: Collection[str] = (),
        timeout_s: float = 1.0,
        retries: int = 2,
        max_connections: int = 64,
        clock: Callable[[], float] | None = None,
    ) -> None:
        """Configure the store; nothing connects until ``async with``.

        Args:
            url: The server, ``redis://host:port/db`` (``rediss://`` for TLS).
            quotas: Tenant -> quota; the same on every replica.
            default_quota: The quota of tenants not in ``quotas``.
            lease_ttl_s: Seconds a reservation lives without renewal (renewed every third).
            key_prefix: Prefix of every key; stores with different prefixes share nothing.
            fail_open: Tenants served, uncounted, while the server is unreachable.
            timeout_s: Seconds one attempt of one operation may take.
            retries: Quick retries of an operation on connection errors before it fails.
            max_connections: Connections to the server at most; more operations wait.
            clock: For tests only: seconds to use instead of the server's ``TIME``.
        """
        if not isinstance(url, str) or urlsplit(url).scheme not in ("redis", "rediss", "unix"):
            raise ConfigError(
                f"url must be a redis://host:port/db (or rediss://, unix://) URL, got {url!r}"
            )
        self._table = QuotaTable(quotas, default_quota)
        if not (math.isfinite(lease_ttl_s) and lease_ttl_s > 0):
            raise ConfigError(f"lease_ttl_s must be a number of seconds > 0, got {lease_ttl_s!r}")
        if not (math.isfinite(timeout_s) and timeout_s > 0):
            raise ConfigError(f"timeout_s must be a number of seconds > 0, got {timeout_s!r}")
        if not isinstance(retries, int) or retries < 0:
            raise ConfigError(f"retries must be an integer >= 0, got {retries!r}")
        if not isinstance(max_connections, int) or max_connections < 1:
            raise ConfigError(f"max_connections must be an integer >= 1, got {max_connections!r}")
        if not key_prefix:
            raise ConfigError("key_prefix must not be empty; use e.g. 'howhard:ledger:'")
        if isinstance(fail_open, str):
            raise ConfigError(f"fail_open must be a collection of tenants, got {fail_open!r}")
        self.url = url
        self.lease_ttl_s = float(lease_ttl_s)
        self.key_prefix = key_prefix
        self.fail_open = frozenset(fail_open)
        self._timeout_s = float(timeout_s)
        self._retries = retries
        self._max_connections = max_connections
        self._clock = clock
        self._client: Redis | None = None
        self._pipeline: ScriptPipeline | None = None
        self._tg: TaskGroup | None = None
        # This store's open leases (id -> tenant): what the renewer extends.
        self._leases: dict[str, str] = {}
        # Closes the server could not take (lease -> reservation, charge or None, when queued).
        self._pending: dict[str, tuple[Reservation, Amount | None, float]] = {}
        self._instance = secrets.token_hex(6)
        self._next_id = 0

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> RedisLedger:
        try:
            from redis.asyncio import BlockingConnectionPool, Redis
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff
        except ImportError as exc:
            raise missing_extra("redis", "redis") from exc
        if self._client is not None:
            raise UsageError("this RedisLedger is already open; open it with one `async with`")
        # A bounded pool: beyond max_connections operations wait their turn (backpressure), not
        # fail; each holder gives its connection back within timeout_s, even if the server hangs.
        pool = BlockingConnectionPool.from_url(
            self.url,
            max_connections=self._max_connections,
            timeout=None,
            decode_responses=True,
            socket_timeout=self._timeout_s,
            socket_connect_timeout=self._timeout_s,
            # Retries are the pipeline's (whole batches, idempotent scripts), not per command.
            retry=Retry(NoBackoff(), 0),
        )
        self._client = Redis.from_pool(pool)
        self._pipeline = ScriptPipeline(
            self._client,
            {
                name: getattr(scripts, name)
                for name in ("RESERVE", "SETTLE", "REFUND", "RENEW", "SNAPSHOT", "TENANTS")
            },
            flushers=min(2, self._max_connections),
            retries=self._retries,
        )
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        self._tg.start_soon(self._pipeline.run)
        self._tg.start_soon(self._renew_forever)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Leases still open are left to expire: their requests' owners refund them (a scheduler
        # does on close), and a crash is what the TTL is for. Queued closes get one last try.
        try:
            if self._pending and self._tg is not None:
                with anyio.CancelScope(shield=True):
                    await self.renew()
            if self._tg is not None:
                self._tg.cancel_scope.cancel()
                await self._tg.__aexit__(None, None, None)
        finally:
            self._tg = None
            self._pipeline = None
            client, self._client = self._client, None
            if client is not None:
                with anyio.CancelScope(shield=True):
                    await client.aclose()

    # ------------------------------------------------------------------ the port

    def _quota(self, tenant: str) -> QuotaConfig | None:
        return self._table.lookup(tenant)

    async def check_tenant(self, tenant: str) -> QuotaConfig | None:
        """The quota in force for ``tenant``; ``UnknownTenant`` when it has none and no default."""
        return self._quota(tenant)

    async def reserve(
        self, tenant: str, hold: Hold, *, fallbacks: Sequence[Hold] = ()
    ) -> Reservation:
        """Hold ``hold`` (or, degrading, the largest fallback that fits) in one server step."""
        quota = self._quota(tenant)
        choose(None, Amount(), hold, fallbacks)  # the rules' own checks of the budgets
        lease = self._lease_id()
        degrade = int(quota is not None and quota.on_exceed == "degrade")
        options = ",".join(map(str, (repr(self.lease_ttl_s), *_limits(quota), degrade)))
        holds = ";".join(
            f"{h.budget},{h.amount[0]},{h.amount[1]},{h.amount[2]},{h.amount[3]}"
            for h in (hold, *fallbacks)
        )
        args = [self._now(), _window(quota), tenant, lease, options, holds]
        try:
            status, record = await self._call(
                "RESERVE", [*self._keys(tenant), self._tenants_key()], args
            )
        except LedgerUnavailable:
            if tenant not in self.fail_open:
                raise
            return Reservation(_FAIL_OPEN + lease, tenant, hold.budget, hold.budget, hold.amount)
        if status == "no":
            _, broken = choose(quota, _amount(record), hold, fallbacks)
            raise QuotaExceeded(
                over_quota_message(tenant, hold.budget, broken or "the server's books disagree"),
                tenant=tenant,
            )
        budget, *amount = (int(x) for x in record.split(","))
        self._leases[lease] = tenant
        return Reservation(lease, tenant, budget, hold.budget, Amount(*amount))

    async def settle(self, reservation: Reservation, actual: Amount) -> Amount:
        """Release the lease and charge ``actual`` capped at the hold; returns the charge.

        A lease that is closed already returns its first charge; one that lapsed charges
        nothing (its hold was released when it expired) and returns ``Amount()``. When the
        server cannot be reached the work is done already, so the charge is returned and
        queued: :meth:`renew` replays it (once) when the server is back, before the lease
        would lapse; until then the hold keeps the quota covered.
        """
        charged = charge(reservation.amount, actual)
        if reservation.id.startswith(_FAIL_OPEN):
            return charged
        self._leases.pop(reservation.id, None)
        try:
            return await self._close(reservation, charged)
        except LedgerUnavailable:
            self._pending[reservation.id] = (reservation, charged, time.monotonic())
            return charged

    async def refund(self, reservation: Reservation) -> None:
        """Release the lease without charging (nothing happens to a closed or lapsed lease).

        When the server cannot be reached the refund is queued for :meth:`renew`, like a
        settle; the lease lapses meanwhile at the latest.
        """
        if reservation.id.startswith(_FAIL_OPEN):
            return
        self._leases.pop(reservation.id, None)
        try:
            await self._close(reservation, None)
        except LedgerUnavailable:
            self._pending[reservation.id] = (reservation, None, time.monotonic())

    async def _close(self, reservation: Reservation, charged: Amount | None) -> Amount:
        """Settle (``charged``) or refund (``None``) on the server; idempotent per lease."""
        tenant = reservation.tenant
        keys = self._keys(tenant)
        head = [self._now(), _window(self._quota_or_none(tenant)), reservation.id]
        if charged is None:
            await self._call("REFUND", keys, head)
            return Amount()
        status, text = await self._call(
            "SETTLE",
            [*keys, f"{self._prefix(tenant)}:done:{reservation.id}"],
            [*head, ",".join(map(str, charged)), math.ceil(self.lease_ttl_s * 1000)],
        )
        return _amount(text) if status in ("ok", "done") else Amount()

    async def snapshot(self) -> dict[str, TenantSpend]:
        """Per-tenant spend as the server holds it (after releasing lapsed leases)."""
        return {tenant: spend for tenant, (spend, _) in (await self._accounts()).items()}

    async def audit(self, tenant: str) -> LeaseAudit:
        """The server's audit of ``tenant``: peak held, open leases, lapsed leases."""
        accounts = await self._accounts([tenant])
        return accounts[tenant][1]

    # ------------------------------------------------------------------ internals

    async def _accounts(
        self, tenants: Sequence[str] | None = None
    ) -> dict[str, tuple[TenantSpend, LeaseAudit]]:
        if tenants is None:
            members = await self._call("TENANTS", [self._tenants_key()], [])
            tenants = sorted(str(m) for m in members)
        out = {}
        for tenant in tenants:
            quota = self._quota_or_none(tenant)
            values = await self._call("SNAPSHOT", self._keys(tenant), [self._now(), _window(quota)])
            v = [int(x) for x in values]
            out[tenant] = (
                TenantSpend(
                    settled=Amount(*v[0:4]).usage(),
                    window=Amount(*v[4:8]).usage(),
                    reserved=Amount(*v[8:12]).usage(),
                    open_reservations=v[12],
                    rejected=v[13],
                    degraded=v[14],
                    quota=quota,
                ),
                LeaseAudit(
                    peak_units=v[16],
                    peak_tokens=v[17],
                    peak_cost_micros=v[18],
                    open_leases=v[19],
                    expired=v[15],
                ),
            )
        return out

    def _quota_or_none(self, tenant: str) -> QuotaConfig | None:
        # Another replica may serve tenants this one does not know; report them unlimited.
        try:
            return self._quota(tenant)
        except UnknownTenant:
            return None

    async def _renew_forever(self) -> None:
        from redis.exceptions import RedisError

        while True:
            await anyio.sleep(self.lease_ttl_s / 3)
            # A round the server refused (not just an outage, which renew() rides out) must not
            # end the renewals, or every open lease would lapse; the next round tries again.
            with contextlib.suppress(RedisError):
                await self.renew()

    async def renew(self) -> int:
        """Replay queued closes, then extend this store's open leases; returns how many remain.

        The store calls this every third of ``lease_ttl_s`` while it is open. An unreachable
        server is not an error here: the next round tries again. A queued close older than
        the TTL is dropped (its lease has lapsed, so replaying it could change nothing).
        """
        for lease, (reservation, charged, since) in list(self._pending.items()):
            if time.monotonic() - since > self.lease_ttl_s:
                del self._pending[lease]
                continue
            try:
                await self._close(reservation, charged)
            except LedgerUnavailable:
                break
            del self._pending[lease]
        by_tenant: dict[str, list[str]] = {}
        for lease, tenant in list(self._leases.items()):
            by_tenant.setdefault(tenant, []).append(lease)
        # At most _RENEW_CHUNK leases per script, so no one call keeps the server busy for long.
        chunks: list[tuple[str, list[str]]] = []
        for tenant, leases in by_tenant.items():
            chunks += [
                (tenant, leases[i : i + _RENEW_CHUNK]) for i in range(0, len(leases), _RENEW_CHUNK)
            ]
        for tenant, leases in chunks:
            try:
                lost = await self._call(
                    "RENEW",
                    self._keys(tenant),
                    [
                        self._now(),
                        _window(self._quota_or_none(tenant)),
                        repr(self.lease_ttl_s),
                        *leases,
                    ],
                )
            except LedgerUnavailable:
                continue
            for lease in lost:
                self._leases.pop(lease, None)
        return len(self._leases)

    @property
    def pending(self) -> int:
        """Settles and refunds waiting for the server to come back."""
        return len(self._pending)

    async def _call(self, script: str, keys: Sequence[str], args: Sequence[str | int]) -> Any:
        """Run one of :mod:`.scripts`; ``LedgerUnavailable`` when the server cannot be reached."""
        from redis.exceptions import ConnectionError, TimeoutError

        pipeline = self._pipeline
        if pipeline is None:
            raise UsageError(
                "RedisLedger is not open; use it as `async with RedisLedger(url, ...) as ledger:`"
            )
        try:
            return await pipeline.call(script, keys, args)
        except anyio.ClosedResourceError:
            raise UsageError(
                "RedisLedger is closed; open it again with `async with RedisLedger(url, ...)`"
            ) from None
        except (ConnectionError, TimeoutError, OSError) as exc:
            raise LedgerUnavailable(
                f"the quota store at {_redacted(self.url)} cannot be reached ({exc}); requests "
                "that need a reservation fail until it is back (fail_open= lets chosen tenants "
                "through meanwhile)"
            ) from exc

    def _now(self) -> str:
        return "" if self._clock is None else repr(float(self._clock()))

    def _lease_id(self) -> str:
        # Unique across processes (random instance part) and cheap (a counter); no ':' in it,
        # since the scripts use ':' to separate a lease id from its amounts.
        self._next_id += 1
        return f"{self._instance}{os.getpid():x}-{self._next_id:x}"

    def _prefix(self, tenant: str) -> str:
        return f"{self.key_prefix}{{{tenant}}}"

    def _keys(self, tenant: str) -> list[str]:
        prefix = self._prefix(tenant)
        return [f"{prefix}:acct", f"{prefix}:leases", f"{prefix}:holds", f"{prefix}:events"]

    def _tenants_key(self) -> str:
        return f"{self.key_prefix}tenants"


def _window(quota: QuotaConfig | None) -> str:
    return "-1" if quota is None or quota.window_s is None else repr(float(quota.window_s))


def _limits(quota: QuotaConfig | None) -> tuple[int, int, int]:
    if quota is None:
        return -1, -1, -1
    cost = cost_limit_micros(quota)
    return (
        -1 if quota.units is None else quota.units,
        -1 if quota.tokens is None else quota.tokens,
        -1 if cost is None else cost,
    )
