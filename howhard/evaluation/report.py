"""The benchmark report: quality-vs-compute curves, routing, allocation and calibration on a
held-out split, written as a markdown table and PNG plots.

Every number is an exact expectation over the collected samples: best-of-k quality from the
order statistics of each question's rewards, self-consistency from the exact majority-vote curve
(:mod:`howhard.evaluation.consistency`). Nothing is resampled, so the curves carry no bootstrap
noise. Predictions come from probes trained on the train split and calibrated on val; the val
split also fits the offline allocator and the self-consistency difficulty table. The test split
is only ever evaluated.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from howhard.evaluation.consistency import majority_vote_curves
from howhard.evaluation.curves import Curve

__all__ = [
    "BenchmarkReport",
    "SplitData",
    "best_of_k_quality",
    "build_report",
    "concave_marginals",
    "write_report",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

_SIGMOID_ONE = 1.0 / (1.0 + math.exp(-1.0))
_TABLE_BUDGETS = (1, 2, 4, 8, 16, 32)


@dataclass(frozen=True, slots=True, kw_only=True)
class SplitData:
    """One split's collected outcomes and the probes' predictions for it, aligned by row."""

    ids: tuple[str, ...]
    families: tuple[str, ...]
    rewards: FloatArray
    """``(n, m)`` binary rewards of the ``m`` samples per question."""
    answers: tuple[tuple[str | None, ...], ...]
    """``n`` rows of ``m`` canonical answers (what self-consistency votes on)."""
    tokens: IntArray
    """``(n, m)`` completion tokens per sample."""
    lambda_hat: FloatArray
    """``(n,)`` the λ probe's predicted single-sample success."""
    preference_hat: FloatArray | None = None
    """``(n,)`` the preference probe's P(strong ≻ weak), if one was trained."""

    def __post_init__(self) -> None:
        n = len(self.ids)
        shapes = {
            "rewards": self.rewards.shape[:1],
            "tokens": self.tokens.shape[:1],
            "lambda_hat": self.lambda_hat.shape,
            "answers": (len(self.answers),),
            "families": (len(self.families),),
        }
        if self.preference_hat is not None:
            shapes["preference_hat"] = self.preference_hat.shape
        bad = {k: v for k, v in shapes.items() if v != (n,)}
        if bad or self.rewards.ndim != 2:
            raise ValueError(f"split arrays must all have {n} rows (one per id), got {bad}")

    @property
    def success(self) -> FloatArray:
        """``(n,)`` empirical single-sample success λ."""
        result: FloatArray = self.rewards.mean(axis=1)
        return result


@dataclass(frozen=True, slots=True, kw_only=True)
class BenchmarkReport:
    """Everything ``howhard evaluate`` prints and plots, keyed by method."""

    budgets: FloatArray
    """Average budgets B (samples per question) the curves are evaluated at."""
    best_of_k: Mapping[str, Curve]
    """Expected success vs B with a verifier: uniform, online, online_plugin, offline, oracle."""
    best_of_k_savings: Mapping[str, FloatArray]
    """Compute saved vs uniform at matched success, at each point of each method's curve."""
    self_consistency: Mapping[str, Curve]
    """Expected success vs B with majority vote: uniform, online, oracle."""
    routing_fractions: FloatArray
    routing: Mapping[str, FloatArray]
    """Expected success vs fraction routed to the strong procedure: random, learned, oracle."""
    apgr: Mapping[str, float]
    strong_k: int
    tercile_budgets: tuple[int, ...]
    tercile_shares: FloatArray
    """``(len(tercile_budgets), 3)`` share of the budget to easy/medium/hard questions."""
    calibration: FloatArray
    """``(bins, 2)``: mean predicted λ and mean observed λ per equal-count bin."""
    probe_metrics: Mapping[str, float]
    info: Mapping[str, Any] = field(default_factory=dict)

    def quality(self, procedure: str, method: str) -> FloatArray:
        """Expected success of ``method`` per budget (``best_of_k`` or ``self_consistency``)."""
        curves = self.best_of_k if procedure == "best_of_k" else self.self_consistency
        return curves[method].quality

    def gain_share(self, method: str) -> FloatArray:
        """Share of the oracle's best-of-k gain over uniform that ``method`` captures, per B."""
        from howhard.evaluation import oracle_gain_fraction

        bok = self.best_of_k
        return oracle_gain_fraction(bok[method], bok["uniform"], bok["oracle"])

    def table(self) -> list[dict[str, float]]:
        """Rows of the headline table at the standard budgets."""
        rows = []
        for b in _TABLE_BUDGETS:
            if b > self.budgets[-1]:
                continue
            i = int(np.argmin(np.abs(self.budgets - b)))
            row: dict[str, float] = {"budget": float(b)}
            for method in self.best_of_k:
                row[method] = float(self.best_of_k[method].quality[i])
                row[f"{method}_saving"] = float(self.best_of_k_savings[method][i])
            for method in ("online", "offline"):
                row[f"{method}_gain_share"] = float(self.gain_share(method)[i])
            for method in self.self_consistency:
                row[f"sc_{method}"] = float(self.self_consistency[method].quality[i])
            rows.append(row)
        return rows


