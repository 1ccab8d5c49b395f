"""The benchmark report: every curve and figure ``howhard evaluate`` prints, on a held-out split.

:func:`build_report` computes the curves (:mod:`.benchmark`) and the probe's metrics (the one
implementation in :mod:`howhard.probes.metrics`, shared with ``howhard train``) on ``test``,
fitting tables on ``val``; :func:`headline` gives the figures the README quotes. Writing it out
(markdown, JSON, plots) is :mod:`.render`. The test split is only ever evaluated.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from howhard.evaluation.benchmark import (
    best_of_k_curves,
    best_of_k_quality,
    calibration_bins,
    routing_curves,
    sc_predicted_curves,
    self_consistency_curves,
    tercile_shares,
)
from howhard.evaluation.curves import Curve
from howhard.evaluation.data import SplitData
from howhard.evaluation.savings import budget_to_reach, oracle_gain_fraction, savings_vs_uniform
from howhard.probes.metrics import probe_metrics

__all__ = ["BenchmarkReport", "build_report", "headline"]

FloatArray = npt.NDArray[np.float64]

_TABLE_BUDGETS = (1, 2, 4, 8, 16, 32)


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
        probe_metrics=probe_metrics("lambda", test.lambda_hat, weak, train_mean=train_mean_lambda),
        info=dict(info or {}),
    )


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
