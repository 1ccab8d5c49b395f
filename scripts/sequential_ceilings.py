"""What limits sequential best-of-k in-distribution: how few samples reach uniform best-of-16.

    .venv/bin/python scripts/sequential_ceilings.py --data data

Exact closed forms (no simulation noise) on the test split, for the fixed-prior threshold
policy (``howhard.evaluation.sequential.threshold_curve``: a request runs while its next round
is worth the price; sweeping the price traces the curve):

* the shipped probe's prior, fitted on val as ``howhard evaluate --sequential`` fits it;
* the same prior with each family's *true* difficulty offset added to the probe logit (the
  offset maximising the family's own test likelihood: an oracle no served policy has, the most
  a per-family online correction could learn);
* a flat prior (stop at the first pass, the same cap for every question), and the prior that
  knows each question's λ (the headroom).

And whether the answers of failed samples say anything about a question's remaining chance:
mean λ of the unseen samples after four failures, by how many of the four failed answers agree.
"""

from __future__ import annotations

import argparse
import sys
from math import comb
from pathlib import Path

import numpy as np

# Run from a checkout: use this checkout's howhard, not an installed copy.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("data"), help="the benchmark folder")
    parser.add_argument("--cap", type=int, default=32, help="most samples per question")
    args = parser.parse_args()

    from howhard.commands.evaluate import _features_path
    from howhard.evaluation.data import load_split, read_jsonl
    from howhard.evaluation.sequential import (
        fit_val_prior,
        known_lambda_prior,
        probe_logits,
        spend_to_reach,
        threshold_curve,
    )
    from howhard.posterior import log_lik_counts, logsumexp
    from howhard.tasks.answers import read_answers

    data: Path = args.data
    probe = data / "probes/lambda"
    test = load_split(
        data / "runs/test", _features_path(data, "runs/test"), probe, answers=read_answers
    )
    tv = load_split(
        data / "runs/trainval", _features_path(data, "runs/trainval"), probe, answers=read_answers
    )
    splits = [
        str((r.get("metadata") or {}).get("split", "train"))
        for r in read_jsonl(data / "runs/trainval/requests.jsonl")
    ]
    fit = fit_val_prior(tv.lambda_hat, tv.rewards, np.asarray([s == "val" for s in splits])).fit
    rewards = test.rewards
    m = rewards.shape[1]
    successes = rewards.sum(axis=1).astype(int)
    target = float(np.mean([1 - comb(m - c, 16) / comb(m, 16) for c in successes]))
    z = probe_logits(test.lambda_hat)

    def reach(log_w: np.ndarray) -> float:
        curve = threshold_curve(log_w, rewards, max_budget=args.cap)
        return spend_to_reach(curve, target)

    families = np.asarray(test.families)
    lik = log_lik_counts(successes, m - successes)
    shifted = z.copy()
    for family in sorted(set(test.families)):
        rows = families == family
        shifts = np.linspace(-3.0, 3.0, 25)
        scores = [logsumexp(fit.log_weights(z[rows] + d) + lik[rows], axis=1).sum() for d in shifts]
        shifted[rows] = z[rows] + shifts[int(np.argmax(scores))]
    print(f"test split: {len(z)} questions x {m} samples; uniform best-of-16 success {target:.4f}")
    print("samples per question to reach it (fixed-prior threshold policy, exact):")
    rows_out = [
        ("flat prior (stop at first pass)", fit.log_weights(np.full_like(z, z.mean()))),
        ("probe prior (fitted on val)", fit.log_weights(z)),
        ("probe prior + each family's true offset (oracle)", fit.log_weights(shifted)),
        ("knows each question's λ (headroom)", known_lambda_prior(rewards)),
    ]
    for name, log_w in rows_out:
        spend = reach(log_w)
        print(f"  {name:50s} {spend:6.2f}  ({1 - spend / 16:.0%} fewer than 16)")

    print("failed samples' answers: mean λ of the rest after four failures, by agreement")
    rng = np.random.default_rng(0)
    for name, split in (("test", test), ("train+val", tv)):
        by_top: dict[int, list[float]] = {}
        for _ in range(20):
            for i in range(len(split.ids)):
                order = rng.permutation(split.rewards.shape[1])
                if split.rewards[i, order[:4]].sum() > 0:
                    continue
                answers = [split.answers[i][j] for j in order[:4]]
                given = [a for a in answers if a is not None]
                top = max((given.count(a) for a in set(given)), default=0)
                by_top.setdefault(top, []).append(float(split.rewards[i, order[4:]].mean()))
        cells = ", ".join(
            f"{top} agree: {np.mean(v):.3f} (n={len(v)})" for top, v in sorted(by_top.items())
        )
        print(f"  {name}: {cells}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