# ----------------------------------------------------------------------------- quality tables


def best_of_k_quality(rewards: npt.ArrayLike, max_budget: int) -> FloatArray:
    """``(n, max_budget + 1)`` exact expected best-of-k success for ``k = 0 … max_budget``.

    From ``m ≥ max_budget`` binary rewards with ``c`` successes, best-of-k (with a verifier) over
    a random k-subset succeeds with probability ``1 - C(m - c, k) / C(m, k)``.
    """
    from howhard.marginals import marginals_from_rewards

    marginals = marginals_from_rewards(np.asarray(rewards, dtype=np.float64), max_budget)
    zeros = np.zeros((marginals.shape[0], 1))
    result: FloatArray = np.concatenate([zeros, np.cumsum(marginals, axis=1)], axis=1)
    return result


def concave_marginals(quality: npt.ArrayLike) -> FloatArray:
    """Marginals ``(n, B)`` of each row's least concave majorant of ``quality`` ``(n, B + 1)``.

    Greedy allocation is exact only for non-increasing marginals; a majority vote's curve can dip
    (a tie at even ``k``), so the allocator is given its concave envelope, clipped at zero
    (units past the curve's peak are worth nothing). Results are always scored on the true curve.
    """
    q = np.asarray(quality, dtype=np.float64)
    out = np.zeros((q.shape[0], q.shape[1] - 1))
    for i, row in enumerate(q):
        hull = _upper_hull(row)
        out[i] = np.maximum(np.diff(hull), 0.0)
    # The hull's slopes are non-increasing; clipping keeps them so.
    return out


def _upper_hull(row: FloatArray) -> FloatArray:
    """Values at ``0 … B`` of the least concave majorant of the points ``(k, row[k])``."""
    points: list[int] = []
    for k in range(len(row)):
        while len(points) >= 2:
            a, b = points[-2], points[-1]
            # Drop b if it lies on or below the chord from a to k.
            if (row[b] - row[a]) * (k - a) <= (row[k] - row[a]) * (b - a):
                points.pop()
            else:
                break
        points.append(k)
    result: FloatArray = np.interp(np.arange(len(row)), points, row[points])
    return result


def _allocate(marginals: FloatArray, average: float) -> IntArray:
    from howhard.policies import allocate

    total = math.floor(average * marginals.shape[0] + 1e-9)
    result: IntArray = np.asarray(allocate(marginals, total), dtype=np.int64)
    return result


# ----------------------------------------------------------------------------- the curves


