"""VLLMBackend validates its options and arguments before it ever starts an engine."""

from __future__ import annotations

import threading
from typing import Any

import anyio
import pytest

from howhard.backends import VLLMBackend
from howhard.errors import BackendUnavailable, ConfigError
from howhard.types import GenerationParams
from tests.conftest import ForceHardware


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


class _FakeEngine:
    """Stands in for an ``AsyncLLM``: records shutdown, optionally failing it."""

    output_handler = None
    errored = False

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.shut_down = False

    def shutdown(self) -> None:
        self.shut_down = True
        if self.fail:
            raise RuntimeError("engine core did not exit")


@pytest.mark.anyio
async def test_engines_started_while_closing_are_shut_down_not_leaked() -> None:
    entered, release = threading.Event(), threading.Event()
    engines = [_FakeEngine(), _FakeEngine()]

    class SlowStart(VLLMBackend):
        def _build(self) -> tuple[Any, Any, Any]:
            entered.set()
            release.wait(30)
            return engines[0], engines[1], object()

    backend = SlowStart("/nonexistent/folder", encoder=True)
    outcome: list[BaseException] = []

    async def start() -> None:
        try:
            await backend.start()
        except BackendUnavailable as exc:
            outcome.append(exc)

    async with anyio.create_task_group() as tg:
        tg.start_soon(start)
        await anyio.to_thread.run_sync(entered.wait, 30)
        await backend.aclose()  # nothing to stop yet: the engines are still being built
        release.set()
    assert [e.shut_down for e in engines] == [True, True]
    assert outcome and "closed while it was starting" in str(outcome[0])
    assert backend._engine is None


@pytest.mark.anyio
async def test_a_failing_engine_shutdown_still_shuts_the_other_engine_down() -> None:
    backend = VLLMBackend("/nonexistent/folder", encoder=True)
    failing, other = _FakeEngine(fail=True), _FakeEngine()
    backend._engine, backend._pooler = failing, other
    with pytest.raises(BackendUnavailable, match="engine shutdown failed"):
        await backend.aclose()
    assert other.shut_down
    await backend.aclose()  # idempotent: nothing left to stop


@pytest.mark.parametrize(
    ("fast_bf16", "requested", "engine_dtype"),
    [
        (True, None, "bfloat16"),
        (False, None, "float32"),  # AVX2: bf16 generation measured ~7x slower than float32
        (False, "bfloat16", "bfloat16"),  # an explicit dtype always wins
        (True, "float32", "float32"),
    ],
)
def test_the_engine_dtype_follows_the_hardware_unless_given(
    force_hardware: ForceHardware, fast_bf16: bool, requested: str | None, engine_dtype: str
) -> None:
    force_hardware(fast_bf16=fast_bf16)
    options = {} if requested is None else {"dtype": requested}
    backend = VLLMBackend("/models/x", **options)
    assert backend.config.dtype == (requested or "auto")
    assert backend.dtype == engine_dtype


def test_on_a_gpu_auto_is_the_gpus_dtype(force_hardware: ForceHardware) -> None:
    force_hardware(fast_bf16=False, gpu="Tesla T4", gpu_bf16=False)
    assert VLLMBackend("/models/x").dtype == "float16"
