"""Write the benchmark questions: ``python -m howhard.tasks --out data/questions``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from howhard.tasks.suite import SPLITS, build_splits, write_jsonl


def main(argv: Sequence[str] | None = None) -> int:
    """Generate the suite and write one ``<split>.jsonl`` per split."""
    parser = argparse.ArgumentParser(prog="python -m howhard.tasks", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("data/questions"), help="output folder")
    parser.add_argument("--seed", type=int, default=0, help="generator and split seed")
    parser.add_argument(
        "--sizes", type=int, nargs=3, default=(900, 300, 300), metavar=("TRAIN", "VAL", "TEST")
    )
    args = parser.parse_args(argv)
    splits = build_splits(tuple(args.sizes), seed=args.seed)
    for name in SPLITS:
        count = write_jsonl(splits[name], args.out / f"{name}.jsonl", split=name)
        print(f"{args.out / f'{name}.jsonl'}: {count} questions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
