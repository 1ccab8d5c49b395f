"""Labels: λ, the unbiased best-of-j curve, Δ vectors and routing preferences, by hand."""

import math
from pathlib import Path

import numpy as np
import pytest

from howhard.errors import ConfigError
from howhard.training.dataset import Dataset
from howhard.training.labels import best_of_curve, labels_for, success_rate


def _dataset(ids: list[str], rewards: list[list[float]]) -> Dataset:
    return Dataset(
        path=Path("."),
        manifest={},
        ids=tuple(ids),
        prompts=tuple(f"prompt {i}" for i in ids),
        references=tuple(None for _ in ids),
        rewards=np.asarray(rewards, dtype=np.float64),
        rows=tuple({"id": i} for i in ids),
    )


def test_success_rate_is_the_share_of_correct_samples() -> None:
    np.testing.assert_allclose(
        success_rate([[1, 0, 0, 0], [1, 1, 0, 1], [0, 0, 0, 0]]), [0.25, 0.75, 0]
    )


def test_best_of_curve_is_one_minus_the_chance_that_j_draws_all_fail() -> None:
    # m = 4 samples, c correct: q_j = 1 - C(4 - c, j) / C(4, j).
    curve = best_of_curve([[1, 0, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0], [1, 1, 1, 1]], 4)
    np.testing.assert_allclose(curve[0], [1 / 4, 1 / 2, 3 / 4, 1])
    np.testing.assert_allclose(curve[1], [1 / 2, 5 / 6, 1, 1])
    np.testing.assert_allclose(curve[2], [0, 0, 0, 0])
    np.testing.assert_allclose(curve[3], [1, 1, 1, 1])
    m, c = 16, 3
    for j in range(1, 17):
        expected = 1 - math.comb(m - c, j) / math.comb(m, j)
        assert best_of_curve([[1] * c + [0] * (m - c)], 16)[0, j - 1] == pytest.approx(expected)


def test_lambda_labels_and_their_budget_default_to_the_sample_count() -> None:
    labels = labels_for(_dataset(["a", "b"], [[1, 0, 1, 0], [0, 0, 0, 1]]), "lambda")
    assert labels.ids == ("a", "b")
    np.testing.assert_allclose(labels.targets, [0.5, 0.25])
    assert labels.max_budget == 4


def test_lambda_head_refuses_real_valued_rewards() -> None:
    with pytest.raises(ConfigError, match=r"binary rewards .* found 0.3; use head='delta'"):
        labels_for(_dataset(["a"], [[0.3, 1.0]]), "lambda")


def test_delta_labels_are_expected_best_of_j_increments() -> None:
    # Rewards 0.2 and 0.8: E[best of 1] = 0.5, E[best of 2] = 0.8.
    labels = labels_for(_dataset(["a"], [[0.2, 0.8]]), "delta")
    np.testing.assert_allclose(labels.targets, [[0.5, 0.3]])
    # Three rewards 0, 0.5, 1: E1 = 0.5, E2 = (0.5 + 1 + 1) / 3, E3 = 1.
    labels = labels_for(_dataset(["a"], [[0.0, 1.0, 0.5]]), "delta")
    np.testing.assert_allclose(labels.targets, [[0.5, 2.5 / 3 - 0.5, 1 - 2.5 / 3]])


def test_preference_labels_average_the_sigmoid_of_reward_gaps_over_all_pairs() -> None:
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    strong = _dataset(["a", "b"], [[1.0, 0.0], [2.0, 2.0]])
    weak = _dataset(["b", "a"], [[0.0], [0.0]])  # other order: aligned by id
    labels = labels_for(strong, "preference", weak=weak)
    np.testing.assert_allclose(labels.targets, [(sig(1) + sig(0)) / 2, sig(2)])
    assert labels.max_budget == 1
    with pytest.raises(ConfigError, match="needs the weak procedure's dataset"):
        labels_for(strong, "preference")
    with pytest.raises(ConfigError, match="missing from the weak one"):
        labels_for(strong, "preference", weak=_dataset(["a"], [[0.0]]))


def test_uneven_sample_counts_are_refused_with_a_fix() -> None:
    with pytest.raises(ConfigError, match="same number of samples"):
        labels_for(_dataset(["a", "b"], [[1.0, 0.0], [1.0, np.nan]]), "lambda")
