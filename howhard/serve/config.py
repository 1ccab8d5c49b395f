"""The gateway's configuration: a TOML file validated by pydantic, errors naming the field.

::

    [server]                      # where and how the gateway listens
    host = "127.0.0.1"
    port = 8000

    [backends.local]              # model backends, by name
    kind = "vllm"                 # vllm | openai | transformers | scripted, or factory = "pkg:fn"

    [models.smollm2]              # what clients ask for in "model": backend, policy, procedure
    backend = "local"
    average_budget = 4.0

    [tenants.team-a]              # quotas and limits per tenant
    quota = { units = 100000, window_s = 86400 }
    rate_per_s = 20

    [[keys]]                      # API keys, stored hashed (`howhard keys add` appends these)
    tenant = "team-a"
    hash = "sha256:..."

    [ledger]                      # where quotas are kept: "memory" (this process) or "redis",
    kind = "redis"                # a Valkey/Redis server every replica shares
    url = "redis://127.0.0.1:6379/0"

    [deployment]                  # `howhard serve --ray`: gateway replicas on Ray Serve
    replicas = 2

With no file, ``ServeConfig()`` serves the embedded default: SmolLM2-135M-Instruct on in-process
vLLM as model ``smollm2``, the shipped λ probe with exact online allocation, and the ``auto``
procedure (best-of-k with a verifier when a request carries a reference, self-consistency
otherwise), open to loopback clients without keys.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from howhard.config import BatchingConfig, Price, QuotaConfig, _Config
from howhard.errors import ConfigError

__all__ = [
    "DEFAULT_PROBE",
    "AutoscalingConfig",
    "BackendConfig",
    "DeploymentConfig",
    "KeyEntry",
    "LedgerConfig",
    "ModelConfig",
    "ServeConfig",
    "ServerConfig",
    "TenantConfig",
    "is_loopback",
    "load_config",
]

DEFAULT_PROBE = Path(__file__).resolve().parent.parent / "assets" / "lambda-probe"
"""The λ probe shipped with the package (trained on the benchmark's train split)."""

DEFAULT_MODEL = "smollm2"
"""The model name clients use for the embedded default."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ServerConfig(_Config):
    """Where the gateway listens and how it treats requests as a whole."""

    host: str = Field(default="127.0.0.1", description="Address to bind (loopback by default).")
    port: int = Field(default=8000, ge=0, le=65_535, description="TCP port; 0 picks a free one.")
    max_body_bytes: int = Field(
        default=1_048_576,
        ge=1_024,
        le=1_073_741_824,
        description="Largest request body accepted; larger ones get 413.",
    )
    drain_grace_s: float = Field(
        default=30.0,
        ge=0.0,
        le=3_600.0,
        description="After SIGTERM, seconds in-flight requests may finish before they are "
        "cancelled (and refunded) with 503.",
    )
    max_timeout_s: float = Field(
        default=600.0,
        gt=0.0,
        le=86_400.0,
        description="Largest per-request deadline a client may ask for (howhard.timeout_s).",
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="uvicorn's access and error log level."
    )


class BackendConfig(_Config):
    """One model backend. Exactly one of ``kind`` or ``factory``."""

    kind: Literal["vllm", "openai", "transformers", "scripted"] | None = Field(
        default=None,
        description="A built-in backend: in-process vLLM, an OpenAI-compatible server, local "
        "transformers, or the scripted stand-in.",
    )
    factory: str | None = Field(
        default=None,
        description="'package.module:callable' returning your own Backend (called with options).",
    )
    model: str | None = Field(
        default=None,
        description="Model folder or served name (default: the packaged SmolLM2-135M-Instruct; "
        "required for openai).",
    )
    base_url: str | None = Field(
        default=None, description="Server root for kind='openai', e.g. http://127.0.0.1:8001/v1."
    )
    options: dict[str, Any] = Field(
        default_factory=dict, description="Extra keyword arguments for the backend constructor."
    )
    price: Price = Field(
        default_factory=Price, description="What this backend's calls cost (charged to tenants)."
    )

    @model_validator(mode="after")
    def _one_source(self) -> BackendConfig:
        if (self.kind is None) == (self.factory is None):
            raise ValueError("set exactly one of kind (a built-in backend) or factory (pkg:fn)")
        if self.factory is not None and ":" not in self.factory:
            raise ValueError(
                f"factory must look like 'package.module:callable', got {self.factory!r}"
            )
        if self.kind == "openai" and (self.base_url is None or self.model is None):
            raise ValueError("kind='openai' needs base_url and model")
        return self


class ModelConfig(_Config):
    """One model name clients can ask for: its backend, policy, procedure and scheduler."""

    backend: str = Field(description="Name of the [backends.NAME] section that generates.")
    policy: Literal["adaptive", "uniform"] = Field(
        default="adaptive",
        description="'adaptive': a probe predicts each request's gain and an exact allocator "
        "splits each batch's budget; 'uniform': every request gets the same budget.",
    )
    probe: str | None = Field(
        default=None,
        description="Probe checkpoint folder for policy='adaptive' (default: the shipped λ probe).",
    )
    procedure: Literal[
        "auto",
        "best-of-k",
        "self-consistency",
        "sequential-best-of-k",
        "adaptive-self-consistency",
    ] = Field(
        default="auto",
        description="Default procedure: 'auto' is best-of-k with the verifier when the request "
        "carries a reference, self-consistency (majority vote) otherwise; the sequential forms "
        "sample in rounds and stop when a sample passes / the vote is settled.",
    )
    rounds: tuple[int, ...] = Field(
        default=(1, 2, 4, 8),
        min_length=1,
        description="Samples per round of the sequential procedures (the last size repeats).",
    )
    rounds_gate: Literal["stream", "none"] = Field(
        default="stream",
        description="With procedure='sequential-best-of-k': 'stream' caps each request at "
        "max_budget and asks a stream allocator before each round (granted when its value, "
        "from the probe's prior and the samples so far, clears a price that keeps "
        "average_budget exact; units a request does not need go to those that do; the model "
        "then serves no other procedure); 'none' caps each request at its share of its batch "
        "and runs it to that or to its first pass. No effect with other procedures.",
    )
    verifier: str = Field(
        default="math",
        description="Scorer for best-of-k: 'math' (math-verify equivalence), 'exact' (normalised "
        "exact match), 'logprob' (mean token logprob, needs no reference) or 'pkg.mod:attr'.",
    )
    average_budget: float = Field(
        default=4.0, gt=0.0, le=4096.0, description="Long-run average samples per request."
    )
    max_budget: int = Field(default=16, ge=1, le=4096, description="Most samples one request gets.")
    min_budget: int = Field(
        default=1,
        ge=0,
        le=4096,
        description="Fewest samples a request gets; 0 lets the policy abstain (empty answer).",
    )
    max_tokens: int = Field(
        default=256, ge=1, le=1_000_000, description="Default max_tokens per sample."
    )
    max_tokens_limit: int = Field(
        default=4096, ge=1, le=1_000_000, description="Largest max_tokens a client may ask for."
    )
    temperature: float = Field(
        default=0.7, ge=0.0, le=2.0, description="Default sampling temperature (samples differ)."
    )
    batching: BatchingConfig = Field(
        default_factory=lambda: BatchingConfig(max_batch_size=64, max_wait_s=0.01),
        description="When micro-batches close.",
    )
    max_queue: int = Field(
        default=1024, ge=1, le=1_000_000, description="Queued requests before 503 (queue full)."
    )
    max_concurrency: int = Field(
        default=64, ge=1, le=100_000, description="Requests running on the backend at once."
    )
    request_timeout_s: float | None = Field(
        default=300.0,
        gt=0.0,
        description="Default deadline from arrival to answer (504 after); None waits forever.",
    )

    @model_validator(mode="after")
    def _budgets(self) -> ModelConfig:
        if not self.min_budget <= self.average_budget <= self.max_budget:
            raise ValueError(
                f"average_budget must lie in [min_budget, max_budget] = "
                f"[{self.min_budget}, {self.max_budget}], got {self.average_budget}"
            )
        if self.max_tokens > self.max_tokens_limit:
            raise ValueError(
                f"max_tokens ({self.max_tokens}) must be <= max_tokens_limit "
                f"({self.max_tokens_limit})"
            )
        return self


class TenantConfig(_Config):
    """One tenant: its quota and its request rate and concurrency limits."""

    quota: QuotaConfig = Field(
        default_factory=QuotaConfig, description="Units, tokens and cost over a window."
    )
    rate_per_s: float | None = Field(
        default=None,
        gt=0.0,
        description="Sustained requests per second (429 above); None = no cap.",
    )
    burst: int | None = Field(
        default=None,
        ge=1,
        description="Requests allowed at once above the rate (default: max(1, rate_per_s)).",
    )
    max_concurrency: int | None = Field(
        default=None, ge=1, description="Requests in flight at once (429 above); None = no cap."
    )


class KeyEntry(_Config):
    """One API key, stored as a hash only (the key itself is shown once, when created)."""

    tenant: str = Field(description="The tenant this key spends for.")
    hash: str = Field(description="'sha256:' + hex digest of the key.")
    name: str = Field(default="", description="A label to tell keys apart (never secret).")
    created: str = Field(default="", description="When the key was created (ISO 8601, UTC).")

    @field_validator("hash")
    @classmethod
    def _hash_format(cls, value: str) -> str:
        algorithm, _, digest = value.partition(":")
        if (
            algorithm != "sha256"
            or len(digest) != 64
            or any(c not in "0123456789abcdef" for c in digest)
        ):
            raise ValueError(
                "must be 'sha256:' followed by 64 lowercase hex digits (use `howhard keys add`)"
            )
        return value


class LedgerConfig(_Config):
    """Where tenants' quotas are kept: this process's memory, or a server every replica shares.

    ``kind = "redis"`` keeps them on a Valkey/Redis server (``howhard.ledger.RedisLedger``), so
    any number of gateway replicas, on any number of machines, share each tenant's quota
    exactly; every replica must have the same ``[tenants]`` and the same ``url``/``key_prefix``.
    """

    kind: Literal["memory", "redis"] = Field(
        default="memory",
        description="'memory': quotas in this process only; 'redis': on the server at url, "
        "shared by every replica (needs the redis extra).",
    )
    url: str | None = Field(
        default=None,
        description="The server for kind='redis': redis://[:password@]host:port/db (rediss:// "
        "for TLS).",
    )
    key_prefix: str = Field(
        default="howhard:ledger:",
        min_length=1,
        description="Prefix of the store's keys; deployments with different prefixes share "
        "nothing.",
    )
    lease_ttl_s: float = Field(
        default=30.0,
        gt=0.0,
        le=86_400.0,
        description="Seconds a running request's hold survives without renewal: how long a "
        "crashed replica's holds block its tenants' quota.",
    )
    timeout_s: float = Field(
        default=1.0, gt=0.0, le=60.0, description="Seconds one attempt of one operation may take."
    )
    retries: int = Field(
        default=2,
        ge=0,
        le=10,
        description="Quick retries on connection errors before a request fails closed (503).",
    )
    max_connections: int = Field(
        default=64, ge=1, le=10_000, description="Connections to the server per replica at most."
    )
    fail_open: list[str] = Field(
        default_factory=list,
        description="Tenants served, uncounted, while the server is unreachable (all others "
        "fail closed with 503).",
    )

    @model_validator(mode="after")
    def _url(self) -> LedgerConfig:
        if self.kind == "redis" and not self.url:
            raise ValueError("kind='redis' needs url, e.g. url = \"redis://127.0.0.1:6379/0\"")
        if self.kind == "memory" and (self.url is not None or self.fail_open):
            raise ValueError(
                "url and fail_open apply only to kind='redis'; set kind = \"redis\" or drop them"
            )
        return self

    @property
    def shared(self) -> bool:
        """Whether several processes share this store's quotas (the server's, not memory)."""
        return self.kind == "redis"


class AutoscalingConfig(_Config):
    """Ray Serve autoscaling of the gateway replicas, on requests in flight per replica."""

    min_replicas: int = Field(default=1, ge=1, le=10_000, description="Fewest replicas kept up.")
    max_replicas: int = Field(default=4, ge=1, le=10_000, description="Most replicas started.")
    target_ongoing_requests: float = Field(
        default=32.0,
        gt=0.0,
        le=100_000.0,
        description="Requests in flight per replica the autoscaler aims for (a batching "
        "gateway wants many: they share micro-batches).",
    )
    upscale_delay_s: float = Field(
        default=10.0, ge=0.0, le=3_600.0, description="Load must stay high this long to add one."
    )
    downscale_delay_s: float = Field(
        default=300.0, ge=0.0, le=86_400.0, description="Load must stay low this long to drop one."
    )


class DeploymentConfig(_Config):
    """How ``howhard serve --ray`` runs the gateway on Ray Serve (ignored without ``--ray``).

    Each replica is one gateway process (its own schedulers, so its own micro-batches and budget
    carry) behind Ray Serve's HTTP proxy on ``server.host:server.port``.
    """

    replicas: int = Field(
        default=1, ge=1, le=10_000, description="Gateway replicas (without autoscaling)."
    )
    autoscaling: AutoscalingConfig | None = Field(
        default=None, description="Scale replicas with load instead of a fixed count."
    )
    cpus_per_replica: float = Field(
        default=1.0,
        ge=0.0,
        le=1_024.0,
        description="CPUs Ray reserves per replica (a replica with an in-process engine needs "
        "its engine's cores).",
    )
    gpus_per_replica: float = Field(
        default=0.0, ge=0.0, le=64.0, description="GPUs Ray reserves per replica."
    )
    max_ongoing_requests: int = Field(
        default=256,
        ge=1,
        le=1_000_000,
        description="Requests Ray Serve sends one replica at once (Ray's own default, 5, would "
        "starve micro-batching).",
    )
    ray_address: str | None = Field(
        default=None,
        description="Ray cluster to join ('auto': the one running here, or 'ray://host:10001'); "
        "None starts a local one for this command.",
    )
    num_cpus: int | None = Field(
        default=None,
        ge=1,
        le=100_000,
        description="CPUs a local cluster offers (None: all of this machine's).",
    )
    app_name: str = Field(
        default="howhard",
        min_length=1,
        max_length=64,
        description="The Ray Serve application's name.",
    )

    @model_validator(mode="after")
    def _range(self) -> DeploymentConfig:
        # Checked here, not in AutoscalingConfig, so the message names the whole path once.
        scaling = self.autoscaling
        if scaling is not None and scaling.min_replicas > scaling.max_replicas:
            raise ValueError(
                f"autoscaling.min_replicas ({scaling.min_replicas}) must be <= "
                f"autoscaling.max_replicas ({scaling.max_replicas})"
            )
        return self

    @property
    def most_replicas(self) -> int:
        """The largest number of replicas this config may run at once."""
        return self.replicas if self.autoscaling is None else self.autoscaling.max_replicas


def _default_backends() -> dict[str, BackendConfig]:
    return {"local": BackendConfig(kind="vllm")}


def _default_models() -> dict[str, ModelConfig]:
    # Short answers: the probe was trained on replies of at most 32 tokens, and every sample costs
    # CPU time on small machines.
    return {DEFAULT_MODEL: ModelConfig(backend="local", max_tokens=64)}


_NESTED_FIELD = re.compile(
    r"(\S+): Value error, \w+\.([\w.\-\[\]]+): (.*?) \(got \{.*?\}\)(?=; |$)"
)
_NESTED_MODEL = re.compile(r"(\S+): Value error, \w+: (.*?) \(got \{.*?\}\)(?=; |$)")


def _flatten(message: str) -> str:
    """Say ``ServeConfig.server.port: ...`` rather than the nested section's own report."""
    message = _NESTED_FIELD.sub(r"\1.\2: \3", message)
    return _NESTED_MODEL.sub(r"\1: \2", message)


