"""Encoders pinned to one layer, built from the record that features and checkpoints keep.

Features (``howhard features``) and probe checkpoints record *which* representation they hold:
``{"encoder": kind, "model": ..., "layer": ..., "base_url": ..., "options": {...}}``.
:func:`make_encoder` turns such a record back into a working :class:`LayerEncoder` through the
backend registry: the one place a probe's recorded encoder is rebuilt (at the edge: the CLI and
``ProbePredictor.load``), so policies and predictors only ever receive an ``Encoder``.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from howhard.backends.registry import KINDS, create
from howhard.errors import ConfigError

__all__ = ["ENCODERS", "LayerEncoder", "make_encoder"]

ENCODERS = KINDS
"""Encoder kinds :func:`make_encoder` builds: every registered backend kind."""

# Options a kind needs to act as an encoder (vLLM starts a pooling engine beside generation).
_ENCODER_OPTIONS: dict[str, dict[str, Any]] = {"vllm": {"encoder": True}}


class LayerEncoder:
    """An :class:`~howhard.backends.Encoder` fixed to one layer of a layer-selectable encoder.

    ``TransformersBackend.encode(prompts, layer=...)`` can read any layer; the probe pipeline
    talks to plain ``encode(prompts)``, so this pins the layer and carries a description of the
    representation (encoder kind, model, layer) to record beside the features.
    """

    def __init__(self, backend: Any, *, layer: int, description: Mapping[str, Any]) -> None:
        self.backend = backend
        self.layer = layer
        self.description = dict(description)

    async def encode(self, prompts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Hidden states ``(len(prompts), hidden_size)`` at the pinned layer."""
        if self.layer == -1 and not _takes_layer(self.backend):
            result: npt.NDArray[np.float32] = await self.backend.encode(prompts)
            return result
        out: npt.NDArray[np.float32] = await self.backend.encode(prompts, layer=self.layer)
        return out

    async def aclose(self) -> None:
        """Close the underlying backend."""
        await self.backend.aclose()


def _takes_layer(backend: Any) -> bool:
    try:
        return "layer" in inspect.signature(backend.encode).parameters
    except (TypeError, ValueError):
        return False


def make_encoder(description: Mapping[str, Any]) -> LayerEncoder:
    """Build the encoder a description names (as recorded in features and checkpoints).

    ``description`` keys: ``encoder`` (one of :data:`ENCODERS`), ``model``, ``layer`` (default
    ``-1``), ``base_url`` (openai) and ``options`` (extra constructor keyword arguments, e.g.
    ``{"dtype": "float32"}``). Only ``transformers`` reads layers other than the last.
    """
    kind = description.get("encoder")
    if kind not in ENCODERS:
        raise ConfigError(f"encoder must be one of {ENCODERS}, got {kind!r}")
    layer = int(description.get("layer", -1))
    model = description.get("model")
    options = dict(description.get("options") or {})
    if layer != -1 and kind != "transformers":
        raise ConfigError(
            f"encoder={kind!r} returns the last layer only; use layer=-1 or encoder='transformers'"
        )
    if kind == "openai" and (not description.get("base_url") or not model):
        raise ConfigError("encoder='openai' needs base_url and model (an embeddings endpoint)")
    arguments = {**_ENCODER_OPTIONS.get(kind, {}), **options}
    if model is not None:
        arguments["model"] = model
    if description.get("base_url"):
        arguments["base_url"] = description["base_url"]
    try:
        backend = create(kind, **arguments)
    except ConfigError as exc:
        raise ConfigError(f"encoder={kind!r} rejected options={options!r} ({exc})") from exc
    return LayerEncoder(backend, layer=layer, description=description)
