"""Resolve a scorer from a name on the command line: a short alias or a ``module:attr`` import path.

Scorers live where their domain lives (``howhard.scoring`` for generic verifiers,
``howhard.tasks`` for benchmark suites, or the user's own package); this registry only maps a
string to an object, so new scorers plug in without touching the training code. Modules are
imported by name when a scorer is resolved, so this leaf never imports them itself.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from howhard.errors import ConfigError
from howhard.scoring.base import Scorer

__all__ = ["SCORERS", "resolve_scorer"]


SCORERS: Mapping[str, str] = {
    "math": "howhard.scoring:MathAnswerVerifier",
    "exact": "howhard.scoring:ExactMatch",
    "short": "howhard.scoring:ShortAnswerVerifier",
    "tasks": "howhard.tasks:TaskScorer",
}
"""Short aliases for ``--scorer``; any other value is read as a ``module:attr`` import path."""


def resolve_scorer(spec: str, **options: Any) -> Scorer:
    """Build the scorer named by ``spec``.

    ``spec`` is an alias from :data:`SCORERS` or ``"package.module:attr"``. ``attr`` may be a
    scorer instance (used as is; ``options`` must then be empty), or a class or factory that is
    called with ``options`` as keyword arguments and must return a scorer.
    """
    path = SCORERS.get(spec, spec)
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(
            f"scorer={spec!r} is neither an alias ({', '.join(sorted(SCORERS))}) nor a "
            "'package.module:attr' import path"
        )
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise ConfigError(f"scorer={spec!r}: cannot import module {module_name!r} ({exc})") from exc
    try:
        target = getattr(module, attr)
    except AttributeError as exc:
        raise ConfigError(f"scorer={spec!r}: module {module_name!r} has no {attr!r}") from exc
    if isinstance(target, Scorer) and not isinstance(target, type):
        if options:
            raise ConfigError(
                f"scorer={spec!r} is an instance and takes no options; got {sorted(options)}"
            )
        return target
    if not callable(target):
        raise ConfigError(f"scorer={spec!r}: {path} is neither a scorer nor callable")
    try:
        scorer = target(**options)
    except TypeError as exc:
        raise ConfigError(f"scorer={spec!r}: bad options {sorted(options)} ({exc})") from exc
    if not isinstance(scorer, Scorer):
        raise ConfigError(
            f"scorer={spec!r}: {path}(...) returned {type(scorer).__name__}, which has no "
            "async score(request, completions) method"
        )
    return scorer
