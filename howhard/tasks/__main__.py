"""Benchmark data tools.

``python -m howhard.tasks questions --out data/questions`` writes the core build's
train/val/test questions (``--build transfer``: ``transfer.jsonl``, every family in several
phrasings);
``python -m howhard.tasks answers data/runs/test`` extracts each sample's canonical answer and
token count from a collected dataset into its ``answers.jsonl`` (small enough to commit);
``python -m howhard.tasks vote DATASET --k 8 --out DIR`` derives the strong routing procedure's
dataset (expected self-consistency@k success per request); ``python -m howhard.tasks ship
PROBE howhard/assets/lambda-probe`` copies a trained probe into the package; ``python -m
howhard.tasks agree DATASET`` compares the general short-answer verifier with each family's
verifier on a dataset's samples; ``python -m howhard.tasks summary DATASET`` prints the
families table (questions, styles, mean λ, share never solved).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from howhard.tasks.agreement import write_agreement
from howhard.tasks.answers import write_answers
from howhard.tasks.routing import write_vote_dataset
from howhard.tasks.suite import SPLITS, build_splits, build_transfer, write_jsonl
from howhard.tasks.summary import family_summaries, markdown_table


def ship_probe(probe: Path, out: Path) -> None:
    """Copy a probe checkpoint (config + weights) for the package to serve on any machine.

    The recorded encoder model is this machine's cache folder of the default model; shipping it
    as ``None`` makes the encoder resolve the packaged default model wherever it is installed.
    """
    config = json.loads((probe / "probe.json").read_text(encoding="utf-8"))
    config["encoder"]["model"] = None
    config["train"]["dataset"] = Path(config["train"]["dataset"]).name
    out.mkdir(parents=True, exist_ok=True)
    (out / "probe.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    shutil.copyfile(probe / "probe.safetensors", out / "probe.safetensors")


def main(argv: Sequence[str] | None = None) -> int:
    """Run one of the data tools (``questions`` or ``answers``)."""
    parser = argparse.ArgumentParser(prog="python -m howhard.tasks", description=__doc__)
    sub = parser.add_subparsers(dest="tool", required=True)
    questions = sub.add_parser("questions", help="write <split>.jsonl question files")
    questions.add_argument("--out", type=Path, default=Path("data/questions"), help="folder")
    questions.add_argument("--seed", type=int, default=0, help="generator and split seed")
    questions.add_argument(
        "--build",
        choices=("core", "transfer"),
        default="core",
        help="core: <split>.jsonl of the first 13 families; transfer: transfer.jsonl, all families",
    )
    questions.add_argument(
        "--sizes",
        type=int,
        nargs=3,
        default=(900, 300, 300),
        metavar=("TRAIN", "VAL", "TEST"),
        help="core build: questions per split",
    )
    answers = sub.add_parser("answers", help="write answers.jsonl for collected datasets")
    answers.add_argument("datasets", type=Path, nargs="+", help="dataset folders from collect")
    vote = sub.add_parser("vote", help="derive the strong routing procedure's dataset")
    vote.add_argument("dataset", type=Path, help="collected dataset with answers.jsonl")
    vote.add_argument("--k", type=int, default=8, help="samples per majority vote (its cost)")
    vote.add_argument("--out", type=Path, required=True, help="derived dataset folder")
    ship = sub.add_parser("ship", help="copy a trained probe into the package's assets")
    ship.add_argument("probe", type=Path, help="checkpoint folder from howhard train")
    ship.add_argument("out", type=Path, help="asset folder, e.g. howhard/assets/lambda-probe")
    agree = sub.add_parser("agree", help="general vs family verifiers on a dataset's samples")
    agree.add_argument("dataset", type=Path, help="collected dataset with samples.jsonl")
    agree.add_argument(
        "--out", type=Path, default=None, help="JSON report (DATASET/agreement.json)"
    )
    summary = sub.add_parser("summary", help="families table of a collected dataset")
    summary.add_argument("dataset", type=Path, help="collected dataset with requests.jsonl")
    args = parser.parse_args(argv)
    if args.tool == "summary":
        print(markdown_table(family_summaries(args.dataset)))
    elif args.tool == "questions" and args.build == "transfer":
        path = args.out / "transfer.jsonl"
        print(f"{path}: {write_jsonl(build_transfer(seed=args.seed), path)} questions")
    elif args.tool == "questions":
        splits = build_splits(tuple(args.sizes), seed=args.seed)
        for name in SPLITS:
            path = args.out / f"{name}.jsonl"
            print(f"{path}: {write_jsonl(splits[name], path, split=name)} questions")
    elif args.tool == "answers":
        for folder in args.datasets:
            print(f"{folder}: answers for {write_answers(folder)} requests")
    elif args.tool == "agree":
        out = args.out or args.dataset / "agreement.json"
        for name, counts in write_agreement(args.dataset, out).items():
            print(
                f"{name:16s} {counts.samples:6d} samples  agreement {counts.rate:.3f}  "
                f"family only {counts.family_only:4d}  general only {counts.general_only:4d}"
            )
        print(f"{out}: agreement per family, with disagreeing samples")
    elif args.tool == "ship":
        ship_probe(args.probe, args.out)
        print(f"{args.out}: probe shipped (encoder model = the packaged default model)")
    else:
        count = write_vote_dataset(args.dataset, args.k, args.out)
        print(f"{args.out}: self-consistency@{args.k} success for {count} requests")
    return 0


if __name__ == "__main__":
    sys.exit(main())
