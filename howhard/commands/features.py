"""``howhard features``: last-token hidden states of a dataset's prompts, aligned with its ids."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import anyio

from howhard.backends.encoders import ENCODERS, make_encoder
from howhard.commands._factory import default_model, parse_options

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add the ``features`` subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "features",
        help="encode a dataset's prompts into probe features (last-token hidden states)",
        description=(
            "Encode every prompt of a collected dataset with the base LM and store the "
            "last-token hidden states (row i = request i) with the model and layer recorded."
        ),
    )
    parser.add_argument("--dataset", required=True, help="dataset folder from howhard collect")
    parser.add_argument(
        "--out", default=None, help="output path without suffix (default: DATASET/features)"
    )
    parser.add_argument(
        "--encoder",
        choices=ENCODERS,
        default="transformers",
        help="what computes the hidden states (default: transformers, any layer)",
    )
    parser.add_argument(
        "--model", default=None, help="model folder or name (default: the packaged model)"
    )
    parser.add_argument("--base-url", default=None, help="embeddings server URL (openai)")
    parser.add_argument(
        "--layer",
        type=int,
        default=-1,
        help="hidden layer: -1 last (after final norm), 0 embeddings",
    )
    parser.add_argument("--batch-size", type=int, default=16, help="prompts per encode call")
    parser.add_argument(
        "--dtype", choices=["float16", "float32"], default="float16", help="storage dtype"
    )
    parser.add_argument(
        "--encoder-option",
        action="append",
        metavar="KEY=VALUE",
        help="extra keyword argument for the encoder's backend (repeatable; JSON values)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run ``features``."""
    from howhard.training.dataset import load_dataset
    from howhard.training.features import extract_features, save_features

    data = load_dataset(args.dataset)
    model = args.model
    if model is None and args.encoder in ("transformers", "vllm"):
        model = default_model()
    description: dict[str, Any] = {
        "encoder": args.encoder,
        "model": model,
        "layer": args.layer,
        "options": parse_options(args.encoder_option, flag="--encoder-option"),
    }
    if args.base_url:
        description["base_url"] = args.base_url
    encoder = make_encoder(description)
    out = Path(args.out) if args.out else Path(args.dataset) / "features"
    # Batches are persisted here as they finish: rerunning after an interruption resumes.
    partial = out.with_name(out.name + ".partial")

    async def main() -> Any:
        try:
            return await extract_features(
                list(data.prompts),
                encoder,
                batch_size=args.batch_size,
                progress=not args.no_progress,
                partial=partial,
                fingerprint=json.dumps(description, sort_keys=True),
            )
        finally:
            with anyio.CancelScope(shield=True):
                await encoder.aclose()

    array = anyio.run(main)
    meta = {**description, "dataset": str(args.dataset)}
    path = save_features(out, data.ids, array, meta, dtype=args.dtype)
    for leftover in (partial, partial.with_name(partial.name + ".json")):
        leftover.unlink(missing_ok=True)
    print(f"features: {array.shape[0]} x {array.shape[1]} ({args.dtype}) -> {path}")
    return 0
