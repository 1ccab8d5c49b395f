"""Exact curves for sequential best-of-k, and the offline fits behind its priors.

A request with ``m`` stored samples, ``c`` passing, drawn in a uniformly random order without
replacement: the chance its first ``F`` draws all fail is ``C(m - c, F) / C(m, F)`` (an unbiased
estimate of ``(1 - λ)^F`` for ``F ≤ m``). A policy whose decisions depend only on the failures
seen so far (a fixed prior and a fixed price: a threshold policy) stops at its first pass or
after a deterministic number of rounds, so its expected samples and success follow exactly;
sweeping the price traces its whole curve. These closed forms check the simulator and give the
uniform-cap and known-λ ("sequential oracle") curves.

The fits (train/val data only): the prior's zero-inflated logit-normal in the probe logit, by
maximum marginal likelihood of the val counts (:func:`fit_prior`); the starting strength
weights of :class:`~howhard.policies.priors.OnlinePrior`, on how probes trained without a
family predict it (:func:`fit_transfer`, :func:`family_logits`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from howhard.errors import ConfigError
from howhard.marginals import log_factorials
from howhard.policies.priors import OnlinePrior, OnlinePriorConfig, PriorFit
from howhard.posterior import GRID, log_lik_counts, logsumexp, round_sizes

__all__ = [
    "crossfit_logits",
    "family_logits",
    "fit_prior",
    "fit_transfer",
    "fit_val_prior",
    "p_all_fail",
    "probe_logits",
    "sequential_outcome",
    "spend_to_reach",
    "success_at",
    "threshold_curve",
    "uniform_cap_curve",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def _log_comb(n: npt.ArrayLike, k: npt.ArrayLike) -> FloatArray:
    nn = np.asarray(n, dtype=np.int64)
    kk = np.asarray(k, dtype=np.int64)
    log_fact = log_factorials(max(int(nn.max(initial=0)), 0) + 1)
    ok = (kk >= 0) & (kk <= nn)
    safe_k, safe_n = np.where(ok, kk, 0), np.where(ok, nn, 0)
    out = log_fact[safe_n] - log_fact[safe_k] - log_fact[safe_n - safe_k]
    result: FloatArray = np.where(ok, out, -np.inf)
    return result


def p_all_fail(m: int, successes: npt.ArrayLike, draws: npt.ArrayLike) -> FloatArray:
    """P(the first ``draws`` of a random order of ``m`` samples, ``successes`` passing, fail)."""
    c = np.asarray(successes, dtype=np.int64)
    d = np.asarray(draws, dtype=np.int64)
    result: FloatArray = np.exp(_log_comb(m - c, d) - _log_comb(np.full_like(d, m), d))
    return result


def _ends(schedule: tuple[int, ...], max_budget: int) -> IntArray:
    return np.cumsum(round_sizes(0, 0, schedule, max_budget)).astype(np.int64)


def sequential_outcome(
    successes: npt.ArrayLike, m: int, caps: npt.ArrayLike, ends: IntArray
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Expected ``(samples, success, rounds)`` per request that runs rounds (cumulative sizes
    ``ends``) until a pass or until its draws reach ``caps[i]`` (0 or a value of ``ends``)."""
    c = np.asarray(successes, dtype=np.int64)
    cap = np.asarray(caps, dtype=np.int64)
    starts = np.concatenate([[0], ends[:-1]])
    alive = p_all_fail(m, c[:, None], np.broadcast_to(starts[None, :], (len(c), len(starts))))
    granted = starts[None, :] < cap[:, None]
    samples = (alive * (ends - starts)[None, :] * granted).sum(axis=1)
    rounds = (alive * granted).sum(axis=1)
    success = 1.0 - p_all_fail(m, c, cap)
    return samples, success, rounds


def uniform_cap_curve(
    rewards: npt.ArrayLike, max_cap: int, schedule: tuple[int, ...] = (1,)
) -> FloatArray:
    """Rows ``(cap, samples, success, rounds)``: stop at the first pass or at ``cap`` samples."""
    r = np.asarray(rewards, dtype=np.float64)
    n, m = r.shape
    c = r.sum(axis=1).astype(np.int64)
    rows = []
    for cap in range(1, max_cap + 1):
        s, ok, rd = sequential_outcome(c, m, np.full(n, cap), _ends(schedule, cap))
        rows.append((cap, s.mean(), ok.mean(), rd.mean()))
    return np.array(rows)


def _round_values(log_w: FloatArray, ends: IntArray) -> FloatArray:
    w = np.exp(log_w - logsumexp(log_w, axis=1, keepdims=True))
    starts = np.concatenate([[0], ends[:-1]])
    pw = np.power.outer(1.0 - GRID, np.arange(0, int(ends[-1]) + 1, dtype=np.float64))
    s0, s1 = w @ pw[:, starts], w @ pw[:, ends]
    with np.errstate(invalid="ignore", divide="ignore"):
        v = np.where(s0 > 1e-300, (s0 - s1) / s0 / (ends - starts)[None, :], 0.0)
    result: FloatArray = np.minimum.accumulate(v, axis=1)
    return result


