"""Final-answer extraction and normalisation shared by verifiers and majority voting."""

from __future__ import annotations

import re

__all__ = ["extract_final_answer", "normalize_answer"]

_ANSWER_IS = re.compile(r"answer\s*(?:is|:)\s*:?\s*", re.IGNORECASE)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:\s*/\s*\d+)?|-?\.\d+")
_PLAIN_NUMBER = re.compile(r"^-?(?:\d+(?:\.\d*)?|\.\d+)$")
_ASSIGNMENT = re.compile(r"^[a-zA-Z]\w*\s*=\s*(.+)$")


def _last_boxed(text: str) -> str | None:
    start = max(text.rfind("\\boxed{"), text.rfind("\\fbox{"))
    if start < 0:
        return None
    i = text.index("{", start) + 1
    depth = 1
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i:j].strip()
    return None  # unbalanced braces: the box was cut off


def _clean(answer: str) -> str:
    previous = None
    while previous != answer:
        previous = answer
        answer = answer.strip().strip("$").rstrip(".")
    return answer


def extract_final_answer(text: str) -> str | None:
    """The final answer in ``text``, or ``None``.

    Looks, in order of precedence, for the last ``\\boxed{…}``, then the last "answer is …"
    (up to the end of that line, trailing period and ``$`` removed), then the last number.
    """
    boxed = _last_boxed(text)
    if boxed:
        return boxed
    matches = list(_ANSWER_IS.finditer(text))
    if matches:
        rest = text[matches[-1].end() :].split("\n", 1)[0]
        # "The answer is 42. Let me double check" -> "42": stop at a sentence end.
        rest = re.split(r"(?<!\d)\.(?:\s|$)|\.\s", rest, maxsplit=1)[0]
        cleaned = _clean(rest)
        if cleaned:
            return cleaned
    numbers: list[str] = _NUMBER.findall(text)
    if numbers:
        return numbers[-1].replace(",", "").replace(" ", "")
    return None


def normalize_answer(answer: str) -> str:
    """A canonical form for comparing answers: case, spacing, ``$``, ``x =`` and number format.

    ``" $X = 12.50$. "`` → ``"12.5"``; ``"1,000"`` → ``"1000"``; ``"3.0"`` → ``"3"``.
    """
    text = _clean(answer)
    assignment = _ASSIGNMENT.match(text)
    if assignment:
        text = assignment.group(1).strip()
    text = " ".join(text.lower().split())
    number = text.replace(",", "")
    if not _PLAIN_NUMBER.match(number):
        return text  # "inf", "nan", "1e5" stay as written
    # On the digits, not via float(): a float overflows on long digit runs and makes distinct
    # integers above 2**53 (or long decimals) compare equal.
    sign = "-" if number.startswith("-") else ""
    whole, _, fraction = number.removeprefix("-").partition(".")
    whole = whole.lstrip("0") or "0"
    fraction = fraction.rstrip("0")
    digits = f"{whole}.{fraction}" if fraction else whole
    return "0" if digits == "0" else sign + digits
