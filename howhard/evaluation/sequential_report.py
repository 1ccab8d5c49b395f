"""The sequential report: stop-when-settled best-of-k and self-consistency on logged samples.

Best-of-k with a verifier, success vs average samples per question: one-shot uniform, one-shot
plug-in (the λ probe's allocation), one-shot oracle, sequential with a uniform cap, sequential
knowing each λ (the headroom), and the stream allocator with a flat prior, the probe prior at a
fixed strength, the probe prior with a learned strength, and the bandit-elimination baseline,
in-distribution and leave-family-out (each family's questions scored by a probe trained
without it; the prior's fits see train/val data only). Self-consistency without a verifier:
SC-k (exact), ESC and Adaptive-Consistency's Beta rule. Rounds per request for each schedule.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from howhard.config import RoundsConfig
from howhard.evaluation.consistency import majority_vote_curves
from howhard.evaluation.curves import online_curve, oracle_curve, uniform_curve
from howhard.evaluation.sequential import (
    known_lambda_prior,
    spend_to_reach,
    success_at,
    threshold_curve,
    uniform_cap_curve,
)
from howhard.evaluation.simulate import (
    LoggedSamples,
    SimulatedPolicy,
    SimulationResult,
    describe,
    simulate,
)
from howhard.marginals import marginals_from_rewards, marginals_from_success_prob
from howhard.policies.priors import FixedPrior, OnlinePrior, OnlinePriorConfig, PriorSource
from howhard.policies.stream import (
    EliminationAllocator,
    RoundAllocator,
    StreamAllocator,
    UnlimitedAllocator,
)
from howhard.probes.vote_value import VoteValueModel
from howhard.procedures.sequential import (
    AdaptiveSelfConsistency,
    BetaRule,
    EscRule,
    SequentialBestOfK,
    ValueRule,
)
from howhard.scoring.base import Scorer

__all__ = ["SequentialReport", "best_of_k_section", "self_consistency_section"]

FloatArray = npt.NDArray[np.float64]


class _NoScorer:
    """The simulator scores from the logged rewards; the procedure's scorer is never called."""

    async def score(self, request: Any, completions: Sequence[Any]) -> list[float]:
        raise NotImplementedError("simulation reads logged rewards")


_NO_SCORER: Scorer = _NoScorer()


@dataclass(slots=True)
class SequentialReport:
    """Tables (markdown rows) and the raw figures (JSON-ready)."""

    lines: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)

    def markdown(self) -> str:
        """The report as markdown."""
        return "\n".join(self.lines) + "\n"


def _policies(
    config: OnlinePriorConfig, stream: bool
) -> dict[str, tuple[Callable[[], PriorSource], Callable[[float, int], RoundAllocator]]]:
    horizon = 64 if stream else 0

    def pool(b: float, s: int) -> RoundAllocator:
        return StreamAllocator(average_budget=b, horizon=horizon)

    return {
        "sequential, flat prior": (lambda: FixedPrior(config, flat=True), pool),
        "sequential, probe prior (fixed strength)": (lambda: FixedPrior(config), pool),
        "sequential, probe prior (learned strength)": (lambda: OnlinePrior(config), pool),
        "bandit elimination": (
            lambda: FixedPrior(config, flat=True),
            lambda b, s: EliminationAllocator(average_budget=b, seed=s),
        ),
    }


def _fmt(x: float) -> str:
    return "-" if not math.isfinite(x) else f"{x:.4f}"