def threshold_curve(
    log_w: FloatArray,
    rewards: npt.ArrayLike,
    *,
    max_budget: int,
    schedule: tuple[int, ...] = (1,),
    min_budget: int = 1,
) -> FloatArray:
    """Rows ``(price, samples, success, rounds)`` of the fixed-prior threshold policy, sorted
    by samples: at price ``p`` a request runs its rounds while each is worth ``≥ p`` per unit.

    ``log_w``: ``(n, 162)`` each request's prior; ``rewards``: ``(n, m)`` its stored samples.
    """
    r = np.asarray(rewards, dtype=np.float64)
    m = r.shape[1]
    ends = _ends(schedule, max_budget)
    v = _round_values(log_w, ends)
    c = r.sum(axis=1).astype(np.int64)
    prices = np.unique(np.concatenate([[0.0], v.ravel()]))
    forced = int(np.searchsorted(ends, min_budget)) + 1 if min_budget > 0 else 0
    rows = []
    for p in prices:
        granted = (v >= p) & (v > 0) if p > 0 else np.ones_like(v, dtype=bool)
        granted[:, :forced] = True
        k = granted.sum(axis=1)  # a prefix: values are non-increasing
        cap = np.where(k > 0, ends[np.maximum(k - 1, 0)], 0)
        s, ok, rd = sequential_outcome(c, m, cap, ends)
        rows.append((p, s.mean(), ok.mean(), rd.mean()))
    out = np.array(rows)
    result: FloatArray = out[np.argsort(out[:, 1], kind="stable")]
    return result


def known_lambda_prior(rewards: npt.ArrayLike) -> FloatArray:
    """``(n, 162)`` point masses at each request's measured λ (the sequential oracle)."""
    lam = np.asarray(rewards, dtype=np.float64).mean(axis=1)
    out = np.full((len(lam), len(GRID)), -np.inf)
    out[np.arange(len(lam)), np.abs(GRID[None, :] - lam[:, None]).argmin(axis=1)] = 0.0
    return out


