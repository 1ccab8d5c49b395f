"""Fit a difficulty probe: split, AdamW with early stopping on validation, calibrate, evaluate.

:func:`train_probe` works on arrays; :func:`train_from_files` reads a collected dataset and its
features, trains, and writes the checkpoint with its metrics. Everything is seeded: the same
inputs and config give the same probe.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import ConfigDict, Field

from howhard.config import _Config
from howhard.errors import ConfigError
from howhard.probes.calibration import fit_isotonic, fit_temperature
from howhard.probes.checkpoint import Checkpoint, save_checkpoint
from howhard.probes.metrics import probe_metrics
from howhard.probes.saved import SavedProbe
from howhard.training.loop import fit_early_stopping
from howhard.training.splits import SPLITS, split_indices, splits_from_column

__all__ = [
    "TrainConfig",
    "TrainResult",
    "format_metrics",
    "train_from_files",
    "train_lora",
    "train_probe",
]

FloatArray = npt.NDArray[np.float64]


class TrainConfig(_Config):
    """How to train an MLP probe. Defaults suit a few hundred to a few thousand requests.

    An invalid field raises :class:`~howhard.errors.ConfigError` naming it (not pydantic's error).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    head: Literal["lambda", "delta", "preference"] = Field(
        default="lambda",
        description="What to predict: success rate, Δ vector, or routing preference.",
    )
    max_budget: int | None = Field(
        default=None,
        ge=1,
        description="Columns of the served marginals; default: samples per request (files) or 16.",
    )
    hidden_dim: int = Field(default=256, ge=1, description="Width of the MLP's hidden layer.")
    dropout: float = Field(
        default=0.1, ge=0.0, lt=1.0, description="Dropout after the hidden layer."
    )
    lr: float = Field(default=1e-3, gt=0.0, description="AdamW learning rate.")
    weight_decay: float = Field(default=1e-2, ge=0.0, description="AdamW decoupled weight decay.")
    batch_size: int = Field(default=64, ge=1, description="Requests per optimisation step.")
    max_epochs: int = Field(
        default=300, ge=1, description="Upper bound on passes over the train split."
    )
    patience: int = Field(
        default=25,
        ge=1,
        description="Stop after this many epochs without a better validation loss.",
    )
    seed: int = Field(
        default=0, description="Seeds the split, the initialisation and the batch order."
    )
    val_fraction: float = Field(
        default=0.15, gt=0.0, lt=1.0, description="Share of requests for validation."
    )
    test_fraction: float = Field(
        default=0.15, ge=0.0, lt=1.0, description="Share of requests held out for test."
    )
    calibration: Literal["none", "temperature", "isotonic"] = Field(
        default="none",
        description="Post-hoc calibration fitted on val (probability heads only).",
    )


@dataclass(frozen=True, slots=True)
class TrainResult:
    """A trained probe: its checkpoint (config + tensors), metrics per split, and the split."""

    checkpoint: Checkpoint
    metrics: Mapping[str, Mapping[str, Any]]
    """``{"train"|"val"|"test": probe_metrics(...)}``; test is the paper's Table 1."""
    splits: Mapping[str, tuple[int, ...]]
    """Row indices of each split."""
    epochs: int
    """Epochs run before early stopping."""

    @property
    def probe(self) -> SavedProbe:
        """The probe as served (numpy, calibration applied)."""
        return SavedProbe(self.checkpoint)


def _fit_mlp(
    x: npt.NDArray[np.float32],
    y: FloatArray,
    splits: Mapping[str, npt.NDArray[np.int64]],
    config: TrainConfig,
    max_budget: int,
    log: Callable[[str], None] | None,
) -> tuple[Any, int]:
    import torch

    from howhard.probes.networks import MLPProbe, head_loss

    torch.manual_seed(config.seed)
    train, val = splits["train"], splits["val"]
    probe = MLPProbe(
        x.shape[1],
        head=config.head,
        max_budget=max_budget,
        hidden_dim=config.hidden_dim,
        dropout=config.dropout,
    )
    probe.set_normalisation(x[train])
    probe.init_output(y[train])
    xt, yt = torch.from_numpy(x[train]), torch.as_tensor(y[train], dtype=torch.float32)
    xv, yv = torch.from_numpy(x[val]), torch.as_tensor(y[val], dtype=torch.float32)

    def val_loss() -> float:
        with torch.no_grad():
            return float(head_loss(config.head, probe(xv), yv))

    epochs = fit_early_stopping(
        config,
        parameters=probe.parameters(),
        rows=torch.arange(len(xt)),
        train_step=lambda batch: head_loss(config.head, probe(xt[batch]), yt[batch]),
        val_loss=val_loss,
        snapshot=lambda: copy.deepcopy(probe.state_dict()),
        restore=probe.load_state_dict,
        set_train=probe.train,
        log=log,
        log_every=25,
    )
    return probe, epochs


