"""Fixtures for the training tests: asyncio for anyio tests, and one tiny random causal LM."""

from pathlib import Path

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def tiny_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer Llama (hidden size 32) with a BPE tokenizer and chat template, built locally."""
    from tests.backends.tiny_model import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("tiny-lm"))