def _hull(x: FloatArray, y: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Upper concave hull of the points, non-decreasing part (a randomised price mixes two
    neighbouring points, so the hull is achievable)."""
    order = np.lexsort((-y, x))
    pts: list[tuple[float, float]] = []
    for xi, yi in zip(x[order], y[order], strict=True):
        if pts and yi <= pts[-1][1]:
            continue
        while len(pts) >= 2:
            (x1, y1), (x2, y2) = pts[-2], pts[-1]
            if (y2 - y1) * (xi - x1) <= (yi - y1) * (x2 - x1):
                pts.pop()
            else:
                break
        pts.append((float(xi), float(yi)))
    a = np.array(pts)
    return a[:, 0], a[:, 1]


def success_at(curve: FloatArray, budget: float) -> float:
    """Success at an average spend, on the curve's upper hull (nan beyond its last point)."""
    x, y = _hull(curve[:, 1], curve[:, 2])
    if budget > x[-1] + 1e-9:
        return float("nan")
    return float(np.interp(budget, x, y))


def spend_to_reach(curve: FloatArray, target: float) -> float:
    """Least average spend reaching ``target`` success on the hull (nan if never reached)."""
    x, y = _hull(curve[:, 1], curve[:, 2])
    if y[-1] < target - 1e-12:
        return float("nan")
    i = int(np.searchsorted(y, target - 1e-12))
    if i == 0:
        return float(x[0])
    return float(x[i - 1] + (target - y[i - 1]) * (x[i] - x[i - 1]) / (y[i] - y[i - 1]))


def fit_prior(z: npt.ArrayLike, passes: npt.ArrayLike, fails: npt.ArrayLike) -> PriorFit:
    """The zero-inflated logit-normal prior maximising the marginal likelihood of the counts.

    Needs scipy (``pip install 'howhard[plots]'``), an offline dependency only.
    """
    try:
        from scipy.optimize import minimize
    except ImportError as exc:  # pragma: no cover - scipy ships with the plots extra
        raise ConfigError("fit_prior needs scipy: pip install 'howhard[plots]'") from exc
    zz = np.asarray(z, dtype=np.float64)
    lik = log_lik_counts(passes, fails)

    def loss(x: FloatArray) -> float:
        fit = PriorFit(a0=x[0], a1=x[1], sigma=math.exp(x[2]), c0=x[3], c1=x[4])
        ll = logsumexp(fit.log_weights(zz) + lik, axis=1).sum()
        return float(-ll + 1e-3 * float(((x - start) ** 2).sum()))

    start = np.array([-1.0, 1.0, 0.0, -2.0, -0.5])
    best = minimize(
        loss, start, method="Nelder-Mead", options={"maxiter": 4000, "xatol": 1e-4, "fatol": 1e-6}
    )
    x = best.x
    return PriorFit(a0=x[0], a1=x[1], sigma=math.exp(x[2]), c0=x[3], c1=x[4])


def probe_logits(success_prob: npt.ArrayLike) -> FloatArray:
    """The probe's predicted single-sample success as logits (clipped away from 0 and 1)."""
    p = np.clip(np.asarray(success_prob, dtype=np.float64), 1e-6, 1 - 1e-6)
    result: FloatArray = np.log(p) - np.log1p(-p)
    return result


def fit_val_prior(
    success_prob: npt.ArrayLike, rewards: npt.ArrayLike, val: npt.ArrayLike
) -> OnlinePriorConfig:
    """The prior's config fitted on the ``val`` rows: :func:`fit_prior` on their probe logits
    and counts, with the logits' mean and variance (the strength hypotheses centre on them)."""
    keep = np.asarray(val, dtype=bool)
    z = probe_logits(success_prob)[keep]
    r = np.asarray(rewards, dtype=np.float64)[keep]
    passes = r.sum(axis=1)
    fit = fit_prior(z, passes, r.shape[1] - passes)
    return OnlinePriorConfig(fit=fit, z_mean=float(z.mean()), z_var=float(z.var()))


def fit_transfer(
    config: OnlinePriorConfig,
    z_out: npt.ArrayLike,
    passes: npt.ArrayLike,
    fails: npt.ArrayLike,
    groups: Sequence[str],
    *,
    pseudo_requests: float = 20.0,
) -> OnlinePriorConfig:
    """``config`` with starting strength weights fitted on out-of-family predictions ``z_out``
    (each group's rows scored by a probe that never saw the group).

    The strength κ and the shift spread τ are shared, each group has its own shift; the
    strength weights are the marginal posterior of κ, tempered to the evidence of
    ``pseudo_requests`` requests so the stream's own feedback dominates quickly. The τ
    weights stay as ``config`` has them (fitted the same way they made no difference on the
    val split's streams), so a stream of the probe's own families learns a small spread.
    """
    source = OnlinePrior(config.model_copy(update={"kappa_weights": None}))
    shape = (len(config.kappas), len(config.shifts))
    lik = log_lik_counts(passes, fails)
    ll = np.array(
        [
            logsumexp(np.log(np.maximum(source._hypotheses(float(z)), 1e-300)) + lik[i], axis=1)
            for i, z in enumerate(np.asarray(z_out, dtype=np.float64))
        ]
    ).reshape(-1, *shape)
    g = np.asarray(groups)
    ev = sum(source.group_evidence(ll[g == key].sum(axis=0)) for key in np.unique(g))
    ev_k = logsumexp(np.asarray(ev, dtype=np.float64) + source.spread_log_prior()[None, :], axis=1)
    temper = min(1.0, pseudo_requests / max(len(ll), 1))
    log_k = temper * (ev_k - logsumexp(ev_k))
    weights = np.exp(log_k - logsumexp(log_k))
    return config.model_copy(update={"kappa_weights": tuple(round(float(w), 4) for w in weights)})


def family_logits(
    features: npt.ArrayLike,
    success: npt.ArrayLike,
    families: Sequence[str],
    splits: Sequence[str],
    others: Sequence[npt.ArrayLike],
    *,
    seed: int = 0,
) -> dict[str, list[FloatArray]]:
    """Leave-one-family-out λ probes: for each family, the shipped recipe (MLP, temperature
    calibration on the val split) trained on every *other* family's train/val rows.

    Returns ``{family: [logits on features, logits on others[0], …]}``; a family's own rows
    are then predictions of a probe that never saw it.
    """
    from howhard.training.train import TrainConfig, train_probe

    x = np.asarray(features, dtype=np.float32)
    y = np.asarray(success, dtype=np.float64)
    fam = np.asarray(families)
    config = TrainConfig(head="lambda", calibration="temperature", max_budget=16, seed=seed)
    out: dict[str, list[FloatArray]] = {}
    for family in sorted(set(families)):
        keep = fam != family
        probe = train_probe(
            x[keep],
            y[keep],
            config,
            assignments=[s for s, k in zip(splits, keep, strict=True) if k],
        ).probe
        out[family] = [
            np.asarray(probe.raw(a), dtype=np.float64) / probe.temperature for a in (x, *others)
        ]
    return out


def crossfit_logits(
    features: npt.ArrayLike,
    success: npt.ArrayLike,
    splits: Sequence[str],
    *,
    folds: int = 5,
    seed: int = 0,
) -> FloatArray:
    """Probe logits for the train rows, each from a probe that did not train on it (``folds``
    probes of the shipped recipe, early-stopped and calibrated on the val rows); other rows 0.

    A model fitted on the shipped probe's own train logits would learn in-sample confidence.
    """
    from howhard.training.train import TrainConfig, train_probe

    x = np.asarray(features, dtype=np.float32)
    y = np.asarray(success, dtype=np.float64)
    split = np.asarray(splits)
    train, val = np.flatnonzero(split == "train"), np.flatnonzero(split == "val")
    config = TrainConfig(head="lambda", calibration="temperature", max_budget=16, seed=seed)
    z = np.zeros(len(x))
    for held in np.array_split(np.random.default_rng(seed).permutation(train), folds):
        rows = np.concatenate([np.setdiff1d(train, held), val])
        probe = train_probe(x[rows], y[rows], config, assignments=list(split[rows])).probe
        z[held] = np.asarray(probe.raw(x[held]), dtype=np.float64) / probe.temperature
    return z
