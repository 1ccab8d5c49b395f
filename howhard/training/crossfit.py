"""Cross-fitted probe logits and the marginals map fitted on them (saved with the probe).

A probe scores the families it was trained on far better than new ones, so a map from its logit
to served marginals fitted on its own training logits would trust it too much on new traffic.
Cross-fitting scores each group (task family) with a probe trained, with the same recipe,
without that group; :func:`howhard.probes.fit_marginals_map` then fits the prior on those
logits. ``scripts/fit_marginals_map.py`` writes the result into a checkpoint's ``probe.json``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from howhard.errors import ConfigError
from howhard.probes.checkpoint import load_checkpoint, save_checkpoint
from howhard.probes.map_fit import fit_marginals_map
from howhard.probes.marginals_map import BetaMarginalsMap
from howhard.training.splits import column_values, splits_from_column
from howhard.training.train import TrainConfig, train_probe

__all__ = ["cross_fitted_logits", "fit_checkpoint_map", "write_marginals_map"]

FloatArray = npt.NDArray[np.float64]


def cross_fitted_logits(
    features: npt.ArrayLike,
    targets: npt.ArrayLike,
    *,
    groups: Sequence[str],
    assignments: Sequence[str],
    config: TrainConfig,
    log: Callable[[str], None] | None = None,
) -> tuple[FloatArray, FloatArray]:
    """Each row's calibrated logit from a probe trained without its group.

    For every group ``g`` a probe is trained on the ``train`` rows of the other groups,
    early-stopped and calibrated on their ``val`` rows (``test`` rows are never used), and scores
    the rows of ``g`` (test rows included). Returns ``(n,)`` logits and the ``(n, d)`` features
    as each row's probe standardises them (what a policy clusters on).
    """
    x = np.asarray(features, dtype=np.float32)
    y = np.asarray(targets, dtype=np.float64)
    group = np.asarray(groups)
    split = np.asarray(assignments)
    if not (len(x) == len(y) == len(group) == len(split)):
        raise ConfigError("cross_fitted_logits needs one target, group and split per row")
    names = sorted(set(group.tolist()))
    if len(names) < 2:
        raise ConfigError(f"cross-fitting needs at least 2 groups, got {names}")
    logits = np.zeros(len(x))
    standardised = np.zeros(x.shape)
    for k, name in enumerate(names):
        keep = (split != "test") & (group != name)
        result = train_probe(x[keep], y[keep], config, assignments=list(split[keep]))
        rows = group == name
        logits[rows] = result.probe.logits(x[rows])
        standardised[rows] = result.probe.standardise(x[rows])
        if log is not None:
            log(f"cross-fit {k + 1}/{len(names)}: without {name} ({int(rows.sum())} rows scored)")
    return logits, standardised


def fit_checkpoint_map(
    checkpoint: str | os.PathLike[str],
    dataset: str | os.PathLike[str],
    *,
    features: str | os.PathLike[str] | None = None,
    group_column: str = "family",
    split_column: str = "split",
    log: Callable[[str], None] | None = None,
) -> BetaMarginalsMap:
    """The marginals map for a λ checkpoint, fitted on ``dataset``'s train+val rows, cross-fitted.

    The probes are trained with the checkpoint's own recorded recipe (``probe.json["train"]``).
    """
    from howhard.training.dataset import load_dataset
    from howhard.training.features import load_features

    config = load_checkpoint(checkpoint).config
    if config.get("head") != "lambda" or config.get("kind") != "mlp":
        raise ConfigError(f"checkpoint={str(checkpoint)!r} is not an MLP lambda probe")
    recipe = {
        k: v for k, v in dict(config.get("train") or {}).items() if k in TrainConfig.model_fields
    }
    train_config = TrainConfig(**recipe)
    data = load_dataset(dataset)
    x = load_features(features or Path(dataset) / "features").aligned(data.ids)
    successes, samples = data.counts()
    groups = column_values(data.rows, group_column)
    splits = splits_from_column(data.rows, split_column)
    z, _ = cross_fitted_logits(
        x,
        successes / samples,
        groups=groups,
        assignments=splits,
        config=train_config,
        log=log,
    )
    used = np.asarray(splits) != "test"
    return fit_marginals_map(
        z[used],
        [g for g, u in zip(groups, used, strict=True) if u],
        successes[used],
        samples[used],
        base=BetaMarginalsMap(max_budget=int(config["max_budget"])),
        fitted_on={
            "dataset": str(dataset),
            "logits": f"cross-fitted: each {group_column} scored by a probe trained without it",
            "splits": "train+val",
        },
    )


def write_marginals_map(
    checkpoint: str | os.PathLike[str], marginals_map: BetaMarginalsMap
) -> Path:
    """Store ``marginals_map`` in the checkpoint's ``probe.json`` (weights unchanged)."""
    loaded = load_checkpoint(checkpoint)
    config = {**loaded.config, "marginals_map": marginals_map.model_dump(mode="json")}
    return save_checkpoint(checkpoint, loaded.tensors, config)
