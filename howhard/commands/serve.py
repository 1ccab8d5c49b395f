"""``howhard serve``: the OpenAI-compatible gateway (see ``howhard.serve``).

With no arguments it serves the embedded default model (SmolLM2-135M-Instruct on in-process
vLLM, the shipped λ probe, adaptive best-of-k / self-consistency) as model ``smollm2`` on
http://127.0.0.1:8000, open to local clients without a key. ``--config FILE`` serves a TOML
config (backends, models, tenants, keys). SIGTERM or Ctrl-C drains the requests in flight
(``server.drain_grace_s``), cancels and refunds the rest, shuts the engines down and exits 0.
``--ray`` runs the config's ``[deployment]`` replicas on Ray Serve instead (``howhard[ray]``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add the ``serve`` subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "serve",
        help="serve models over an OpenAI-compatible HTTP API with tenants, quotas and metrics",
        description=__doc__,
    )
    parser.add_argument("--config", type=Path, default=None, help="TOML config file")
    parser.add_argument("--host", default=None, help="override server.host")
    parser.add_argument("--port", type=int, default=None, help="override server.port")
    parser.add_argument(
        "--ray",
        action="store_true",
        help="run [deployment]'s gateway replicas on Ray Serve (local cluster unless "
        "deployment.ray_address is set); needs howhard[ray]",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Serve until SIGTERM/SIGINT; 0 after a graceful stop."""
    from howhard.serve.config import ServeConfig, load_config
    from howhard.serve.server import serve

    config = load_config(args.config)
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    if overrides:
        data = config.model_dump()
        data["server"].update(overrides)
        config = ServeConfig(**data)
    _quiet_engines()

    def ready(url: str) -> None:
        names = ", ".join(sorted(config.models))
        where = f"{url}/v1"
        if args.ray:
            scaling = config.deployment.autoscaling
            replicas = config.deployment.replicas
            count = (
                f"{replicas} replica{'s' if replicas != 1 else ''}"
                if scaling is None
                else f"{scaling.min_replicas}-{scaling.max_replicas} replicas (autoscaling)"
            )
            where += f" on Ray Serve, {count}"
        print(f"howhard serve: {names} at {where} (Ctrl-C or SIGTERM to stop)", flush=True)

    if args.ray:
        from howhard.deploy.ray import run as run_on_ray

        signum = run_on_ray(config, on_ready=ready)
    else:
        signum = serve(config, on_ready=ready)
    if signum is not None:
        print("howhard serve: stopped after draining", file=sys.stderr, flush=True)
    return 0


def _quiet_engines() -> None:
    """Lifecycle events on stderr, per-request ones off; quieter engine processes.

    The environment variables are defaults (a user's own setting wins) read by the engine
    processes vLLM spawns.
    """
    import logging
    import os

    import structlog

    if not structlog.is_configured():
        structlog.configure(
            wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
            logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        )

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    os.environ.setdefault("VLLM_HOST_IP", "127.0.0.1")
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TQDM_DISABLE", "1")