def heldout_quality(rewards: npt.ArrayLike, max_budget: int) -> FloatArray:
    """Best-of-k quality ``(n, max_budget + 1)`` of held-out questions with ``m`` samples each.

    Exact up to ``m`` (order statistics); past ``m`` each question continues with the geometric
    tail of its observed success rate, kept non-increasing, so a held-out set with fewer samples
    than ``max_budget`` still describes every budget.
    """
    from howhard.marginals import marginals_from_rewards, marginals_from_success_prob

    r = np.asarray(rewards, dtype=np.float64)
    m = r.shape[1]
    depth = min(m, max_budget)
    marginals = marginals_from_rewards(r, depth)
    if depth < max_budget:
        tail = marginals_from_success_prob(r.mean(axis=1), max_budget)[:, depth:]
        marginals = np.minimum.accumulate(np.concatenate([marginals, tail], axis=1), axis=1)
    zeros = np.zeros((r.shape[0], 1))
    result: FloatArray = np.concatenate([zeros, np.cumsum(marginals, axis=1)], axis=1)
    return result


def binned_curves(
    reference_quality: FloatArray,
    reference_scores: FloatArray,
    target_scores: FloatArray,
    *,
    n_bins: int = 10,
) -> FloatArray:
    """Predicted quality curves for targets: the mean held-out curve of their score bin.

    The held-out questions are cut into ``n_bins`` equal-count bins of predicted score; each
    target gets its bin's mean curve, an estimate of ``E[q(x, b) | score]``. Where the probe is
    unsure (a bin mixing impossible and easy questions) this keeps the mixture's shape, which the
    plug-in ``1 - (1 - λ̂)^b`` of the mean λ̂ does not: the plug-in over-spends on the bin.
    """
    edges = np.quantile(reference_scores, np.linspace(0, 1, n_bins + 1)[1:-1])
    ref_bin = np.searchsorted(edges, reference_scores, side="right")
    means = np.stack(
        [
            reference_quality[ref_bin == k].mean(axis=0)
            if np.any(ref_bin == k)
            else reference_quality.mean(axis=0)
            for k in range(n_bins)
        ]
    )
    result: FloatArray = means[np.searchsorted(edges, target_scores, side="right")]
    return result


def best_of_k_curves(
    test: SplitData,
    val: SplitData,
    budgets: FloatArray,
    max_budget: int,
    *,
    n_bins: int = 8,
    curve_bins: int = 10,
) -> dict[str, Curve]:
    """Expected best-of-k success vs average budget (the paper's Fig. 3, right column).

    Methods: ``uniform``; ``online`` (exact per-batch allocation on marginals predicted from λ̂
    through val: :func:`binned_curves`); ``online_plugin`` (the paper's recipe, marginals
    ``λ̂(1 - λ̂)^(j-1)``); ``offline`` (one budget per λ̂ bin, fitted on val); ``oracle``.
    """
    from howhard.evaluation import offline_curve, online_curve, oracle_curve, uniform_curve
    from howhard.marginals import marginals_from_success_prob

    true_marginals = np.diff(best_of_k_quality(test.rewards, max_budget), axis=1)
    val_quality = heldout_quality(val.rewards, max_budget)
    val_marginals = np.diff(val_quality, axis=1)
    predicted = np.diff(
        binned_curves(val_quality, val.lambda_hat, test.lambda_hat, n_bins=curve_bins), axis=1
    )
    plugin = marginals_from_success_prob(np.clip(test.lambda_hat, 0.0, 1.0), max_budget)
    return {
        "uniform": uniform_curve(true_marginals, budgets),
        "online": online_curve(true_marginals, predicted, budgets),
        "online_plugin": online_curve(true_marginals, plugin, budgets, name="online_plugin"),
        "offline": offline_curve(
            true_marginals, test.lambda_hat, val.lambda_hat, val_marginals, budgets, n_bins=n_bins
        ),
        "oracle": oracle_curve(true_marginals, budgets),
    }


def sc_predicted_curves(
    reference: SplitData, target_scores: FloatArray, max_budget: int, *, n_bins: int = 10
) -> FloatArray:
    """Predicted self-consistency curves ``(n_target, max_budget + 1)`` from λ̂ alone.

    Each target gets the mean majority-vote curve of the held-out questions in its λ̂ bin
    (:func:`binned_curves`); curves stay flat past the held-out sample count (no data there).
    """
    m = reference.rewards.shape[1]
    depth = min(m, max_budget)
    curves = majority_vote_curves(reference.answers, reference.rewards, depth)
    target = binned_curves(curves, reference.lambda_hat, target_scores, n_bins=n_bins)
    if depth < max_budget:
        pad = np.repeat(target[:, -1:], max_budget - depth, axis=1)
        target = np.concatenate([target, pad], axis=1)
    return target


