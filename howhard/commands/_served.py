"""Served = evaluated: replay collected questions through a real ``Scheduler`` and score budgets.

Each stream is every evaluation question once, in a seeded random order, submitted in waves of
``batch_size`` so that each wave is one micro-batch (the scheduler's carry rule, bounds and
policy call, as served). The backend replays the question's collected samples: a request with
budget ``b`` draws ``b`` of its ``m`` stored verdicts without replacement, and best-of-k with an
exact-match verifier scores them, so a learning policy gets exactly the feedback it would get
in production. Quality is the exact expected success ``1 - C(m-s, b)/C(m, b)`` of the budgets
the scheduler granted (no sampling noise in the score; the feedback draws and the order are the
only randomness). Uniform best-of-k is exact.

Leave-group-out (``--group-column family --leave-group-out``): every question is scored by a
probe trained, with the shipped recipe, without its family; the in-distribution stream uses the
shipped probe. Both run the same policy class, built as ``default_policy()`` builds it, with the
checkpoint's marginals map.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
import numpy as np
import numpy.typing as npt

from howhard.config import BatchingConfig
from howhard.evaluation.curves import Curve
from howhard.evaluation.savings import savings_vs_uniform
from howhard.marginals import marginals_from_success_prob
from howhard.policies import AdaptivePolicy, OnlineAllocator, OraclePredictor, Policy
from howhard.policies.online_adaptive import AdaptiveConfig, OnlineAdaptivePolicy
from howhard.probes import BetaMarginalsMap, RecordedProbe, sigmoid
from howhard.types import GenerationParams, Request

__all__ = ["ServedStream", "StreamResult", "restrict", "run_streams"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

PASS, FAIL = "The answer is pass.", "The answer is fail."


@dataclass(frozen=True)
class ServedStream:
    """The questions of one evaluation stream and what the probe said about each."""

    name: str
    prompts: tuple[str, ...]
    successes: IntArray
    samples: IntArray
    logits: FloatArray
    features: FloatArray
    """Standardised probe features ``(n, d)`` (what automatic groups cluster)."""
    after: int = 0
    """Warm-up: requests at stream positions below this are served but not scored."""


@dataclass
class StreamResult:
    """Per policy: success, spend ``(seeds, budgets)``; per-question success ``(seeds, B, n)``."""

    stream: str
    budgets: list[int]
    uniform: FloatArray
    uniform_seed: FloatArray
    """Uniform's exact success on each seed's scored requests ``(seeds, budgets)``."""
    quality: dict[str, FloatArray] = field(default_factory=dict)
    spent: dict[str, FloatArray] = field(default_factory=dict)
    per_question: dict[str, FloatArray] = field(default_factory=dict)
    uniform_per_question: FloatArray | None = None


class RecordedVerdicts:
    """A ``ScriptedBackend`` handler: collected verdicts per prompt, drawn without replacement."""

    def __init__(self, stream: ServedStream, seed: int) -> None:
        self._counts = {
            p: (int(s), int(m))
            for p, s, m in zip(stream.prompts, stream.successes, stream.samples, strict=True)
        }
        self._rng = np.random.default_rng(seed)

    def __call__(self, prompt: str, n: int, params: GenerationParams) -> list[str]:
        s, m = self._counts[prompt]
        k = int(self._rng.hypergeometric(s, m - s, n)) if n <= m else min(s, n)
        texts = [PASS] * k + [FAIL] * (n - k)
        self._rng.shuffle(texts)
        return texts


class PlugInPredictor:
    """The previous served path: λ̂ = sigmoid(logit), rows ``λ̂(1-λ̂)^(j-1)`` (no feedback)."""

    def __init__(self, stream: ServedStream) -> None:
        self._p = dict(zip(stream.prompts, sigmoid(stream.logits).tolist(), strict=True))

    async def predict(self, requests: Sequence[Request], max_budget: int) -> FloatArray:
        return marginals_from_success_prob(
            np.array([self._p[r.prompt] for r in requests]), max_budget
        )


async def serve_stream(
    policy: Policy,
    stream: ServedStream,
    order: IntArray,
    average_budget: int,
    *,
    batch_size: int,
    max_budget: int,
    seed: int,
) -> IntArray:
    """Budgets the scheduler granted each question ``(n,)`` when serving ``order``."""
    from howhard.backends import ScriptedBackend
    from howhard.procedures import BestOfK
    from howhard.scheduler import Scheduler
    from howhard.scoring import ExactMatch

    budgets = np.zeros(len(stream.prompts), dtype=np.int64)
    async with Scheduler(
        backend=ScriptedBackend(RecordedVerdicts(stream, seed)),
        policy=policy,
        procedure=BestOfK(ExactMatch()),
        average_budget=average_budget,
        max_budget=max_budget,
        min_budget=1,
        batching=BatchingConfig(max_batch_size=batch_size, max_wait_s=0.25),
        max_concurrency=batch_size,
        params=GenerationParams(max_tokens=8),
    ) as scheduler:

        async def one(i: int) -> None:
            request = Request(prompt=stream.prompts[i], id=f"q{i}", reference="pass")
            budgets[i] = (await scheduler.submit(request)).budget

        for start in range(0, len(order), batch_size):
            # One wave = one micro-batch; its feedback arrives before the next wave's allocation.
            async with anyio.create_task_group() as tg:
                for i in order[start : start + batch_size]:
                    tg.start_soon(one, int(i))
    return budgets


def policies_for(
    stream: ServedStream, marginals_map: BetaMarginalsMap, quality: FloatArray
) -> dict[str, Callable[[], Policy]]:
    """The policies compared on a stream, each built fresh per run."""
    probe = RecordedProbe.from_arrays(stream.prompts, stream.logits, stream.features)
    oracle = OraclePredictor(table={p: np.diff(quality[i]) for i, p in enumerate(stream.prompts)})
    return {
        "adaptive": lambda: OnlineAdaptivePolicy(probe, marginals_map, AdaptiveConfig()),
        "plug-in": lambda: AdaptivePolicy(PlugInPredictor(stream), OnlineAllocator()),
        "oracle": lambda: AdaptivePolicy(_ByPrompt(oracle), OnlineAllocator()),
    }


class _ByPrompt:
    """The oracle's table is keyed by prompt; requests carry replay ids."""

    def __init__(self, oracle: OraclePredictor) -> None:
        self._oracle = oracle

    async def predict(self, requests: Sequence[Request], max_budget: int) -> FloatArray:
        keyed = [Request(prompt=r.prompt, id=r.prompt) for r in requests]
        return await self._oracle.predict(keyed, max_budget)


