"""Model backends: the Backend protocol and its implementations (real engines lazily imported)."""

from howhard.backends.base import Backend, Encoder

__all__ = ["Backend", "Encoder"]
