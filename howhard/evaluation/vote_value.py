"""The self-consistency value model across task families: the shipped fit and its evaluation.

The value rule (:class:`howhard.procedures.ValueRule`) reads the difficulty probe's logit, so a
model fitted where the probe is good learns to trust it, and then stops too early on families
the probe never saw. The shipped model (:func:`fit_default_model`) is fitted on several
collected builds with every question's logit from a probe that never saw its family
(:func:`howhard.training.vote_value.out_of_family_logits`), early-stopped on whole held-out
families, and its price is chosen on those validation families by exact simulation.

:func:`heldout_report` measures it on families held out of the fit (grouped folds by family,
each fold's models fitted without its families) beside SC-k, ESC, Adaptive-Consistency and the
core-only recipe, pooling the folds' simulations question by question.
``scripts/train_vote_value.py`` and ``scripts/self_consistency_report.py`` drive both.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from howhard.errors import ConfigError
from howhard.evaluation.data import read_jsonl
from howhard.evaluation.sequential import spend_to_reach, success_at
from howhard.evaluation.sequential_report import self_consistency_section
from howhard.evaluation.simulate import LoggedSamples
from howhard.probes.vote_value import VoteValueModel
from howhard.training.vote_value import (
    VoteBlock,
    fit_across_families,
    out_of_family_logits,
)

__all__ = [
    "PRICES",
    "Build",
    "PooledRules",
    "family_folds",
    "fit_default_model",
    "heldout_report",
    "load_build",
    "pooled_rules",
    "summary_lines",
]

FloatArray = npt.NDArray[np.float64]

PRICES: tuple[float, ...] = (1e-4, 3e-4, 6e-4, 1e-3, 1.5e-3, 2.5e-3, 4e-3, 6e-3, 1e-2)
"""Prices swept by the price choice and the report (per remaining sample)."""


@dataclass(frozen=True, slots=True)
class Build:
    """One collected build: its logged samples (``z`` zeros), prompt features ``(n, d)`` and
    each question's ``metadata.split``."""

    name: str
    logged: LoggedSamples
    features: FloatArray
    splits: tuple[str, ...]

    def block(self, z: FloatArray, rows: npt.ArrayLike | None = None) -> VoteBlock:
        """The build's questions (or ``rows`` of them) with logits ``z`` (aligned with all)."""
        idx = np.arange(len(self.logged)) if rows is None else np.asarray(rows)
        logged = self.logged.subset(idx)
        return VoteBlock(logged.answers, logged.rewards, z[idx], logged.groups)


def load_build(folder: Path, features: Path | None = None) -> Build:
    """A collected build (``requests.jsonl``, ``answers.jsonl``) and its features
    (``howhard features`` output; default ``FOLDER/features``)."""
    from howhard.training.features import load_features

    logged = LoggedSamples.from_dataset(folder)
    if not len(logged):
        raise ConfigError(f"{folder} has no questions with their full samples")
    split = {
        str(r["id"]): str((r.get("metadata") or {}).get("split", "train"))
        for r in read_jsonl(folder / "requests.jsonl")
    }
    x = load_features(features or folder / "features").aligned(logged.ids)
    return Build(
        name=folder.name,
        logged=logged,
        features=np.asarray(x, dtype=np.float64),
        splits=tuple(split[i] for i in logged.ids),
    )


def _union_logits(
    builds: Sequence[Build], probe_builds: int, seed: int, log: Callable[[str], None]
) -> list[FloatArray]:
    """Out-of-family logits for every question of every build: the probes train on the
    train/val rows of the first ``probe_builds`` builds (the shipped probe's data)."""
    x = np.concatenate([b.features for b in builds])
    success = np.concatenate([b.logged.rewards.mean(axis=1) for b in builds])
    families = [g for b in builds for g in b.logged.groups]
    splits = [s if k < probe_builds else "extra" for k, b in enumerate(builds) for s in b.splits]
    z = out_of_family_logits(x, success, families, splits, seed=seed, log=log)
    edges = np.cumsum([0, *(len(b.logged) for b in builds)])
    return [z[a:b] for a, b in itertools.pairwise(edges)]


