"""Lists as replies state them: runs of items written one after another ("6, 5, 4", "red blue").

A *run* is a maximal stretch of the reply made only of the given items, separated by commas,
spaces, dashes, arrows or "and". A reply that restates a list and then reverses it holds two runs.
A list that goes on with other items ("6, 5, 4, 3") keeps them in its run, so it equals no
list of the given items alone.
"""

from __future__ import annotations

import re
from collections.abc import Collection

__all__ = ["item_runs", "split_list"]

_ITEM = re.compile(r"[^\W_]+")
_LISTED = re.compile(r"[,;\-\u2013\u2014>\u2192|]")
_SEPARATOR = re.compile(r"[\s,;\-\u2013\u2014>\u2192|]*(?:and\s*)?")


def split_list(text: str) -> list[str]:
    """The items of a comma-separated list, lower-cased (``"6, 5 and 4"`` -> 6, 5, 4)."""
    return [t.lower() for t in _ITEM.findall(text) if t.lower() != "and"]


def item_runs(text: str, items: Collection[str]) -> list[tuple[str, ...]]:
    """Every run of ``items`` (lower-case) in ``text``, in order, each as a tuple of items."""
    runs: list[tuple[str, ...]] = []
    current: list[str] = []
    last_end = 0
    for match in _ITEM.finditer(text):
        token = match.group(0).lower()
        if token == "and" and current:
            continue
        joined = _SEPARATOR.fullmatch(text[last_end : match.start()]) is not None
        if token in items:
            if current and not joined:
                runs.append(tuple(current))
                current = []
            current.append(token)
        elif current:
            if joined and _LISTED.search(text[last_end : match.start()]):
                current.append(token)  # the list goes on with something else
            runs.append(tuple(current))
            current = []
        last_end = match.end()
    if current:
        runs.append(tuple(current))
    return runs
