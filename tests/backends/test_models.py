"""howhard.models: the default model is prepared once, reused, and any local folder works."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from howhard import models
from howhard.errors import ConfigError


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOWHARD_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("HOWHARD_SMOLLM2_GGUF", raising=False)
    return tmp_path / "cache"


def test_cache_dir_honours_the_environment_override(cache: Path) -> None:
    assert models.cache_dir() == cache


def test_local_folder_resolves_to_its_absolute_path(tmp_path: Path) -> None:
    folder = tmp_path / "my-model"
    folder.mkdir()
    assert models.resolve_model(folder) == str(folder.resolve())


def test_a_gguf_file_is_rejected_with_the_fix(tmp_path: Path) -> None:
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")
    with pytest.raises(ConfigError, match=r"model=.*model\.gguf.*is a file.*llama\.cpp"):
        models.resolve_model(gguf)


def test_unknown_names_pass_through_as_model_ids() -> None:
    assert models.resolve_model("org/some-model") == "org/some-model"


@pytest.mark.parametrize("missing", ["/no/such/model", "./no-such-model", "a/b/c"])
def test_a_missing_folder_is_a_config_error_not_a_model_id(missing: str) -> None:
    with pytest.raises(ConfigError, match=r"does not exist; pass an existing model folder"):
        models.resolve_model(missing)


def test_empty_model_name_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="model must be"):
        models.resolve_model("  ")


def test_gguf_override_must_exist(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOWHARD_SMOLLM2_GGUF", str(cache / "missing.gguf"))
    with pytest.raises(ConfigError, match="HOWHARD_SMOLLM2_GGUF"):
        models.default_gguf_path()


def test_concurrent_first_calls_convert_exactly_once(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gguf = cache / "fake.gguf"
    gguf.parent.mkdir(parents=True)
    gguf.write_bytes(b"GGUF")
    monkeypatch.setenv("HOWHARD_SMOLLM2_GGUF", str(gguf))
    conversions: list[Path] = []

    def fake_convert(source: Path, out: Path) -> None:
        assert source == gguf
        conversions.append(out)
        (out / "config.json").write_text("{}")

    monkeypatch.setattr(models, "_convert", fake_convert)
    results: list[Path] = []
    threads = [
        threading.Thread(target=lambda: results.append(models.default_model_path(progress=None)))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert len(conversions) == 1
    assert len(set(results)) == 1 and len(results) == 4
    assert (results[0] / "config.json").read_text() == "{}"
    assert not list(results[0].parent.glob(".staging-*")), "staging folders are cleaned up"


def test_a_prepared_folder_is_reused_without_converting(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def must_not_run(*_: object, **__: object) -> None:
        raise AssertionError("the prepared folder should have been reused")

    monkeypatch.setattr(models, "_convert", must_not_run)
    monkeypatch.setattr(models, "default_gguf_path", must_not_run)
    prepared = cache / "models" / f"{models.DEFAULT_MODEL}-bf16-v{models._FORMAT_VERSION}"
    prepared.mkdir(parents=True)
    (prepared / models._DONE_MARKER).write_text("done\n")
    assert models.default_model_path() == prepared
    assert models.resolve_model(None) == str(prepared)
    assert models.resolve_model(models.DEFAULT_MODEL) == str(prepared)


def test_a_torn_folder_without_the_marker_is_rebuilt(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gguf = cache / "fake.gguf"
    gguf.parent.mkdir(parents=True)
    gguf.write_bytes(b"GGUF")
    monkeypatch.setenv("HOWHARD_SMOLLM2_GGUF", str(gguf))
    torn = cache / "models" / f"{models.DEFAULT_MODEL}-bf16-v{models._FORMAT_VERSION}"
    torn.mkdir(parents=True)
    (torn / "half-written.safetensors").write_bytes(b"")
    monkeypatch.setattr(
        models, "_convert", lambda _src, out: (out / "config.json").write_text("{}")
    )
    path = models.default_model_path(progress=None)
    assert sorted(p.name for p in path.iterdir()) == [models._DONE_MARKER, "config.json"]


def test_the_default_model_has_one_name_however_it_is_passed(tmp_path: Path) -> None:
    prepared = tmp_path / f"{models.DEFAULT_MODEL}-bf16-v1"
    assert models.model_name(None) == models.DEFAULT_MODEL
    assert models.model_name(models.DEFAULT_MODEL) == models.DEFAULT_MODEL
    assert models.model_name(prepared) == models.DEFAULT_MODEL
    assert models.model_name(tmp_path / "my-model") == "my-model"
    assert models.model_name("org/some-model") == "some-model"
