"""Fit the self-consistency value model (:class:`howhard.probes.vote_value.VoteValueModel`).

Training states come from resampling each question's stored answers *with replacement* (its
empirical answer distribution stands for the model's), so the targets describe fresh samples
rather than the finite stored set: along each path, the state after N = 1 … max_budget - 1
samples, with targets "the current majority is right" and "the majority after max_budget
samples is right" (a tie counts as its expected value under a uniform tie-break).

A model that is to transfer to task families nobody trained on must learn how far to trust the
probe logit there: :func:`out_of_family_logits` scores every question with a probe (the shipped
recipe) that never saw its family, and :func:`fit_across_families` fits on several collected
builds, early-stopped on whole families held out of the fit.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from howhard.errors import ConfigError
from howhard.probes.vote_value import VoteValueModel, vote_features

__all__ = [
    "VoteBlock",
    "fit_across_families",
    "fit_vote_value",
    "majority_value",
    "merge_states",
    "out_of_family_logits",
    "training_states",
]

FloatArray = npt.NDArray[np.float64]
States = tuple[FloatArray, ...]
"""``(features, now, final)`` or, merged, ``(features, now, final, weight)``."""


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


def merge_states(states: States) -> States:
    """Identical feature rows merged into one, targets averaged, weighted by their count.

    Exact for the fit: soft-label cross-entropy is linear in the target, so a weighted row
    costs what its copies did. Resampled paths revisit the same vote states (~3x fewer rows).
    """
    x, now, final = states[:3]
    w = states[3] if len(states) > 3 else np.ones(len(x))
    unique, inverse = np.unique(x, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    weight = np.bincount(inverse, weights=w, minlength=len(unique)).astype(np.float64)
    mean_now = np.bincount(inverse, weights=w * now, minlength=len(unique)) / weight
    mean_final = np.bincount(inverse, weights=w * final, minlength=len(unique)) / weight
    return unique, mean_now, mean_final, weight


def fit_vote_value(
    train: States,
    val: States,
    *,
    hidden: int = 32,
    epochs: int = 20,
    seed: int = 0,
    max_budget: int = 16,
) -> tuple[VoteValueModel, float]:
    """Fit both heads by soft-label cross-entropy; keep the epoch with the best val loss.

    ``train``/``val``: :func:`training_states` output, or :func:`merge_states` output (rows
    weighted by their count). Returns the model and that loss (per unmerged state).
    """
    import torch

    torch.manual_seed(seed)
    net = torch.nn.Sequential(
        torch.nn.Linear(train[0].shape[1], hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 2)
    )
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    xt = torch.as_tensor(train[0], dtype=torch.float32)
    yt = torch.as_tensor(np.stack(train[1:3], axis=1), dtype=torch.float32)
    wt = torch.as_tensor(train[3] if len(train) > 3 else np.ones(len(xt)), dtype=torch.float32)
    xv = torch.as_tensor(val[0], dtype=torch.float32)
    yv = torch.as_tensor(np.stack(val[1:3], axis=1), dtype=torch.float32)
    wv = torch.as_tensor(val[3] if len(val) > 3 else np.ones(len(xv)), dtype=torch.float32)
    bce = torch.nn.BCEWithLogitsLoss(reduction="none")

    def loss_fn(x: Any, y: Any, w: Any) -> Any:  # torch tensors (torch ships no stubs here)
        return (bce(net(x), y).mean(dim=1) * w).sum() / w.sum()

    generator = torch.Generator().manual_seed(seed)
    best, best_state = float("inf"), None
    for _ in range(epochs):
        net.train()
        perm = torch.randperm(len(xt), generator=generator)
        for start in range(0, len(perm), 1024):
            idx = perm[start : start + 1024]
            opt.zero_grad()
            loss_fn(xt[idx], yt[idx], wt[idx]).backward()
            opt.step()
        net.eval()
        with torch.no_grad():
            loss = float(loss_fn(xv, yv, wv))
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


def out_of_family_logits(
    features: npt.ArrayLike,
    success: npt.ArrayLike,
    families: Sequence[str],
    splits: Sequence[str],
    *,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
) -> FloatArray:
    """Each row's calibrated λ-probe logit from a probe that never saw the row's family.

    Probes follow the shipped recipe (MLP, temperature calibration on the ``val`` rows) and
    train on ``train``/``val`` rows only; rows of any other split are scored, never trained on.
    A family with training rows is scored by a probe trained without it; the families with none
    share one probe trained on all training rows (what the shipped probe is to them).
    """
    from howhard.training.train import TrainConfig, train_probe

    x = np.asarray(features, dtype=np.float32)
    y = np.asarray(success, dtype=np.float64)
    family, split = np.asarray(families), np.asarray(splits)
    if not len(x) == len(y) == len(family) == len(split):
        raise ConfigError(
            f"out_of_family_logits needs one success, family and split per feature row; got "
            f"{len(x)} rows, {len(y)} successes, {len(family)} families, {len(split)} splits"
        )
    trainable = np.isin(split, ["train", "val"])
    config = TrainConfig(head="lambda", calibration="temperature", max_budget=16, seed=seed)
    z = np.zeros(len(x))
    seen = sorted(set(family[trainable].tolist()))
    unseen = ~np.isin(family, seen)
    jobs = [(name, family == name) for name in seen] + ([(None, unseen)] if unseen.any() else [])
    for k, (name, rows) in enumerate(jobs):
        keep = trainable & (family != name) if name is not None else trainable
        probe = train_probe(x[keep], y[keep], config, assignments=list(split[keep])).probe
        z[rows] = probe.logits(x[rows])
        if log is not None:
            log(f"out-of-family probe {k + 1}/{len(jobs)}: {name or 'unseen families'}")
    return z


@dataclass(frozen=True, slots=True)
class VoteBlock:
    """One collected build's questions for the value model: ``answers`` (n rows of stored
    canonical answers), ``rewards`` ``(n, m)``, out-of-family probe logits ``z`` ``(n,)`` and
    each question's ``families`` entry."""

    answers: Sequence[Sequence[str | None]]
    rewards: FloatArray
    z: FloatArray
    families: Sequence[str]

    def states(self, keep: Collection[str], *, paths: int, seed: int) -> States | None:
        """Merged training states of the questions whose family is in ``keep`` (None: none)."""
        rows = [i for i, f in enumerate(self.families) if f in keep]
        if not rows:
            return None
        answers = [self.answers[i] for i in rows]
        states = training_states(answers, self.rewards[rows], self.z[rows], paths=paths, seed=seed)
        return merge_states(states)


def fit_across_families(
    blocks: Sequence[VoteBlock],
    train_families: Collection[str],
    val_families: Collection[str],
    *,
    paths: int = 48,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
) -> tuple[VoteValueModel, float]:
    """The value model fitted on ``train_families``' questions of every block, early-stopped on
    ``val_families``' (whole families, so the stopping point rewards transfer).

    Returns the model and its val loss.
    """
    overlap = set(train_families) & set(val_families)
    if overlap:
        raise ConfigError(
            f"train_families and val_families must be disjoint; both hold {sorted(overlap)}"
        )
    sets: list[States] = []
    for keep, n_paths, offset in ((train_families, paths, 0), (val_families, paths // 2, 1)):
        parts = [b.states(keep, paths=max(n_paths, 1), seed=seed + offset) for b in blocks]
        found = [p for p in parts if p is not None]
        if not found:
            raise ConfigError(f"no questions of the families {sorted(keep)} in any block")
        sets.append(tuple(np.concatenate(c) for c in zip(*found, strict=True)))
    model, loss = fit_vote_value(sets[0], sets[1], seed=seed)
    if log is not None:
        log(f"value model: val loss {loss:.4f} ({len(sets[0][0])} merged training states)")
    return model, loss
