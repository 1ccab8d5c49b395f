"""Model backends: the Backend protocol and its implementations (real engines lazily imported).

``OpenAIBackend``, ``TransformersBackend`` and ``VLLMBackend`` are resolved on first access, and
even then their heavy libraries (openai, torch, vllm) load only when a backend is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from howhard.backends.base import Backend, Encoder
from howhard.backends.scripted import ScriptedBackend

if TYPE_CHECKING:
    from howhard.backends.openai import OpenAIBackend
    from howhard.backends.transformers import TransformersBackend
    from howhard.backends.vllm import VLLMBackend

__all__ = [
    "Backend",
    "Encoder",
    "OpenAIBackend",
    "ScriptedBackend",
    "TransformersBackend",
    "VLLMBackend",
]

_LAZY = {
    "OpenAIBackend": "howhard.backends.openai",
    "TransformersBackend": "howhard.backends.transformers",
    "VLLMBackend": "howhard.backends.vllm",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'howhard.backends' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this hook
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
