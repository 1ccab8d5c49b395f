"""Model backends: the Backend protocol and its implementations (real engines lazily imported).

``OpenAIBackend``, ``TransformersBackend`` and ``VLLMBackend`` are resolved on first access, and
even then their heavy libraries (openai, torch, vllm) load only when a backend is used. Build one
by kind with :func:`create` (the registry in :mod:`howhard.backends.registry`); see
``docs/architecture.md`` for adding a backend.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from howhard.backends.base import Backend, Encoder
from howhard.backends.encoders import LayerEncoder, make_encoder
from howhard.backends.registry import create, kinds, module_of
from howhard.backends.scripted import ScriptedBackend

if TYPE_CHECKING:
    from howhard.backends.openai import OpenAIBackend
    from howhard.backends.transformers import TransformersBackend
    from howhard.backends.vllm import VLLMBackend

__all__ = [
    "Backend",
    "Encoder",
    "LayerEncoder",
    "OpenAIBackend",
    "ScriptedBackend",
    "TransformersBackend",
    "VLLMBackend",
    "create",
    "kinds",
    "make_encoder",
]


def __getattr__(name: str) -> Any:
    module = module_of(name)
    if module is None:
        raise AttributeError(f"module 'howhard.backends' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this hook
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
