"""Majority-vote curves equal exhaustive enumeration of every k-subset."""

import itertools
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from howhard.evaluation.consistency import majority_vote_curve, majority_vote_curves


def _brute_force(answers: list[str | None], rewards: list[float], k: int) -> float:
    value = {}
    for a in set(answers) - {None}:
        rs = [r for b, r in zip(answers, rewards, strict=True) if b == a]
        value[a] = sum(rs) / len(rs)
    total = 0.0
    subsets = list(itertools.combinations(range(len(answers)), k))
    for subset in subsets:
        votes = Counter(answers[i] for i in subset if answers[i] is not None)
        if not votes:
            continue
        top = max(votes.values())
        winners = [a for a, v in votes.items() if v == top]
        total += sum(value[a] for a in winners) / len(winners)
    return total / len(subsets)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["a", "b", "c", "d", None]), st.sampled_from([0.0, 1.0])),
        min_size=1,
        max_size=9,
    )
)
def test_matches_enumeration_of_all_subsets(samples: list[tuple[str | None, float]]) -> None:
    answers = [a for a, _ in samples]
    # A reward is a property of the answer (as with a deterministic verifier) except for None.
    rewards = [1.0 if a == "a" else r if a is None else 0.0 for a, r in samples]
    curve = majority_vote_curve(answers, rewards)
    expected = [0.0] + [_brute_force(answers, rewards, k) for k in range(1, len(answers) + 1)]
    np.testing.assert_allclose(curve, expected, atol=1e-12)


def test_single_sample_vote_is_the_mean_reward() -> None:
    curve = majority_vote_curve(["5", "5", "6", None], [1.0, 1.0, 0.0, 0.0])
    assert curve[1] == pytest.approx(0.5)
    assert curve[4] == pytest.approx(1.0)


def test_a_wrong_majority_gets_worse_with_more_votes() -> None:
    curve = majority_vote_curve(["7"] * 6 + ["5"] * 3, [0.0] * 6 + [1.0] * 3)
    assert curve[1] == pytest.approx(1 / 3)
    assert curve[9] == 0.0
    assert curve[5] < curve[1]


def test_batch_shape_and_validation() -> None:
    curves = majority_vote_curves([["a", "b"], ["a", "a"]], [[1.0, 0.0], [1.0, 1.0]], 2)
    assert curves.shape == (2, 3)
    with pytest.raises(ValueError, match="max_budget must be in"):
        majority_vote_curve(["a"], [1.0], 2)
    with pytest.raises(ValueError, match="rewards must have shape"):
        majority_vote_curves([["a"]], [1.0], 1)
