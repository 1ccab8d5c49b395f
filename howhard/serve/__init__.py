"""``howhard serve``: an OpenAI-compatible HTTP gateway with tenants, quotas and metrics.

Install with ``pip install 'howhard[serve]'``. ``create_app(config)`` is the ASGI app (Starlette);
``serve(config)`` runs it under uvicorn with a graceful SIGTERM; ``Gateway`` is the runtime behind
both (one scheduler per served model, one ledger). Importing this package loads neither
starlette nor uvicorn until ``create_app`` or ``serve`` is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from howhard.serve.config import (
    BackendConfig,
    KeyEntry,
    ModelConfig,
    ServeConfig,
    ServerConfig,
    TenantConfig,
    load_config,
)
from howhard.serve.keys import KeyRing, hash_key, new_key

if TYPE_CHECKING:
    from howhard.serve.app import create_app
    from howhard.serve.gateway import Gateway
    from howhard.serve.server import serve

__all__ = [
    "BackendConfig",
    "Gateway",
    "KeyEntry",
    "KeyRing",
    "ModelConfig",
    "ServeConfig",
    "ServerConfig",
    "TenantConfig",
    "create_app",
    "hash_key",
    "load_config",
    "new_key",
    "serve",
]

_LAZY = {
    "create_app": "howhard.serve.app",
    "Gateway": "howhard.serve.gateway",
    "serve": "howhard.serve.server",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'howhard.serve' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
