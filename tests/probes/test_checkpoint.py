"""Checkpoints round-trip through safetensors + JSON and refuse pickles and mismatched shapes."""

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from howhard.errors import CheckpointError
from howhard.probes import SavedProbe, load_checkpoint, save_checkpoint
from howhard.training.train import TrainConfig, train_probe
from tests.training.synthetic import synthetic


@pytest.fixture(scope="module")
def trained() -> tuple[np.ndarray, object]:
    x, rewards = synthetic(n=120)
    config = TrainConfig(hidden_dim=8, max_epochs=10, calibration="temperature")
    return x, train_probe(x, rewards.mean(axis=1), config, encoder={"encoder": "scripted"})


def test_round_trip_preserves_weights_config_and_predictions(tmp_path: Path, trained) -> None:  # type: ignore[no-untyped-def]
    x, result = trained
    save_checkpoint(tmp_path / "ckpt", result.checkpoint.tensors, result.checkpoint.config)
    loaded = load_checkpoint(tmp_path / "ckpt")
    assert loaded.config["head"] == "lambda" and loaded.config["encoder"] == {"encoder": "scripted"}
    assert loaded.config["metrics"]["test"]["n"] == result.metrics["test"]["n"]
    for name, tensor in result.checkpoint.tensors.items():
        np.testing.assert_array_equal(loaded.tensors[name], tensor)
    np.testing.assert_allclose(SavedProbe(loaded).predict(x), result.probe.predict(x))
    assert load_checkpoint(tmp_path / "ckpt" / "probe.safetensors").config == loaded.config


def test_a_pickled_checkpoint_is_refused_without_unpickling(tmp_path: Path, trained) -> None:  # type: ignore[no-untyped-def]
    _, result = trained
    folder = save_checkpoint(tmp_path / "ckpt", result.checkpoint.tensors, result.checkpoint.config)

    class Boom:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            return (exec, ("raise SystemExit('unpickled!')",))

    (folder / "probe.safetensors").write_bytes(pickle.dumps({"fc1.weight": Boom()}))
    with pytest.raises(CheckpointError, match=r"pickle/torch\.save file; howhard never unpickles"):
        load_checkpoint(folder)
    (folder / "probe.safetensors").write_bytes(b"PK\x03\x04 torch.save zip archive")
    with pytest.raises(CheckpointError, match="never unpickles"):
        load_checkpoint(folder)
    (folder / "probe.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(CheckpointError, match="not a valid safetensors file"):
        load_checkpoint(folder)


def test_weights_that_do_not_match_the_config_are_refused(tmp_path: Path, trained) -> None:  # type: ignore[no-untyped-def]
    _, result = trained
    tensors = dict(result.checkpoint.tensors)
    tensors["fc1.weight"] = np.zeros((8, 5), dtype=np.float32)
    with pytest.raises(
        CheckpointError, match=r"'fc1.weight' has shape \(8, 5\), expected \(8, 8\)"
    ):
        save_checkpoint(tmp_path / "bad", tensors, result.checkpoint.config)

    folder = save_checkpoint(tmp_path / "ckpt", result.checkpoint.tensors, result.checkpoint.config)
    config = json.loads((folder / "probe.json").read_text())
    config["hidden_dim"] = 12
    (folder / "probe.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="do not belong together"):
        load_checkpoint(folder)
    config["format"] = "something-else"
    (folder / "probe.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"is not a howhard\.probe/1 config"):
        load_checkpoint(folder)


def test_a_missing_checkpoint_says_what_to_pass(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"no probe\.safetensors found"):
        load_checkpoint(tmp_path)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"input_dim": None}, r"input_dim=None must be an integer >= 1"),
        ({"max_budget": "x"}, r"max_budget='x' must be an integer >= 1"),
        ({"max_budget": 0}, r"max_budget=0 must be an integer >= 1"),
        ({"head": "bogus"}, r"head='bogus' is not one of"),
        ({"calibration": "temperature"}, r"calibration='temperature' must be an object"),
        ({"calibration": {"method": "platt"}}, r"method='platt' is not one of"),
        ({"calibration": {"method": "temperature"}}, r"temperature=None must be a finite"),
    ],
)
def test_a_malformed_config_is_a_checkpoint_error_not_a_crash(  # type: ignore[no-untyped-def]
    tmp_path: Path, trained, edit: dict[str, object], message: str
) -> None:
    _, result = trained
    folder = save_checkpoint(tmp_path / "ckpt", result.checkpoint.tensors, result.checkpoint.config)
    config = {**json.loads((folder / "probe.json").read_text()), **edit}
    (folder / "probe.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(folder)


def test_a_zero_feature_std_is_refused_instead_of_serving_nan(tmp_path: Path, trained) -> None:  # type: ignore[no-untyped-def]
    _, result = trained
    tensors = dict(result.checkpoint.tensors)
    tensors["feature_std"] = np.zeros_like(tensors["feature_std"])
    with pytest.raises(CheckpointError, match="'feature_std' must be > 0"):
        save_checkpoint(tmp_path / "ckpt", tensors, result.checkpoint.config)
