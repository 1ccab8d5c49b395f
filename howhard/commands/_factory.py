"""Shared command-line plumbing for the commands: building backends and parsing options.

Backends are built through the one registry (:func:`howhard.backends.create`) and imported only
when a command runs, so each works in any installation that has the chosen backend's extra, and
the scripted stand-in works with none.
"""

from __future__ import annotations

import argparse
import importlib
import json
from collections.abc import Sequence
from typing import Any

from howhard.backends.registry import KINDS, create
from howhard.errors import ConfigError

__all__ = ["add_backend_arguments", "make_backend", "parse_options"]


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
        choices=KINDS,
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
    """Build the backend ``--backend kind`` names, through the registry.

    Local engines (transformers, vllm) default to the packaged model, prepared here on first
    use; ``openai`` needs ``--base-url`` and ``--model``.
    """
    if kind not in KINDS:
        raise ConfigError(f"backend={kind!r} is not one of {list(KINDS)}")
    arguments = dict(options)
    if kind == "openai":
        if base_url is None or model is None:
            raise ConfigError("--backend openai needs --base-url URL and --model NAME")
        arguments.update(base_url=base_url, model=model)
    elif kind == "scripted":
        if model is not None:
            arguments.setdefault("model", model)
    else:
        arguments["model"] = model if model is not None else default_model()
    try:
        return create(kind, **arguments)
    except ConfigError as exc:
        raise ConfigError(f"--backend-option: {exc}") from exc


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
