"""The value model across families: grouped folds, pooling, and the scripts that fit and
measure the shipped model, run on tiny synthetic builds."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from howhard.errors import ConfigError
from howhard.evaluation.vote_value import PooledRules, family_folds
from howhard.probes.vote_value import VoteValueModel
from howhard.training.features import save_features

ROOT = Path(__file__).resolve().parents[2]


def test_family_folds_split_whole_families_into_balanced_groups() -> None:
    families = ["a"] * 6 + ["b"] * 5 + ["c"] * 3 + ["d"] * 3 + ["e"] * 1
    folds = family_folds(families, 2, seed=3)
    assert sorted(f for fold in folds for f in fold) == ["a", "b", "c", "d", "e"]
    sizes = sorted(sum(families.count(f) for f in fold) for fold in folds)
    assert sizes == [9, 9]
    assert family_folds(families, 2, seed=3) == folds
    with pytest.raises(ConfigError, match=r"folds must be in 1\.\.5"):
        family_folds(families, 6)


def test_pooling_weights_each_section_by_its_questions() -> None:
    pooled = PooledRules()
    rule = "value rule (m)"
    pooled.add(1, {"sc_k": [0.0, 0.2], "rules": {rule: [_row("p", 0.4, 4.0)]}})
    pooled.add(3, {"sc_k": [0.0, 0.6], "rules": {rule: [_row("p", 0.8, 8.0)]}})
    assert np.allclose(pooled.curve(), [0.0, 0.5])
    ((label, accuracy, samples),) = pooled.points(rule)
    assert label == "p" and accuracy == pytest.approx(0.7) and samples == pytest.approx(7.0)


def _row(parameter: str, success: float, samples: float) -> dict[str, object]:
    return {"parameter": parameter, "success": success, "samples": samples}


def _write_build(folder: Path, families: list[str], m: int, seed: int) -> None:
    """Questions whose answer "a" is right with λ = sigmoid(2·x0 - 1); wrong answers scatter."""
    rng = np.random.default_rng(seed)
    n = len(families)
    x = rng.standard_normal((n, 6)).astype(np.float32)
    lam = 1 / (1 + np.exp(-(2 * x[:, 0] - 1)))
    ids = [f"{folder.name}-{i}" for i in range(n)]
    folder.mkdir(parents=True)
    with (folder / "requests.jsonl").open("w") as req, (folder / "answers.jsonl").open("w") as ans:
        for i in range(n):
            right = rng.random(m) < lam[i]
            answers = [
                "a" if r else (None if rng.random() < 0.2 else str(rng.choice(["b", "c", "d"])))
                for r in right
            ]
            meta = {"family": families[i], "split": "val" if i % 4 == 0 else "train"}
            rewards = [float(a == "a") for a in answers]
            row = {"id": ids[i], "prompt": f"q{i}", "metadata": meta, "rewards": rewards}
            req.write(json.dumps(row) + "\n")
            ans.write(json.dumps({"id": ids[i], "answers": answers, "tokens": [1] * m}) + "\n")
    save_features(folder / "features", ids, x, {"encoder": "synthetic"})


def _script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def synthetic_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("data")
    _write_build(data / "core", [f"f{i % 3}" for i in range(48)], 16, seed=0)
    _write_build(data / "extra", [f"f{i % 5}" for i in range(50)], 32, seed=1)
    _write_build(data / "test", [f"f{i % 3}" for i in range(12)], 32, seed=2)
    return data


@pytest.fixture(scope="module")
def synthetic_probe(synthetic_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A λ probe trained on the synthetic core build (stands for the shipped one)."""
    pytest.importorskip("torch")
    from howhard.probes.checkpoint import save_checkpoint
    from howhard.training.train import TrainConfig, train_probe

    x = np.load(synthetic_data / "core" / "features.npy").astype(np.float32)
    lines = (synthetic_data / "core" / "requests.jsonl").read_text().splitlines()
    rewards = [json.loads(line)["rewards"] for line in lines]
    probe = train_probe(x, np.mean(rewards, axis=1), TrainConfig(head="lambda", max_epochs=5))
    folder = tmp_path_factory.mktemp("probe")
    save_checkpoint(folder, probe.checkpoint.tensors, probe.checkpoint.config)
    return folder


def _train(data: Path, probe: Path, out: Path, *extra: str) -> int:
    argv = ["--data", str(data), "--builds", "core", "extra", "--out", str(out)]
    argv += ["--probe", str(probe), "--paths", "2", "--replays", "1", *extra]
    result: int = _script("train_vote_value").main(argv)
    return result


@pytest.mark.parametrize("logits", ["out-of-family", "as-served"])
def test_the_regeneration_script_fits_a_loadable_model_on_synthetic_builds(
    synthetic_data: Path,
    synthetic_probe: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    logits: str,
) -> None:
    out = tmp_path / "model.json"
    assert _train(synthetic_data, synthetic_probe, out, "--logits", logits) == 0
    model = VoteValueModel.load(out)
    assert model.info["families"] == 5 and model.info["builds"] == {"core": 48, "extra": 50}
    assert model.info["logits"].startswith("as the shipped" if logits == "as-served" else "each")
    swept = [row["price"] for row in model.info["price_sweep_on_val_families"]]
    assert model.price in swept
    assert model.info["command"].startswith("scripts/train_vote_value.py --data")
    assert "wrote" in capsys.readouterr().out


def test_the_report_script_writes_held_out_and_in_distribution_tables(
    synthetic_data: Path, synthetic_probe: Path, tmp_path: Path
) -> None:
    model = tmp_path / "model.json"
    assert _train(synthetic_data, synthetic_probe, model) == 0
    out = tmp_path / "sc.md"
    argv = ["--data", str(synthetic_data), "--core", "core", "--extra", "extra", "--test", "test"]
    argv += ["--probe", str(synthetic_probe), "--model", str(model), "--folds", "2"]
    argv += ["--paths", "2", "--replays", "1", "--out", str(out)]
    assert _script("self_consistency_report").main(argv) == 0
    text = out.read_text()
    assert "## Families held out of the value model" in text and "## In-distribution" in text
    for method in ("SC-k", "ESC", "value rule (core-only)"):
        assert f"| {method} |" in text
    for z in ("out-of-family z", "as-served z"):
        assert f"| value rule (across families, {z}) |" in text
    figures = json.loads(out.with_suffix(".json").read_text())
    assert figures["heldout"]["questions"] == 50 and figures["core_test"]["questions"] == 12
    # The packaged model is recognised as the full fit of its recipe.
    assert figures["shipped_is"] == ["across families, as-served z"]
