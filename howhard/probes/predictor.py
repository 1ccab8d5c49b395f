"""``ProbePredictor``: marginal rewards from a trained probe on the base LM's hidden states.

The predictor receives its :class:`~howhard.backends.Encoder` (injected): policies and the
scheduler never build backends. :meth:`ProbePredictor.load` is the edge helper that reads a
checkpoint and, when no encoder is given, rebuilds the one the checkpoint records through the
backend registry (:func:`howhard.backends.make_encoder`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import anyio.to_thread
import numpy as np
import numpy.typing as npt
import structlog

from howhard.backends.encoders import make_encoder
from howhard.errors import BackendError, ConfigError
from howhard.probes.checkpoint import load_checkpoint
from howhard.probes.heads import marginals_from_head
from howhard.probes.marginals_map import BetaMarginalsMap
from howhard.probes.posterior import GroupPosterior
from howhard.probes.saved import SavedProbe
from howhard.types import Request

if TYPE_CHECKING:
    from howhard.backends.base import Encoder

__all__ = ["ProbePredictor"]

FloatArray = npt.NDArray[np.float64]

log = structlog.get_logger("howhard.predictors")


class ProbePredictor:
    """Marginals from a trained probe (``howhard train``) on the base LM's hidden states.

    MLP probes run in numpy on features from ``encoder``; LoRA probes run the adapted LM
    themselves (torch, in a worker thread) and need no encoder. ``predict`` returns as many
    columns as the policy's bounds ask for; ``max_budget`` is only the default width (the budget
    the probe was trained for). A λ probe serves any width (geometric rows); a Δ probe's columns
    beyond its trained budget are 0; a preference probe serves one column.

    A λ probe whose checkpoint carries a ``marginals_map`` serves that map's prior rows
    (posterior-expected marginals with no feedback, :class:`~howhard.probes.BetaMarginalsMap`)
    instead of the plug-in ``λ̂(1-λ̂)^(j-1)``; :meth:`read` gives a learning policy the logits and
    features the map's posterior needs.
    """

    def __init__(
        self,
        probe: Any,
        *,
        encoder: Encoder | None,
        max_budget: int | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        self._probe = probe
        self.encoder = encoder
        self.config: Mapping[str, Any] = dict(config or getattr(probe, "config", {}))
        self.head: str = str(self.config.get("head", "lambda"))
        default = 1 if self.head == "preference" else int(self.config.get("max_budget", 1))
        self.max_budget: int = default if max_budget is None else max_budget
        self._warned_widths: set[int] = set()
        self._check_width(self.max_budget)
        self.marginals_map: BetaMarginalsMap | None = None
        """The checkpoint's map from logits to served marginals (``None``: plug-in rows)."""
        if self.head == "lambda":
            self.marginals_map = BetaMarginalsMap.from_checkpoint_config(self.config)
        self._prior = GroupPosterior(self.marginals_map) if self.marginals_map else None

    def _check_width(self, width: int) -> None:
        if self.head == "preference" and width != 1:
            raise ConfigError(f"a preference probe serves max_budget=1, got {width}")
        trained = int(self.config.get("max_budget", width))
        if self.head == "delta" and width > trained and width not in self._warned_widths:
            self._warned_widths.add(width)
            log.warning(
                "max_budget_beyond_training",
                trained=trained,
                requested=width,
                note="marginals beyond the trained budget are predicted as 0",
            )

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        encoder: Encoder | None = None,
        max_budget: int | None = None,
    ) -> ProbePredictor:
        """Load a checkpoint folder written by ``howhard train`` (never unpickles).

        Without ``encoder`` an MLP probe builds the encoder its checkpoint records (the same
        model, layer and prompt rendering it was trained on).
        """
        checkpoint = load_checkpoint(path)
        config = checkpoint.config
        if config["kind"] == "lora":
            from howhard.probes.networks import LoRAProbe

            lora = LoRAProbe.from_checkpoint(config, checkpoint.tensors)
            return cls(lora, encoder=None, max_budget=max_budget, config=config)
        probe = SavedProbe(checkpoint)
        if encoder is None:
            if not config.get("encoder"):
                raise ConfigError(
                    f"checkpoint {str(path)!r} records no encoder; pass encoder=... (the one its "
                    "features came from)"
                )
            encoder = make_encoder(config["encoder"])
        return cls(probe, encoder=encoder, max_budget=max_budget, config=config)

    async def scores(self, requests: Sequence[Request]) -> FloatArray:
        """The probe's head output: λ or preference ``(n,)``, or Δ rows ``(n, B_trained)``."""
        if self.encoder is None:  # LoRA: the probe reads prompts itself
            return await anyio.to_thread.run_sync(self._lora_predict, [r.prompt for r in requests])
        result: FloatArray = self._probe.predict(await self._features(requests))
        return result

    def _lora_predict(self, prompts: list[str]) -> FloatArray:
        import torch

        from howhard.probes.networks import head_output

        with torch.inference_mode():
            out = head_output(self.head, self._probe(prompts))
        return np.asarray(out.double().numpy(), dtype=np.float64)

    async def predict(
        self, requests: Sequence[Request], max_budget: int | None = None
    ) -> FloatArray:
        """Marginals ``(len(requests), max_budget)`` for the allocator."""
        width = self.max_budget if max_budget is None else max_budget
        self._check_width(width)
        if not requests:
            return np.zeros((0, width))
        if self._prior is not None:
            logits, _ = await self.read(requests)
            return self._prior.predict(logits, ["*"] * len(requests), width)
        return marginals_from_head(self.head, await self.scores(requests), width)

    async def read(self, requests: Sequence[Request]) -> tuple[FloatArray, FloatArray]:
        """Calibrated logits ``(n,)`` and standardised features ``(n, d)`` of an MLP λ probe.

        What :class:`~howhard.policies.OnlineAdaptivePolicy` reads: the logit is
        ``raw / temperature`` (``raw`` for other calibrations), the features are the encoder's
        rows standardised with the probe's training mean and sd.
        """
        if not isinstance(self._probe, SavedProbe) or self.head != "lambda":
            raise ConfigError(
                f"read() needs an MLP lambda probe, this one is {self.config.get('kind')!r} "
                f"with head {self.head!r}"
            )
        features = await self._features(requests)
        return self._probe.logits(features), self._probe.standardise(features)

    async def _features(self, requests: Sequence[Request]) -> FloatArray:
        prompts = [r.prompt for r in requests]
        assert self.encoder is not None  # MLP probes always have one (checked by load)
        features = np.asarray(await self.encoder.encode(prompts), dtype=np.float64)
        if features.ndim != 2 or features.shape[0] != len(prompts):
            # A short or long batch would silently pair predictions with the wrong requests.
            raise BackendError(
                f"encoder {type(self.encoder).__name__} returned features of shape "
                f"{features.shape} for {len(prompts)} prompts; an Encoder must return one row "
                f"per prompt, shape ({len(prompts)}, hidden)"
            )
        return features

    async def aclose(self) -> None:
        """Close the encoder if it owns a backend."""
        close = getattr(self.encoder, "aclose", None)
        if close is not None:
            await close()