def _served_logits(
    builds: Sequence[Build], probe_logits: Callable[[FloatArray], FloatArray], seed: int
) -> list[FloatArray]:
    """Logits as the shipped probe serves them: its own on every question it did not train on
    (the other builds; the first build's val rows, which only calibrated it), cross-fitted on
    the first build's train rows (5 probes of its recipe, each without a fifth of them)."""
    from howhard.evaluation.sequential import crossfit_logits

    core = builds[0]
    split = np.asarray(core.splits)
    success = core.logged.rewards.mean(axis=1)
    crossfit = crossfit_logits(core.features, success, list(core.splits), seed=seed)
    z_core = np.where(split == "train", crossfit, probe_logits(core.features))
    return [z_core, *(np.asarray(probe_logits(b.features)) for b in builds[1:])]


def family_folds(families: Sequence[str], folds: int, *, seed: int = 0) -> list[list[str]]:
    """The distinct families in ``folds`` groups of about equal question counts (seeded)."""
    counts: dict[str, int] = {}
    for f in families:
        counts[f] = counts.get(f, 0) + 1
    if not 1 <= folds <= len(counts):
        raise ConfigError(f"folds must be in 1..{len(counts)} (the families), got {folds}")
    rng = np.random.default_rng(seed)
    names = sorted(counts)
    order = [names[i] for i in rng.permutation(len(names))]
    order.sort(key=lambda f: -counts[f])  # stable: ties keep the seeded order
    groups: list[list[str]] = [[] for _ in range(folds)]
    sizes = [0] * folds
    for f in order:
        k = int(np.argmin(sizes))
        groups[k].append(f)
        sizes[k] += counts[f]
    return [sorted(g) for g in groups]


@dataclass(slots=True)
class PooledRules:
    """Self-consistency sections of disjoint question sets pooled question by question:
    the SC-k curve and each rule's (parameter, accuracy, samples) points."""

    questions: int = 0
    sc_k: FloatArray | None = None
    rules: dict[str, dict[str, tuple[float, float]]] | None = None

    def add(self, n: int, figures: Mapping[str, Any]) -> None:
        """Add one section's ``figures`` over ``n`` questions."""
        curve = np.asarray(figures["sc_k"], dtype=np.float64) * n
        self.sc_k = curve if self.sc_k is None else self.sc_k + curve
        rules = self.rules if self.rules is not None else {}
        for family, rows in figures["rules"].items():
            table = rules.setdefault(family, {})
            for row in rows:
                acc, samples = table.get(row["parameter"], (0.0, 0.0))
                table[row["parameter"]] = (acc + n * row["success"], samples + n * row["samples"])
        self.rules = rules
        self.questions += n

    def points(self, family: str) -> list[tuple[str, float, float]]:
        """``(parameter, accuracy, samples)`` per parameter of one rule family, pooled."""
        assert self.rules is not None
        n = self.questions
        return [(p, a / n, s / n) for p, (a, s) in self.rules[family].items()]

    def curve(self) -> FloatArray:
        """The pooled SC-k accuracy curve, index k."""
        assert self.sc_k is not None
        result: FloatArray = self.sc_k / self.questions
        return result


def pooled_rules(
    parts: Sequence[LoggedSamples],
    models: Sequence[Mapping[str, VoteValueModel]],
    *,
    baselines: bool = True,
    prices: Sequence[float] = PRICES,
    replays: int = 16,
    seed: int = 0,
    max_budget: int = 16,
) -> PooledRules:
    """Simulate each part with its own value models (``self_consistency_section``) and pool."""
    pooled = PooledRules()
    for part, part_models in zip(parts, models, strict=True):
        section = self_consistency_section(
            part,
            max_budget=max_budget,
            windows=(2, 3, 4) if baselines else (),
            confidences=(0.8, 0.85, 0.9, 0.95) if baselines else (),
            value_models=part_models,
            prices=prices,
            replays=replays,
            seed=seed,
        )
        pooled.add(len(part), section.figures)
    return pooled


def _fmt(x: float) -> str:
    return "-" if not math.isfinite(x) else f"{x:.4f}"


