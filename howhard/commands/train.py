"""``howhard train``: fit a difficulty probe on a dataset and its features; save a checkpoint."""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add the ``train`` subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "train",
        help="train a difficulty probe and report the paper's Table 1 metrics",
        description=(
            "Train an MLP probe on features (or a LoRA probe on the base LM) against labels "
            "from a collected dataset; early-stop on val, optionally calibrate on val, and "
            "report probe/Avg./Opt. loss, above-median accuracy, ECE and Spearman on test."
        ),
    )
    parser.add_argument("--dataset", required=True, help="dataset folder from howhard collect")
    parser.add_argument(
        "--features",
        default=None,
        help="features from howhard features (default: DATASET/features)",
    )
    parser.add_argument("--out", required=True, help="checkpoint folder to write")
    parser.add_argument(
        "--probe", choices=["mlp", "lora"], default="mlp", help="probe kind (default: mlp)"
    )
    parser.add_argument(
        "--head",
        choices=["lambda", "delta", "preference"],
        default="lambda",
        help="lambda: binary rewards; delta: real-valued; preference: routing (needs --weak)",
    )
    parser.add_argument(
        "--weak", default=None, help="weak procedure's dataset (preference head; DATASET = strong)"
    )
    parser.add_argument(
        "--test-dataset",
        default=None,
        help="separately collected held-out dataset; its metrics are reported as test",
    )
    parser.add_argument(
        "--test-features", default=None, help="its features (default: TEST_DATASET/features)"
    )
    parser.add_argument("--test-weak", default=None, help="its weak dataset (preference head)")
    parser.add_argument("--max-budget", type=int, default=None, help="served marginals' width")
    parser.add_argument("--hidden-dim", type=int, default=256, help="MLP hidden width")
    parser.add_argument("--dropout", type=float, default=0.1, help="MLP dropout")
    parser.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate")
    parser.add_argument("--weight-decay", type=float, default=1e-2, help="AdamW weight decay")
    parser.add_argument("--batch-size", type=int, default=64, help="requests per step")
    parser.add_argument("--epochs", type=int, default=300, help="maximum epochs")
    parser.add_argument("--patience", type=int, default=25, help="early-stopping patience")
    parser.add_argument("--seed", type=int, default=0, help="split, init and batch-order seed")
    parser.add_argument("--val-fraction", type=float, default=0.15, help="share for validation")
    parser.add_argument("--test-fraction", type=float, default=0.15, help="share held out for test")
    parser.add_argument(
        "--split-column",
        default=None,
        help="request field or metadata key holding train/val/test (overrides the fractions)",
    )
    parser.add_argument(
        "--calibration",
        choices=["none", "temperature", "isotonic"],
        default="none",
        help="post-hoc calibration fitted on val (lambda and preference heads)",
    )
    parser.add_argument("--model", default=None, help="base LM folder for --probe lora")
    parser.add_argument("--layer", type=int, default=-1, help="hidden layer for --probe lora")
    parser.add_argument("--lora-r", type=int, default=8, help="LoRA rank")
    parser.add_argument(
        "--marginals-map-groups",
        default=None,
        metavar="COLUMN",
        help="lambda MLP probes: also fit the checkpoint's marginals map on logits cross-fitted "
        "by this column (e.g. family: one extra probe per family, trained without it); needs "
        "--split-column",
    )
    parser.add_argument("--quiet", action="store_true", help="no per-epoch log lines")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run ``train``; prints the metrics table and writes the checkpoint."""
    from pathlib import Path

    from howhard.errors import ConfigError
    from howhard.training.train import TrainConfig, format_metrics, train_from_files, train_lora

    if args.marginals_map_groups and (
        args.probe != "mlp" or args.head != "lambda" or not args.split_column
    ):
        raise ConfigError(
            "--marginals-map-groups fits a map for MLP lambda probes trained with --split-column; "
            "drop it or add --split-column"
        )

    config = TrainConfig(
        head=args.head,
        max_budget=args.max_budget,
        hidden_dim=args.hidden_dim,
        dropout=args.dropout,
        lr=args.lr,
        weight_decay=args.weight_decay,
        batch_size=args.batch_size,
        max_epochs=args.epochs,
        patience=args.patience,
        seed=args.seed,
        val_fraction=args.val_fraction,
        test_fraction=args.test_fraction,
        calibration=args.calibration,
    )

    def log(line: str) -> None:
        if not args.quiet:
            print(line, file=sys.stderr)

    if args.probe == "lora":
        from howhard.commands._factory import default_model

        result = train_lora(
            args.dataset,
            args.out,
            config,
            model=args.model or default_model(),
            layer=args.layer,
            r=args.lora_r,
            split_column=args.split_column,
            weak=args.weak,
            log=log,
        )
    else:
        features = args.features or str(Path(args.dataset) / "features")
        result = train_from_files(
            args.dataset,
            features,
            args.out,
            config,
            split_column=args.split_column,
            weak=args.weak,
            test_dataset=args.test_dataset,
            test_features=args.test_features,
            test_weak=args.test_weak,
            log=log,
        )
    print(format_metrics(result.metrics, args.head))
    print(f"train: {result.epochs} epochs; checkpoint -> {args.out}")
    if args.marginals_map_groups:
        from howhard.training.crossfit import fit_checkpoint_map, write_marginals_map

        fitted = fit_checkpoint_map(
            args.out,
            args.dataset,
            features=args.features,
            group_column=args.marginals_map_groups,
            split_column=args.split_column,
            log=log,
        )
        write_marginals_map(args.out, fitted)
        print(
            f"train: marginals map fitted on logits cross-fitted by {args.marginals_map_groups} "
            f"(a0 {fitted.a0:+.2f}, beta0 {fitted.beta0:.2f}) -> {args.out}/probe.json"
        )
    return 0
