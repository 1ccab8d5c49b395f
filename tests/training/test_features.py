"""Features: stored aligned with ids, and an interrupted extraction resumes where it stopped."""

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from howhard.backends import ScriptedBackend
from howhard.errors import ConfigError
from howhard.training.features import extract_features, load_features, save_features

pytestmark = pytest.mark.anyio


class Interrupted(Exception):
    """Stands in for the process being stopped mid-run."""


class CountingEncoder:
    """Scripted features; raises on call number ``fail_on`` to simulate an interruption."""

    def __init__(self, fail_on: int | None = None) -> None:
        self.backend = ScriptedBackend(hidden_size=4)
        self.prompts: list[str] = []
        self.fail_on = fail_on

    async def encode(self, prompts: Sequence[str]) -> np.ndarray:
        if self.fail_on is not None and len(self.prompts) // 3 + 1 == self.fail_on:
            raise Interrupted
        self.prompts += prompts
        return await self.backend.encode(prompts)


async def test_interrupted_extraction_resumes_from_persisted_batches(tmp_path: Path) -> None:
    prompts = [f"p{i}" for i in range(10)]
    partial = tmp_path / "features.partial"
    with pytest.raises(Interrupted):
        await extract_features(prompts, CountingEncoder(fail_on=3), batch_size=3, partial=partial)
    resumed = CountingEncoder()
    out = await extract_features(prompts, resumed, batch_size=3, partial=partial)
    assert resumed.prompts == prompts[6:]  # the first two batches were not encoded again
    np.testing.assert_array_equal(out, await ScriptedBackend(hidden_size=4).encode(prompts))

    other = CountingEncoder()
    await extract_features(prompts, other, batch_size=3, partial=partial, fingerprint="layer 3")
    assert other.prompts == prompts  # another encoder never reuses those rows


async def test_features_round_trip_aligned_by_id(tmp_path: Path) -> None:
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    save_features(tmp_path / "f", ["a", "b", "c"], x, {"encoder": "scripted", "layer": -1})
    features = load_features(tmp_path / "f.npy")
    assert features.meta["layer"] == -1 and features.array.dtype == np.float16
    np.testing.assert_array_equal(features.aligned(["c", "a"]), x[[2, 0]])
    with pytest.raises(ConfigError, match="1 request ids have no features"):
        features.aligned(["d"])


def test_a_corrupt_features_sidecar_is_a_config_error(tmp_path: Path) -> None:
    save_features(tmp_path / "f", ["a"], np.ones((1, 2)), {"encoder": "scripted"})
    (tmp_path / "f.json").write_text("{torn")
    with pytest.raises(ConfigError, match=r"f\.json is not valid JSON"):
        load_features(tmp_path / "f")
    (tmp_path / "f.json").write_text('{"format": "howhard.features/1"}')
    with pytest.raises(ConfigError, match="lists no ids"):
        load_features(tmp_path / "f")