def summary_lines(pooled: PooledRules, *, max_budget: int = 16) -> tuple[list[str], dict[str, Any]]:
    """Markdown: every rule's points, then samples to reach SC-max - 1 pp and accuracy at 5-8
    samples on each method's upper hull; and the same as JSON-ready figures."""
    curve = pooled.curve()
    target = float(curve[max_budget]) - 0.01
    assert pooled.rules is not None
    lines = [
        f"SC-{max_budget} accuracy (exact over all subsets): {curve[max_budget]:.4f} "
        f"({pooled.questions} questions)",
        "",
        "| method | parameter | accuracy | samples |",
        "|---|---|---|---|",
    ]
    lines += [f"| SC-k | k={k} | {curve[k]:.4f} | {k} |" for k in (1, 2, 4, 6, 8, 12, 16)]
    tables: dict[str, FloatArray] = {
        "SC-k": np.array([(0.0, float(k), float(curve[k])) for k in range(1, max_budget + 1)])
    }
    for family in pooled.rules:
        pts = pooled.points(family)
        lines += [f"| {family} | {p} | {a:.4f} | {s:.2f} |" for p, a, s in pts]
        tables[family] = np.array([(0.0, s, a) for _, a, s in pts])
    lines += [
        "",
        f"Samples to reach SC-{max_budget} - 1 pp ({target:.4f}) and accuracy at matched "
        "samples (upper hull of each method's points):",
        "",
        "| method | samples to reach | saving | acc @5 | acc @6 | acc @7 | acc @8 |",
        "|---|---|---|---|---|---|---|",
    ]
    summary: dict[str, Any] = {}
    for family, table in tables.items():
        reach = spend_to_reach(table, target)
        at = [success_at(table, b) if b >= table[:, 1].min() else math.nan for b in (5, 6, 7, 8)]
        saving = "-" if not math.isfinite(reach) else f"{1 - reach / max_budget:.0%}"
        lines.append(
            f"| {family} | {_fmt(reach)} | {saving} | " + " | ".join(_fmt(a) for a in at) + " |"
        )
        summary[family] = {"reach": reach, "at_5_6_7_8": at}
    figures = {
        "questions": pooled.questions,
        "sc_k": [float(c) for c in curve],
        "target": target,
        "rules": {f: pooled.points(f) for f in pooled.rules},
        "summary": summary,
    }
    return lines, figures


def _split_val(families: Sequence[str], share: float, seed: int) -> tuple[list[str], list[str]]:
    """Whole families for early stopping: about ``share`` of the questions (at least one)."""
    if not 0 < share < 1:
        raise ConfigError(f"val_share must be in (0, 1), got {share!r}; e.g. 0.2")
    distinct = len(set(families))
    if distinct < 2:
        raise ConfigError(
            f"early stopping on held-out families needs >= 2 families, got {distinct}"
        )
    groups = family_folds(families, min(max(2, round(1 / share)), distinct), seed=seed)
    val = groups[0]
    return sorted(set(families) - set(val)), val


def _choose_price(
    model: VoteValueModel,
    parts: Sequence[LoggedSamples],
    prices: Sequence[float],
    replays: int,
    seed: int,
) -> tuple[float, list[tuple[str, float, float]], float]:
    """The highest price (fewest samples) whose pooled accuracy on ``parts`` is within 1 pp of
    SC-max (the cheapest price if none is): returns it, the sweep and that target."""
    pooled = pooled_rules(
        parts,
        [{"candidate": model}] * len(parts),
        baselines=False,
        prices=prices,
        replays=replays,
        seed=seed,
        max_budget=model.max_budget,
    )
    target = float(pooled.curve()[model.max_budget]) - 0.01
    sweep = pooled.points("value rule (candidate)")
    ok = [p for p, (_, a, _) in zip(prices, sweep, strict=True) if a >= target]
    return (max(ok) if ok else min(prices)), sweep, target