def self_consistency_curves(
    test: SplitData, val: SplitData, budgets: FloatArray, max_budget: int
) -> tuple[dict[str, Curve], FloatArray]:
    """Expected majority-vote success vs average budget (no verifier at serving time).

    Returns the curves (uniform, online, oracle) and the test questions' true SC quality table.
    The allocator sees concave envelopes (:func:`concave_marginals`); success is always scored
    on the true curves, which may dip.
    """
    from howhard.evaluation import online_curve, uniform_curve

    quality = majority_vote_curves(test.answers, test.rewards, max_budget)
    true_marginals = np.diff(quality, axis=1)
    predicted = concave_marginals(sc_predicted_curves(val, test.lambda_hat, max_budget))
    oracle = concave_marginals(quality)
    curves = {
        "uniform": uniform_curve(true_marginals, budgets),
        "online": online_curve(true_marginals, predicted, budgets),
        "oracle": online_curve(true_marginals, oracle, budgets, name="oracle"),
    }
    return curves, quality


def routing_curves(
    weak: FloatArray, strong: FloatArray, learned_score: FloatArray, fractions: FloatArray
) -> tuple[dict[str, FloatArray], dict[str, float]]:
    """Expected success vs the fraction of questions routed to the strong procedure.

    ``weak``/``strong`` are each question's exact expected success under the two procedures;
    ``learned_score`` ranks questions for the learned router (highest first). Also returns APGR,
    the mean over ``fractions`` of the performance gap recovered ``(Q(f) - Q_weak) /
    (Q_strong - Q_weak)``.
    """
    n = len(weak)
    gain = strong - weak
    orders = {
        "learned": np.argsort(-learned_score, kind="stable"),
        "oracle": np.argsort(-gain, kind="stable"),
    }
    curves: dict[str, list[float]] = {"random": [], "learned": [], "oracle": []}
    base, top = float(weak.mean()), float(strong.mean())
    for f in fractions:
        k = round(f * n)
        curves["random"].append(base + (top - base) * k / n)
        for name, order in orders.items():
            curves[name].append(base + float(gain[order[:k]].sum()) / n)
    result = {k: np.asarray(v) for k, v in curves.items()}
    span = top - base
    apgr = {
        k: float(np.mean((v - base) / span)) if abs(span) > 1e-12 else float("nan")
        for k, v in result.items()
    }
    return result, apgr


def tercile_shares(lambda_hat: FloatArray, budgets: Sequence[int], max_budget: int) -> FloatArray:
    """Share of the online allocation going to predicted easy / medium / hard thirds (Fig. 6)."""
    from howhard.marginals import marginals_from_success_prob

    predicted = marginals_from_success_prob(np.clip(lambda_hat, 0.0, 1.0), max_budget)
    order = np.argsort(-lambda_hat, kind="stable")  # easiest (highest λ̂) first
    thirds = np.array_split(order, 3)
    shares = np.zeros((len(budgets), 3))
    for row, b in enumerate(budgets):
        alloc = _allocate(predicted, float(b))
        total = max(int(alloc.sum()), 1)
        shares[row] = [alloc[t].sum() / total for t in thirds]
    return shares


def calibration_bins(predicted: FloatArray, observed: FloatArray, bins: int = 10) -> FloatArray:
    """``(bins, 2)``: mean predicted vs mean observed over equal-count bins of ``predicted``."""
    order = np.argsort(predicted, kind="stable")
    return np.array(
        [[predicted[c].mean(), observed[c].mean()] for c in np.array_split(order, bins) if len(c)]
    )


