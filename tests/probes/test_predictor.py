"""ProbePredictor: a saved probe and an injected encoder serve marginals to a policy."""

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from howhard.backends import ScriptedBackend
from howhard.errors import BackendError, ConfigError
from howhard.policies import AdaptivePolicy, OnlineAllocator, Predictor, marginals_from_success_prob
from howhard.probes import ProbePredictor, save_checkpoint
from howhard.training.train import TrainConfig, train_probe
from howhard.types import Request

pytestmark = pytest.mark.anyio


async def test_probe_predictor_serves_geometric_marginals_to_an_adaptive_policy(
    tmp_path: Path,
) -> None:
    # The scripted encoder's features are pseudo-random per prompt; λ is a function of them.
    encoder = ScriptedBackend(hidden_size=8)
    prompts = [f"question {i}" for i in range(200)]
    x = await encoder.encode(prompts)
    lam = 1 / (1 + np.exp(-3 * x[:, 0]))
    config = TrainConfig(hidden_dim=16, lr=1e-2, batch_size=200, max_epochs=200, max_budget=6)
    description = {"encoder": "scripted", "options": {"hidden_size": 8}}
    result = train_probe(x, lam, config, encoder=description)
    save_checkpoint(tmp_path / "probe", result.checkpoint.tensors, result.checkpoint.config)

    predictor = ProbePredictor.load(tmp_path / "probe")  # builds the recorded scripted encoder
    assert isinstance(predictor, Predictor) and predictor.max_budget == 6
    requests = [Request(prompt=p) for p in prompts[:20]]
    marginals = await predictor.predict(requests)
    served = result.probe.predict(x[:20])
    np.testing.assert_allclose(marginals, marginals_from_success_prob(served, 6))
    assert np.corrcoef(served, lam[:20])[0, 1] > 0.9

    policy = AdaptivePolicy(predictor, OnlineAllocator(average_budget=2.0, max_budget=6))
    budgets = await policy.allocate(requests, 40)
    assert sum(budgets) <= 40 and max(budgets) <= 6
    await predictor.aclose()


async def test_probe_predictor_refuses_features_of_the_wrong_size(tmp_path: Path) -> None:
    x = np.random.default_rng(0).standard_normal((40, 8)).astype(np.float32)
    result = train_probe(x, np.full(40, 0.5), TrainConfig(hidden_dim=4, max_epochs=2))
    save_checkpoint(tmp_path / "probe", result.checkpoint.tensors, result.checkpoint.config)
    predictor = ProbePredictor.load(tmp_path / "probe", encoder=ScriptedBackend(hidden_size=5))
    with pytest.raises(ConfigError, match=r"features must have shape \(n, 8\) for this probe"):
        await predictor.predict([Request(prompt="a")])
    with pytest.raises(ConfigError, match="records no encoder"):
        ProbePredictor.load(tmp_path / "probe")


class DroppingEncoder:
    """An encoder that breaks its contract: one feature row fewer than prompts."""

    async def encode(self, prompts: Sequence[str]) -> npt.NDArray[np.float32]:
        return np.zeros((len(prompts) - 1, 8), dtype=np.float32)


async def test_probe_predictor_refuses_an_encoder_that_returns_the_wrong_row_count(
    tmp_path: Path,
) -> None:
    x = np.random.default_rng(0).standard_normal((40, 8)).astype(np.float32)
    result = train_probe(x, np.full(40, 0.5), TrainConfig(hidden_dim=4, max_epochs=2))
    save_checkpoint(tmp_path / "probe", result.checkpoint.tensors, result.checkpoint.config)
    predictor = ProbePredictor.load(tmp_path / "probe", encoder=DroppingEncoder())
    requests = [Request(prompt="a"), Request(prompt="b"), Request(prompt="c")]
    with pytest.raises(
        BackendError, match=r"encoder DroppingEncoder returned features of shape \(2, 8\) for 3"
    ):
        await predictor.predict(requests)


def test_the_old_import_path_still_works_with_a_deprecation_warning() -> None:
    import howhard.policies

    with pytest.warns(DeprecationWarning, match="moved to howhard.probes.ProbePredictor"):
        assert howhard.policies.ProbePredictor is ProbePredictor
