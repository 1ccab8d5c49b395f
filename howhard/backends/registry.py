"""The one place backend kinds are named: ``create(kind, **options)`` and ``kinds()``.

The command line (``--backend``, ``--encoder``), feature extraction and probe loading all build
backends through :func:`create`, so a new backend is one module plus one line in ``_CLASSES``
(and an export in :mod:`howhard.backends` if users import it by name). Modules are imported only
when their kind is created, so a kind whose extra is not installed costs nothing until used.
"""

from __future__ import annotations

import importlib
from typing import Any

from howhard.errors import ConfigError

__all__ = ["KINDS", "backend_class", "create", "kinds", "module_of"]

_CLASSES: dict[str, tuple[str, str]] = {
    "openai": ("howhard.backends.openai", "OpenAIBackend"),
    "scripted": ("howhard.backends.scripted", "ScriptedBackend"),
    "transformers": ("howhard.backends.transformers", "TransformersBackend"),
    "vllm": ("howhard.backends.vllm", "VLLMBackend"),
}

KINDS: tuple[str, ...] = tuple(sorted(_CLASSES))
"""Every backend kind :func:`create` builds."""


def kinds() -> tuple[str, ...]:
    """Every backend kind :func:`create` builds, sorted (the ``--backend`` choices)."""
    return KINDS


def module_of(class_name: str) -> str | None:
    """The module defining the registered backend class ``class_name``, or ``None``."""
    for module, name in _CLASSES.values():
        if name == class_name:
            return module
    return None


def backend_class(kind: str) -> type[Any]:
    """The class registered for ``kind`` (its module imported now)."""
    if kind not in _CLASSES:
        raise ConfigError(f"backend kind {kind!r} is not one of {list(KINDS)}; pick one of those")
    module, name = _CLASSES[kind]
    try:
        cls: type[Any] = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(
            f"backend kind {kind!r} ({name}) is not available in this installation ({exc})"
        ) from exc
    return cls


def create(kind: str, **options: Any) -> Any:
    """Build a backend of ``kind`` with ``options`` as its constructor's keyword arguments.

    An option the constructor rejects is a ``ConfigError`` naming the class: validated configs
    raise one themselves; plain constructors (``ScriptedBackend``) raise ``TypeError`` for an
    unknown keyword, which is translated here.
    """
    cls = backend_class(kind)
    try:
        return cls(**options)
    except TypeError as exc:
        raise ConfigError(
            f"{cls.__name__} rejected options {options!r} ({exc}); pass only the keyword "
            f"arguments {cls.__name__} takes"
        ) from exc
