"""The marginals map and its posterior: exact Beta maths, order-free updates, JSON round trips."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from howhard.errors import ConfigError
from howhard.policies import allocate
from howhard.probes import BetaMarginalsMap, GroupPosterior, fit_marginals_map
from howhard.probes.marginals_map import beta_binomial_loglik, beta_fail_moments


def log_beta(p: float, q: float) -> float:
    return math.lgamma(p) + math.lgamma(q) - math.lgamma(p + q)


@pytest.mark.parametrize("dispersion", ["alpha", "phi"])
def test_fail_moments_equal_the_closed_form(dispersion: str) -> None:
    mu, shape = np.array([0.05, 0.3, 0.8]), np.array([0.5, 1.0, 3.0])
    moments = beta_fail_moments(mu, shape, 16, dispersion)
    for i in range(3):
        if dispersion == "alpha":
            p, q = shape[i], shape[i] * (1 - mu[i]) / mu[i]
        else:
            p, q = mu[i] * shape[i], (1 - mu[i]) * shape[i]
        for j in (0, 1, 2, 7, 16):
            expected = math.exp(log_beta(p, q + j) - log_beta(p, q))  # E[(1-λ)^j]
            assert moments[i, j] == pytest.approx(expected, rel=1e-10)


def test_fail_moments_match_monte_carlo() -> None:
    rng = np.random.default_rng(0)
    lam = rng.beta(0.7, 0.7 * (1 - 0.2) / 0.2, size=400_000)
    moments = beta_fail_moments(0.2, 0.7, 8)
    for j in (1, 4, 8):
        assert moments[j] == pytest.approx(np.mean((1 - lam) ** j), abs=3e-3)


def test_beta_binomial_likelihood_sums_to_one() -> None:
    total = sum(
        math.comb(6, k) * math.exp(float(beta_binomial_loglik(k, 6, 0.2, 1.5))) for k in range(7)
    )
    assert total == pytest.approx(1.0, abs=1e-12)


def test_without_probe_weight_and_one_group_the_split_is_uniform() -> None:
    posterior = GroupPosterior(BetaMarginalsMap(beta_grid=(0.0,), beta0=0.0))
    z = np.random.default_rng(0).normal(size=32)
    rows = posterior.predict(z, ["g"] * 32)
    assert np.allclose(rows, rows[0])
    assert set(allocate(rows, 4 * 32, min_budget=1).tolist()) == {4}


def test_a_group_whose_feedback_fails_is_served_below_a_fresh_group() -> None:
    posterior = GroupPosterior(BetaMarginalsMap())
    z = np.zeros(20)
    posterior.observe(z, ["bad"] * 20, np.full(20, 8), np.zeros(20))
    posterior.observe(z, ["good"] * 20, np.full(20, 8), np.full(20, 4))
    rows = posterior.predict(np.zeros(3), ["bad", "good", "new"])
    assert rows[0, 0] < rows[2, 0] < rows[1, 0]
    assert posterior.observations == 40 and posterior.groups == 2


def test_rows_are_non_increasing_and_non_negative() -> None:
    posterior = GroupPosterior(BetaMarginalsMap(a0=-1.0, beta0=0.5))
    rows = posterior.predict(np.linspace(-6, 6, 25), ["*"] * 25, 16)
    assert rows.shape == (25, 16)
    assert (rows >= 0).all() and (np.diff(rows, axis=1) <= 1e-15).all()


def test_observing_a_batch_at_once_or_one_by_one_gives_the_same_rows() -> None:
    rng = np.random.default_rng(3)
    z = rng.normal(size=12)
    keys = [f"g{k}" for k in rng.integers(0, 3, 12)]
    b = rng.integers(1, 9, 12)
    k = rng.binomial(b, 0.3)
    together, apart = GroupPosterior(BetaMarginalsMap()), GroupPosterior(BetaMarginalsMap())
    together.observe(z, keys, b, k)
    for i in reversed(range(12)):
        apart.observe(z[i : i + 1], keys[i : i + 1], b[i : i + 1], k[i : i + 1])
    probe = rng.normal(size=4)
    assert np.allclose(
        together.predict(probe, ["g0", "g1", "g2", "new"]),
        apart.predict(probe, ["g0", "g1", "g2", "new"]),
    )


def test_forgetting_the_oldest_group_removes_its_evidence() -> None:
    capped = GroupPosterior(BetaMarginalsMap(), max_groups=1)
    fresh = GroupPosterior(BetaMarginalsMap())
    capped.observe(np.zeros(10), ["old"] * 10, np.full(10, 8), np.zeros(10))
    capped.observe(np.zeros(2), ["new"] * 2, np.full(2, 4), np.full(2, 2))
    fresh.observe(np.zeros(2), ["new"] * 2, np.full(2, 4), np.full(2, 2))
    assert capped.groups == 1
    assert np.allclose(capped.shared_posterior(), fresh.shared_posterior())


def test_bad_feedback_is_refused() -> None:
    posterior = GroupPosterior(BetaMarginalsMap())
    with pytest.raises(ConfigError, match="successes"):
        posterior.observe([0.0], ["g"], [2], [3])
    with pytest.raises(ConfigError, match="finite"):
        posterior.predict([float("nan")], ["g"])


def test_map_round_trips_through_json_and_rejects_bad_priors() -> None:
    fitted = BetaMarginalsMap(a0=-1.0, beta0=0.5, tau_prior=(0.1, 0.2, 0.6, 0.1))
    again = BetaMarginalsMap(**json.loads(json.dumps(fitted.model_dump(mode="json"))))
    assert again == fitted
    assert BetaMarginalsMap.from_checkpoint_config({"marginals_map": fitted.model_dump()}) == fitted
    assert BetaMarginalsMap.from_checkpoint_config({}) is None
    with pytest.raises(ConfigError, match="tau_prior"):
        BetaMarginalsMap(tau_prior=(1.0, 2.0))


def test_offline_fit_recovers_an_untrustworthy_probe() -> None:
    # Families whose offsets differ and whose logits carry no information about λ.
    rng = np.random.default_rng(1)
    groups = [f"f{i % 8}" for i in range(800)]
    offset = {f"f{i}": rng.normal(0, 1.0) for i in range(8)}
    lam = np.array([1 / (1 + math.exp(-(-1.0 + offset[g]))) for g in groups])
    successes = rng.binomial(16, lam)
    fitted = fit_marginals_map(rng.normal(size=800), groups, successes, np.full(800, 16))
    assert fitted.beta0 < 0.25  # the probe is not trusted
    assert -1.75 <= fitted.a0 <= -0.25
    assert fitted.fitted_on["groups"] == 8
