"""Baseline predictors: a constant row for every request, and the oracle's true marginals."""

import numpy as np
import pytest

from howhard.errors import ConfigError
from howhard.policies import ConstantPredictor, OraclePredictor, Predictor
from howhard.types import Request

pytestmark = pytest.mark.anyio


async def test_constant_predictor_repeats_one_row() -> None:
    predictor = ConstantPredictor(success_prob=0.5, max_budget=3)
    assert isinstance(predictor, Predictor)
    out = await predictor.predict([Request(prompt="a"), Request(prompt="b")])
    np.testing.assert_allclose(out, [[0.5, 0.25, 0.125]] * 2)
    row = await ConstantPredictor(marginals=[0.3, 0.1], max_budget=3).predict([Request(prompt="a")])
    np.testing.assert_allclose(row, [[0.3, 0.1, 0.0]])
    with pytest.raises(ConfigError, match="exactly one of"):
        ConstantPredictor(max_budget=3)


async def test_oracle_reads_true_values_from_metadata_or_a_table() -> None:
    requests = [
        Request(prompt="a", id="a", metadata={"marginals": 0.5}),
        Request(prompt="b", id="b", metadata={"marginals": [0.4, 0.2, 0.1, 0.05]}),
    ]
    out = await OraclePredictor(max_budget=2).predict(requests)
    np.testing.assert_allclose(out, [[0.5, 0.25], [0.4, 0.2]])
    table = await OraclePredictor(max_budget=2, table={"a": 1.0, "b": 0.0}).predict(requests)
    np.testing.assert_allclose(table, [[1.0, 0.0], [0.0, 0.0]])
    with pytest.raises(ConfigError, match=r"request 'x' has no metadata\['marginals'\]"):
        await OraclePredictor(max_budget=2).predict([Request(prompt="x", id="x")])


async def test_oracle_from_collected_rewards_serves_lambda_or_exact_delta_rows() -> None:
    class Collected:
        ids = ("a", "b")
        rewards = np.array([[1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 0.0, 1.0]])

    requests = [Request(prompt="a", id="a"), Request(prompt="b", id="b")]
    lam = await OraclePredictor.from_dataset(Collected(), max_budget=2).predict(requests)
    np.testing.assert_allclose(lam, [[0.25, 0.1875], [0.75, 0.1875]])
    delta = await OraclePredictor.from_dataset(Collected(), max_budget=2, head="delta").predict(
        requests
    )
    # Without replacement from 4 samples: E[best of 1] = c/4, E[best of 2] = 1 - C(4-c,2)/C(4,2).
    np.testing.assert_allclose(delta, [[0.25, 0.25], [0.75, 0.25]])
    Collected.rewards = np.array([[0.5, 1.0, 0.0, 0.0], [1.0, 1.0, 0.0, 1.0]])
    with pytest.raises(ConfigError, match="binary rewards"):
        OraclePredictor.from_dataset(Collected(), max_budget=2)