def best_of_k_section(
    logged: LoggedSamples,
    *,
    setting: str,
    config: OnlinePriorConfig,
    budgets: Sequence[float],
    max_budget: int,
    replays: int,
    stream: bool = False,
    seed: int = 0,
    log: Callable[[str], None] = lambda s: None,
) -> SequentialReport:
    """Success vs average samples for every best-of-k policy on ``logged`` (one setting)."""
    report = SequentialReport()
    rewards = logged.rewards
    m = rewards.shape[1]
    truth = marginals_from_rewards(rewards, min(m, 16))
    grid = np.asarray([b for b in budgets if b <= 16], dtype=np.float64)
    lam_hat = 1.0 / (1.0 + np.exp(-logged.z))
    one_shot = {
        "one-shot uniform": uniform_curve(truth, grid),
        "one-shot plug-in (λ probe)": online_curve(
            truth, marginals_from_success_prob(lam_hat, truth.shape[1]), grid, name="plug-in"
        ),
        "one-shot oracle": oracle_curve(truth, grid),
    }
    target = float(one_shot["one-shot uniform"].quality[-1]) if grid[-1] == 16 else float("nan")
    oracle_pts = np.column_stack(
        [
            np.zeros(len(grid)),
            one_shot["one-shot oracle"].spent,
            one_shot["one-shot oracle"].quality,
        ]
    )
    curves: dict[str, FloatArray] = {
        "sequential uniform cap": uniform_cap_curve(rewards, max_budget),
        "sequential, knows λ (headroom)": threshold_curve(
            known_lambda_prior(rewards), rewards, max_budget=max_budget
        ),
    }
    procedure = SequentialBestOfK(
        _NO_SCORER, config=RoundsConfig(schedule=(1,), max_budget=max_budget)
    )
    sims: dict[str, list[SimulationResult]] = {}
    for name, (make_prior, make_allocator) in _policies(config, stream).items():
        policy = SimulatedPolicy(
            name, make_prior, make_allocator, concurrency=32 if stream else None
        )
        sims[name] = []
        for b in budgets:
            result = simulate(
                policy, procedure, logged, average_budget=b, replays=replays, seed=seed
            )
            sims[name].append(result)
            log(f"{setting} {name} B={b:g}: {result.success:.4f} ({result.samples:.2f} samples)")
    head = [f"B={b:g}" for b in budgets]
    report.lines += [
        f"### Best-of-k, {setting}{' (stream of 32 in flight)' if stream else ' (one batch)'}",
        "",
        f"Uniform best-of-16 success (exact): {_fmt(target)}; max {max_budget} samples per "
        f"question; {replays} replays per simulated point (± one standard error).",
        "",
        "| policy | " + " | ".join(head) + " | samples to reach u16 | saving |",
        "|---|" + "---|" * (len(head) + 2),
    ]
    fig: dict[str, Any] = {"target_u16": target, "policies": {}}
    for name, curve in one_shot.items():
        row = {
            b: float(np.interp(b, curve.spent, curve.quality)) if b <= 16 else math.nan
            for b in budgets
        }
        pts = np.column_stack([np.zeros(len(grid)), curve.spent, curve.quality])
        reach = spend_to_reach(pts, target - 1e-9)
        report.lines.append(_row(name, row, budgets, reach))
        fig["policies"][name] = {"success": row, "reach_u16": reach}
    for name, table in curves.items():
        row = {b: success_at(table, b) for b in budgets}
        reach = spend_to_reach(table, target)
        report.lines.append(_row(name, row, budgets, reach))
        fig["policies"][name] = {"success": row, "reach_u16": reach}
    for name, results in sims.items():
        pts = np.array([(0.0, r.samples, r.success) for r in results])
        reach = spend_to_reach(pts, target)
        cells = {
            r.average_budget: f"{r.success:.4f}±{r.success_se:.4f} ({r.samples:.2f})"
            for r in results
        }
        report.lines.append(
            f"| {name} | "
            + " | ".join(cells[b] for b in budgets)
            + f" | {_fmt(reach) if math.isfinite(reach) else '-'} | {_saving(reach)} |"
        )
        above = [
            r.success - float(np.interp(r.samples, oracle_pts[:, 1], oracle_pts[:, 2]))
            for r in results
            if 4 <= r.samples <= float(oracle_pts[-1, 1])
        ]
        fig["policies"][name] = {
            "results": [describe(r) for r in results],
            "reach_u16": reach,
            "min_margin_over_one_shot_oracle_4_16": min(above) if above else math.nan,
        }
    learned = sims["sequential, probe prior (learned strength)"]
    report.lines += [
        "",
        "Paired differences (same random orders), learned-strength prior minus each policy, "
        "± one paired standard error; and its margin over the one-shot oracle at its spend:",
        "",
        "| vs | " + " | ".join(head) + " |",
        "|---|" + "---|" * len(head),
    ]
    for other in ("sequential, flat prior", "bandit elimination"):
        diffs = []
        for mine, theirs in zip(learned, sims[other], strict=True):
            d = mine.replay_success - theirs.replay_success
            se = float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else math.nan
            diffs.append((float(d.mean()), se))
        report.lines.append(
            f"| {other} | " + " | ".join(f"{m:+.4f}±{e:.4f}" for m, e in diffs) + " |"
        )
        fig["policies"][other]["learned_minus_this"] = diffs
    margins = [
        r.success - float(np.interp(r.samples, oracle_pts[:, 1], oracle_pts[:, 2]))
        if r.samples <= float(oracle_pts[-1, 1])
        else r.success - float(oracle_pts[-1, 2])
        for r in learned
    ]
    report.lines.append("| one-shot oracle | " + " | ".join(f"{m:+.4f}" for m in margins) + " |")
    report.figures = fig
    report.lines.append("")
    return report