def fit_default_model(
    builds: Sequence[Build],
    *,
    probe_builds: int = 1,
    val_share: float = 0.2,
    paths: int = 48,
    prices: Sequence[float] = PRICES,
    replays: int = 16,
    seed: int = 0,
    probe_logits: Callable[[FloatArray], FloatArray] | None = None,
    log: Callable[[str], None] = lambda s: None,
) -> tuple[VoteValueModel, dict[str, Any]]:
    """The value model to ship: fitted on every question of ``builds``, early-stopped on about
    ``val_share`` of the families, with the price chosen on those families.

    Each question's z comes from a probe that never saw its family (the probes train on the
    first ``probe_builds`` builds' train/val rows, as the shipped probe does) or, given
    ``probe_logits`` (the shipped probe's), as that probe serves it (:func:`_served_logits`).
    Returns the model and what it was fitted on.
    """
    if not builds:
        raise ConfigError("fit_default_model needs at least one build")
    if probe_logits is None:
        z = _union_logits(builds, probe_builds, seed, log)
        source = (
            "each question scored by a λ probe (shipped recipe) that never saw its family, "
            f"trained on the train/val rows of {', '.join(b.name for b in builds[:probe_builds])}"
        )
    else:
        z = _served_logits(builds, probe_logits, seed)
        others = ", ".join(b.name for b in builds[1:])
        source = (
            f"as the shipped λ probe serves them: its own logits on {others} and "
            f"{builds[0].name}'s val rows, cross-fitted on {builds[0].name}'s train rows"
        )
    families = [g for b in builds for g in b.logged.groups]
    train, val = _split_val(families, val_share, seed)
    blocks = [b.block(zb) for b, zb in zip(builds, z, strict=True)]
    model, loss = fit_across_families(blocks, train, val, paths=paths, seed=seed, log=log)
    parts = []
    for b, zb in zip(builds, z, strict=True):
        rows = np.flatnonzero(np.isin(b.logged.groups, val))
        if len(rows):
            parts.append(replace(b.logged.subset(rows), z=zb[rows]))
    price, sweep, target = _choose_price(model, parts, prices, replays, seed)
    log(f"price {price:g} (val families reach {target:.4f} at it)")
    info = {
        "builds": {b.name: len(b.logged) for b in builds},
        "families": len(set(families)),
        "val_families": val,
        "val_loss": round(loss, 5),
        "logits": source,
        "paths": paths,
        "seed": seed,
        "price_sweep_on_val_families": [
            {"price": p, "accuracy": round(a, 4), "samples": round(s, 3)}
            for p, (_, a, s) in zip(prices, sweep, strict=True)
        ],
        "price_target": round(target, 4),
    }
    return replace(model, price=price, info=info), info


