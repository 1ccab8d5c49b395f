"""Probe checkpoints: a folder with ``probe.safetensors`` (weights) and ``probe.json`` (config).

The config records everything needed to serve the probe and to judge it: the kind (``mlp`` or
``lora``), the head, ``max_budget``, layer sizes, the encoder (model, layer, chat rendering),
calibration, feature normalisation and the metrics measured at training time. Loading goes
through safetensors and JSON only, so it never unpickles anything: a pickle or ``torch.save``
file, a corrupt header, or tensors whose shapes disagree with the config raise
:class:`~howhard.errors.CheckpointError`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from howhard.errors import CheckpointError, missing_extra
from howhard.probes.heads import HEADS

__all__ = [
    "CONFIG_FILE",
    "PROBE_FORMAT",
    "WEIGHTS_FILE",
    "Checkpoint",
    "expected_shapes",
    "load_checkpoint",
    "save_checkpoint",
]

PROBE_FORMAT = "howhard.probe/1"
WEIGHTS_FILE = "probe.safetensors"
CONFIG_FILE = "probe.json"

_CALIBRATIONS = ("none", "temperature", "isotonic")

# Magic bytes of formats that would need unpickling: raw pickle (protocol 2+) and torch.save's zip.
_UNSAFE_MAGIC = (b"\x80", b"PK\x03\x04")


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A loaded checkpoint: its JSON config and its tensors as numpy arrays."""

    config: Mapping[str, Any]
    tensors: Mapping[str, npt.NDArray[Any]] = field(repr=False)


def _out_dim(config: Mapping[str, Any]) -> int:
    return int(config["max_budget"]) if config["head"] == "delta" else 1