def _saving(reach: float, of: float = 16) -> str:
    return "-" if not math.isfinite(reach) else f"{1 - reach / of:.0%}"


def _row(name: str, row: dict[float, float], budgets: Sequence[float], reach: float) -> str:
    return (
        f"| {name} | "
        + " | ".join(_fmt(row[b]) for b in budgets)
        + f" | {_fmt(reach)} | {_saving(reach)} |"
    )


def self_consistency_section(
    logged: LoggedSamples,
    *,
    max_budget: int = 16,
    windows: Sequence[int] = (2, 3, 4),
    confidences: Sequence[float] = (0.8, 0.85, 0.9, 0.95),
    value_models: Mapping[str, VoteValueModel] | None = None,
    prices: Sequence[float] = (1e-4, 3e-4, 6e-4, 1e-3, 1.5e-3, 2.5e-3, 4e-3),
    replays: int = 16,
    seed: int = 0,
) -> SequentialReport:
    """Accuracy vs samples: SC-k exact; ESC windows, the Beta rule and the value rule (one row
    per model and price, ``z = 0`` for a model named "no prior"), simulated."""
    report = SequentialReport()
    curve = majority_vote_curves(logged.answers, logged.rewards, max_budget).mean(axis=0)
    report.lines += [
        f"### Self-consistency (max {max_budget} samples, {replays} replays per rule)",
        "",
        f"SC-{max_budget} accuracy (exact over all subsets): {curve[max_budget]:.4f}",
        "",
        "| method | parameter | accuracy | ± | samples | rounds p50 / p99 | stops |",
        "|---|---|---|---|---|---|---|",
    ]
    for k in (1, 2, 4, 6, 8, 10, 12, 16):
        if k <= max_budget:
            report.lines.append(f"| SC-k | k={k} | {curve[k]:.4f} | exact | {k} | 1 / 1 | - |")
    unlimited = SimulatedPolicy(
        "unlimited", lambda: FixedPrior(flat=True), lambda b, s: UnlimitedAllocator()
    )
    rules: list[tuple[str, str, Any]] = [("ESC", f"window {w}", EscRule(window=w)) for w in windows]
    rules += [
        ("Adaptive-Consistency (Beta)", f"confidence {c}", BetaRule(confidence=c))
        for c in confidences
    ]
    for name, model in (value_models or {}).items():
        rules += [
            (f"value rule ({name})", f"price {p:g}", ValueRule(model, price=p)) for p in prices
        ]
    rows: dict[str, list[dict[str, Any]]] = {family: [] for family, _, _ in rules}
    flat = LoggedSamples(
        ids=logged.ids,
        rewards=logged.rewards,
        answers=logged.answers,
        z=np.zeros(len(logged)),
        groups=logged.groups,
    )
    for family, label, rule in rules:
        procedure = AdaptiveSelfConsistency(rule, config=RoundsConfig(max_budget=max_budget))
        data = flat if "no prior" in family else logged
        r = simulate(unlimited, procedure, data, average_budget=0.0, replays=replays, seed=seed)
        stops = ", ".join(f"{k} {v:.2f}" for k, v in r.stops.items())
        report.lines.append(
            f"| {family} | {label} | {r.success:.4f} | {r.success_se:.4f} | {r.samples:.2f} | "
            f"{r.rounds_p50:g} / {r.rounds_p99:g} | {stops} |"
        )
        rows[family].append({"parameter": label, **describe(r)})
    target = float(curve[max_budget]) - 0.01
    report.lines += [
        "",
        f"Samples to reach SC-{max_budget} - 1 pp ({target:.4f}) and accuracy at matched samples "
        "(upper hull of each method's points):",
        "",
        "| method | samples to reach | saving | acc @5 | acc @6 | acc @7 | acc @8 |",
        "|---|---|---|---|---|---|---|",
    ]
    sc_points = np.array([(0.0, float(k), float(curve[k])) for k in range(1, max_budget + 1)])
    summary: dict[str, Any] = {}
    for family, points in [("SC-k", sc_points), *((f, _points(rs)) for f, rs in rows.items())]:
        reach = spend_to_reach(points, target)
        at = [success_at(points, b) if b >= points[:, 1].min() else math.nan for b in (5, 6, 7, 8)]
        summary[family] = {"reach": reach, "at": at}
        report.lines.append(
            f"| {family} | {_fmt(reach)} | {_saving(reach, max_budget)} | "
            + " | ".join(_fmt(a) for a in at)
            + " |"
        )
    report.figures = {"sc_k": [float(x) for x in curve], "rules": rows, "summary": summary}
    report.lines.append("")
    return report