def train_probe(
    features: npt.ArrayLike,
    targets: npt.ArrayLike,
    config: TrainConfig | None = None,
    *,
    assignments: Sequence[str] | None = None,
    encoder: Mapping[str, Any] | None = None,
    test: tuple[npt.ArrayLike, npt.ArrayLike] | None = None,
    log: Callable[[str], None] | None = None,
) -> TrainResult:
    """Train an MLP probe on ``features`` ``(n, d)`` against ``targets``.

    ``test`` is an external ``(features, targets)`` held-out set (e.g. collected separately with
    more samples); its metrics replace those of the internal test split.

    ``targets`` are λ or preference probabilities ``(n,)``, or Δ rows ``(n, B)`` for the delta
    head (see :func:`howhard.training.labels.labels_for`). ``encoder`` (model, layer …) is
    recorded in the checkpoint so serving can encode prompts the same way.
    """
    config = config or TrainConfig()
    x = np.asarray(features, dtype=np.float32)
    y = np.asarray(targets, dtype=np.float64)
    if x.ndim != 2 or len(x) != len(y):
        raise ConfigError(
            f"features must be (n, d) with one row per target; got {x.shape} for {len(y)} targets"
        )
    if not np.isfinite(x).all():
        raise ConfigError("features contain NaN or inf; re-extract them")
    if config.head == "delta":
        if y.ndim != 2:
            raise ConfigError(f"the delta head needs (n, B) targets, got shape {y.shape}")
        max_budget = y.shape[1]
    else:
        if y.ndim != 1 or ((y < 0) | (y > 1)).any():
            raise ConfigError(f"the {config.head} head needs (n,) probabilities in [0, 1]")
        max_budget = config.max_budget or 16
    if config.head == "preference":
        max_budget = 1
    splits = split_indices(
        len(x),
        seed=config.seed,
        val_fraction=config.val_fraction,
        test_fraction=config.test_fraction,
        assignments=assignments,
    )
    import torch

    threads = torch.get_num_threads()
    # A probe's matrices are tiny: with a thread pool, synchronisation dominates, and on a busy
    # CPU each step waits for every worker (measured ~100x slower than one thread here).
    torch.set_num_threads(1)
    try:
        torch_probe, epochs = _fit_mlp(x, y, splits, config, max_budget, log)
    finally:
        torch.set_num_threads(threads)
    arch = torch_probe.config()
    tensors: dict[str, npt.NDArray[Any]] = torch_probe.tensors()
    uncalibrated = SavedProbe(Checkpoint(config={**arch, "calibration": None}, tensors=tensors))
    calibration: dict[str, Any] = {"method": config.calibration}
    val = splits["val"]
    if config.calibration != "none":
        if config.head == "delta":
            raise ConfigError("calibration applies to the lambda and preference heads only")
        if config.calibration == "temperature":
            calibration["temperature"] = fit_temperature(uncalibrated.raw(x[val]), y[val])
        else:
            bx, by = fit_isotonic(uncalibrated.predict(x[val]), y[val])
            tensors = {**tensors, "calibration.x": bx, "calibration.y": by}
    full_config: dict[str, Any] = {
        **arch,
        "calibration": calibration,
        "normalisation": "standard (train-split mean and std, tensors feature_mean/feature_std)",
        "encoder": dict(encoder or {}),
        "train": {**config.model_dump(), "epochs": epochs},
    }
    probe = SavedProbe(Checkpoint(config=full_config, tensors=tensors))
    train_mean = y[splits["train"]].mean(axis=0)
    metrics = {
        name: probe_metrics(config.head, probe.predict(x[rows]), y[rows], train_mean=train_mean)
        for name, rows in splits.items()
        if len(rows)
    }
    if test is not None:
        x_test, y_test = np.asarray(test[0], dtype=np.float32), np.asarray(test[1])
        metrics["test"] = probe_metrics(
            config.head, probe.predict(x_test), y_test, train_mean=train_mean
        )
    full_config["metrics"] = metrics
    return TrainResult(
        checkpoint=Checkpoint(config=full_config, tensors=tensors),
        metrics=metrics,
        splits={k: tuple(int(i) for i in v) for k, v in splits.items()},
        epochs=epochs,
    )