def lambda_probe_metrics(
    predicted: FloatArray, observed: FloatArray, train_mean: float
) -> dict[str, float]:
    """The paper's Table 1 columns on soft labels: probe CE, Avg. CE, Opt. CE, above-median Acc."""
    eps = 1e-6

    def ce(p: FloatArray | float) -> float:
        q = np.clip(np.asarray(p, dtype=np.float64), eps, 1 - eps)
        return float(-(observed * np.log(q) + (1 - observed) * np.log(1 - q)).mean())

    median = float(np.median(observed))
    above = observed > median
    accuracy = float(((predicted > np.median(predicted)) == above).mean())
    bins = calibration_bins(predicted, observed)
    counts = np.array([len(c) for c in np.array_split(np.arange(len(predicted)), len(bins))])
    ece = float(np.sum(counts * np.abs(bins[:, 0] - bins[:, 1])) / counts.sum())
    return {
        "ours": ce(predicted),
        "avg": ce(np.full_like(observed, train_mean)),
        "opt": ce(observed),
        "acc": accuracy,
        "ece": ece,
        "spearman": _spearman(predicted, observed),
    }


def _spearman(a: FloatArray, b: FloatArray) -> float:
    def ranks(x: FloatArray) -> FloatArray:
        order = np.argsort(x, kind="stable")
        r = np.empty(len(x))
        r[order] = np.arange(len(x), dtype=np.float64)
        # Average ranks over ties so that many identical labels (λ = 0) do not add noise.
        for value in np.unique(x):
            mask = x == value
            r[mask] = r[mask].mean()
        return r

    ra, rb = ranks(a), ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


# ----------------------------------------------------------------------------- assembling


def build_report(
    test: SplitData,
    val: SplitData,
    *,
    train_mean_lambda: float,
    max_budget: int = 32,
    strong_k: int = 8,
    budget_step: float = 0.25,
    n_bins: int = 8,
    info: Mapping[str, Any] | None = None,
) -> BenchmarkReport:
    """Compute every curve and metric of the report on ``test`` (``val`` fits the tables)."""
    if test.rewards.shape[1] < max_budget:
        raise ValueError(
            f"max_budget={max_budget} needs at least that many samples per test question, "
            f"got {test.rewards.shape[1]}; lower max_budget or collect more samples"
        )
    budgets: FloatArray = np.arange(budget_step, max_budget + 1e-9, budget_step, dtype=np.float64)
    from howhard.evaluation import savings_vs_uniform

    bok = best_of_k_curves(test, val, budgets, max_budget, n_bins=n_bins)
    true_marginals = np.diff(best_of_k_quality(test.rewards, max_budget), axis=1)
    savings = {name: savings_vs_uniform(curve, true_marginals) for name, curve in bok.items()}
    sc, sc_quality = self_consistency_curves(test, val, budgets, max_budget)
    weak = test.success
    strong = sc_quality[:, strong_k]
    if test.preference_hat is not None:
        learned = test.preference_hat
    else:
        # Without a preference probe, rank by the gain a λ̂-matched val question gets.
        curves = sc_predicted_curves(val, test.lambda_hat, strong_k)
        learned = curves[:, strong_k] - test.lambda_hat
    fractions = np.linspace(0.0, 1.0, 21)
    routing, apgr = routing_curves(weak, strong, learned, fractions)
    tercile_budgets = tuple(b for b in (1, 2, 4, 8, 16, 32) if b <= max_budget)
    return BenchmarkReport(
        budgets=budgets,
        best_of_k=bok,
        best_of_k_savings=savings,
        self_consistency=sc,
        routing_fractions=fractions,
        routing=routing,
        apgr=apgr,
        strong_k=strong_k,
        tercile_budgets=tercile_budgets,
        tercile_shares=tercile_shares(test.lambda_hat, tercile_budgets, max_budget),
        calibration=calibration_bins(test.lambda_hat, weak),
        probe_metrics=lambda_probe_metrics(test.lambda_hat, weak, train_mean_lambda),
        info=dict(info or {}),
    )


# ----------------------------------------------------------------------------- writing


def _pct(x: float) -> str:
    return "n/a" if not math.isfinite(x) else f"{round(100 * x) + 0:.0f}%"


