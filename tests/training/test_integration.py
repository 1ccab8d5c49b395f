"""The probe pipeline on the real packaged model (SmolLM2-135M-Instruct): slow, so integration."""

import json
from pathlib import Path

import anyio
import numpy as np
import pytest

from howhard.cli import main
from howhard.probes import ProbePredictor
from howhard.training.features import load_features
from howhard.types import Request

pytestmark = pytest.mark.integration


def test_real_model_collect_features_train_and_serve(tmp_path: Path) -> None:
    queries = tmp_path / "q.jsonl"
    rows = [
        {
            "id": f"add{a}",
            "prompt": f"What is {a} + {a}? Answer with just the number.",
            "reference": str(2 * a),
        }
        for a in range(1, 13)
    ]
    queries.write_text("".join(json.dumps(r) + "\n" for r in rows))
    data, probe = tmp_path / "data", tmp_path / "probe"
    collect = ["collect", "--input", str(queries), "--out", str(data), "--backend", "transformers"]
    collect += ["--scorer", "math", "--samples", "2", "--max-tokens", "12", "--no-progress"]
    assert main(collect) == 0
    assert main(["features", "--dataset", str(data), "--layer", "12", "--no-progress"]) == 0
    features = load_features(data / "features")
    assert features.array.shape == (12, 576) and features.meta["layer"] == 12

    train = ["train", "--dataset", str(data), "--out", str(probe), "--hidden-dim", "8"]
    train += ["--epochs", "5", "--val-fraction", "0.25", "--test-fraction", "0.25", "--quiet"]
    assert main(train) == 0

    predictor = ProbePredictor.load(probe)
    marginals = anyio.run(predictor.predict, [Request(prompt="What is 4 + 4?")])
    assert marginals.shape == (1, 2) and np.isfinite(marginals).all()
