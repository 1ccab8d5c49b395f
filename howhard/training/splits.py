"""Splitting a dataset into train, val and test: by a seeded permutation or by a column."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from howhard.errors import ConfigError

__all__ = ["SPLITS", "split_indices", "splits_from_column"]

SPLITS = ("train", "val", "test")


def split_indices(
    n: int,
    *,
    seed: int,
    val_fraction: float,
    test_fraction: float,
    assignments: Sequence[str] | None = None,
) -> dict[str, npt.NDArray[np.int64]]:
    """Split ``n`` rows into train/val/test: by a seeded permutation or by given ``assignments``.

    ``assignments`` (one of ``train``/``val``/``test`` per row, e.g. a dataset column) wins over
    the fractions. Train and val must not be empty.
    """
    if assignments is not None:
        if len(assignments) != n:
            raise ConfigError(f"split assignments must have {n} entries, got {len(assignments)}")
        bad = sorted({a for a in assignments if a not in SPLITS})
        if bad:
            raise ConfigError(f"split values must be one of {SPLITS}, got {bad[:5]}")
        labels = np.asarray(assignments)
        splits = {s: np.flatnonzero(labels == s).astype(np.int64) for s in SPLITS}
    else:
        if val_fraction + test_fraction >= 1:
            raise ConfigError(
                f"val_fraction + test_fraction must be < 1, got {val_fraction + test_fraction}"
            )
        order = np.random.default_rng(seed).permutation(n).astype(np.int64)
        n_test, n_val = round(n * test_fraction), max(1, round(n * val_fraction))
        splits = {
            "test": np.sort(order[:n_test]),
            "val": np.sort(order[n_test : n_test + n_val]),
            "train": np.sort(order[n_test + n_val :]),
        }
    for name in ("train", "val"):
        if len(splits[name]) == 0:
            raise ConfigError(f"the {name} split is empty ({n} requests); add data or rebalance")
    return splits


def splits_from_column(rows: Sequence[Mapping[str, Any]], column: str) -> list[str]:
    """Each row's split from a request field or ``metadata`` key (``--split-column``)."""
    return column_values(
        rows, column, fix="put it in the request's metadata or drop --split-column"
    )


def column_values(
    rows: Sequence[Mapping[str, Any]], column: str, *, fix: str = "put it in the request's metadata"
) -> list[str]:
    """Each row's ``column`` (a request field or ``metadata`` key) as a string."""
    values = []
    for row in rows:
        value = row.get(column, (row.get("metadata") or {}).get(column))
        if value is None:
            raise ConfigError(f"column {column!r} is missing for request {row.get('id')!r}; {fix}")
        values.append(str(value))
    return values
