"""Fit the self-consistency value model shipped in the package and write it as JSON.

    .venv/bin/python scripts/train_vote_value.py --data data \
        --builds runs/trainval runs/transfer --out howhard/assets/vote-value/model.json

Scores every question with a λ probe (the shipped recipe) trained without its family on the
first build's train/val rows (one probe per family, seconds each), or with ``--logits
as-served`` as the shipped probe serves it; fits the value model on all builds' questions but
about a fifth of the families, early-stopped on those, and chooses the price on them by exact
simulation (minutes on 2 CPU cores; needs torch).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

# Run from a checkout: use this checkout's howhard, not an installed copy.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("data"), help="benchmark data folder")
    parser.add_argument(
        "--builds",
        nargs="+",
        default=["runs/trainval", "runs/transfer"],
        help="collected builds under --data, each with FOLDER/features; the first one's "
        "train/val rows train the probes behind z (the shipped probe's data)",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("howhard/assets/vote-value/model.json"), help="output"
    )
    parser.add_argument("--paths", type=int, default=48, help="resampled paths per question")
    parser.add_argument("--replays", type=int, default=16, help="replays per simulated price")
    parser.add_argument("--val-share", type=float, default=0.2, help="families for validation")
    parser.add_argument("--seed", type=int, default=0, help="seed of folds, probes and fit")
    parser.add_argument(
        "--logits",
        choices=("out-of-family", "as-served"),
        default="as-served",
        help="each question's z: from a probe that never saw its family, or as the shipped "
        "probe (--probe) serves it (cross-fitted on the first build's train rows)",
    )
    parser.add_argument(
        "--probe", type=Path, default=None, help="λ probe checkpoint (default: the shipped one)"
    )
    args = parser.parse_args(argv)
    from howhard.evaluation.vote_value import fit_default_model, load_build
    from howhard.probes import SavedProbe, load_checkpoint

    started = time.monotonic()

    def log(line: str) -> None:
        print(f"[{time.monotonic() - started:6.0f}s] {line}", file=sys.stderr, flush=True)

    builds = [load_build(args.data / name) for name in args.builds]
    shipped_probe = Path(__file__).resolve().parent.parent / "howhard" / "assets" / "lambda-probe"
    probe = SavedProbe(load_checkpoint(args.probe or shipped_probe))
    model, info = fit_default_model(
        builds,
        probe_logits=probe.logits if args.logits == "as-served" else None,
        val_share=args.val_share,
        paths=args.paths,
        replays=args.replays,
        seed=args.seed,
        log=log,
    )
    info["command"] = "scripts/train_vote_value.py " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    model = dataclasses.replace(model, info=info)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    model.save(args.out)
    print(json.dumps({k: v for k, v in info.items() if k != "price_sweep_on_val_families"}))
    print(f"train_vote_value: wrote {args.out} (price {model.price:g})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
