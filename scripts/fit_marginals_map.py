"""Fit a λ probe's marginals map on cross-fitted logits and store it in the checkpoint.

    .venv/bin/python scripts/fit_marginals_map.py --checkpoint data/probes/lambda \
        --dataset data/runs/trainval --also howhard/assets/lambda-probe

Trains one probe per task family without it (the checkpoint's own recipe, seconds each on CPU),
fits the map's prior on train+val with those logits and writes ``marginals_map`` into each
checkpoint's ``probe.json`` (the weights are not touched).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

# Run from a checkout: use this checkout's howhard, not an installed copy.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, required=True, help="λ probe checkpoint")
    parser.add_argument("--dataset", type=Path, required=True, help="its training dataset")
    parser.add_argument("--features", type=Path, default=None, help="default: DATASET/features")
    parser.add_argument("--group-column", default="family", help="groups left out in turn")
    parser.add_argument("--split-column", default="split", help="train/val/test column")
    parser.add_argument(
        "--also", type=Path, nargs="*", default=[], help="more copies of the same checkpoint"
    )
    args = parser.parse_args()
    from howhard.training.crossfit import fit_checkpoint_map, write_marginals_map

    fitted = fit_checkpoint_map(
        args.checkpoint,
        args.dataset,
        features=args.features,
        group_column=args.group_column,
        split_column=args.split_column,
        log=lambda line: print(line, file=sys.stderr),
    )
    for folder in [args.checkpoint, *args.also]:
        write_marginals_map(folder, fitted)
        print(f"fit_marginals_map: wrote marginals_map to {folder / 'probe.json'}")
    print(json.dumps(fitted.model_dump(mode="json"), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
