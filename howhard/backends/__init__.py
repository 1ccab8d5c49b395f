"""Model backends: the Backend protocol and its implementations (real engines lazily imported)."""

from howhard.backends.base import Backend, Encoder
from howhard.backends.scripted import ScriptedBackend

__all__ = ["Backend", "Encoder", "ScriptedBackend"]