def _best_saving(report: BenchmarkReport, method: str, lo: float, hi: float) -> tuple[float, float]:
    """Largest saving at an integer budget in ``[lo, hi]``, and that budget."""
    b = report.budgets
    savings = report.best_of_k_savings[method]
    mask = (b >= lo) & (b <= hi) & np.isfinite(savings) & (np.mod(b, 1.0) == 0)
    if not mask.any():
        return float("nan"), float("nan")
    j = int(np.argmax(np.where(mask, savings, -np.inf)))
    return float(savings[j]), float(b[j])


def _mean_gain_share(report: BenchmarkReport, method: str, lo: float, hi: float) -> float:
    b = report.budgets
    shares = report.gain_share(method)
    mask = (b >= lo) & (b <= hi) & (np.mod(b, 1.0) == 0) & np.isfinite(shares)
    return float(shares[mask].mean()) if mask.any() else float("nan")


def _strong_call_saving(report: BenchmarkReport, method: str) -> float:
    """Share of strong calls saved while matching the all-strong success (routing)."""
    from howhard.evaluation import Curve, budget_to_reach

    f = report.routing_fractions
    curve = Curve(method, f, f, report.routing[method])
    needed = float(budget_to_reach(curve, report.routing[method][-1])[0])
    return 1.0 - needed if math.isfinite(needed) else float("nan")


def headline(report: BenchmarkReport) -> dict[str, float]:
    """The figures the README quotes: best savings in B ∈ [2, 16] and oracle-gain shares."""
    online_saving, online_at = _best_saving(report, "online", 2, 16)
    offline_saving, offline_at = _best_saving(report, "offline", 2, 16)
    oracle_saving, oracle_at = _best_saving(report, "oracle", 2, 16)
    return {
        "online_best_saving": online_saving,
        "online_best_saving_at": online_at,
        "offline_best_saving": offline_saving,
        "offline_best_saving_at": offline_at,
        "oracle_best_saving": oracle_saving,
        "oracle_best_saving_at": oracle_at,
        "online_gain_share_1_16": _mean_gain_share(report, "online", 1, 16),
        "offline_gain_share_1_16": _mean_gain_share(report, "offline", 1, 16),
        "routing_strong_saving": _strong_call_saving(report, "learned"),
        "routing_strong_saving_oracle": _strong_call_saving(report, "oracle"),
        "apgr_learned": report.apgr["learned"],
        "apgr_random": report.apgr["random"],
        "apgr_oracle": report.apgr["oracle"],
    }


