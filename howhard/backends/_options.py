"""Turning a backend's keyword options into its validated config, with one error for all backends.

Every backend takes ``**options`` and checks them against its pydantic config; a bad option must
surface as :class:`~howhard.errors.ConfigError` naming the backend, never as pydantic's own error.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from howhard.errors import ConfigError

__all__ = ["parse_options"]

ConfigT = TypeVar("ConfigT", bound=BaseModel)


def parse_options(config: type[ConfigT], backend: str, options: dict[str, Any]) -> ConfigT:
    """``config(**options)``; an invalid option raises ``ConfigError`` naming ``backend``."""
    try:
        return config(**options)
    except ValidationError as exc:
        raise ConfigError(f"invalid {backend} option: {exc}") from exc
