"""Served = evaluated: collected questions replayed through a real Scheduler, scored exactly."""

from __future__ import annotations

import numpy as np
import pytest

from howhard.commands._served import (
    RecordedVerdicts,
    ServedStream,
    markdown,
    quality_from_counts,
    restrict,
    run_streams,
    summarise,
)
from howhard.probes import BetaMarginalsMap
from howhard.types import GenerationParams


def small_stream(n: int = 48, after: int = 0) -> ServedStream:
    rng = np.random.default_rng(0)
    template = rng.integers(0, 3, n)
    lam = np.array([0.0, 0.15, 0.8])[template]
    samples = np.full(n, 16)
    return ServedStream(
        name="toy",
        prompts=tuple(f"t{t} question {i}" for i, t in enumerate(template)),
        successes=rng.binomial(samples, lam),
        samples=samples,
        logits=np.log((lam + 0.05) / (1.05 - lam)),
        features=np.eye(3)[template] + 0.01 * rng.normal(size=(n, 3)),
        after=after,
    )


def test_replayed_verdicts_are_drawn_without_replacement() -> None:
    stream = small_stream()
    handler = RecordedVerdicts(stream, seed=1)
    i = int(np.argmax(stream.successes))
    texts = handler(stream.prompts[i], 16, GenerationParams())
    assert texts.count("The answer is pass.") == stream.successes[i]  # all 16: every verdict


def test_exact_quality_from_counts() -> None:
    q = quality_from_counts(np.array([0, 8, 16]), np.array([16, 16, 16]), 4)
    assert q[0].tolist() == [0.0] * 5 and q[2, 1:].tolist() == [1.0] * 4
    assert q[1, 1] == pytest.approx(0.5) and q[1, 2] == pytest.approx(1 - (8 * 7) / (16 * 15))


@pytest.mark.parametrize("after", [0, 16])
def test_streams_run_through_the_scheduler_and_summarise(after: int) -> None:
    stream = small_stream(after=after)
    (result,) = run_streams([stream], BetaMarginalsMap(), budgets=[1, 4], seeds=1, batch_size=16)
    assert set(result.quality) == {"adaptive", "plug-in", "oracle"}
    quality = quality_from_counts(stream.successes, stream.samples, 16)
    # B = 1 with min_budget 1: every policy gives everyone one sample.
    for name in result.quality:
        assert result.quality[name][0, 0] == pytest.approx(result.uniform[0])
        assert result.spent[name][0, 1] <= 4.0 + 1e-9
    assert result.quality["oracle"][0, 1] > result.uniform[1]
    marginals = None if after else np.diff(quality, axis=1)
    summary = summarise(result, marginals)
    assert summary["oracle"]["share"][1] == pytest.approx(1.0)
    text = markdown({"toy": summary}, "howhard evaluate ...", 1, 16)
    assert "| 4 | " in text and "adaptive" in text


def test_a_subset_of_a_served_stream_is_scored_on_its_own_questions() -> None:
    stream = small_stream()
    (result,) = run_streams([stream], BetaMarginalsMap(), budgets=[4], seeds=1, batch_size=16)
    rows = np.arange(0, 48, 3)
    sub = restrict(result, rows, "every third")
    quality = quality_from_counts(stream.successes, stream.samples, 16)
    assert sub.uniform[0] == pytest.approx(quality[rows, 4].mean())
    for name in result.quality:
        assert sub.quality[name][0, 0] == pytest.approx(
            result.per_question[name][0, 0, rows].mean()
        )
    assert summarise(sub, None)["oracle"]["share"][0] == pytest.approx(1.0)