def markdown(report: BenchmarkReport) -> str:
    """The report as markdown: headline, best-of-k table, SC table, routing, probe metrics."""
    h = headline(report)
    info = report.info
    lines = ["# howhard benchmark report", ""]
    if info:
        lines += [f"- {k}: {v}" for k, v in info.items()]
        lines.append("")
    lines += [
        "## Headline (test split)",
        "",
        f"- Online adaptive best-of-k: up to **{_pct(h['online_best_saving'])}** less compute than "
        f"uniform at matched success (at B = {h['online_best_saving_at']:g}, B ∈ [2, 16]); "
        f"oracle: {_pct(h['oracle_best_saving'])} (at B = {h['oracle_best_saving_at']:g}).",
        f"- Offline adaptive: up to {_pct(h['offline_best_saving'])} "
        f"(at B = {h['offline_best_saving_at']:g}).",
        f"- Share of the oracle's gain over uniform, mean over B = 1…16: online "
        f"{_pct(h['online_gain_share_1_16'])}, offline {_pct(h['offline_gain_share_1_16'])}.",
        f"- Routing (weak = 1 sample, strong = self-consistency over {report.strong_k} samples, "
        f"{report.strong_k} units): APGR learned {h['apgr_learned']:.3f}, random "
        f"{h['apgr_random']:.3f}, oracle {h['apgr_oracle']:.3f}; the learned router matches "
        f"all-strong success with {_pct(h['routing_strong_saving'])} fewer strong calls "
        f"(oracle {_pct(h['routing_strong_saving_oracle'])}).",
        "",
        "## Best-of-k with a verifier: expected success vs average samples per question",
        "",
        "| B | uniform | online | online, λ̂ plug-in | offline | oracle | online saving "
        "| offline saving | oracle saving | online share of oracle gain |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report.table():
        lines.append(
            f"| {r['budget']:g} | {r['uniform']:.3f} | {r['online']:.3f} "
            f"| {r['online_plugin']:.3f} | {r['offline']:.3f} "
            f"| {r['oracle']:.3f} | {_pct(r['online_saving'])} | {_pct(r['offline_saving'])} "
            f"| {_pct(r['oracle_saving'])} | {_pct(r['online_gain_share'])} |"
        )
    lines += [
        "",
        "Saving = 1 - (samples the method spent at B) / (samples uniform needs for the same "
        "success, interpolated between integer budgets); n/a = uniform never reaches it within "
        f"B ≤ {report.budgets[-1]:g}.",
        "",
        "## Self-consistency (majority vote, no verifier): expected success",
        "",
        "| B | uniform | online | oracle |",
        "|---|---|---|---|",
    ]
    for r in report.table():
        lines.append(
            f"| {r['budget']:g} | {r['sc_uniform']:.3f} | {r['sc_online']:.3f} "
            f"| {r['sc_oracle']:.3f} |"
        )
    lines += [
        "",
        "## Routing: expected success vs fraction sent to the strong procedure",
        "",
        "| fraction strong | random | learned | oracle |",
        "|---|---|---|---|",
    ]
    for j, f in enumerate(report.routing_fractions):
        if j % 2 == 0:
            lines.append(
                f"| {f:.1f} | {report.routing['random'][j]:.3f} | "
                f"{report.routing['learned'][j]:.3f} | {report.routing['oracle'][j]:.3f} |"
            )
    pm = report.probe_metrics
    lines += [
        "",
        "## λ probe (Table 1 metrics, test split, soft labels)",
        "",
        "| | Ours (CE) | Avg. | Opt. | Acc. | ECE | Spearman |",
        "|---|---|---|---|---|---|---|",
        f"| this benchmark | {pm['ours']:.3f} | {pm['avg']:.3f} | {pm['opt']:.3f} | "
        f"{100 * pm['acc']:.0f}% | {pm['ece']:.3f} | {pm['spearman']:.3f} |",
        "| paper, Math | 0.48 | 0.69 | 0.34 | 84% | | |",
        "| paper, Code | 0.33 | 0.58 | 0.20 | 74% | | |",
        "",
        "## Budget share by predicted difficulty (online allocation)",
        "",
        "| B | easy | medium | hard |",
        "|---|---|---|---|",
    ]
    for b, shares in zip(report.tercile_budgets, report.tercile_shares, strict=True):
        lines.append(f"| {b} | {_pct(shares[0])} | {_pct(shares[1])} | {_pct(shares[2])} |")
    lines.append("")
    return "\n".join(lines)


PLOTS = (
    "best_of_k.png",
    "self_consistency.png",
    "routing.png",
    "allocation.png",
    "calibration.png",
    "difficulty.png",
)
"""File names of the plots ``write_report`` produces."""


def write_report(
    report: BenchmarkReport, out: Path, *, observed_lambda: FloatArray | None = None
) -> list[Path]:
    """Write ``report.md``, ``report.json`` and the PNG plots into ``out``; returns the paths."""
    import json

    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "report.md", out / "report.json"]
    paths[0].write_text(markdown(report), encoding="utf-8")
    payload = {
        "budgets": report.budgets.tolist(),
        "best_of_k": {k: c.quality.tolist() for k, c in report.best_of_k.items()},
        "best_of_k_spent": {k: c.spent.tolist() for k, c in report.best_of_k.items()},
        "best_of_k_savings": {k: v.tolist() for k, v in report.best_of_k_savings.items()},
        "self_consistency": {k: c.quality.tolist() for k, c in report.self_consistency.items()},
        "routing_fractions": report.routing_fractions.tolist(),
        "routing": {k: v.tolist() for k, v in report.routing.items()},
        "apgr": report.apgr,
        "strong_k": report.strong_k,
        "tercile_budgets": list(report.tercile_budgets),
        "tercile_shares": report.tercile_shares.tolist(),
        "calibration": report.calibration.tolist(),
        "probe_metrics": report.probe_metrics,
        "headline": headline(report),
        "table": report.table(),
        "info": dict(report.info),
    }
    paths[1].write_text(json.dumps(payload, indent=1, allow_nan=True) + "\n", encoding="utf-8")
    paths += _plots(report, out, observed_lambda)
    return paths


