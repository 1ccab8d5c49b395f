"""Procedures that run a request in rounds and stop as soon as it is settled.

``SequentialBestOfK`` stops at the first sample whose score passes a threshold (a verifier's
verdict); ``AdaptiveSelfConsistency`` stops when a stopping rule says the vote is settled
(:class:`BetaRule`, Adaptive-Consistency's Beta criterion; :class:`EscRule`, Early-Stopping
Self-Consistency's unanimous window). Each round is one backend call of ``n = k`` samples, the
sizes following :class:`~howhard.config.RoundsConfig` (e.g. 1, 2, 4, 8 …); rounds of different
requests run concurrently because each request is its own task. The request's budget and
deadline bound the rounds; the :class:`~howhard.procedures.Outcome` reports the samples used
(``units``: the scheduler returns the rest of the budget to the stream), the rounds and why it
stopped.

The same objects drive the offline simulator (:mod:`howhard.evaluation.simulate`): a
:class:`RoundState` per request, ``next_round`` for the size of its next round, ``observe`` for
what the round showed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Protocol, runtime_checkable

import anyio

from howhard.config import RoundsConfig
from howhard.errors import ConfigError, ScoringError
from howhard.posterior import round_sizes
from howhard.probes.vote_value import VoteValueModel, vote_features
from howhard.procedures.base import Context, Outcome, PlannedCall, extract_checked
from howhard.procedures.best_of_k import best_index, score_candidates
from howhard.procedures.self_consistency import vote
from howhard.scoring.base import AnswerExtractor, Scorer
from howhard.scoring.extract import extract_final_answer, normalize_answer
from howhard.types import Candidate, Completion, Request, RoundGrant, RoundView

__all__ = [
    "AdaptiveSelfConsistency",
    "BetaRule",
    "EscRule",
    "RoundGate",
    "RoundState",
    "SequentialBestOfK",
    "StopReason",
    "StopRule",
    "ValueRule",
]


class StopReason(StrEnum):
    """Why a sequential request stopped (``Result.metadata["stop_reason"]``)."""

    PASSED = "passed"
    """A sample passed the verifier (best-of-k)."""
    SETTLED = "settled"
    """The stopping rule says the vote is settled (self-consistency)."""
    MAX_BUDGET = "max_budget"
    """The request used its whole budget (the granted one, or the procedure's ``max_budget``)."""
    NOT_WORTH = "not_worth"
    """The stream allocator priced its next round above what the round is worth."""
    NO_UNITS = "no_units"
    """The stream allocator had no units for it within its wait limit."""
    DEADLINE = "deadline"
    """Its next round would not have finished before its deadline; it kept what it had."""


@dataclass(slots=True)
class RoundState:
    """One request's progress through its rounds (mutable; one per request)."""

    cap: int
    """Most samples this request may use (its budget, bounded by ``max_budget``)."""
    sizes: tuple[int, ...]
    """The planned round sizes (at most these calls are made)."""
    used: int = 0
    rounds: int = 0
    passes: int = 0
    fails: int = 0
    votes: dict[str, int] = field(default_factory=dict)
    """Self-consistency: samples per normalised answer."""
    nulls: int = 0
    """Self-consistency: samples without an extractable answer."""
    z: float = 0.0
    """The difficulty probe's logit for the request, when a stop rule reads it."""
    stop: StopReason | None = None

    def remaining(self) -> tuple[int, ...]:
        """The sizes of the rounds it may still run, the next one first (ignores ``stop``)."""
        sizes: list[int] = []
        used = self.used
        for k in self.sizes[self.rounds :]:
            if used >= self.cap:
                break
            sizes.append(min(k, self.cap - used))
            used += sizes[-1]
        return tuple(sizes)

    def next_size(self) -> int:
        """Samples in the next round (0: the request is finished)."""
        if self.stop is not None or self.rounds >= len(self.sizes) or self.used >= self.cap:
            return 0
        return min(self.sizes[self.rounds], self.cap - self.used)


def _start(config: RoundsConfig, budget: int, z: float = 0.0) -> RoundState:
    cap = min(budget, config.max_budget)
    return RoundState(cap=cap, sizes=round_sizes(0, 0, config.schedule, cap), z=z)


def _plan(config: RoundsConfig, budget: int) -> list[PlannedCall]:
    cap = min(budget, config.max_budget)
    return [PlannedCall(None, k) for k in round_sizes(0, 0, config.schedule, cap)]


@runtime_checkable
class RoundGate(Protocol):
    """Decides, round by round, whether a request may spend more (a stream allocator's handle,
    e.g. :class:`howhard.policies.StreamGate`): the units of its next round, or 0 and why."""

    async def grant(self, request: Request, view: RoundView) -> RoundGrant:
        """Units for the request's next round (``view.sizes[0]``), or 0 with a reason."""
        ...

    def finish(self, request: Request, view: RoundView) -> None:
        """The request stopped (for any reason, failures included) after ``view.used``."""
        ...


def _view(state: RoundState) -> RoundView:
    return RoundView(
        used=state.used,
        rounds=state.rounds,
        passes=state.passes,
        fails=state.fails,
        sizes=state.remaining(),
    )


class _Rounds:
    """The round loop both procedures share: deadline checks, the gate, one call per round."""

    def __init__(self, config: RoundsConfig, gate: RoundGate | None, request: Request) -> None:
        self.config = config
        self._gate = gate
        self._request = request
        self._slowest = 0.0

    async def next_round(self, state: RoundState, context: Context) -> list[Completion]:
        """Run the next round; returns its completions, or [] when the request stopped."""
        k = state.next_size()
        if k == 0:
            return []
        # The scheduler's deadline is on the context (its timer cancels the request when it
        # passes); an enclosing cancel scope may set an earlier one.
        deadline = min(anyio.current_effective_deadline(), getattr(context, "deadline", math.inf))
        if (
            state.rounds
            and math.isfinite(deadline)
            and anyio.current_time() + self._slowest >= deadline
        ):
            # The next round would most likely be cut off by the deadline, failing the request
            # and losing what earlier rounds found: stop now and keep it.
            state.stop = StopReason.DEADLINE
            return []
        if self._gate is not None:
            grant = RoundGrant(units=0, reason=StopReason.DEADLINE)
            # A request parked by the gate waits at most until its next round could no longer
            # finish in time; then it stops and keeps what it found instead of timing out.
            with anyio.move_on_after(deadline - anyio.current_time() - self._slowest):
                grant = await self._gate.grant(self._request, _view(state))
            if grant.units <= 0:
                state.stop = StopReason(grant.reason or StopReason.NO_UNITS)
                return []
            k = min(k, grant.units)
        started = anyio.current_time()
        generation = await context.generate(self._request.prompt, n=k)
        self._slowest = max(self._slowest, anyio.current_time() - started)
        if not generation.completions:
            raise ScoringError(f"backend returned no completions for n={k}")
        # A backend may return fewer than k; only what came back counts (and is settled).
        completions = list(generation.completions[:k])
        state.used += len(completions)
        state.rounds += 1
        return completions

    def finish(self, state: RoundState) -> None:
        """Tell the gate the request stopped (sync: it runs even under cancellation)."""
        if self._gate is not None:
            self._gate.finish(self._request, _view(state))


def _metadata(
    state: RoundState, extra: Mapping[str, object] | None = None
) -> MappingProxyType[str, object]:
    stop = state.stop or StopReason.MAX_BUDGET
    return MappingProxyType(
        {
            **(extra or {}),
            "rounds": state.rounds,
            "samples": state.used,
            "stop_reason": str(stop),
        }
    )


class _Sequential:
    """What both sequential procedures share: the plan, the start state, the stop decision."""

    config: RoundsConfig
    default_answer: str | None
    gate: RoundGate | None

    def plan(self, budget: int) -> Sequence[PlannedCall]:
        """One call per planned round (the worst case: the request never stops early)."""
        return _plan(self.config, budget)

    def start(self, budget: int, z: float = 0.0) -> RoundState:
        """A fresh request's state for ``budget`` units (for the simulator and custom loops);
        ``z``: its difficulty probe logit, for stop rules that read one."""
        return _start(self.config, budget, z)

    def _abstain(self) -> Outcome:
        return Outcome(answer=self.default_answer, chosen=None, abstained=True, units=0)

    def _refused(self, state: RoundState) -> Outcome:
        """The gate refused even the first round: the request abstains, spending nothing."""
        return Outcome(
            answer=self.default_answer,
            chosen=None,
            abstained=True,
            units=0,
            metadata=_metadata(state),
        )

    @staticmethod
    def _decide(state: RoundState, done: bool, reason: StopReason) -> None:
        if done:
            state.stop = reason
        elif state.next_size() == 0:
            state.stop = StopReason.MAX_BUDGET


class SequentialBestOfK(_Sequential):
    """Best-of-k that stops at the first sample scoring at least ``threshold``.

    Round ``r`` draws ``config.schedule[r]`` samples (the last size repeats) until a sample
    passes, the budget (bounded by ``config.max_budget``) is used, or the next round would end
    past the request's deadline. The answer is the best-scored sample seen (ties: earliest);
    ``Outcome.units`` is the samples drawn, so the unused budget returns to the stream. Budget 0
    abstains without a backend call.
    """

    def __init__(
        self,
        scorer: Scorer,
        *,
        threshold: float = 0.5,
        config: RoundsConfig | None = None,
        extractor: AnswerExtractor = extract_final_answer,
        default_answer: str | None = None,
        gate: RoundGate | None = None,
    ) -> None:
        if not isinstance(threshold, int | float) or not math.isfinite(threshold):
            raise ConfigError(
                f"threshold must be a finite number, got {threshold!r}; a sample passes when "
                "its score >= threshold (e.g. 0.5 for a 0/1 verifier)"
            )
        self.scorer = scorer
        self.threshold = float(threshold)
        self.config = config if config is not None else RoundsConfig()
        self._extract = extractor
        self.default_answer = default_answer
        self.gate = gate

    def observe(self, state: RoundState, scores: Sequence[float]) -> None:
        """Record a round's scores (``state.used``/``rounds`` already counted); maybe stop."""
        passed = sum(1 for s in scores if s >= self.threshold)
        state.passes += passed
        state.fails += len(scores) - passed
        self._decide(state, passed > 0, StopReason.PASSED)

    async def run(self, request: Request, budget: int, context: Context) -> Outcome:
        """Sample in rounds until a sample passes; keep the best one."""
        if budget == 0:
            return self._abstain()
        state = self.start(budget)
        rounds = _Rounds(self.config, self.gate, request)
        candidates: list[Candidate] = []
        try:
            while completions := await rounds.next_round(state, context):
                scored = await score_candidates(self.scorer, self._extract, request, completions)
                candidates.extend(scored)
                self.observe(state, [c.score for c in scored])
        finally:
            rounds.finish(state)
        if not candidates:
            return self._refused(state)
        chosen = candidates[best_index(candidates)]
        answer = chosen.answer if chosen.answer is not None else chosen.completion.text
        return Outcome(
            answer=answer,
            chosen=chosen,
            candidates=tuple(candidates),
            units=state.used,
            metadata=_metadata(state, {"passed": state.passes > 0}),
        )


@runtime_checkable
class StopRule(Protocol):
    """When a self-consistency vote is settled."""

    @property
    def schedule(self) -> tuple[int, ...] | None:
        """Round sizes the rule needs (``None``: the procedure's own schedule)."""
        ...

    def settled(self, state: RoundState, last: Sequence[str | None]) -> bool:
        """Whether the vote (``state.votes``: samples per answer) is settled after a round that
        gave the answers ``last``."""
        ...


@dataclass(frozen=True, slots=True)
class BetaRule:
    """Adaptive-Consistency's Beta criterion (Aggarwal et al., EMNLP 2023): with the top two
    answers' counts ``v1 ≥ v2``, settled when ``P(Beta(v1 + 1, v2 + 1) > ½) ≥ confidence``.

    For whole counts that is a binomial tail: ``P(Bin(v1 + v2 + 1, ½) ≤ v1)``, exact. The rule
    checks after every sample (``rounds=(1,)``, as published); ``rounds=None`` checks at the
    ends of the procedure's own rounds instead (fewer backend calls).
    """

    confidence: float = 0.95
    rounds: tuple[int, ...] | None = (1,)

    def __post_init__(self) -> None:
        if not 0.5 <= self.confidence < 1.0:
            raise ConfigError(f"confidence must be in [0.5, 1), got {self.confidence!r}; e.g. 0.95")

    @property
    def schedule(self) -> tuple[int, ...] | None:
        """``rounds``: one sample per round by default."""
        return self.rounds

    def settled(self, state: RoundState, last: Sequence[str | None]) -> bool:
        """``P(p1 > p2 | counts) ≥ confidence`` under uniform priors."""
        if not state.votes:
            return False
        ordered = sorted(state.votes.values(), reverse=True)
        v1, v2 = ordered[0], ordered[1] if len(ordered) > 1 else 0
        n = v1 + v2 + 1
        tail = sum(math.comb(n, i) for i in range(v1 + 1)) / (1 << n)
        return tail >= self.confidence


@dataclass(frozen=True, slots=True)
class EscRule:
    """Early-Stopping Self-Consistency (Li et al., ICLR 2024): sample in windows of ``window``;
    settled as soon as one window's answers are all the same (and present)."""

    window: int = 4

    def __post_init__(self) -> None:
        if isinstance(self.window, bool) or not isinstance(self.window, int) or self.window < 1:
            raise ConfigError(f"window must be an int >= 1, got {self.window!r}; e.g. window=4")

    @property
    def schedule(self) -> tuple[int, ...] | None:
        """Rounds of one window each."""
        return (self.window,)

    def settled(self, state: RoundState, last: Sequence[str | None]) -> bool:
        """The last window was unanimous."""
        return len(last) == self.window and last[0] is not None and len(set(last)) == 1


@dataclass(frozen=True, slots=True)
class ValueRule:
    """howhard's rule: go on while the vote is predicted to gain, per remaining sample, at least
    ``price`` (and at least ``min_gain`` in all) by running to ``model.max_budget`` samples.

    The gain comes from :class:`~howhard.probes.vote_value.VoteValueModel` on the vote state and
    the request's probe logit (``RoundState.z``): hopeless requests (a low prior, a diffuse vote)
    and settled ones both predict ~0 gain and stop early. ``price`` trades accuracy for samples
    (0: stop only when nothing is left to gain).
    """

    model: VoteValueModel
    min_gain: float = 1e-3
    price: float = 0.0
    round_size: int = 1

    @property
    def schedule(self) -> tuple[int, ...] | None:
        """Rounds of ``round_size`` samples."""
        return (self.round_size,)

    def gain(self, state: RoundState) -> float:
        """The predicted gain of running to ``model.max_budget`` samples."""
        ordered = sorted(state.votes.values(), reverse=True)
        features = vote_features(
            [state.used],
            [ordered[0] if ordered else 0],
            [ordered[1] if len(ordered) > 1 else 0],
            [len(ordered)],
            [state.nulls],
            [state.z],
            self.model.max_budget,
        )
        return float(self.model.gain(features)[0])

    def settled(self, state: RoundState, last: Sequence[str | None]) -> bool:
        """Too little left to gain, in all or per remaining sample."""
        left = self.model.max_budget - state.used
        if left <= 0:
            return False  # the procedure's cap stops it (max_budget)
        g = self.gain(state)
        return g < self.min_gain or g / left < self.price


class AdaptiveSelfConsistency(_Sequential):
    """Self-consistency in rounds: majority vote, stopping when ``rule`` says it is settled.

    The rule's schedule (one sample per round for :class:`BetaRule`, one window for
    :class:`EscRule`) replaces ``config.schedule``; ``config.max_budget`` bounds the samples.
    ``logit(request)`` gives the request's difficulty probe logit to rules that read it
    (:class:`ValueRule`).
    Votes, tie-breaks and candidate scores are :class:`SelfConsistency`'s.
    """

    def __init__(
        self,
        rule: StopRule | None = None,
        *,
        config: RoundsConfig | None = None,
        answer_extractor: AnswerExtractor = extract_final_answer,
        normalize: Callable[[str], str] = normalize_answer,
        default_answer: str | None = None,
        gate: RoundGate | None = None,
        logit: Callable[[Request], float] | None = None,
    ) -> None:
        self.rule: StopRule = rule if rule is not None else BetaRule()
        if not isinstance(self.rule, StopRule):
            raise ConfigError(
                f"rule must have a schedule and settled(votes, last), got {type(rule).__name__}"
            )
        base = config if config is not None else RoundsConfig()
        schedule = self.rule.schedule
        self.config = base if schedule is None else base.model_copy(update={"schedule": schedule})
        self._extract = answer_extractor
        self._normalize = normalize
        self.default_answer = default_answer
        self.gate = gate
        self._logit = logit

    def observe(self, state: RoundState, keys: Sequence[str | None]) -> None:
        """Record a round's normalised answers (``None``: no answer); maybe stop."""
        for key in keys:
            if key is None:
                state.nulls += 1
            else:
                state.votes[key] = state.votes.get(key, 0) + 1
        self._decide(state, self.rule.settled(state, keys), StopReason.SETTLED)

    async def run(self, request: Request, budget: int, context: Context) -> Outcome:
        """Sample in rounds until the vote is settled; return its majority."""
        if budget == 0:
            return self._abstain()
        state = self.start(budget, 0.0 if self._logit is None else float(self._logit(request)))
        rounds = _Rounds(self.config, self.gate, request)
        completions: list[Completion] = []
        answers: list[str | None] = []
        try:
            while batch := await rounds.next_round(state, context):
                texts = [extract_checked(self._extract, c.text) for c in batch]
                completions.extend(batch)
                answers.extend(texts)
                self.observe(state, [None if a is None else self._normalize(a) for a in texts])
        finally:
            rounds.finish(state)
        if not completions:
            return self._refused(state)
        outcome = vote(completions, answers, self._normalize)
        return Outcome(
            answer=outcome.answer,
            chosen=outcome.chosen,
            candidates=outcome.candidates,
            units=state.used,
            metadata=_metadata(state, outcome.metadata),
        )
