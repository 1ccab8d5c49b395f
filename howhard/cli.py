"""The ``howhard`` command line: ``howhard demo | doctor | serve | keys | collect | features |
train | evaluate``.

Each subcommand lives in its own module under ``howhard.commands`` and exposes
``register(subparsers)``, which adds its parser and sets ``handler`` (``(args) -> int``). Modules
are imported only when the CLI runs, so heavy dependencies stay out of ``import howhard``.

Exit codes: 0 success, 1 a runtime failure (a backend, a file), 2 a usage error (bad flag value,
missing input), 130 interrupted (Ctrl-C), 143 terminated (SIGTERM). Errors print one line on
stderr, never a traceback; an interruption or SIGTERM unwinds like Ctrl-C, so ``finally`` blocks
and ``async with`` exits run and backends shut their engines down.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from types import FrameType

from howhard.errors import HowhardError, UsageError

__all__ = ["COMMANDS", "build_parser", "main"]

COMMANDS: tuple[str, ...] = (
    "demo",
    "doctor",
    "serve",
    "keys",
    "collect",
    "features",
    "train",
    "evaluate",
)
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


class _Terminated:
    """Records whether SIGTERM (rather than Ctrl-C) started the interruption."""

    received = False


@contextlib.contextmanager
def _sigterm_as_interrupt(state: _Terminated) -> Iterator[None]:
    """Make SIGTERM take the Ctrl-C path while the command runs.

    Python's default SIGTERM action kills the process on the spot: no ``finally``, no
    ``aclose()``, so engine subprocesses (vLLM) outlive it. Delegating to the current SIGINT
    handler reuses whatever Ctrl-C does right now: inside ``anyio.run`` the asyncio runner
    cancels the main task (cleanup runs, then ``KeyboardInterrupt``); elsewhere it raises
    ``KeyboardInterrupt`` directly.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be installed from the main thread
        return

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        state.received = True
        sigint = signal.getsignal(signal.SIGINT)
        if callable(sigint):
            sigint(signal.SIGINT, frame)
        else:  # SIGINT ignored or defaulted (a background job): interrupt all the same
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code (see the module docstring)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = args.handler
    state = _Terminated()
    prefix = f"howhard {args.command}"
    try:
        with _sigterm_as_interrupt(state):
            code: int = handler(args)
    except KeyboardInterrupt:
        reason = "terminated (SIGTERM)" if state.received else "interrupted"
        print(f"{prefix}: {reason}", file=sys.stderr)
        return 128 + (signal.SIGTERM if state.received else signal.SIGINT)
    except (HowhardError, OSError) as exc:
        # Expected failures get one line; anything else is a bug and keeps its traceback.
        print(f"{prefix}: error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, UsageError) else 1
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
