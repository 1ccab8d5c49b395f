"""What a task family is: a seeded question generator with a deterministic verifier."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable

__all__ = ["Question", "TaskFamily"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Question:
    """One benchmark question: the prompt shown to the model and the reference answer."""

    family: str
    """Name of the family that generated (and verifies) it."""
    prompt: str
    """The user message sent to the model."""
    reference: str
    """Expected answer; alternatives are separated by ``|`` (e.g. ``"cold|chilly"``)."""
    level: int
    """Designed difficulty inside the family: 1 (easiest) to 3 (hardest)."""
    metadata: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def key(self) -> str:
        """Identity used to de-duplicate questions (the prompt decides what the model sees)."""
        return f"{self.family}:{self.prompt}"


@runtime_checkable
class TaskFamily(Protocol):
    """A family of short-answer questions with graded difficulty and an exact verifier."""

    name: str
    """Stable identifier stored with every question (``metadata["family"]``)."""
    instruction: str
    """The answer-format instruction every generated prompt ends with (``"Answer with just the
    number."``); :func:`howhard.tasks.styles.restyle` swaps it for another phrasing."""

    def generate(self, rng: random.Random, n: int) -> list[Question]:
        """Return up to ``n`` distinct questions drawn with ``rng`` (fewer if the pool is small)."""
        ...

    def verify(self, reply: str, reference: str, prompt: str) -> bool:
        """Whether the model's ``reply`` to ``prompt`` states the ``reference`` answer."""
        ...

    def answer(self, reply: str, prompt: str) -> str | None:
        """The reply's answer in canonical form, without the reference (for majority votes)."""
        ...
