"""The backend conformance suite: what every ``Backend`` must do, runnable against any backend.

Subclass :class:`BackendContract` in a test module and say how to build your backend; every
``test_*`` method then runs against it::

    from howhard.testing import BackendContract

    class TestMyBackend(BackendContract):
        def make_backend(self):
            return MyBackend(...)  # not started yet: the suite opens, uses and closes it

Set ``encodes = True`` when the backend is also an ``Encoder``. A backend that is slow to
start can override the ``backend`` fixture with a longer-lived one; ``make_backend`` is still
called for the close test, which never starts it. Needs pytest and anyio's pytest plugin.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from typing import ClassVar

import anyio
import numpy as np
import pytest

from howhard.backends.base import Backend, Encoder
from howhard.errors import BackendError, UsageError
from howhard.types import Generation, GenerationParams

__all__ = ["BackendContract"]

PROMPT = "What is 2 + 3? Answer with just the number."


class BackendContract:
    """The behaviour every :class:`howhard.backends.Backend` must show; see the module doc."""

    pytestmark = pytest.mark.anyio

    max_tokens: ClassVar[int] = 8
    """Token cap of the suite's calls (keep it small for slow backends)."""
    encodes: ClassVar[bool] = False
    """Whether the backend is also an ``Encoder`` (runs the encode tests)."""

    def make_backend(self) -> Backend:
        """A new, unstarted backend (override this)."""
        raise NotImplementedError("subclass BackendContract and implement make_backend")

    @pytest.fixture
    async def backend(self) -> AsyncIterator[Backend]:
        """The backend most tests use: made, then closed after the test."""
        backend = self.make_backend()
        try:
            yield backend
        finally:
            with anyio.CancelScope(shield=True):
                await backend.aclose()

    def params(self, **overrides: object) -> GenerationParams:
        """The suite's sampling parameters."""
        options: dict[str, object] = {"max_tokens": self.max_tokens, "temperature": 0.7}
        options.update(overrides)
        return GenerationParams(**options)  # type: ignore[arg-type]

    async def test_it_is_a_backend_with_a_model_name(self, backend: Backend) -> None:
        assert isinstance(backend, Backend)
        assert isinstance(backend.model, str) and backend.model
        if self.encodes:
            assert isinstance(backend, Encoder)

    @pytest.mark.parametrize("n", [1, 3])
    async def test_one_call_returns_exactly_n_samples(self, backend: Backend, n: int) -> None:
        generation = await backend.generate(PROMPT, n=n, params=self.params())
        assert isinstance(generation, Generation)
        assert len(generation.completions) == n
        assert all(isinstance(c.text, str) for c in generation.completions)

    async def test_usage_is_whole_non_negative_and_within_max_tokens(
        self, backend: Backend
    ) -> None:
        cap = 2
        generation = await backend.generate(PROMPT, n=2, params=self.params(max_tokens=cap))
        counts = [generation.prompt_tokens, *(c.tokens for c in generation.completions)]
        assert all(type(count) is int and count >= 0 for count in counts), counts
        assert all(c.tokens <= cap for c in generation.completions), counts
        for completion in generation.completions:
            assert completion.finish_reason is None or isinstance(completion.finish_reason, str)

    async def test_logprobs_when_given_are_one_finite_log_probability_per_token(
        self, backend: Backend
    ) -> None:
        generation = await backend.generate(PROMPT, n=1, params=self.params(logprobs=True))
        for completion in generation.completions:
            if completion.logprobs is None:
                continue  # a backend may not support them
            assert len(completion.logprobs) == completion.tokens
            assert all(math.isfinite(v) and v <= 1e-6 for v in completion.logprobs)

    async def test_a_cancelled_call_leaves_the_backend_serving(self, backend: Backend) -> None:
        with anyio.move_on_after(0):
            await backend.generate(PROMPT, n=2, params=self.params())
        generation = await backend.generate(PROMPT, n=1, params=self.params())
        assert len(generation.completions) == 1

    @pytest.mark.parametrize("n", [0, -1])
    async def test_fewer_than_one_sample_is_misuse(self, backend: Backend, n: int) -> None:
        with pytest.raises(UsageError, match="n must be"):
            await backend.generate(PROMPT, n=n, params=self.params())

    async def test_after_aclose_calls_fail_typed_and_aclose_is_idempotent(self) -> None:
        backend = self.make_backend()
        await backend.aclose()
        await backend.aclose()
        with pytest.raises(BackendError):
            await backend.generate(PROMPT, n=1, params=self.params())

    async def test_encode_gives_one_finite_row_per_prompt_the_same_each_time(
        self, backend: Backend
    ) -> None:
        if not self.encodes:
            pytest.skip("this backend is not an Encoder (encodes = False)")
        assert isinstance(backend, Encoder)
        rows = np.asarray(await backend.encode([PROMPT, "Name a colour."]))
        assert rows.ndim == 2 and rows.shape[0] == 2 and rows.shape[1] >= 1
        assert np.isfinite(rows).all()
        # A prompt's features depend on the prompt, not on the call or the rest of the batch.
        again = np.asarray(await backend.encode([PROMPT]))
        np.testing.assert_allclose(rows[0], again[0], rtol=1e-3, atol=1e-4)
