"""Shared command-line plumbing for the training commands: building backends and parsing options.

Backends are imported only when a command runs, so each works in any installation that has the
chosen backend's extra, and the scripted stand-in works with none.
"""

from __future__ import annotations

import argparse
import importlib
import json
from collections.abc import Sequence
from typing import Any

from howhard.errors import ConfigError

__all__ = ["BACKENDS", "add_backend_arguments", "construct", "make_backend", "parse_options"]

BACKENDS: dict[str, str] = {
    "transformers": "TransformersBackend",
    "vllm": "VLLMBackend",
    "openai": "OpenAIBackend",
    "scripted": "ScriptedBackend",
}
"""``--backend`` choices and the ``howhard.backends`` class each builds."""


def parse_options(pairs: Sequence[str] | None, *, flag: str) -> dict[str, Any]:
    """Parse repeated ``KEY=VALUE`` flags; values are JSON when they parse, else strings."""
    options: dict[str, Any] = {}
    for pair in pairs or ():
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"{flag} expects KEY=VALUE, got {pair!r}")
        try:
            options[key] = json.loads(raw)
        except json.JSONDecodeError:
            options[key] = raw
    return options


def add_backend_arguments(
    parser: argparse.ArgumentParser, *, default: str = "transformers"
) -> None:
    """Add ``--backend`` (``default`` when not given), ``--model``, ``--base-url`` and
    ``--backend-option``."""
    parser.add_argument(
        "--backend",
        choices=sorted(BACKENDS),
        default=default,
        help=f"model backend (default: {default})",
    )
    parser.add_argument(
        "--model",
        default=None,
        help="model folder or name (default: the packaged SmolLM2-135M-Instruct; required for "
        "openai)",
    )
    parser.add_argument(
        "--base-url",
        default=None,
        help="server URL for --backend openai, e.g. http://127.0.0.1:8000/v1",
    )
    parser.add_argument(
        "--backend-option",
        action="append",
        metavar="KEY=VALUE",
        help="extra keyword argument for the backend constructor (repeatable; JSON values)",
    )


def default_model() -> str:
    """The packaged default model folder, prepared on first use."""
    try:
        models = importlib.import_module("howhard.models")
    except ModuleNotFoundError as exc:
        raise ConfigError(
            "no default model is available in this installation; pass --model PATH"
        ) from exc
    return str(models.default_model_path())


def make_backend(
    kind: str, *, model: str | None, base_url: str | None, options: dict[str, Any]
) -> Any:
    """Build the backend named ``kind`` (see :data:`BACKENDS`)."""
    if kind not in BACKENDS:
        raise ConfigError(f"backend={kind!r} is not one of {sorted(BACKENDS)}")
    backends = importlib.import_module("howhard.backends")
    try:
        cls = getattr(backends, BACKENDS[kind])
    except AttributeError as exc:
        raise ConfigError(
            f"backend={kind!r} ({BACKENDS[kind]}) is not available in this installation"
        ) from exc
    kwargs = dict(options)
    if kind == "scripted":
        if model is not None:
            kwargs.setdefault("model", model)
        return construct(cls, kwargs, flag="--backend-option")
    if kind == "openai":
        if base_url is None or model is None:
            raise ConfigError("--backend openai needs --base-url URL and --model NAME")
        return construct(
            cls, {"base_url": base_url, "model": model, **kwargs}, flag="--backend-option"
        )
    model = model if model is not None else default_model()
    return construct(cls, {"model": model, **kwargs}, flag="--backend-option")


def construct(cls: Any, kwargs: dict[str, Any], *, flag: str) -> Any:
    """``cls(**kwargs)``; a keyword or value the constructor rejects is a ``ConfigError``.

    Validated configs already raise ``ConfigError``; plain constructors (``ScriptedBackend``)
    raise ``TypeError`` for an unknown keyword or a value of the wrong type.
    """
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{flag}: {cls.__name__} rejected {kwargs!r} ({exc})") from exc


def command_line(args: argparse.Namespace) -> list[str]:
    """The canonical command line of a parsed subcommand (defaults spelled out), for manifests."""
    words = ["howhard", str(args.command)]
    for key, value in vars(args).items():
        if key in ("command", "handler") or value is None or value is False or value == []:
            continue
        flag = "--" + key.replace("_", "-")
        if value is True:
            words.append(flag)
        elif isinstance(value, list):
            for item in value:
                words += [flag, str(item)]
        else:
            words += [flag, str(value)]
    return words