def run_streams(
    streams: Sequence[ServedStream],
    marginals_map: BetaMarginalsMap,
    *,
    budgets: Sequence[int],
    seeds: int,
    batch_size: int,
    max_budget: int = 16,
    log: Callable[[str], None] | None = None,
) -> list[StreamResult]:
    """Serve every stream for every seed and budget with each policy; exact success of each."""
    results = []
    for stream in streams:
        quality = quality_from_counts(stream.successes, stream.samples, max_budget)
        n = len(stream.prompts)
        orders = [np.random.default_rng(1000 + seed).permutation(n) for seed in range(seeds)]
        scored = [order[stream.after :] for order in orders]
        uniform_seed = np.array([[quality[rows, b].mean() for b in budgets] for rows in scored])
        result = StreamResult(
            stream.name,
            list(budgets),
            uniform_seed.mean(0),
            uniform_seed,
            uniform_per_question=quality[:, list(budgets)].T,
        )
        for name, make in policies_for(stream, marginals_map, quality).items():
            q = np.zeros((seeds, len(budgets)))
            spent = np.zeros((seeds, len(budgets)))
            per_question = np.full((seeds, len(budgets), n), np.nan)
            for seed, order in enumerate(orders):
                rows = scored[seed]
                for c, average in enumerate(budgets):
                    granted = anyio.run(
                        _serve,
                        make(),
                        stream,
                        order,
                        int(average),
                        batch_size,
                        max_budget,
                        (seed * 1009 + int(average)) * 7,
                    )
                    per_question[seed, c, rows] = quality[rows, granted[rows]]
                    q[seed, c] = quality[rows, granted[rows]].mean()
                    spent[seed, c] = granted[rows].mean()
            result.quality[name], result.spent[name] = q, spent
            result.per_question[name] = per_question
            if log is not None:
                log(f"served: {stream.name} {name}: {seeds} seeds x {len(budgets)} budgets done")
        results.append(result)
    return results


