"""Benchmark data tools.

``python -m howhard.tasks questions --out data/questions`` writes the train/val/test questions;
``python -m howhard.tasks answers data/runs/test`` extracts each sample's canonical answer and
token count from a collected dataset into its ``answers.jsonl`` (small enough to commit);
``python -m howhard.tasks vote DATASET --k 8 --out DIR`` derives the strong routing procedure's
dataset (expected self-consistency@k success per request).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from howhard.tasks.answers import write_answers
from howhard.tasks.routing import write_vote_dataset
from howhard.tasks.suite import SPLITS, build_splits, write_jsonl


def main(argv: Sequence[str] | None = None) -> int:
    """Run one of the data tools (``questions`` or ``answers``)."""
    parser = argparse.ArgumentParser(prog="python -m howhard.tasks", description=__doc__)
    sub = parser.add_subparsers(dest="tool", required=True)
    questions = sub.add_parser("questions", help="write <split>.jsonl question files")
    questions.add_argument("--out", type=Path, default=Path("data/questions"), help="folder")
    questions.add_argument("--seed", type=int, default=0, help="generator and split seed")
    questions.add_argument(
        "--sizes", type=int, nargs=3, default=(900, 300, 300), metavar=("TRAIN", "VAL", "TEST")
    )
    answers = sub.add_parser("answers", help="write answers.jsonl for collected datasets")
    answers.add_argument("datasets", type=Path, nargs="+", help="dataset folders from collect")
    vote = sub.add_parser("vote", help="derive the strong routing procedure's dataset")
    vote.add_argument("dataset", type=Path, help="collected dataset with answers.jsonl")
    vote.add_argument("--k", type=int, default=8, help="samples per majority vote (its cost)")
    vote.add_argument("--out", type=Path, required=True, help="derived dataset folder")
    args = parser.parse_args(argv)
    if args.tool == "questions":
        splits = build_splits(tuple(args.sizes), seed=args.seed)
        for name in SPLITS:
            path = args.out / f"{name}.jsonl"
            print(f"{path}: {write_jsonl(splits[name], path, split=name)} questions")
    elif args.tool == "answers":
        for folder in args.datasets:
            print(f"{folder}: answers for {write_answers(folder)} requests")
    else:
        count = write_vote_dataset(args.dataset, args.k, args.out)
        print(f"{args.out}: self-consistency@{args.k} success for {count} requests")
    return 0


if __name__ == "__main__":
    sys.exit(main())