class ServeConfig(_Config):
    """Everything ``howhard serve`` runs; the defaults serve the embedded model on loopback."""

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ConfigError as exc:
            raise ConfigError(_flatten(str(exc))) from None

    server: ServerConfig = Field(default_factory=ServerConfig, description="Listening and limits.")
    backends: dict[str, BackendConfig] = Field(
        default_factory=_default_backends, description="Model backends by name."
    )
    models: dict[str, ModelConfig] = Field(
        default_factory=_default_models, description="Served model names (the API's 'model')."
    )
    tenants: dict[str, TenantConfig] = Field(
        default_factory=dict,
        description="Tenants by name; with none, every request is tenant 'default', unlimited, "
        "and (loopback only) no key is needed. A tenant without keys cannot be used.",
    )
    keys: list[KeyEntry] = Field(default_factory=list, description="API keys (hashed).")
    ledger: LedgerConfig = Field(
        default_factory=LedgerConfig,
        description="Where quotas are kept (in memory, or on a server shared by replicas).",
    )
    deployment: DeploymentConfig = Field(
        default_factory=DeploymentConfig,
        description="Replicas and autoscaling for `howhard serve --ray`.",
    )

    @model_validator(mode="after")
    def _references(self) -> ServeConfig:
        if not self.models:
            raise ValueError("models must name at least one served model")
        for name, model in self.models.items():
            if model.backend not in self.backends:
                raise ValueError(
                    f"models.{name}.backend = {model.backend!r} is not one of the configured "
                    f"backends {sorted(self.backends)}"
                )
        for i, key in enumerate(self.keys):
            if key.tenant not in self.tenants:
                raise ValueError(
                    f"keys[{i}].tenant = {key.tenant!r} is not one of the configured tenants "
                    f"{sorted(self.tenants)}"
                )
        for i, tenant in enumerate(self.ledger.fail_open):
            if tenant not in self.tenants:
                raise ValueError(
                    f"ledger.fail_open[{i}] = {tenant!r} is not one of the configured tenants "
                    f"{sorted(self.tenants)}"
                )
        if not self.tenants and not is_loopback(self.server.host):
            raise ValueError(
                f"server.host = {self.server.host!r} is reachable from other machines but no "
                "tenants (and so no API keys) are configured; add tenants and keys, or bind to "
                "127.0.0.1"
            )
        limited = sorted(name for name, t in self.tenants.items() if _limits(t.quota))
        if self.deployment.most_replicas > 1 and limited and not self.ledger.shared:
            raise ValueError(
                f"deployment runs up to {self.deployment.most_replicas} replicas but the ledger "
                f"is kept in each replica's memory, so tenants {limited} could each spend "
                f'{self.deployment.most_replicas}x their quota; set ledger.kind = "redis" (a '
                "server every replica shares), or deployment.replicas = 1"
            )
        return self

    @property
    def open_access(self) -> bool:
        """True when no tenants are configured: no key is needed (tenant 'default', loopback)."""
        return not self.tenants


def _limits(quota: QuotaConfig) -> bool:
    return any(v is not None for v in (quota.units, quota.tokens, quota.cost))


def load_config(path: str | os.PathLike[str] | None) -> ServeConfig:
    """Read and validate a TOML config; ``None`` gives the embedded default."""
    if path is None:
        return ServeConfig()
    file = Path(path)
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config={str(file)!r} does not exist; pass --config PATH") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config={str(file)!r} is not valid TOML: {exc}") from None
    try:
        return ServeConfig(**data)
    except ConfigError as exc:
        raise ConfigError(f"config={str(file)!r}: {exc}") from None
