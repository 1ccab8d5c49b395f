"""API keys: generated once, stored as SHA-256 hashes, checked in constant time.

Keys are 256-bit random tokens, so a fast hash is enough (a slow password KDF would add
milliseconds to every request and protect nothing more: nobody can guess 2**256 keys). A
presented key is hashed and compared with *every* stored hash using ``hmac.compare_digest``,
without stopping at a match, so the time taken says nothing about which keys exist.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import os
import secrets
from collections.abc import Iterable
from pathlib import Path

from howhard.errors import ConfigError

__all__ = ["KEY_PREFIX", "KeyRing", "append_key", "hash_key", "new_key"]

KEY_PREFIX = "hh-"
"""Every generated key starts with this, so leaked keys are easy to recognise and scan for."""


def new_key() -> str:
    """A fresh random API key (show it once; store only ``hash_key(key)``)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """The stored form of ``key``: ``'sha256:' + hex digest``."""
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


class KeyRing:
    """Maps presented keys to tenants; knows only the hashes."""

    __slots__ = ("_entries",)

    def __init__(self, entries: Iterable[tuple[str, str]]) -> None:
        """``entries``: ``(hash, tenant)`` pairs, hashes as written by ``hash_key``."""
        self._entries = tuple((bytes.fromhex(h.removeprefix("sha256:")), t) for h, t in entries)

    def __len__(self) -> int:
        return len(self._entries)

    def tenant(self, key: str) -> str | None:
        """The tenant of ``key``, or ``None`` for an unknown key."""
        digest = hashlib.sha256(key.encode()).digest()
        found: str | None = None
        for stored, tenant in self._entries:
            # No early exit: every stored hash is compared whatever matched before.
            if hmac.compare_digest(stored, digest):
                found = tenant
        return found


def append_key(config: str | os.PathLike[str], tenant: str, *, name: str = "") -> str:
    """Create a key for ``tenant``, append its hash to the TOML file ``config``, return the key.

    The file is appended to (a ``[[keys]]`` table at the end), so its comments and layout stay
    as they were. The config must load, and name ``tenant``, before and after the change.
    """
    from howhard.serve.config import load_config

    path = Path(config)
    loaded = load_config(path)
    if tenant not in loaded.tenants:
        raise ConfigError(
            f"tenant={tenant!r} is not configured in {str(path)!r} (tenants: "
            f"{sorted(loaded.tenants)}); add a [tenants.{tenant}] section first"
        )
    if any(c in name for c in '"\\\n\r'):
        raise ConfigError(f"name={name!r} must not contain quotes, backslashes or newlines")
    key = new_key()
    created = datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat()
    original = path.read_text(encoding="utf-8")
    block = (
        f'\n[[keys]]\ntenant = "{tenant}"\nname = "{name}"\n'
        f'hash = "{hash_key(key)}"\ncreated = "{created}"\n'
    )
    separator = "" if original.endswith("\n") or not original else "\n"
    path.write_text(original + separator + block, encoding="utf-8")
    try:
        load_config(path)
    except ConfigError:
        path.write_text(original, encoding="utf-8")  # leave the file as it was
        raise
    return key
