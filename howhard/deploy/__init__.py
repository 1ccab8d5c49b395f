"""howhard.deploy: running the gateway past one process.

:mod:`howhard.deploy.ray` runs gateway replicas on Ray Serve (``howhard serve --ray``, or
``serve run howhard.deploy.ray:app config=serve.toml``), each with its own schedulers, all
charging one shared ledger. Install with ``pip install 'howhard[ray]'``; importing this package
imports nothing of Ray.
"""

__all__: list[str] = []
