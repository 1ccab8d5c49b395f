"""Training learns a learnable signal, is reproducible, and respects splits and calibration."""

import json
from pathlib import Path

import numpy as np
import pytest

from howhard.errors import ConfigError
from howhard.policies import marginals_from_rewards
from howhard.probes import load_checkpoint
from howhard.training.dataset import DatasetWriter, request_row
from howhard.training.features import save_features
from howhard.training.splits import split_indices
from howhard.training.train import TrainConfig, format_metrics, train_from_files, train_probe
from howhard.types import Request
from tests.training.synthetic import synthetic

FAST = dict(hidden_dim=16, lr=1e-2, batch_size=128, max_epochs=150, patience=15)


def test_lambda_probe_learns_the_signal_well_below_the_average_baseline() -> None:
    x, rewards = synthetic()
    result = train_probe(x, rewards.mean(axis=1), TrainConfig(**FAST))  # type: ignore[arg-type]
    test = result.metrics["test"]
    assert test["loss"] < test["avg_loss"] - 0.08
    assert test["opt_loss"] < test["loss"]
    assert test["accuracy"] > 0.7 and test["spearman"] > 0.6
    assert "CE probe" in format_metrics(result.metrics, "lambda")


def test_delta_probe_learns_non_increasing_marginals() -> None:
    x, rewards = synthetic()
    targets = marginals_from_rewards(rewards, 8)
    result = train_probe(x, targets, TrainConfig(head="delta", **FAST))  # type: ignore[arg-type]
    test = result.metrics["test"]
    assert test["loss"] < 0.7 * test["avg_loss"]
    predicted = result.probe.predict(x)
    assert predicted.shape == (400, 8)
    assert np.all(np.diff(predicted, axis=1) <= 1e-12) and np.all(predicted >= 0)


def test_training_is_reproducible_for_a_seed() -> None:
    x, rewards = synthetic(n=120)
    config = TrainConfig(**{**FAST, "max_epochs": 20})  # type: ignore[arg-type]
    first = train_probe(x, rewards.mean(axis=1), config)
    second = train_probe(x, rewards.mean(axis=1), config)
    for name, tensor in first.checkpoint.tensors.items():
        np.testing.assert_array_equal(tensor, second.checkpoint.tensors[name])
    assert first.metrics == second.metrics


@pytest.mark.parametrize("method", ["temperature", "isotonic"])
def test_calibration_is_fitted_on_val_and_recorded(method: str) -> None:
    x, rewards = synthetic(n=200)
    config = TrainConfig(calibration=method, **FAST)  # type: ignore[arg-type]
    result = train_probe(x, rewards.mean(axis=1), config)
    calibration = result.checkpoint.config["calibration"]
    assert calibration["method"] == method
    if method == "temperature":
        assert calibration["temperature"] > 0
    else:
        assert "calibration.x" in result.checkpoint.tensors
    assert result.metrics["val"]["ece"] is not None


def test_splits_come_from_a_seed_or_a_column() -> None:
    by_seed = split_indices(100, seed=3, val_fraction=0.2, test_fraction=0.1)
    assert [len(by_seed[s]) for s in ("train", "val", "test")] == [70, 20, 10]
    assert sorted(np.concatenate(list(by_seed.values()))) == list(range(100))
    column = ["train", "train", "val", "test"]
    assert split_indices(4, seed=0, val_fraction=0.5, test_fraction=0.1, assignments=column)[
        "test"
    ].tolist() == [3]
    with pytest.raises(ConfigError, match=r"split values must be one of .* got \['dev'\]"):
        split_indices(2, seed=0, val_fraction=0.1, test_fraction=0.1, assignments=["dev", "val"])
    with pytest.raises(ConfigError, match="the val split is empty"):
        split_indices(2, seed=0, val_fraction=0.1, test_fraction=0.1, assignments=["train"] * 2)


def test_bad_targets_are_refused() -> None:
    x, _ = synthetic(n=20)
    with pytest.raises(ConfigError, match=r"needs \(n,\) probabilities in \[0, 1\]"):
        train_probe(x, np.full(20, 1.5))
    with pytest.raises(ConfigError, match="calibration applies to the lambda and preference"):
        train_probe(x, np.zeros((20, 3)), TrainConfig(head="delta", calibration="temperature"))


def _write(folder: Path, x: np.ndarray, rewards: np.ndarray, splits: list[str]) -> None:
    writer = DatasetWriter(folder, {"model": "synthetic", "samples": rewards.shape[1]}, resume=True)
    ids = []
    for i, row in enumerate(rewards):
        request = Request(prompt=f"p{i}", id=f"{folder.name}-{i}", metadata={"split": splits[i]})
        writer.append(request_row(request, list(row), [1] * len(row), 1), [])
        ids.append(request.id)
    save_features(folder / "features", ids, x, {"encoder": "scripted"})


@pytest.mark.parametrize("head", ["lambda", "delta"])
def test_train_from_files_uses_a_split_column_and_an_external_test_set(
    tmp_path: Path, head: str
) -> None:
    x, rewards = synthetic(n=300, m=8, seed=1)
    x_test, rewards_test = synthetic(n=100, m=16, seed=2)  # more samples per test request
    _write(tmp_path / "trainval", x, rewards, ["train", "val"] * 150)
    _write(tmp_path / "test", x_test, rewards_test, ["test"] * 100)
    config = TrainConfig(head=head, **FAST)  # type: ignore[arg-type]
    result = train_from_files(
        tmp_path / "trainval",
        tmp_path / "trainval" / "features",
        tmp_path / "probe",
        config,
        split_column="split",
        test_dataset=tmp_path / "test",
    )
    assert [len(result.splits[s]) for s in ("train", "val", "test")] == [150, 150, 0]
    test = result.metrics["test"]
    assert test["n"] == 100 and test["loss"] < test["avg_loss"]
    saved = json.loads((tmp_path / "probe" / "splits.json").read_text())
    assert saved["val"][0] == "trainval-1"
    assert load_checkpoint(tmp_path / "probe").config["max_budget"] == 8


def test_an_invalid_train_config_is_a_config_error_naming_the_field() -> None:
    with pytest.raises(ConfigError, match=r"TrainConfig\.max_epochs: .* \(got 0\)"):
        TrainConfig(max_epochs=0)
    with pytest.raises(ConfigError, match=r"TrainConfig\.val_fraction"):
        TrainConfig(val_fraction=2.0)