def _points(results: Sequence[Mapping[str, Any]]) -> FloatArray:
    return np.array([(0.0, r["samples"], r["success"]) for r in results])


def _stream_allocator(patience: int) -> Callable[[float, int], RoundAllocator]:
    def make(budget: float, seed: int) -> RoundAllocator:
        return StreamAllocator(average_budget=budget, horizon=64, patience=patience)

    return make


def rounds_section(
    logged: LoggedSamples,
    *,
    config: OnlinePriorConfig,
    schedules: Sequence[tuple[int, ...]] = ((1,), (1, 2, 4, 8), (2, 4, 8)),
    budgets: Sequence[float] = (4.0, 8.0),
    max_budget: int = 32,
    replays: int = 8,
    seed: int = 0,
) -> SequentialReport:
    """Rounds and ticks in flight per request for each schedule (learned-strength prior); and,
    for rounds of one sample, the same stream with rounds below the price parked rather than
    refused (off by default in a stream: this row shows what it would cost)."""
    report = SequentialReport()
    report.lines += [
        "### Rounds per request (best-of-k, learned-strength prior, stream of 32 in flight)",
        "",
        "| schedule | B | success | samples | rounds p50 / p99 | ticks in flight p50 / p99 |",
        "|---|---|---|---|---|---|",
    ]
    rows = []
    runs: list[tuple[tuple[int, ...], str, int]] = [(s, "", 0) for s in schedules]
    runs.append(((1,), ", parked until drained", 1 << 30))
    for schedule, label, patience in runs:
        procedure = SequentialBestOfK(
            _NO_SCORER, config=RoundsConfig(schedule=schedule, max_budget=max_budget)
        )
        policy = SimulatedPolicy(
            "learned",
            lambda: OnlinePrior(config),
            _stream_allocator(patience),
            concurrency=32,
        )
        for b in budgets:
            r = simulate(policy, procedure, logged, average_budget=b, replays=replays, seed=seed)
            report.lines.append(
                f"| {schedule}{label} | {b:g} | {r.success:.4f}±{r.success_se:.4f} | "
                f"{r.samples:.2f} | {r.rounds_p50:g} / {r.rounds_p99:g} | "
                f"{r.ticks_p50:g} / {r.ticks_p99:g} |"
            )
            rows.append({"schedule": list(schedule), "patience": patience, **describe(r)})
    report.figures = {"rounds": rows}
    report.lines.append("")
    return report
