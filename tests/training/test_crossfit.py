"""Cross-fitted logits and the marginals map `howhard train --marginals-map-groups` saves."""

from pathlib import Path

import numpy as np

from howhard.cli import main
from howhard.probes import BetaMarginalsMap, ProbePredictor, load_checkpoint
from howhard.training.crossfit import cross_fitted_logits
from howhard.training.dataset import DatasetWriter, request_row
from howhard.training.features import save_features
from howhard.training.train import TrainConfig
from howhard.types import Request
from tests.training.synthetic import synthetic

FAST = dict(hidden_dim=16, lr=1e-2, batch_size=128, max_epochs=60, patience=10)


def test_each_group_is_scored_by_a_probe_that_never_saw_it() -> None:
    x, rewards = synthetic(n=240, m=8, seed=3)
    groups = [f"g{i % 3}" for i in range(240)]
    splits = ["train", "val", "train", "test"] * 60
    # Group g2's rows are relabelled: a probe that saw them would learn the inversion.
    y = rewards.mean(axis=1)
    y[np.array(groups) == "g2"] = 1 - y[np.array(groups) == "g2"]
    logits, features = cross_fitted_logits(
        x,
        y,
        groups=groups,
        assignments=splits,
        config=TrainConfig(**FAST),  # type: ignore[arg-type]
    )
    assert logits.shape == (240,) and features.shape == x.shape
    held = np.array(groups) == "g2"
    # Scored without g2, the probe still follows x0 (the other groups' signal) on g2's rows.
    assert np.corrcoef(logits[held], x[held, 0])[0, 1] > 0.5


def test_train_fits_and_saves_the_marginals_map(tmp_path: Path) -> None:
    x, rewards = synthetic(n=240, m=8, seed=4)
    writer = DatasetWriter(tmp_path / "run", {"model": "synthetic", "samples": 8}, resume=True)
    ids = []
    for i, row in enumerate(rewards):
        metadata = {"split": ["train", "val"][i % 2], "family": f"f{i % 4}"}
        request = Request(prompt=f"p{i}", id=f"r{i}", metadata=metadata)
        writer.append(request_row(request, list(row), [1] * 8, 1), [])
        ids.append(request.id)
    save_features(tmp_path / "run" / "features", ids, x, {"encoder": "scripted"})
    args = ["train", "--dataset", str(tmp_path / "run"), "--out", str(tmp_path / "probe")]
    args += ["--split-column", "split", "--calibration", "temperature", "--hidden-dim", "16"]
    args += ["--epochs", "60", "--patience", "10", "--quiet", "--marginals-map-groups", "family"]
    assert main(args) == 0
    fitted = BetaMarginalsMap.from_checkpoint_config(load_checkpoint(tmp_path / "probe").config)
    assert fitted is not None and fitted.fitted_on["groups"] == 4
    assert fitted.beta0 > 0.25  # the signal transfers across these groups: the probe is trusted
    assert main([*args[:-2]]) == 0  # without the option: no map, the plug-in rows are served
    assert ProbePredictor.load(tmp_path / "probe", encoder=object()).marginals_map is None  # type: ignore[arg-type]
