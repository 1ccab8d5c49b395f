"""What limits one-shot adaptive best-of-k: how much of the oracle's gain any knowledge buys.

    .venv/bin/python scripts/oneshot_ceilings.py --data data

Exact, on the test split (no simulation noise): the whole split is one batch, every question
gets at least one sample and at most 16, and the exact allocator
(:func:`howhard.policies.allocate`) spends ``B`` samples a question on marginals that are the
*true* mean best-of-j curve of the question's cell: its family, family x difficulty level,
family x tercile of a probe's logit, or a decile of the logit alone. A cell's curve is given
two ways: in-sample (the cell's own questions, itself included: optimistic, a small cell
memorises its members) and leave-one-out (the cell's other questions: what a learner that knew
each cell's curve exactly from other traffic would have). The figure is the mean over
``B = 2 … 15`` of the share of the oracle's gain (``(cells - uniform) / (oracle - uniform)``,
the oracle allocating on each question's own curve), as ``howhard evaluate --leave-group-out``
reports it for the served policy.

Probes: the shipped λ probe (in-distribution) and, for each family, a probe trained on the
probe-train build without that family (leave-family-out, as the served evaluation trains it).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

# Run from a checkout: use this checkout's howhard, not an installed copy.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("data"), help="the benchmark folder")
    args = parser.parse_args()

    from howhard.commands.evaluate import _features_path
    from howhard.evaluation.data import load_split, read_jsonl
    from howhard.evaluation.sequential import family_logits, probe_logits
    from howhard.marginals import marginals_from_rewards
    from howhard.policies import allocate
    from howhard.tasks.answers import read_answers
    from howhard.training.dataset import load_dataset
    from howhard.training.features import load_features
    from howhard.training.splits import column_values, splits_from_column

    data: Path = args.data
    probe = data / "probes/lambda"
    test = load_split(
        data / "runs/test", _features_path(data, "runs/test"), probe, answers=read_answers
    )
    rows = read_jsonl(data / "runs/test/requests.jsonl")
    family = np.asarray(test.families, dtype=object)
    level = np.asarray([str((r.get("metadata") or {}).get("level")) for r in rows], dtype=object)
    truth = marginals_from_rewards(test.rewards, 16)  # (n, 16) true increments
    curve = np.concatenate([np.zeros((len(truth), 1)), np.cumsum(truth, axis=1)], axis=1)
    n = len(truth)

    z_in = probe_logits(test.lambda_hat)
    trained = load_dataset(data / "runs/probe-train")
    wins, counts = trained.counts()
    lofo = family_logits(
        load_features(_features_path(data, "runs/probe-train")).aligned(trained.ids),
        wins / counts,
        column_values(trained.rows, "family"),
        splits_from_column(trained.rows, "split"),
        [load_features(_features_path(data, "runs/test")).aligned(test.ids)],
    )
    z_lofo = np.zeros(n)
    for name, (_, on_test) in lofo.items():
        z_lofo[family == name] = on_test[family == name]

    def success(marginals: np.ndarray, budget: int) -> float:
        b = allocate(np.minimum.accumulate(marginals, axis=1), budget * n, min_budget=1)
        return float(curve[np.arange(n), b].mean())

    budgets = range(2, 16)
    uniform = {b: float(curve[:, b].mean()) for b in budgets}
    oracle = {b: success(truth, b) for b in budgets}

    def share(marginals: np.ndarray) -> tuple[float, float]:
        got = {b: success(marginals, b) for b in budgets}
        shares = [(got[b] - uniform[b]) / (oracle[b] - uniform[b]) for b in budgets]
        worst = min(got[b] - uniform[b] for b in budgets)
        return 100 * float(np.mean(shares)), 100 * worst

    def cells(keys: np.ndarray, *, leave_one_out: bool) -> np.ndarray:
        out = np.zeros_like(truth)
        for key in set(keys):
            members = keys == key
            total, size = truth[members].sum(axis=0), int(members.sum())
            if leave_one_out and size > 1:
                out[members] = (total[None, :] - truth[members]) / (size - 1)
            else:
                out[members] = total / size
        return out

    def quantiles(z: np.ndarray, parts: int, *, by_family: bool) -> np.ndarray:
        keys = np.empty(n, dtype=object)
        groups = family if by_family else np.zeros(n, dtype=object)
        for g in set(groups):
            members = groups == g
            edges = np.quantile(z[members], np.linspace(0, 1, parts + 1)[1:-1])
            keys[members] = [f"{g}|{q}" for q in np.searchsorted(edges, z[members])]
        return keys

    print(f"test split: {n} questions x {test.rewards.shape[1]} samples; one batch, 1-16 each")
    print("mean share of the oracle's gain over B = 2..15 (worst B: success - uniform, pp)")
    table = [
        ("shipped probe, logit deciles", quantiles(z_in, 10, by_family=False)),
        ("leave-family-out probes, logit deciles", quantiles(z_lofo, 10, by_family=False)),
        ("family (a perfect per-family learner)", family),
        ("family x level", family + "|" + level),
        ("family x shipped-probe tercile", quantiles(z_in, 3, by_family=True)),
        ("family x leave-family-out-probe tercile", quantiles(z_lofo, 3, by_family=True)),
    ]
    for name, keys in table:
        inside, inside_worst = share(cells(keys, leave_one_out=False))
        loo, loo_worst = share(cells(keys, leave_one_out=True))
        print(
            f"  {name:42s} in-sample {inside:5.1f}% ({inside_worst:+.2f}), "
            f"leave-one-out {loo:5.1f}% ({loo_worst:+.2f})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