def heldout_report(
    core: Build,
    extra: Sequence[Build],
    core_test: Build,
    shipped: VoteValueModel,
    probe_logits: Callable[[FloatArray], FloatArray],
    *,
    folds: int = 4,
    paths: int = 48,
    replays: int = 16,
    ablation: bool = False,
    seed: int = 0,
    log: Callable[[str], None] = lambda s: None,
) -> tuple[list[str], dict[str, Any]]:
    """The self-consistency tables: held-out families (grouped folds over ``core`` and
    ``extra``; simulated on ``extra``'s questions of each fold) and the core test split.

    Value rules: the core-only recipe (``core``'s train split, z cross-fitted in-distribution,
    early-stopped on its val split; the rule ``howhard evaluate --sequential`` trains); the
    across-families recipe (every build, early-stopped on held-out families) with z out of
    family for every question, or as the shipped probe serves it; with ``ablation`` also with
    z = 0. On the core test split, also ``shipped`` (the packaged model). ``probe_logits``: the
    shipped λ probe's calibrated logits for a feature matrix (the z of the core test questions).
    """
    from howhard.training.vote_value import fit_vote_value

    builds = [core, *extra]
    z = _union_logits(builds, 1, seed, log)
    served = _served_logits(builds, probe_logits, seed)
    z_in, split = served[0], np.asarray(core.splits)
    log("logits out of family and as served")
    recipes = {"across families, out-of-family z": z, "across families, as-served z": served}
    if ablation:
        recipes["across families, no prior"] = [np.zeros(len(zb)) for zb in z]
    families = [g for b in builds for g in b.logged.groups]
    groups = family_folds(families, folds, seed=seed)
    core_groups = np.asarray(core.logged.groups)

    def across(train: Sequence[str], val: Sequence[str]) -> dict[str, VoteValueModel]:
        return {
            name: fit_across_families(
                [b.block(zb) for b, zb in zip(builds, zs, strict=True)],
                train,
                val,
                paths=paths,
                seed=seed,
                log=log,
            )[0]
            for name, zs in recipes.items()
        }

    def core_only(drop: Sequence[str]) -> VoteValueModel:
        block = core.block(z_in)
        rows = ~np.isin(core_groups, list(drop))
        sets = []
        for name, n_paths, offset in (("train", paths, 0), ("val", max(8, paths // 2), 1)):
            idx = np.flatnonzero(rows & (split == name))
            part = VoteBlock(
                [block.answers[i] for i in idx], block.rewards[idx], block.z[idx], ["*"] * len(idx)
            )
            found = part.states({"*"}, paths=n_paths, seed=seed + offset)
            assert found is not None
            sets.append(found)
        model, loss = fit_vote_value(sets[0], sets[1], seed=seed)
        log(f"core-only value model without {len(drop)} families: val loss {loss:.4f}")
        return model

    parts: list[LoggedSamples] = []
    models: list[dict[str, VoteValueModel]] = []
    for k, held in enumerate(groups):
        rest = [f for f in sorted(set(families)) if f not in held]
        train, val = _split_val([f for f in families if f in rest], 0.2, seed)
        fold_models = {"core-only": core_only(held), **across(train, val)}
        for b, zb in zip(extra, z[1:], strict=True):
            rows = np.flatnonzero(np.isin(b.logged.groups, held))
            if len(rows):
                parts.append(replace(b.logged.subset(rows), z=zb[rows]))
                models.append(fold_models)
        log(f"fold {k + 1}/{len(groups)} fitted (held out: {', '.join(held)})")
    prices = sorted({*PRICES, shipped.price})
    heldout = pooled_rules(parts, models, prices=prices, replays=replays, seed=seed)
    log("held-out families simulated")
    lines_out, fig_out = summary_lines(heldout)
    in_models = {"core-only": core_only([]), **across(*_split_val(families, 0.2, seed))}
    same = [name for name, m in in_models.items() if _same_weights(m, shipped)]
    if not same:
        in_models["shipped"] = shipped
    logged = replace(core_test.logged, z=np.asarray(probe_logits(core_test.features)))
    indist = pooled_rules([logged], [in_models], prices=prices, replays=replays, seed=seed)
    log("core test split simulated")
    lines_in, fig_in = summary_lines(indist)
    lines = [
        "## Families held out of the value model",
        "",
        f"Grouped folds by family over {core.name} and {', '.join(b.name for b in extra)} "
        f"({len(set(families))} families in {len(groups)} folds: "
        + "; ".join(", ".join(g) for g in groups)
        + f"). Simulated on {', '.join(b.name for b in extra)}'s questions of each fold, every "
        "question's z from a λ probe that never saw its family; each fold's value models "
        "fitted without the fold's families; results pooled question by question.",
        "",
        *lines_out,
        "",
        f"## In-distribution: {core_test.name} ({len(core_test.logged)} questions of the "
        f"{len(set(core.logged.groups))} core families, z from the shipped λ probe)",
        "",
        "Each across-families model here is fitted on every family (the validation families "
        "held out for early stopping). "
        + (
            f"The packaged model (`ValueRule.default()`, price {shipped.price:g}) is "
            f"'{same[0]}' (identical weights)."
            if same
            else "The packaged model is the 'shipped' row."
        ),
        "",
        *lines_in,
        "",
    ]
    figures = {"heldout": fig_out, "core_test": fig_in, "folds": groups, "shipped_is": same}
    return lines, figures


def _same_weights(a: VoteValueModel, b: VoteValueModel) -> bool:
    pairs = ((a.w1, b.w1), (a.b1, b.b1), (a.w2, b.w2), (a.b2, b.b2))
    return all(x.shape == y.shape and np.allclose(x, y, atol=1e-6) for x, y in pairs)
