"""Fit the self-consistency value model (:class:`howhard.probes.vote_value.VoteValueModel`).

Training states come from resampling each question's stored answers *with replacement* (its
empirical answer distribution stands for the model's), so the targets describe fresh samples
rather than the finite stored set: along each path, the state after N = 1 … max_budget - 1
samples, with targets "the current majority is right" and "the majority after max_budget
samples is right" (a tie counts as its expected value under a uniform tie-break).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from howhard.probes.vote_value import VoteValueModel, vote_features

__all__ = ["fit_vote_value", "majority_value", "training_states"]

FloatArray = npt.NDArray[np.float64]


def majority_value(votes: dict[str, int], values: dict[str, float]) -> float:
    """Expected reward of the majority answer, ties broken uniformly (0 with no votes)."""
    if not votes:
        return 0.0
    top = max(votes.values())
    leaders = [a for a, c in votes.items() if c == top]
    return sum(values.get(a, 0.0) for a in leaders) / len(leaders)


def training_states(
    answers: Sequence[Sequence[str | None]],
    rewards: npt.ArrayLike,
    z: npt.ArrayLike,
    *,
    paths: int,
    max_budget: int = 16,
    seed: int = 0,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Features ``(s, 8)`` and targets ``now``, ``final`` ``(s,)`` along resampled paths."""
    rng = np.random.default_rng(seed)
    r = np.asarray(rewards, dtype=np.float64)
    zz = np.asarray(z, dtype=np.float64)
    xs: list[FloatArray] = []
    now: list[float] = []
    final: list[float] = []
    for i, row in enumerate(answers):
        values = {a: float(r[i, j]) for j, a in enumerate(row) if a is not None}
        for _ in range(paths):
            draw = rng.integers(0, len(row), size=max_budget)
            votes: dict[str, int] = {}
            nulls = 0
            states: list[tuple[int, int, int, int, int]] = []
            current: list[float] = []
            for n in range(1, max_budget + 1):
                answer = row[draw[n - 1]]
                if answer is None:
                    nulls += 1
                else:
                    votes[answer] = votes.get(answer, 0) + 1
                if n == max_budget:
                    break
                ordered = sorted(votes.values(), reverse=True)
                states.append(
                    (
                        n,
                        ordered[0] if ordered else 0,
                        ordered[1] if len(ordered) > 1 else 0,
                        len(ordered),
                        nulls,
                    )
                )
                current.append(majority_value(votes, values))
            s = np.asarray(states, dtype=np.float64)
            xs.append(vote_features(s[:, 0], s[:, 1], s[:, 2], s[:, 3], s[:, 4], zz[i], max_budget))
            now += current
            final += [majority_value(votes, values)] * len(current)
    return np.concatenate(xs), np.asarray(now), np.asarray(final)


def fit_vote_value(
    train: tuple[FloatArray, FloatArray, FloatArray],
    val: tuple[FloatArray, FloatArray, FloatArray],
    *,
    hidden: int = 32,
    epochs: int = 20,
    seed: int = 0,
    max_budget: int = 16,
) -> tuple[VoteValueModel, float]:
    """Fit both heads by soft-label cross-entropy; keep the epoch with the best val loss.

    Returns the model and that loss.
    """
    import torch

    torch.manual_seed(seed)
    net = torch.nn.Sequential(
        torch.nn.Linear(train[0].shape[1], hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 2)
    )
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    xt = torch.as_tensor(train[0], dtype=torch.float32)
    yt = torch.as_tensor(np.stack(train[1:], axis=1), dtype=torch.float32)
    xv = torch.as_tensor(val[0], dtype=torch.float32)
    yv = torch.as_tensor(np.stack(val[1:], axis=1), dtype=torch.float32)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    generator = torch.Generator().manual_seed(seed)
    best, best_state = float("inf"), None
    for _ in range(epochs):
        net.train()
        perm = torch.randperm(len(xt), generator=generator)
        for start in range(0, len(perm), 1024):
            idx = perm[start : start + 1024]
            opt.zero_grad()
            loss_fn(net(xt[idx]), yt[idx]).backward()
            opt.step()
        net.eval()
        with torch.no_grad():
            loss = float(loss_fn(net(xv), yv))
        if loss < best - 1e-5:
            best = loss
            best_state = {k: v.clone() for k, v in net.state_dict().items()}
    assert best_state is not None
    net.load_state_dict(best_state)
    sd = {k: v.detach().numpy().astype(np.float64) for k, v in net.state_dict().items()}
    model = VoteValueModel(
        w1=sd["0.weight"].T,
        b1=sd["0.bias"],
        w2=sd["2.weight"].T,
        b2=sd["2.bias"],
        max_budget=max_budget,
    )
    return model, best
