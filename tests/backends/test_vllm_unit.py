"""VLLMBackend validates its options and arguments before it ever starts an engine."""

from __future__ import annotations

import pytest

from howhard.backends import VLLMBackend
from howhard.errors import ConfigError
from howhard.types import GenerationParams


def test_unknown_option_is_a_config_error_naming_it() -> None:
    with pytest.raises(ConfigError, match="max_model_length"):
        VLLMBackend("some-folder", max_model_length=10)


def test_out_of_range_option_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="kv_cache_gib"):
        VLLMBackend("some-folder", kv_cache_gib=0)


def test_model_name_defaults_to_the_folder_name() -> None:
    assert VLLMBackend("/models/SmolLM2-135M-Instruct").model == "SmolLM2-135M-Instruct"
    assert VLLMBackend("/models/x", served_name="small").model == "small"


@pytest.mark.anyio
async def test_n_below_one_is_rejected_without_starting_an_engine() -> None:
    backend = VLLMBackend("/nonexistent/folder")
    with pytest.raises(ConfigError, match="n must be an integer >= 1, got 0"):
        await backend.generate("hi", n=0, params=GenerationParams())
    assert backend._engine is None


@pytest.mark.anyio
async def test_encode_without_a_pooling_engine_says_how_to_enable_it() -> None:
    backend = VLLMBackend("/nonexistent/folder")
    with pytest.raises(ConfigError, match=r"encoder=True"):
        await backend.encode(["hi"])