def train_from_files(
    dataset: str | os.PathLike[str],
    features: str | os.PathLike[str],
    out: str | os.PathLike[str],
    config: TrainConfig | None = None,
    *,
    split_column: str | None = None,
    weak: str | os.PathLike[str] | None = None,
    test_dataset: str | os.PathLike[str] | None = None,
    test_features: str | os.PathLike[str] | None = None,
    test_weak: str | os.PathLike[str] | None = None,
    log: Callable[[str], None] | None = None,
) -> TrainResult:
    """Train on a collected dataset and its features; write the checkpoint folder ``out``.

    ``weak`` is the weak procedure's dataset for the preference head (``dataset`` being the
    strong one). ``test_dataset`` (with ``test_features``, default ``TEST_DATASET/features``, and
    ``test_weak`` for routing) is an external held-out set whose metrics are reported as
    ``test``. Also writes ``out/metrics.json`` and ``out/splits.json`` (ids per split).
    """
    from howhard.training.features import load_features

    data, labels, config = _load_labels(dataset, config or TrainConfig(), weak)
    feats = load_features(features)
    x = feats.aligned(data.ids)
    test = None
    if test_dataset is not None:
        test_data, test_labels, _ = _load_labels(test_dataset, config, test_weak)
        test_feats = load_features(test_features or Path(test_dataset) / "features")
        test = (test_feats.aligned(test_data.ids), test_labels.targets)
    encoder = {
        k: v for k, v in feats.meta.items() if k not in ("format", "dim", "dtype", "dataset")
    }
    result = train_probe(
        x,
        labels.targets,
        config,
        assignments=splits_from_column(data.rows, split_column) if split_column else None,
        encoder=encoder,
        test=test,
        log=log,
    )
    result.checkpoint.config["train"]["dataset"] = str(dataset)
    if test_dataset is not None:
        result.checkpoint.config["train"]["test_dataset"] = str(test_dataset)
    folder = save_checkpoint(out, result.checkpoint.tensors, result.checkpoint.config)
    _write_outputs(folder, result, data.ids)
    return result


def _load_labels(
    dataset: str | os.PathLike[str],
    config: TrainConfig,
    weak: str | os.PathLike[str] | None,
) -> tuple[Any, Any, TrainConfig]:
    from howhard.training.dataset import load_dataset
    from howhard.training.labels import labels_for

    data = load_dataset(dataset)
    labels = labels_for(
        data,
        config.head,
        max_budget=config.max_budget,
        weak=load_dataset(weak) if weak is not None else None,
    )
    if config.max_budget is None and config.head in ("lambda", "delta"):
        # Pin the width so an external test set with more samples is labelled alike.
        config = config.model_copy(update={"max_budget": labels.max_budget})
    return data, labels, config


def _write_outputs(folder: Path, result: TrainResult, ids: Sequence[str]) -> None:
    (folder / "metrics.json").write_text(
        json.dumps(result.metrics, indent=2, allow_nan=True) + "\n", encoding="utf-8"
    )
    split_ids = {name: [ids[i] for i in rows] for name, rows in result.splits.items()}
    (folder / "splits.json").write_text(json.dumps(split_ids) + "\n", encoding="utf-8")


