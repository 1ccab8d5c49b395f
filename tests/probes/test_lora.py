"""A LoRA probe trains on a tiny random LM, saves as safetensors, and serves predictions."""

import json
from pathlib import Path

import anyio
import numpy as np
import pytest

from howhard.cli import main
from howhard.errors import CheckpointError
from howhard.probes import ProbePredictor, load_checkpoint, save_checkpoint
from howhard.training.dataset import DatasetWriter, request_row
from howhard.types import Request


def _dataset(folder: Path, n: int) -> list[Request]:
    writer = DatasetWriter(folder, {"model": "tiny", "samples": 4}, resume=True)
    requests = []
    for i in range(n):
        request = Request(
            prompt=f"the quick brown fox {i}" if i % 2 else f"What is {i}?", id=f"q{i}"
        )
        rewards = [1.0, 1.0, 1.0, 0.0] if i % 2 else [0.0, 0.0, 0.0, 1.0]
        writer.append(request_row(request, rewards, [1] * 4, 3), [])
        requests.append(request)
    return requests


def test_lora_probe_trains_saves_loads_and_predicts(tmp_path: Path, tiny_model: Path) -> None:
    requests = _dataset(tmp_path / "data", 24)
    args = [
        "train",
        "--probe",
        "lora",
        "--model",
        str(tiny_model),
        "--dataset",
        str(tmp_path / "data"),
    ]
    args += ["--out", str(tmp_path / "lora"), "--epochs", "3", "--lora-r", "2", "--quiet"]
    args += ["--batch-size", "8", "--lr", "0.01"]
    assert main(args) == 0
    checkpoint = load_checkpoint(tmp_path / "lora")
    assert checkpoint.config["kind"] == "lora" and checkpoint.config["lora"]["r"] == 2
    assert any(name.startswith("lora.") for name in checkpoint.tensors)
    assert json.loads((tmp_path / "lora" / "metrics.json").read_text())["test"]["n"] == 4

    predictor = ProbePredictor.load(tmp_path / "lora")
    marginals = anyio.run(predictor.predict, requests[:5])
    assert marginals.shape == (5, 4)
    assert np.all((marginals >= 0) & (marginals <= 1))
    assert np.all(np.diff(marginals, axis=1) <= 0)

    tensors = dict(checkpoint.tensors)
    name = next(n for n in tensors if n.startswith("lora."))
    tensors[name] = np.zeros((1, 1), dtype=np.float32)
    save_checkpoint(tmp_path / "broken", tensors, checkpoint.config)
    with pytest.raises(CheckpointError, match=r"expected shape .* got \(1, 1\)"):
        ProbePredictor.load(tmp_path / "broken")


@pytest.mark.parametrize(
    "config",
    [
        {"kind": "lora", "head": "lambda", "max_budget": 4, "encoder": {"model": "m"}},
        {"kind": "lora", "head": "lambda", "max_budget": 4, "encoder": None, "lora": {}},
    ],
)
def test_an_incomplete_lora_config_is_a_checkpoint_error(config: dict[str, object]) -> None:
    from howhard.probes.networks import LoRAProbe

    with pytest.raises(CheckpointError, match="LoRA checkpoint config is incomplete"):
        LoRAProbe.from_checkpoint(config, {})
