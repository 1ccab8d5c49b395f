"""Table 1 metrics, ECE, Spearman and the calibrators, against hand-computed values."""

import math

import numpy as np
import pytest
from scipy.stats import spearmanr

from howhard.probes.calibration import apply_isotonic, fit_isotonic, fit_temperature, sigmoid
from howhard.probes.metrics import (
    above_median_accuracy,
    binary_cross_entropy,
    expected_calibration_error,
    probe_metrics,
    spearman,
)


def test_cross_entropy_on_soft_labels() -> None:
    assert binary_cross_entropy([0.5], [0.25]) == pytest.approx(math.log(2))
    expected = -(0.25 * math.log(0.8) + 0.75 * math.log(0.2))
    assert binary_cross_entropy([0.8], [0.25]) == pytest.approx(expected)


def test_table1_losses_bracket_a_perfect_and_a_constant_predictor() -> None:
    y = np.array([0.0, 0.25, 0.5, 1.0])
    m = probe_metrics("lambda", y, y, train_mean=0.5)
    assert m["loss"] == pytest.approx(m["opt_loss"])  # perfect predictor reaches Opt.
    assert m["avg_loss"] == pytest.approx(math.log(2))  # predicting 0.5 everywhere
    entropy = binary_cross_entropy([0.25], [0.25]) + math.log(2)  # 0 and 1 have no entropy
    assert m["opt_loss"] == pytest.approx(entropy / 4)
    assert (m["accuracy"], m["spearman"], m["ece"]) == (1.0, pytest.approx(1.0), 0.0)
    delta = probe_metrics("delta", [[0.5, 0.1]], [[0.4, 0.2]], train_mean=[0.4, 0.2])
    assert delta["loss"] == pytest.approx(0.02)
    assert (delta["avg_loss"], delta["opt_loss"]) == (0.0, 0.0)


def test_above_median_accuracy_ranks_as_many_positives_as_the_labels_have() -> None:
    y = [0.0, 0.0, 0.0, 0.5, 0.9]  # median 0: two positives
    assert above_median_accuracy([0.1, 0.2, 0.3, 0.8, 0.7], y) == 1.0
    assert above_median_accuracy([0.9, 0.8, 0.3, 0.1, 0.2], y) == pytest.approx(0.2)


def test_spearman_matches_scipy_with_ties() -> None:
    rng = np.random.default_rng(1)
    a = rng.integers(0, 5, 50).astype(float)
    b = a + rng.normal(0, 2, 50)
    assert spearman(a, b) == pytest.approx(spearmanr(a, b).statistic)
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))


def test_ece_is_the_weighted_gap_between_confidence_and_outcome() -> None:
    # One bin at 0.15 with labels averaging 0.35, one at 0.95 with 0.95.
    assert expected_calibration_error([0.15, 0.15, 0.95], [0.3, 0.4, 0.95]) == pytest.approx(
        2 / 3 * 0.2
    )


def test_temperature_scaling_recovers_an_overconfident_scale() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, 2000)
    labels = sigmoid(logits / 2.5)  # soft labels from a model that is 2.5x overconfident
    assert fit_temperature(logits, labels) == pytest.approx(2.5, rel=1e-3)


def test_isotonic_fit_is_monotone_and_averages_violators() -> None:
    x, y = fit_isotonic([0.1, 0.2, 0.3, 0.4], [0.0, 0.6, 0.2, 1.0])
    assert np.all(np.diff(y) >= 0)
    np.testing.assert_allclose(apply_isotonic([0.1, 0.25, 0.4], x, y), [0.0, 0.4, 1.0])