async def _serve(
    policy: Policy,
    stream: ServedStream,
    order: IntArray,
    average: int,
    batch_size: int,
    max_budget: int,
    seed: int,
) -> IntArray:
    try:
        return await serve_stream(
            policy, stream, order, average, batch_size=batch_size, max_budget=max_budget, seed=seed
        )
    finally:
        close = getattr(policy, "aclose", None)
        if close is not None:
            await close()


def restrict(result: StreamResult, rows: IntArray, name: str) -> StreamResult:
    """The same served runs scored on the questions ``rows`` only (served in the full stream)."""
    sub = StreamResult(
        name,
        result.budgets,
        np.zeros(0),
        np.zeros(0),
        uniform_per_question=(
            None if result.uniform_per_question is None else result.uniform_per_question[:, rows]
        ),
    )
    assert sub.uniform_per_question is not None
    uniform = np.nanmean(sub.uniform_per_question, axis=1)
    for policy, per_question in result.per_question.items():
        picked = per_question[:, :, rows]
        sub.per_question[policy] = picked
        sub.quality[policy] = np.nanmean(picked, axis=2)
        sub.spent[policy] = result.spent[policy]  # spend is the stream's, not the subset's
    sub.uniform_seed = np.tile(uniform, (len(next(iter(result.quality.values()))), 1))
    sub.uniform = uniform
    return sub


def quality_from_counts(successes: IntArray, samples: IntArray, max_budget: int) -> FloatArray:
    """``(n, max_budget + 1)`` exact best-of-b success ``1 - C(m-s, b)/C(m, b)``, any ``m``."""
    s = np.asarray(successes, dtype=np.float64)
    m = np.asarray(samples, dtype=np.float64)
    out = np.zeros((len(s), max_budget + 1))
    fail = np.ones(len(s))
    for b in range(1, max_budget + 1):
        # Beyond m samples a budget draws nothing new: success stays at b = m.
        step = np.where(b <= m, np.clip((m - s - (b - 1)) / np.maximum(m - (b - 1), 1), 0, None), 1)
        fail = fail * step
        out[:, b] = 1.0 - fail
    return out