def _plots(report: BenchmarkReport, out: Path, observed: FloatArray | None) -> list[Path]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - matplotlib ships with the dev extra
        from howhard.errors import missing_extra

        raise missing_extra("matplotlib", "plots") from exc

    written: list[Path] = []

    def save(fig: Any, name: str) -> None:
        fig.tight_layout()
        fig.savefig(out / name, dpi=90)
        plt.close(fig)
        written.append(out / name)

    styles = {
        "uniform": ("tab:gray", "--"),
        "random": ("tab:gray", "--"),
        "online": ("tab:blue", "-"),
        "online_plugin": ("tab:purple", "-"),
        "learned": ("tab:blue", "-"),
        "offline": ("tab:green", "-."),
        "oracle": ("black", ":"),
    }

    def curve_plot(curves: Mapping[str, FloatArray], title: str, name: str) -> None:
        fig, ax = plt.subplots(figsize=(5.2, 3.6))
        for label, values in curves.items():
            color, ls = styles[label]
            ax.plot(report.budgets, values, color=color, linestyle=ls, label=label)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("average samples per question (B)")
        ax.set_ylabel("expected success")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        save(fig, name)

    curve_plot(
        {k: c.quality for k, c in report.best_of_k.items()},
        "Best-of-k with a verifier (test)",
        PLOTS[0],
    )
    curve_plot(
        {k: c.quality for k, c in report.self_consistency.items()},
        "Self-consistency, majority vote (test)",
        PLOTS[1],
    )

    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    for label, values in report.routing.items():
        color, ls = styles[label]
        ax.plot(report.routing_fractions, values, color=color, linestyle=ls, label=label)
    ax.set_xlabel(f"fraction routed to strong (self-consistency@{report.strong_k})")
    ax.set_ylabel("expected success")
    ax.set_title("Routing weak (1 sample) vs strong (test)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save(fig, PLOTS[2])

    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    x = np.arange(len(report.tercile_budgets))
    bottom = np.zeros(len(x))
    for j, (label, color) in enumerate(
        (("easy", "tab:green"), ("medium", "tab:orange"), ("hard", "tab:red"))
    ):
        ax.bar(x, report.tercile_shares[:, j], bottom=bottom, color=color, label=label)
        bottom += report.tercile_shares[:, j]
    ax.set_xticks(x, [str(b) for b in report.tercile_budgets])
    ax.set_xlabel("average budget B")
    ax.set_ylabel("share of samples")
    ax.set_title("Allocation by predicted difficulty tercile", fontsize=10)
    ax.legend(fontsize=8)
    save(fig, PLOTS[3])

    fig, ax = plt.subplots(figsize=(4.2, 3.8))
    ax.plot([0, 1], [0, 1], color="gray", linestyle="--", linewidth=1)
    ax.plot(report.calibration[:, 0], report.calibration[:, 1], marker="o", color="tab:blue")
    ax.set_xlabel("predicted λ (bin mean)")
    ax.set_ylabel("observed λ (bin mean)")
    ax.set_title("λ probe calibration (test)", fontsize=10)
    ax.grid(alpha=0.3)
    save(fig, PLOTS[4])

    if observed is not None:
        fig, ax = plt.subplots(figsize=(4.6, 3.4))
        ax.hist(observed, bins=[j / 16 for j in range(17)], color="tab:blue", edgecolor="white")
        ax.set_xlabel("single-sample success λ")
        ax.set_ylabel("questions")
        ax.set_title("Difficulty distribution (test)", fontsize=10)
        save(fig, PLOTS[5])
    return written
