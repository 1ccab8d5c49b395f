"""Predictors of marginal rewards: a trained probe, a constant, and the oracle skyline.

All three implement :class:`howhard.policies.Predictor`: ``await predict(requests)`` returns
``(len(requests), max_budget)`` marginals (column ``j`` = gain of unit ``j + 1``; column 0 is λ
for binary rewards), ready for ``AdaptivePolicy`` and its allocators.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import anyio.to_thread
import numpy as np
import numpy.typing as npt
import structlog

from howhard.errors import BackendError, ConfigError
from howhard.marginals import marginals_from_rewards, marginals_from_success_prob, success_rate
from howhard.types import Request

if TYPE_CHECKING:
    from howhard.backends.base import Encoder

__all__ = ["ConstantPredictor", "OraclePredictor", "ProbePredictor"]

FloatArray = npt.NDArray[np.float64]

log = structlog.get_logger("howhard.predictors")


class CollectedRewards(Protocol):
    """Sampled rewards per request id: what ``howhard collect`` records (a training ``Dataset``)."""

    @property
    def ids(self) -> Sequence[str]:
        """Request ids, one per row of ``rewards``."""
        ...

    @property
    def rewards(self) -> npt.ArrayLike:
        """``(n, m)`` rewards of the ``m`` samples collected per request."""
        ...


def _row(values: npt.ArrayLike, max_budget: int, what: str) -> FloatArray:
    """One marginal row of length ``max_budget``: a scalar is λ, a vector is Δ (cut or 0-padded)."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 0:
        geometric: FloatArray = marginals_from_success_prob(array.reshape(1), max_budget)[0]
        return geometric
    if array.ndim != 1 or not np.isfinite(array).all():
        raise ConfigError(f"{what} must be a number (λ) or a finite 1-D list of marginals")
    row = np.zeros(max_budget)
    width = min(max_budget, len(array))
    row[:width] = array[:width]
    return row


class ConstantPredictor:
    """Predicts the same marginals for every request: the "Avg." baseline of the paper.

    Give either ``success_prob`` (geometric rows ``λ(1-λ)^(j-1)``) or a ``marginals`` row.
    """

    def __init__(
        self,
        *,
        max_budget: int,
        success_prob: float | None = None,
        marginals: npt.ArrayLike | None = None,
    ) -> None:
        if max_budget < 1:
            raise ConfigError(f"max_budget must be >= 1, got {max_budget}")
        self.max_budget = max_budget
        if success_prob is not None and marginals is None:
            self._row = _row(success_prob, max_budget, "success_prob")
        elif marginals is not None and success_prob is None:
            self._row = _row(marginals, max_budget, "marginals")
        else:
            raise ConfigError("pass exactly one of success_prob=... or marginals=...")

    async def predict(self, requests: Sequence[Request]) -> FloatArray:
        """The constant row, once per request."""
        return np.tile(self._row, (len(requests), 1))


class OraclePredictor:
    """The true marginals of each request: the skyline an allocation is judged against.

    Not deployable (it needs the answers' statistics in advance); use it in evaluations. Values
    come from ``table[request.id]`` when a table is given, else from ``request.metadata[key]``;
    a number is read as λ, a list as the marginals row. A request without a value is a
    ConfigError naming it.
    """

    def __init__(
        self,
        *,
        max_budget: int,
        table: Mapping[str, Any] | None = None,
        key: str = "marginals",
    ) -> None:
        if max_budget < 1:
            raise ConfigError(f"max_budget must be >= 1, got {max_budget}")
        self.max_budget = max_budget
        self.key = key
        self._table = dict(table) if table is not None else None

    @classmethod
    def from_dataset(
        cls, dataset: CollectedRewards, *, max_budget: int, head: str = "lambda"
    ) -> OraclePredictor:
        """Oracle from collected rewards: λ per request (``lambda``) or exact Δ rows (``delta``)."""
        rewards = np.asarray(dataset.rewards, dtype=np.float64)
        if head == "delta":
            values = marginals_from_rewards(rewards, rewards.shape[-1])
        else:
            values = success_rate(rewards)
        table = {request_id: values[k] for k, request_id in enumerate(dataset.ids)}
        return cls(max_budget=max_budget, table=table)

    async def predict(self, requests: Sequence[Request]) -> FloatArray:
        """True marginals ``(n, max_budget)``."""
        rows = np.empty((len(requests), self.max_budget))
        for i, request in enumerate(requests):
            if self._table is not None:
                if request.id not in self._table:
                    raise ConfigError(f"OraclePredictor has no entry for request id {request.id!r}")
                value = self._table[request.id]
            elif self.key in request.metadata:
                value = request.metadata[self.key]
            else:
                raise ConfigError(
                    f"request {request.id!r} has no metadata[{self.key!r}]; pass a table or put "
                    "the true λ or marginals in each request's metadata"
                )
            rows[i] = _row(value, self.max_budget, f"oracle value for {request.id!r}")
        return rows


class ProbePredictor:
    """Marginals from a trained probe (``howhard train``) on the base LM's hidden states.

    MLP probes run in numpy on features from ``encoder``; LoRA probes run the adapted LM
    themselves (torch, in a worker thread) and need no encoder. ``max_budget`` defaults to the
    budget the probe was trained for; a λ probe can serve any budget (geometric rows).
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
        if self.head == "preference" and self.max_budget != 1:
            raise ConfigError(f"a preference probe serves max_budget=1, got {self.max_budget}")
        if self.head == "delta" and self.max_budget > int(self.config["max_budget"]):
            log.warning(
                "max_budget_beyond_training",
                trained=self.config["max_budget"],
                requested=self.max_budget,
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
        from howhard.training.checkpoint import load_checkpoint

        checkpoint = load_checkpoint(path)
        config = checkpoint.config
        if config["kind"] == "lora":
            from howhard.training.probes import LoRAProbe

            lora = LoRAProbe.from_checkpoint(config, checkpoint.tensors)
            return cls(lora, encoder=None, max_budget=max_budget, config=config)
        from howhard.backends.encoders import make_encoder
        from howhard.training.runtime import SavedProbe

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
        prompts = [r.prompt for r in requests]
        if self.encoder is None:  # LoRA: the probe reads prompts itself
            return await anyio.to_thread.run_sync(self._lora_predict, prompts)
        features = np.asarray(await self.encoder.encode(prompts))
        if features.ndim != 2 or features.shape[0] != len(prompts):
            # A short or long batch would silently pair predictions with the wrong requests.
            raise BackendError(
                f"encoder {type(self.encoder).__name__} returned features of shape "
                f"{features.shape} for {len(prompts)} prompts; an Encoder must return one row "
                f"per prompt, shape ({len(prompts)}, hidden)"
            )
        result: FloatArray = self._probe.predict(features)
        return result

    def _lora_predict(self, prompts: list[str]) -> FloatArray:
        import torch

        from howhard.training.probes import head_output

        with torch.inference_mode():
            out = head_output(self.head, self._probe(prompts))
        return np.asarray(out.double().numpy(), dtype=np.float64)

    async def predict(self, requests: Sequence[Request]) -> FloatArray:
        """Marginals ``(len(requests), max_budget)`` for the allocator."""
        if not requests:
            return np.zeros((0, self.max_budget))
        from howhard.training.runtime import marginals_from_head

        return marginals_from_head(self.head, await self.scores(requests), self.max_budget)

    async def aclose(self) -> None:
        """Close the encoder if it owns a backend."""
        close = getattr(self.encoder, "aclose", None)
        if close is not None:
            await close()
