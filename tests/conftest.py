"""Fixtures shared by every test folder: asyncio through anyio's plugin, and a tiny local model."""

from pathlib import Path

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding a 2-layer random Llama model and its tokenizer (no downloads)."""
    pytest.importorskip("transformers")
    from tests.backends.tiny_model import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("tiny-model"))