def summarise(result: StreamResult, true_marginals: FloatArray | None) -> dict[str, Any]:
    """Per budget and overall: success, savings vs uniform, share of the oracle's gain, noise.

    ``true_marginals`` of the scored questions give the savings (``None``: not computed, e.g.
    when each seed scores a different subset after a warm-up).
    """
    budgets = np.asarray(result.budgets, dtype=np.float64)
    oracle = result.quality["oracle"].mean(0)
    gain = oracle - result.uniform
    rows: dict[str, Any] = {"budgets": result.budgets, "uniform": result.uniform.tolist()}
    for name, q in result.quality.items():
        mean_q = q.mean(0)
        spent = result.spent[name].mean(0)
        curve = Curve(name, budgets, spent, mean_q)
        saving = (
            savings_vs_uniform(curve, true_marginals)
            if true_marginals is not None
            else np.full(len(budgets), np.nan)
        )
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.where(gain > 1e-4, (mean_q - result.uniform) / gain, np.nan)
        # Paired per-question standard error of (policy - uniform), seeds averaged first.
        assert result.uniform_per_question is not None
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a question never scored: NaN
            diff = np.nanmean(result.per_question[name], axis=0) - result.uniform_per_question
        counted = np.isfinite(diff).sum(axis=1)
        se = np.nanstd(diff, axis=1, ddof=1) / np.sqrt(counted)
        by_seed = 100 * np.where(
            np.abs(q - result.uniform_seed) < 1e-9, 0.0, q - result.uniform_seed
        )
        # Below 1e-9 a difference is rounding. At B = 1 and 16 (every request gets 1 or 16
        # samples) every policy is uniform exactly, so the worst B is sought between them.
        gap = np.where(np.abs(mean_q - result.uniform) < 1e-9, 0.0, mean_q - result.uniform)
        inner = [i for i, b in enumerate(result.budgets) if 1 < b < 16]
        candidates = inner or list(range(len(result.budgets)))
        worst = candidates[int(np.argmin(gap[candidates]))]
        rows[name] = {
            "success": mean_q.tolist(),
            "spent": spent.tolist(),
            "saving": saving.tolist(),
            "share": share.tolist(),
            "se": se.tolist(),
            "mean_share": float(np.nanmean(share[inner])) if inner else float("nan"),
            "pooled_share": float((mean_q - result.uniform)[inner].sum() / gain[inner].sum())
            if inner and gain[inner].sum() > 0
            else float("nan"),
            "worst_diff_pp": float(100 * gap[worst]),
            "worst_z": float(gap[worst] / se[worst]) if se[worst] > 1e-9 else 0.0,
            "worst_at": result.budgets[worst],
            "worst_seed_pp": float(by_seed.min()),
            "success_by_seed": q.tolist(),
            "uniform_by_seed": result.uniform_seed.tolist(),
        }
    return rows


def markdown(summaries: dict[str, dict[str, Any]], command: str, seeds: int, bs: int) -> str:
    """The served report: one table per stream, then a summary table."""
    lines = [
        "# Served best-of-k: adaptive vs uniform, through the scheduler",
        "",
        f"`{command}` — {seeds} seeded stream orders, micro-batches of {bs}, min_budget 1, "
        "max_budget 16, feedback after every batch. Cells: expected success / compute saved "
        "vs uniform at matched success / share of the oracle's gain.",
        "",
    ]
    for stream, rows in summaries.items():
        lines += [f"## {stream}", "", "| B | uniform | adaptive | plug-in (no feedback) | oracle |"]
        lines.append("|---|---|---|---|---|")
        for i, b in enumerate(rows["budgets"]):
            cells = [f"{rows['uniform'][i]:.3f}"]
            for name in ("adaptive", "plug-in", "oracle"):
                r = rows[name]
                share = r["share"][i]
                cells.append(
                    f"{r['success'][i]:.3f} / {_pct(r['saving'][i])} / "
                    + ("n/a" if not math.isfinite(share) else f"{share:.0%}")
                )
            lines.append(f"| {b} | " + " | ".join(cells) + " |")
        lines += [
            "",
            "| policy | mean share of the oracle's gain (1 < B < 16) | pooled share | "
            "worst B in 2..15: success - uniform (pp, z) | worst seed x B (pp) | savings range |",
            "|---|---|---|---|---|---|",
        ]
        for name in ("adaptive", "plug-in", "oracle"):
            r = rows[name]
            savings = [s for s in r["saving"] if math.isfinite(s)]
            span = f"{_pct(min(savings))} … {_pct(max(savings))}" if savings else "n/a"
            lines.append(
                f"| {name} | {r['mean_share']:.1%} | {r['pooled_share']:.1%} | "
                f"{r['worst_diff_pp']:+.2f} (z = {r['worst_z']:+.1f}, B = {r['worst_at']}) | "
                f"{r['worst_seed_pp']:+.2f} | {span} |"
            )
        lines.append("")
    return "\n".join(lines)


def _pct(x: float) -> str:
    if not math.isfinite(x):
        return "n/a"
    return "0%" if abs(x) < 0.005 else f"{x:+.0%}"