def train_lora(
    dataset: str | os.PathLike[str],
    out: str | os.PathLike[str],
    config: TrainConfig | None = None,
    *,
    model: str | os.PathLike[str],
    layer: int = -1,
    r: int = 8,
    split_column: str | None = None,
    weak: str | os.PathLike[str] | None = None,
    log: Callable[[str], None] | None = None,
) -> TrainResult:
    """Train a LoRA probe (adapters on ``model`` + a linear head) on a dataset's prompts.

    Same splits, early stopping and metrics as the MLP probe; calibration is not supported for
    LoRA probes. Slow on CPU: keep the model small. Writes the checkpoint folder ``out``.
    """
    import torch

    from howhard.probes.networks import LoRAProbe, head_loss, head_output, init_head

    config = config or TrainConfig()
    if config.calibration != "none":
        raise ConfigError("calibration is supported for MLP probes only; use calibration='none'")
    data, labels, config = _load_labels(dataset, config, weak)
    y = np.asarray(labels.targets, dtype=np.float64)
    max_budget = (
        1
        if config.head == "preference"
        else (y.shape[1] if config.head == "delta" else int(config.max_budget or 16))
    )
    splits = split_indices(
        len(y),
        seed=config.seed,
        val_fraction=config.val_fraction,
        test_fraction=config.test_fraction,
        assignments=splits_from_column(data.rows, split_column) if split_column else None,
    )
    torch.manual_seed(config.seed)
    probe = LoRAProbe(model, head=config.head, max_budget=max_budget, layer=layer, r=r)
    init_head(probe.score, config.head, y[splits["train"]])
    prompts = list(data.prompts)
    trainable = {n: p for n, p in probe.named_parameters() if p.requires_grad}
    targets = torch.as_tensor(y, dtype=torch.float32)

    def predict(rows: npt.NDArray[np.int64]) -> FloatArray:
        probe.eval()
        outs = []
        with torch.inference_mode():
            for start in range(0, len(rows), config.batch_size):
                chunk = rows[start : start + config.batch_size]
                outs.append(head_output(config.head, probe([prompts[i] for i in chunk])))
        return np.asarray(torch.cat(outs).double().numpy())

    def val_loss() -> float:
        val = splits["val"]
        with torch.inference_mode():
            raw = probe([prompts[i] for i in val])
            return float(head_loss(config.head, raw, targets[torch.from_numpy(val)]))

    def restore(state: dict[str, Any]) -> None:
        with torch.no_grad():
            for name, value in state.items():
                trainable[name].copy_(value)

    epoch = fit_early_stopping(
        config,
        parameters=trainable.values(),
        rows=torch.from_numpy(splits["train"]),
        train_step=lambda batch: head_loss(
            config.head, probe([prompts[int(i)] for i in batch]), targets[batch]
        ),
        val_loss=val_loss,
        # Only the adapters and the head train; the frozen base model need not be copied.
        snapshot=lambda: {n: p.detach().clone() for n, p in trainable.items()},
        restore=restore,
        set_train=probe.train,
        log=log,
    )
    train_mean = y[splits["train"]].mean(axis=0)
    metrics = {
        name: probe_metrics(config.head, predict(rows), y[rows], train_mean=train_mean)
        for name, rows in splits.items()
        if len(rows)
    }
    full_config: dict[str, Any] = {
        **probe.config(),
        "calibration": {"method": "none"},
        "train": {**config.model_dump(), "epochs": epoch, "dataset": str(dataset)},
        "metrics": metrics,
    }
    checkpoint = Checkpoint(config=full_config, tensors=probe.tensors())
    result = TrainResult(
        checkpoint=checkpoint,
        metrics=metrics,
        splits={k: tuple(int(i) for i in v) for k, v in splits.items()},
        epochs=epoch,
    )
    folder = save_checkpoint(out, checkpoint.tensors, full_config)
    _write_outputs(folder, result, data.ids)
    return result


def format_metrics(metrics: Mapping[str, Mapping[str, Any]], head: str) -> str:
    """A plain-text table of the metrics per split, Table 1's columns first."""
    loss = "MSE" if head == "delta" else "CE"
    header = f"{'split':<6}{'n':>6}{loss + ' probe':>11}{'Avg.':>8}{'Opt.':>8}{'Acc.':>8}"
    header += f"{'ECE':>8}{'Spearman':>10}"
    lines = [header]
    for name in SPLITS:
        if name not in metrics:
            continue
        m = metrics[name]
        ece = "-" if m["ece"] is None else f"{m['ece']:.3f}"
        lines.append(
            f"{name:<6}{m['n']:>6}{m['loss']:>11.4f}{m['avg_loss']:>8.4f}{m['opt_loss']:>8.4f}"
            f"{m['accuracy']:>8.1%}{ece:>8}{m['spearman']:>10.3f}"
        )
    return "\n".join(lines)
