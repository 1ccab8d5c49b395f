"""Multiple-choice answers: the options a prompt lists and the one a reply picks.

Options are written ``A) text B) text …`` (or one per line). A reply picks a letter explicitly
("B", "B)", "(B)", "The answer is B", "Option B") or, failing that, by naming exactly one
option's text. A reply that picks two different letters, or names two options, picks none.
"""

from __future__ import annotations

import re

__all__ = ["option_letter", "options_in"]

_OPTION = re.compile(r"(?<![A-Za-z])\(?([A-H])\)\s*(.+?)(?=\s+\(?[A-H]\)|\.\s|\.$|\n|$)")
_EXPLICIT = (
    # The reply starts with the letter: "B", "B)", "(B)", "B.", "B:", "**B**".
    re.compile(r"^[\s*_\"']*\(?([A-H])\b(?![\s]+[a-z])(?:\)|\.|:|,|\*|\s|$)"),
    # "The answer is B", "Answer: (B)", "option B", "choice C", "letter D".
    re.compile(
        r"\b(?i:answer|option|choice|letter)\s*(?:is|:|would be)?\s*[*_\"']*\(?([A-H])\b(?!'\w)"
    ),
    # "(B)" or "B)" anywhere.
    re.compile(r"(?<![A-Za-z])\(?([A-H])\)"),
)


def options_in(prompt: str) -> dict[str, str]:
    """The options a prompt lists, letter -> text (``{}`` when it lists fewer than two)."""
    found = {m.group(1): m.group(2).strip() for m in _OPTION.finditer(prompt)}
    return found if len(found) >= 2 else {}


def option_letter(reply: str, prompt: str) -> str | None:
    """The option letter the reply picks, or ``None`` when it picks none or several."""
    options = options_in(prompt)
    allowed = set(options) if options else set("ABCDEFGH")
    bare = reply.strip().strip("*_\"'().:").strip()
    if len(bare) == 1 and bare.upper() in allowed:
        return bare.upper()
    letters = {m.group(1) for pattern in _EXPLICIT for m in pattern.finditer(reply)} & allowed
    if letters:
        return letters.pop() if len(letters) == 1 else None
    stem = _OPTION.split(prompt, maxsplit=1)[0]
    named = {
        letter for letter, text in options.items() if _names(reply, text) and not _names(stem, text)
    }
    return named.pop() if len(named) == 1 else None


def _names(text: str, phrase: str) -> bool:
    pattern = rf"(?<![\w.]){re.escape(phrase)}(?![\w]|\.\d)"
    return re.search(pattern, text, re.IGNORECASE) is not None
