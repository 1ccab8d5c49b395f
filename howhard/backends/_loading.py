"""One transformers load at a time per process.

transformers resolves its public names lazily on first access, and builds models on torch's
"meta" device by patching process-wide state; neither is thread-safe. Local backends load in
worker threads, and the demo starts a vLLM engine and the probe's encoder together, where two
loads at once failed with "module 'transformers' has no attribute 'AutoTokenizer'" and "Cannot
copy out of meta tensor". Backends hold :data:`LOADING` while they import transformers or load a
tokenizer or model with it (not while an engine runs).
"""

from __future__ import annotations

import threading

__all__ = ["LOADING"]

LOADING = threading.Lock()
"""Held around every transformers import and tokenizer/model load in this process."""
