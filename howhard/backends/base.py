"""The Backend protocol: what the scheduler needs from a model server or engine.

A backend generates ``n`` samples of one prompt in a single call, so engines that share the
prompt's prefix across samples (vLLM, the local transformers backend) pay for the prefill once.
Backends may also *encode* prompts to last-token hidden states for difficulty probes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from howhard.types import Generation, GenerationParams

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = ["Backend", "Encoder"]


@runtime_checkable
class Backend(Protocol):
    """Generates samples. Implementations translate their errors into ``howhard.errors``."""

    @property
    def model(self) -> str:
        """Model name used for pricing and logs."""
        ...

    async def generate(self, prompt: str, *, n: int, params: GenerationParams) -> Generation:
        """Return ``n`` sampled completions of ``prompt`` (the prompt is a user message)."""
        ...

    async def aclose(self) -> None:
        """Release engines, processes and connections. Idempotent."""
        ...


@runtime_checkable
class Encoder(Protocol):
    """Maps prompts to fixed-size feature vectors (last-token hidden states)."""

    async def encode(self, prompts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Return an array of shape ``(len(prompts), hidden_size)``."""
        ...
