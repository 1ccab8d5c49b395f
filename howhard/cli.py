"""The ``howhard`` command line: ``howhard demo | collect | features | train | evaluate``.

Each subcommand lives in its own module under ``howhard.commands`` and exposes
``register(subparsers)``, which adds its parser and sets ``handler`` (``(args) -> int``). Modules
are imported only when the CLI runs, so heavy dependencies stay out of ``import howhard``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

__all__ = ["COMMANDS", "build_parser", "main"]

COMMANDS: tuple[str, ...] = ("demo", "collect", "features", "train", "evaluate")
"""Subcommand modules under ``howhard.commands``, in the order ``--help`` lists them."""


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every available subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="howhard", description="Decide how hard a language model should think."
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"howhard.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"howhard.commands.{name}":
                raise
            continue  # subcommand not built into this version
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = args.handler
    code: int = handler(args)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
