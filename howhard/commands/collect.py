"""``howhard collect``: sample and score m completions per request into a resumable dataset."""

from __future__ import annotations

import argparse
from typing import Any

import anyio

from howhard.commands._factory import (
    add_backend_arguments,
    command_line,
    make_backend,
    parse_options,
)
from howhard.types import GenerationParams

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add the ``collect`` subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "collect",
        help="sample and score completions per request into a training dataset",
        description=(
            "Draw --samples completions for every request of --input, score them with --scorer "
            "and append them to the dataset folder --out. Running the same command again "
            "resumes an interrupted run (finished requests are skipped)."
        ),
    )
    parser.add_argument(
        "--input", required=True, help='requests JSONL: {"id", "prompt", "reference"?, ...}'
    )
    parser.add_argument("--out", required=True, help="dataset folder (created or resumed)")
    add_backend_arguments(parser)
    parser.add_argument(
        "--scorer",
        required=True,
        help="scorer alias (math, exact, short, tasks) or import path 'package.module:attr'",
    )
    parser.add_argument(
        "--scorer-option",
        action="append",
        metavar="KEY=VALUE",
        help="keyword argument for the scorer factory (repeatable; JSON values)",
    )
    parser.add_argument("--samples", type=int, default=16, help="samples per request (m)")
    parser.add_argument("--temperature", type=float, default=0.7, help="sampling temperature")
    parser.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass")
    parser.add_argument("--max-tokens", type=int, default=256, help="token cap per sample")
    parser.add_argument("--stop", action="append", default=[], help="stop string (repeatable)")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight at once")
    parser.add_argument("--limit", type=int, default=None, help="only the first N requests")
    parser.add_argument(
        "--no-resume",
        action="store_true",
        help="refuse to append to an existing dataset instead of resuming it",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run ``collect``; exit code 0 when every request finished, 1 when some failed."""
    from howhard.errors import ConfigError
    from howhard.scoring.registry import resolve_scorer
    from howhard.training.collect import collect
    from howhard.training.dataset import read_requests

    if args.limit is not None and args.limit < 0:
        # requests[:-1] would silently drop the last request instead.
        raise ConfigError(f"--limit must be >= 0, got {args.limit}")
    requests = read_requests(args.input)
    if args.limit is not None:
        requests = requests[: args.limit]
    scorer = resolve_scorer(
        args.scorer, **parse_options(args.scorer_option, flag="--scorer-option")
    )
    params = GenerationParams(
        max_tokens=args.max_tokens,
        temperature=args.temperature,
        top_p=args.top_p,
        stop=tuple(args.stop),
    )

    async def main() -> int:
        backend = make_backend(
            args.backend,
            model=args.model,
            base_url=args.base_url,
            options=parse_options(args.backend_option, flag="--backend-option"),
        )
        try:
            summary = await collect(
                requests,
                backend,
                scorer,
                samples=args.samples,
                params=params,
                out=args.out,
                concurrency=args.concurrency,
                resume=not args.no_resume,
                progress=not args.no_progress,
                scorer_name=args.scorer,
                command=command_line(args),
            )
        finally:
            with anyio.CancelScope(shield=True):
                await backend.aclose()
        print(
            f"collect: {summary.completed} new, {summary.skipped} already done, "
            f"{len(summary.failed)} failed of {summary.requested} requests; "
            f"{summary.samples} samples, {summary.completion_tokens} tokens in "
            f"{summary.elapsed_s:.1f}s -> {summary.out}"
        )
        if summary.failed:
            print(f"collect: failed ids (rerun to retry): {', '.join(summary.failed[:20])}")
        return 1 if summary.failed else 0

    return anyio.run(main)
