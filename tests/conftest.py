"""Fixtures shared by every test folder: asyncio through anyio's plugin, a tiny local model, and a
way to make the hardware probe report another machine."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from howhard import hardware
from howhard.testing.valkey import LocalValkey

AVX2 = frozenset({"avx", "avx2", "fma", "sse4_2"})
AVX512_BF16 = AVX2 | {"avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512_bf16"}

ForceHardware = Callable[..., hardware.Hardware]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding a 2-layer random Llama model and its tokenizer (no downloads)."""
    pytest.importorskip("transformers")
    from tests.backends.tiny_model import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture
def force_hardware(monkeypatch: pytest.MonkeyPatch) -> ForceHardware:
    """Make the hardware probe report another machine, as every engine sees it.

    ``force_hardware(fast_bf16=False)`` is a 2-core AVX2 CPU, ``fast_bf16=True`` an AVX512-BF16
    one; ``gpu="name"`` adds a GPU (``gpu_bf16`` says whether it has bf16).
    """

    def force(
        *,
        fast_bf16: bool,
        cores: int = 2,
        gpu: str | None = None,
        gpu_bf16: bool = False,
    ) -> hardware.Hardware:
        flags = AVX512_BF16 if fast_bf16 else AVX2
        machine = hardware.from_flags(flags, cores=cores, env={}, gpu=gpu, gpu_bf16=gpu_bf16)
        monkeypatch.setattr(hardware, "detect", lambda: machine)
        return machine

    return force


@pytest.fixture(scope="session")
def valkey() -> Iterator[LocalValkey]:
    """A real valkey-server on 127.0.0.1 (free port, append-only file), stopped after the run.

    Tests sharing it keep apart by key prefix; one that stops or pauses it starts it again.
    """
    pytest.importorskip("redis")
    with LocalValkey() as server:
        yield server
