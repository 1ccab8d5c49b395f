"""Turning a user prompt into model input ids, identically for every local engine.

The local transformers backend and in-process vLLM must feed the model the same tokens, or the
probe features one computes would not match the other's; both go through :func:`prompt_ids`.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["hub_offline", "prompt_ids"]


def hub_offline() -> None:
    """Keep model loading local: howhard never downloads weights from a model hub.

    Respects an explicit ``HF_HUB_OFFLINE`` already set by the user.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


def prompt_ids(
    tokenizer: Any, prompt: str, *, chat: bool, system_prompt: str | None = None
) -> list[int]:
    """Token ids for ``prompt`` as one user turn, ending where the assistant's reply starts.

    With ``chat`` false, or a tokenizer without a chat template (base models), the prompt is
    tokenised as plain text with the tokenizer's usual special tokens.
    """
    if chat and getattr(tokenizer, "chat_template", None):
        messages = [{"role": "user", "content": prompt}]
        if system_prompt is not None:
            messages.insert(0, {"role": "system", "content": system_prompt})
        # Render to text first: apply_chat_template(tokenize=True)'s return type differs across
        # transformers versions, and the rendered text already holds every special token.
        text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    else:
        ids = tokenizer(prompt)["input_ids"]
    return [int(i) for i in ids]
