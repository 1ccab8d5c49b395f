"""The self-consistency report: stop rules on families held out of the value model, and on the
core test split, by exact simulation; writes markdown and JSON.

    .venv/bin/python scripts/self_consistency_report.py --data data --core runs/trainval \
        --extra runs/transfer --test runs/test --out results/self-consistency.md --ablation

Grouped folds by family over the core and extra builds: each fold's value models (the core-only
recipe of ``howhard evaluate --sequential`` and the across-families recipe of the shipped model)
are fitted without the fold's families and simulated on the extra builds' questions of the fold,
every question's z from a λ probe that never saw its family. On the core test split the shipped
model (``--model``) runs with the shipped probe's z. Tens of minutes on 2 CPU cores (torch).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

# Run from a checkout: use this checkout's howhard, not an installed copy.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("data"), help="benchmark data folder")
    parser.add_argument("--core", default="runs/trainval", help="the probe's build (train/val)")
    parser.add_argument("--extra", nargs="+", default=["runs/transfer"], help="more builds")
    parser.add_argument("--test", default="runs/test", help="the core test split")
    parser.add_argument(
        "--probe", type=Path, default=None, help="λ probe checkpoint (default: the shipped one)"
    )
    parser.add_argument(
        "--model", type=Path, default=None, help="value model (default: the shipped one)"
    )
    parser.add_argument("--folds", type=int, default=4, help="grouped folds by family")
    parser.add_argument("--paths", type=int, default=48, help="resampled paths per question")
    parser.add_argument("--replays", type=int, default=16, help="replays per simulated rule")
    parser.add_argument("--ablation", action="store_true", help="also the value rule with z = 0")
    parser.add_argument("--seed", type=int, default=0, help="seed of folds, probes and fits")
    parser.add_argument(
        "--out", type=Path, default=Path("results/self-consistency.md"), help="markdown output"
    )
    args = parser.parse_args(argv)
    from howhard.evaluation.vote_value import heldout_report, load_build
    from howhard.probes import SavedProbe, load_checkpoint
    from howhard.probes.vote_value import VoteValueModel, default_value_model

    started = time.monotonic()

    def log(line: str) -> None:
        print(f"[{time.monotonic() - started:6.0f}s] {line}", file=sys.stderr, flush=True)

    shipped_probe = Path(__file__).resolve().parent.parent / "howhard" / "assets" / "lambda-probe"
    probe_path = args.probe or shipped_probe
    probe = SavedProbe(load_checkpoint(probe_path))
    shipped = VoteValueModel.load(args.model) if args.model else default_value_model()
    lines, figures = heldout_report(
        load_build(args.data / args.core),
        [load_build(args.data / name) for name in args.extra],
        load_build(args.data / args.test),
        shipped,
        probe.logits,
        folds=args.folds,
        paths=args.paths,
        replays=args.replays,
        ablation=args.ablation,
        seed=args.seed,
        log=log,
    )
    command = "scripts/self_consistency_report.py " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    text = "\n".join(
        [
            "# Self-consistency: when to stop voting",
            "",
            f"Regenerate: `.venv/bin/python {command}` ({time.monotonic() - started:.0f} s). "
            f"Max 16 samples, {args.replays} replays per rule (random orders of each question's "
            f"stored samples); value rules at price {shipped.price:g} are "
            "`ValueRule.default()`'s price.",
            "",
            *lines,
        ]
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n", encoding="utf-8")
    args.out.with_suffix(".json").write_text(
        json.dumps({"command": command, **figures}, indent=1, default=float) + "\n",
        encoding="utf-8",
    )
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