def expected_shapes(config: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """Tensor names and shapes an ``mlp`` checkpoint with this config must hold.

    Isotonic calibration adds ``calibration.x``/``calibration.y`` (any equal length), checked
    separately; ``lora`` checkpoints are checked against the rebuilt model when loaded.
    """
    if config.get("kind") != "mlp":
        return {}
    d, h = int(config["input_dim"]), int(config["hidden_dim"])
    return {
        "feature_mean": (d,),
        "feature_std": (d,),
        "fc1.weight": (h, d),
        "fc1.bias": (h,),
        "fc2.weight": (_out_dim(config), h),
        "fc2.bias": (_out_dim(config),),
    }


def _resolve(path: str | os.PathLike[str]) -> tuple[Path, Path]:
    base = Path(path)
    if base.is_file():
        return base, base.parent / CONFIG_FILE
    return base / WEIGHTS_FILE, base / CONFIG_FILE


def save_checkpoint(
    path: str | os.PathLike[str],
    tensors: Mapping[str, npt.ArrayLike],
    config: Mapping[str, Any],
) -> Path:
    """Write the checkpoint folder ``path``; returns it. Tensors must match the config's shapes."""
    try:
        from safetensors.numpy import save_file
    except ImportError as exc:
        raise missing_extra("safetensors", "probe") from exc
    full = {"format": PROBE_FORMAT, **config}
    arrays = {name: np.ascontiguousarray(np.asarray(t)) for name, t in tensors.items()}
    _check(full, arrays, Path(path))
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    save_file(arrays, str(folder / WEIGHTS_FILE), metadata={"format": PROBE_FORMAT})
    (folder / CONFIG_FILE).write_text(
        json.dumps(full, indent=2, sort_keys=True, allow_nan=True) + "\n", encoding="utf-8"
    )
    return folder


def load_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Read a checkpoint folder (or its ``probe.safetensors``) safely; see the module docstring."""
    weights, config_path = _resolve(path)
    if not weights.exists():
        raise CheckpointError(
            f"checkpoint={str(path)!r}: no {WEIGHTS_FILE} found; pass a folder written by "
            "howhard train"
        )
    with open(weights, "rb") as handle:
        head = handle.read(8)
    if head.startswith(_UNSAFE_MAGIC):
        raise CheckpointError(
            f"checkpoint={str(weights)!r} is a pickle/torch.save file; howhard never unpickles "
            "checkpoints (it could run arbitrary code). Re-train or convert it to safetensors"
        )
    if not config_path.exists():
        raise CheckpointError(f"checkpoint={str(path)!r}: {CONFIG_FILE} is missing")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{config_path} is not valid JSON ({exc})") from exc
    if not isinstance(config, dict) or config.get("format") != PROBE_FORMAT:
        raise CheckpointError(
            f"{config_path} is not a {PROBE_FORMAT} config; pass a folder written by howhard train"
        )
    try:
        from safetensors import SafetensorError
        from safetensors.numpy import load_file
    except ImportError as exc:
        raise missing_extra("safetensors", "probe") from exc
    try:
        tensors = load_file(str(weights))
    except (SafetensorError, ValueError, OSError) as exc:
        raise CheckpointError(f"{weights} is not a valid safetensors file ({exc})") from exc
    _check(config, tensors, weights)
    return Checkpoint(config=config, tensors=tensors)


def _positive_int(config: Mapping[str, Any], key: str, where: Path) -> None:
    value = config.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise CheckpointError(f"{where}: config {key}={value!r} must be an integer >= 1")


def _check_config(config: Mapping[str, Any], where: Path) -> None:
    """Refuse a config that would crash (or silently misbehave) once its tensors are used."""
    for key in ("kind", "head", "max_budget"):
        if key not in config:
            raise CheckpointError(f"{where}: config lacks {key!r}")
    if config["kind"] not in ("mlp", "lora"):
        raise CheckpointError(f"{where}: unknown probe kind {config['kind']!r}")
    if config["head"] not in HEADS:
        raise CheckpointError(f"{where}: head={config['head']!r} is not one of {HEADS}")
    _positive_int(config, "max_budget", where)
    if config["kind"] == "mlp":
        _positive_int(config, "input_dim", where)
        _positive_int(config, "hidden_dim", where)
    calibration = config.get("calibration")
    if calibration is None:
        return
    if not isinstance(calibration, Mapping):
        raise CheckpointError(f"{where}: config calibration={calibration!r} must be an object")
    method = calibration.get("method", "none")
    if method not in _CALIBRATIONS:
        raise CheckpointError(
            f"{where}: calibration method={method!r} is not one of {_CALIBRATIONS}"
        )
    if method == "temperature":
        temperature = calibration.get("temperature")
        if (
            isinstance(temperature, bool)
            or not isinstance(temperature, int | float)
            or not np.isfinite(temperature)
            or temperature <= 0
        ):
            raise CheckpointError(
                f"{where}: calibration temperature={temperature!r} must be a finite number > 0"
            )


def _check(config: Mapping[str, Any], tensors: Mapping[str, npt.NDArray[Any]], where: Path) -> None:
    _check_config(config, where)
    expected = expected_shapes(config)
    for name, shape in expected.items():
        if name not in tensors:
            raise CheckpointError(f"{where}: tensor {name!r} is missing")
        if tuple(tensors[name].shape) != shape:
            raise CheckpointError(
                f"{where}: tensor {name!r} has shape {tuple(tensors[name].shape)}, expected "
                f"{shape} from the config (input_dim={config.get('input_dim')}, "
                f"hidden_dim={config.get('hidden_dim')}, head={config['head']!r}); the weights "
                "and probe.json do not belong together"
            )
    method = (config.get("calibration") or {}).get("method", "none")
    if method == "isotonic":
        x, y = tensors.get("calibration.x"), tensors.get("calibration.y")
        if x is None or y is None or x.ndim != 1 or x.shape != y.shape or len(x) == 0:
            raise CheckpointError(
                f"{where}: isotonic calibration needs equal-length 1-D tensors calibration.x and "
                "calibration.y"
            )
    for name, tensor in tensors.items():
        if tensor.dtype.kind == "f" and not np.isfinite(tensor).all():
            raise CheckpointError(f"{where}: tensor {name!r} contains NaN or inf")
    std = tensors.get("feature_std")
    if std is not None and not (std > 0).all():
        # Serving divides by it: a zero would turn every prediction into NaN or inf.
        raise CheckpointError(f"{where}: tensor 'feature_std' must be > 0 everywhere")
