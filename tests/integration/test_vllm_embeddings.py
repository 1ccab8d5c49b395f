"""OpenAIBackend.encode against a vLLM pooling server: /v1/embeddings as probe features."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from howhard.backends import OpenAIBackend, TransformersBackend
from tests.integration.conftest import Server

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


async def test_embeddings_equal_the_local_last_token_states(
    vllm_pooling_server: Server, model_path: Path
) -> None:
    prompts = ["What is 7 + 8?", "What is 48 + 67?", "hi"]
    async with OpenAIBackend(
        base_url=vllm_pooling_server.base_url, model=vllm_pooling_server.model
    ) as remote:
        served = await remote.encode(prompts)
    # /v1/embeddings gets raw text, so the local encoder must not apply the chat template either.
    async with TransformersBackend(model_path, dtype="float32", chat=False, num_threads=1) as local:
        expected = await local.encode(prompts)
    assert served.shape == expected.shape == (3, 576)
    cosine = np.sum(served * expected, axis=1) / (
        np.linalg.norm(served, axis=1) * np.linalg.norm(expected, axis=1)
    )
    assert cosine.min() >= 0.9999, cosine
