"""``howhard keys``: API keys for ``howhard serve`` (stored hashed in its config).

``howhard keys add --config serve.toml --tenant team-a`` creates a key, appends its SHA-256 hash
to the config (a ``[[keys]]`` table) and prints the key once: it cannot be shown again.
``howhard keys list --config serve.toml`` shows each key's tenant, name, creation time and hash
prefix.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add the ``keys`` subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "keys", help="create and list API keys for `howhard serve`", description=__doc__
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = actions.add_parser("add", help="create a key for a tenant and print it once")
    add.add_argument("--config", type=Path, required=True, help="the serve config (TOML)")
    add.add_argument("--tenant", required=True, help="the tenant the key spends for")
    add.add_argument("--name", default="", help="a label to tell keys apart")
    listing = actions.add_parser("list", help="list keys (hash prefixes only)")
    listing.add_argument("--config", type=Path, required=True, help="the serve config (TOML)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run the action; 0 on success."""
    from howhard.serve.config import load_config
    from howhard.serve.keys import append_key

    if args.action == "add":
        key = append_key(args.config, args.tenant, name=args.name)
        print(key)
        print(
            f"(key for tenant {args.tenant!r}; its hash was added to {args.config}. "
            "Store the key now: it is not kept and cannot be shown again.)",
            file=sys.stderr,
        )
        return 0
    config = load_config(args.config)
    for entry in config.keys:
        print(f"{entry.tenant}\t{entry.name or '-'}\t{entry.created or '-'}\t{entry.hash[:19]}…")
    return 0
