"""``howhard evaluate``: the benchmark report on the held-out split, from collected data.

Reads the collected datasets (rewards and per-sample answers), the prompts' features and the
trained probes, and writes ``report.md``, ``report.json`` and PNG plots: expected success vs
average budget for uniform / online / offline / oracle best-of-k and self-consistency, routing
curves with APGR, allocation by predicted difficulty and the λ probe's calibration.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add the ``evaluate`` subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "evaluate",
        help="quality-vs-compute report on the held-out split (markdown + plots)",
        description=__doc__,
    )
    parser.add_argument(
        "--data", type=Path, default=Path("data"), help="benchmark data folder (default: data)"
    )
    parser.add_argument(
        "--test", default="runs/test", help="test dataset, relative to --data (default: runs/test)"
    )
    parser.add_argument(
        "--heldout",
        default="runs/trainval",
        help="dataset holding the val split (metadata.split == 'val'), relative to --data",
    )
    parser.add_argument(
        "--lambda-probe", default="probes/lambda", help="λ probe checkpoint, relative to --data"
    )
    parser.add_argument(
        "--preference-probe",
        default="probes/preference",
        help="routing preference probe, relative to --data (skipped if absent)",
    )
    parser.add_argument("--out", type=Path, default=Path("results"), help="output folder")
    parser.add_argument("--max-budget", type=int, default=32, help="largest per-question budget")
    parser.add_argument(
        "--strong-k", type=int, default=8, help="samples of the strong (self-consistency) router"
    )
    parser.add_argument("--bins", type=int, default=8, help="bins of the offline allocator")
    parser.add_argument(
        "--budget-step", type=float, default=0.25, help="spacing of the average-budget grid"
    )
    parser.set_defaults(handler=run)


def _features_path(data: Path, dataset: str) -> Path:
    """``howhard features --dataset DIR`` writes ``DIR/features.npy`` and ``DIR/features.json``."""
    return data / dataset / "features"


def run(args: argparse.Namespace) -> int:
    """Compute the report and write it to ``--out``; prints the markdown summary."""
    from howhard.evaluation.data import load_split, read_jsonl
    from howhard.evaluation.render import write_report
    from howhard.evaluation.report import build_report, headline
    from howhard.tasks.answers import read_answers

    data: Path = args.data
    lambda_probe = data / args.lambda_probe
    preference = data / args.preference_probe
    preference_probe = preference if preference.exists() else None
    test = load_split(
        data / args.test,
        _features_path(data, args.test),
        lambda_probe,
        answers=read_answers,
        preference_probe=preference_probe,
    )
    val = load_split(
        data / args.heldout,
        _features_path(data, args.heldout),
        lambda_probe,
        answers=read_answers,
        split="val",
    )
    train_rows = [
        r
        for r in read_jsonl(data / args.heldout / "requests.jsonl")
        if (r.get("metadata") or {}).get("split") == "train"
    ]
    train_mean = float(np.mean([np.mean(r["rewards"]) for r in train_rows])) if train_rows else 0.5
    info = {
        "model": json.loads((data / args.test / "manifest.json").read_text()).get("model"),
        "test questions": f"{len(test.ids)} x {test.rewards.shape[1]} samples",
        "val questions": f"{len(val.ids)} x {val.rewards.shape[1]} samples",
        "train questions": f"{len(train_rows)}",
        "mean test λ": f"{test.success.mean():.3f}",
        "test questions with λ = 0": f"{(test.success == 0).mean():.0%}",
    }
    report = build_report(
        test,
        val,
        train_mean_lambda=train_mean,
        max_budget=args.max_budget,
        strong_k=args.strong_k,
        budget_step=args.budget_step,
        n_bins=args.bins,
        info=info,
    )
    paths = write_report(report, args.out, observed_lambda=test.success)
    h = headline(report)
    print(
        f"evaluate: online adaptive saves up to {h['online_best_saving']:.0%} compute at matched "
        f"success (B={h['online_best_saving_at']:g}; oracle {h['oracle_best_saving']:.0%}); "
        f"captures {h['online_gain_share_1_16']:.0%} of the oracle's gain (mean over B=1..16); "
        f"routing APGR {h['apgr_learned']:.3f} (random {h['apgr_random']:.3f})"
    )
    print(f"evaluate: wrote {len(paths)} files to {args.out}")
    return 0
