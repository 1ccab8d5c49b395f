"""Exact simulation of a sequential policy on logged samples, running the serving objects.

``simulate(policy, procedure, logged, average_budget=…)`` replays the logged requests many
times. Each replay draws a random arrival order and, independently, a random order of each
request's stored samples (without replacement: the stored samples are the population, so for a
policy whose decisions depend only on the samples it has seen, the outcome is an unbiased
estimate of its outcome on fresh samples, for up to ``m`` samples per request). A replay runs
in ticks, one backend call per tick: admitted requests ask for their next round, the allocator
grants, defers or refuses, granted rounds draw their next ``k`` stored samples, the procedure
observes them (and may stop the request), and outcomes are reported to the prior source.

A user with logged samples of their own traffic (rewards from a verifier, or canonical answers
for votes) sees what any policy would have spent and won, as it runs when served. Policies
compared with the same ``seed`` share their random orders, so differences are paired.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from howhard.errors import ConfigError
from howhard.policies.priors import PriorSource, RequestInfo
from howhard.policies.stream import RoundAllocator, RoundRequest
from howhard.posterior import forecast, log_lik_counts, normalise
from howhard.procedures.sequential import (
    AdaptiveSelfConsistency,
    RoundState,
    SequentialBestOfK,
    StopReason,
)
from howhard.training.vote_value import majority_value

__all__ = ["LoggedSamples", "SimulatedPolicy", "SimulationResult", "simulate"]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class LoggedSamples:
    """Logged requests, one row each: stored samples' rewards and canonical answers.

    ``rewards``: ``(n, m)`` verifier outcomes (1 = pass). ``answers``: ``n`` rows of ``m``
    canonical answers (``None``: no answer), for votes. ``z``: ``(n,)`` the difficulty probe's
    logit per request (zeros when there is none). ``groups``: a group key per request.
    """

    ids: tuple[str, ...]
    rewards: FloatArray
    answers: tuple[tuple[str | None, ...], ...]
    z: FloatArray
    groups: tuple[str, ...]

    def __post_init__(self) -> None:
        n = len(self.ids)
        if self.rewards.ndim != 2 or self.rewards.shape[0] != n:
            raise ConfigError(f"rewards must have shape ({n}, m), got {self.rewards.shape}")
        lengths = {len(self.answers), self.z.shape[0], len(self.groups)}
        if lengths != {n}:
            raise ConfigError(f"answers, z and groups must have {n} rows, got {lengths}")

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def from_dataset(
        cls,
        folder: Path,
        *,
        z: npt.ArrayLike | None = None,
        group_key: str = "family",
    ) -> LoggedSamples:
        """A collected dataset (``requests.jsonl`` + ``answers.jsonl``) as logged samples.

        Keeps requests with the full number of samples; ``z`` aligned with those rows.
        """
        from howhard.evaluation.data import read_jsonl

        rows = read_jsonl(folder / "requests.jsonl")
        answers = {r["id"]: r["answers"] for r in read_jsonl(folder / "answers.jsonl")}
        m = max(len(r["rewards"]) for r in rows)
        keep = [r for r in rows if len(r["rewards"]) == m and r["id"] in answers]
        zz = np.zeros(len(keep)) if z is None else np.asarray(z, dtype=np.float64)
        return cls(
            ids=tuple(str(r["id"]) for r in keep),
            rewards=np.asarray([r["rewards"] for r in keep], dtype=np.float64),
            answers=tuple(tuple(answers[r["id"]]) for r in keep),
            z=zz,
            groups=tuple(str((r.get("metadata") or {}).get(group_key, "*")) for r in keep),
        )

    def subset(self, rows: npt.ArrayLike) -> LoggedSamples:
        """The rows ``rows`` (indices or a boolean mask)."""
        idx = np.asarray(rows)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        return LoggedSamples(
            ids=tuple(self.ids[i] for i in idx),
            rewards=self.rewards[idx],
            answers=tuple(self.answers[i] for i in idx),
            z=self.z[idx],
            groups=tuple(self.groups[i] for i in idx),
        )


@dataclass(frozen=True, slots=True)
class SimulatedPolicy:
    """How a served stream is set up: where priors come from and who grants units.

    ``make_allocator(average_budget, seed)`` builds a fresh allocator per replay;
    ``concurrency``: requests in flight at once (``None``: the whole set is one batch known in
    advance); ``deadline``: most ticks a request may stay in flight (``None``: none);
    ``min_budget``: samples every request gets whatever the price.
    """

    name: str
    make_prior: Callable[[], PriorSource]
    make_allocator: Callable[[float, int], RoundAllocator]
    concurrency: int | None = None
    deadline: int | None = None
    min_budget: int = 1


@dataclass(frozen=True, slots=True)
class SimulationResult:
    """Means over replays, with standard errors over replays."""

    policy: str
    average_budget: float
    replays: int
    success: float
    success_se: float
    samples: float
    samples_se: float
    rounds_p50: float
    rounds_p99: float
    ticks_p50: float
    """Ticks (backend calls) a request spent in flight, waits included: its latency."""
    ticks_p99: float
    stops: dict[str, float]
    """Share of requests per stop reason."""
    replay_success: FloatArray = field(repr=False)
    replay_samples: FloatArray = field(repr=False)


SequentialProcedure = SequentialBestOfK | AdaptiveSelfConsistency


@dataclass(slots=True)
class _Active:
    info: RequestInfo
    state: RoundState
    log_w: FloatArray
    version: int
    admitted: int
    values: dict[str, float] = field(default_factory=dict)


def _ask(procedure: SequentialProcedure, key: str, a: _Active, min_budget: int) -> RoundRequest:
    values, costs = _forecast(procedure, [a])[0]
    return RoundRequest(
        key=key,
        size=a.state.next_size(),
        forced=a.state.used < min_budget,
        values=values,
        costs=costs,
    )


def _forecast(
    procedure: SequentialProcedure, active: Sequence[_Active]
) -> list[tuple[FloatArray, FloatArray]]:
    """Each request's remaining rounds' values and costs, from its posterior (best-of-k), or
    "always worth it" for a vote (its rule alone decides when it is settled)."""
    out: list[tuple[FloatArray, FloatArray]] = [(np.zeros(0), np.zeros(0))] * len(active)
    groups: dict[tuple[int, ...], list[int]] = {}
    for j, a in enumerate(active):
        sizes = a.state.remaining()
        if isinstance(procedure, SequentialBestOfK):
            groups.setdefault(sizes, []).append(j)
        else:
            out[j] = (np.ones(len(sizes)), np.asarray(sizes, dtype=np.float64))
    for sizes, idx in groups.items():
        values, costs = forecast(np.stack([active[j].log_w for j in idx]), sizes)
        for row, j in enumerate(idx):
            out[j] = (values[row], costs[row])
    return out


@dataclass(slots=True)
class _Replay:
    success: FloatArray
    samples: FloatArray
    rounds: npt.NDArray[np.int64]
    ticks: npt.NDArray[np.int64]
    stops: dict[str, int]


def _replay(
    policy: SimulatedPolicy,
    procedure: SequentialProcedure,
    logged: LoggedSamples,
    average_budget: float,
    cap: int,
    rng: np.random.Generator,
) -> _Replay:
    n, m = logged.rewards.shape
    prior = policy.make_prior()
    allocator = policy.make_allocator(average_budget, int(rng.integers(1 << 31)))
    arrivals = deque(int(i) for i in rng.permutation(n))
    orders = [rng.permutation(m) for _ in range(n)]
    active: dict[int, _Active] = {}
    success = np.zeros(n)
    samples = np.zeros(n)
    rounds = np.zeros(n, dtype=np.int64)
    ticks = np.zeros(n, dtype=np.int64)
    stops: dict[str, int] = {}
    tick = 0
    while arrivals or active:
        while arrivals and (policy.concurrency is None or len(active) < policy.concurrency):
            i = arrivals.popleft()
            info = RequestInfo(key=logged.ids[i], z=float(logged.z[i]), group=logged.groups[i])
            a = _Active(info, procedure.start(cap, info.z), prior.prior(info), prior.version, tick)
            active[i] = a
            allocator.admit(_ask(procedure, str(i), a, policy.min_budget))
        prior.tick()
        for a in active.values():
            if a.version != prior.version:
                # Feedback from other requests changed the prior: re-base this request's
                # posterior on it (prior x its own evidence).
                a.log_w = normalise(
                    prior.prior(a.info) + log_lik_counts([a.state.passes], [a.state.fails])[0]
                )
                a.version = prior.version
        keys = [i for i, a in active.items() if a.state.next_size() > 0]
        forecasts = _forecast(procedure, [active[i] for i in keys])
        asks = [
            RoundRequest(
                key=str(i),
                size=active[i].state.next_size(),
                forced=active[i].state.used < policy.min_budget,
                values=v,
                costs=c,
            )
            for i, (v, c) in zip(keys, forecasts, strict=True)
        ]
        grants = allocator.grant(asks)
        for key, k in grants.granted.items():
            i = int(key)
            a = active[i]
            idx = orders[i][a.state.used : a.state.used + k]
            a.state.used += len(idx)
            a.state.rounds += 1
            if isinstance(procedure, SequentialBestOfK):
                scores = [float(logged.rewards[i, j]) for j in idx]
                procedure.observe(a.state, scores)
                if not a.state.passes:
                    a.log_w = normalise(a.log_w + log_lik_counts([0], [len(idx)])[0])
                prior.update(a.info, a.state.passes, a.state.fails)
            else:
                keys_ = [logged.answers[i][j] for j in idx]
                for j, answer in zip(idx, keys_, strict=True):
                    if answer is not None:
                        a.values[answer] = float(logged.rewards[i, j])
                procedure.observe(a.state, keys_)
        for key, reason in grants.refused.items():
            state = active[int(key)].state
            if state.stop is None:
                state.stop = StopReason(reason)
        if policy.deadline is not None:
            for a in active.values():
                if a.state.stop is None and tick - a.admitted + 1 >= policy.deadline:
                    a.state.stop = StopReason.DEADLINE
        for i in [i for i, a in active.items() if a.state.next_size() == 0]:
            a = active.pop(i)
            st = a.state
            if isinstance(procedure, SequentialBestOfK):
                success[i] = float(st.passes > 0)
            else:
                success[i] = majority_value(st.votes, a.values)
            samples[i], rounds[i], ticks[i] = st.used, st.rounds, tick - a.admitted + 1
            reason = str(st.stop or StopReason.MAX_BUDGET)
            stops[reason] = stops.get(reason, 0) + 1
            prior.feedback(a.info, st.passes, st.fails)
        tick += 1
    return _Replay(success, samples, rounds, ticks, stops)


def simulate(
    policy: SimulatedPolicy,
    procedure: SequentialProcedure,
    logged: LoggedSamples,
    *,
    average_budget: float,
    replays: int = 32,
    seed: int = 0,
) -> SimulationResult:
    """Replay ``policy`` running ``procedure`` over ``logged`` ``replays`` times (module doc).

    The procedure's ``config.max_budget`` caps each request; it may not exceed the stored
    samples per request (beyond them the estimate would not be exact).
    """
    cap = procedure.config.max_budget
    if cap > logged.rewards.shape[1]:
        raise ConfigError(
            f"max_budget={cap} exceeds the {logged.rewards.shape[1]} stored samples per request; "
            "simulate at most as many samples as were logged"
        )
    if replays < 1:
        raise ConfigError(f"replays must be >= 1, got {replays}")
    rng = np.random.default_rng(seed)
    runs = [_replay(policy, procedure, logged, average_budget, cap, rng) for _ in range(replays)]
    s = np.array([r.success.mean() for r in runs])
    u = np.array([r.samples.mean() for r in runs])
    rounds = np.concatenate([r.rounds for r in runs])
    ticks = np.concatenate([r.ticks for r in runs])
    stops: dict[str, float] = {}
    for r in runs:
        for k, v in r.stops.items():
            stops[k] = stops.get(k, 0.0) + v / (len(runs) * len(logged))

    def se(x: FloatArray) -> float:
        return float(x.std(ddof=1) / np.sqrt(len(x))) if len(x) > 1 else float("nan")

    return SimulationResult(
        policy=policy.name,
        average_budget=average_budget,
        replays=replays,
        success=float(s.mean()),
        success_se=se(s),
        samples=float(u.mean()),
        samples_se=se(u),
        rounds_p50=float(np.percentile(rounds, 50)),
        rounds_p99=float(np.percentile(rounds, 99)),
        ticks_p50=float(np.percentile(ticks, 50)),
        ticks_p99=float(np.percentile(ticks, 99)),
        stops=dict(sorted(stops.items())),
        replay_success=s,
        replay_samples=u,
    )


def describe(result: SimulationResult) -> dict[str, Any]:
    """A JSON-ready summary of a result (no per-replay arrays)."""
    return {
        "policy": result.policy,
        "average_budget": result.average_budget,
        "replays": result.replays,
        "success": round(result.success, 4),
        "success_se": round(result.success_se, 4),
        "samples": round(result.samples, 3),
        "samples_se": round(result.samples_se, 3),
        "rounds_p50": result.rounds_p50,
        "rounds_p99": result.rounds_p99,
        "ticks_p50": result.ticks_p50,
        "ticks_p99": result.ticks_p99,
        "stops": {k: round(v, 3) for k, v in result.stops.items()},
    }
