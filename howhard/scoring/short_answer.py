"""ShortAnswerVerifier: checks a short reply against any reference answer, no task knowledge needed.

The reference decides how the reply is read (alternatives are separated by ``|``):

* a **number**, with an optional unit — ``"15"``, ``"1,000"``, ``"$8"``, ``"300 centimeters"``,
  ``"3/4"``, ``"forty-two"``: the reply's stated number must have that exact value; a number
  written in words counts (``"twelve"``), a unit attached to it must be the reference's
  (``"$8"``/``"8 dollars"``/``"8"`` pass, ``"8 cents"`` does not), and a reference written in
  words asks for words (``"42"`` does not spell ``"forty-two"``);
* **yes/no** (or true/false);
* a **single letter** — the option a multiple-choice prompt lists (``"B"``, ``"(B)"``,
  ``"The answer is B"``, or the option's text), or a letter named in the reply;
* a **simple expression** (``"x^2+1"``, ``"\\frac{1}{2}"``): math-verify equivalence, as in
  :class:`~howhard.scoring.MathAnswerVerifier`;
* otherwise **words**: the reply's answer phrase must be one of the alternatives
  (case-insensitive, accents ignored; all-capitals references such as ``"APPLE"`` are matched
  letter for letter).

The reply's answer is read from its most explicit statement first — ``\\boxed{…}``,
"the answer is …" / "Answer: …", ``**bold**``, ``= …``, "is …" — and only then from the reply as a
whole, skipping words and numbers it merely repeats from the prompt. It is conservative: a reply
that states several different candidate answers ("15 or 16", "A) 5 B) 7", "Paris, London",
"yes or no", two different "answer is" statements) matches nothing.
:meth:`ShortAnswerVerifier.answer` gives the reply's answer in canonical form for majority votes.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

import structlog

from howhard.errors import ConfigError, ScoringError
from howhard.scoring.choices import option_letter, options_in
from howhard.scoring.extract import extract_final_answer
from howhard.scoring.math_verifier import MathAnswerVerifier
from howhard.scoring.numbers import NumberMention, find_numbers, format_value, parse_number
from howhard.scoring.sequences import item_runs, split_list
from howhard.scoring.worker import in_worker_process
from howhard.types import Completion, Request

log = structlog.get_logger("howhard.scoring")

__all__ = ["ShortAnswerVerifier"]

_FILLER = frozenset((
    "a", "an", "the", "is", "are", "was", "were", "be", "of", "to", "it", "its", "it's", "for",
    "word", "words", "answer", "final", "reply", "response", "just", "simply", "called", "known",
    "as", "so", "sure", "here", "that", "this", "i", "i'm", "m", "s", "think", "believe",
    "guess", "probably", "would", "will", "well", "ok", "okay", "correct", "right", "one", "or",
    "and", "form", "in", "on", "at", "located", "found", "situated", "named", "considered",
    "usually", "typically", "often", "generally", "mostly", "normally", "actually", "always",
    "commonly", "certainly", "definitely",
))  # fmt: skip
_YES = frozenset(("yes", "yeah", "yep", "yup"))
_NO = frozenset(("no", "nope"))
_TRUE, _FALSE = frozenset(("true",)), frozenset(("false",))

_MARKER = re.compile(  # not a quoted 'Write "Answer:" …' echoed from the prompt
    r"\b(?:final\s+)?answer\s*(?:is|:|=|would\s+be|will\s+be)\s*:?(?![\"'\u201d\u2019])\s*",
    re.IGNORECASE,
)
_NAMED_AS_ANSWER = re.compile(
    r"\s*(?:is|would be)\s+(?:the\s+)?(?:answer|correct|right|larger|smaller|"
    r"greater|bigger|higher|lower|largest|smallest|biggest|highest|lowest)\b",
    re.IGNORECASE,
)
_OPERATOR = re.compile(r"\s*(?:[x\u00d7*+/=]|-(?!\w))")  # "is 4 x 2": an operand, not a result
_NEGATED = re.compile(r"\s*(?:not|never|no longer)\b", re.IGNORECASE)
_BOLD = re.compile(r"\*\*(.+?)\*\*|__(.+?)__")
_EQUALS = re.compile(r"=\s*")
_COPULA = re.compile(
    r"\b(?:is|are|equals|makes|gives|has|have|get|gets|costs?|weighs?|becomes|totals?)\s+",
    re.IGNORECASE,
)
# Where a stated answer ends: a sentence end (not a decimal point), a line end, or ", because".
_CLAUSE_END = re.compile(r"(?<!\d)[.!?;](?!\d)|\.(?=\s|$)|\n|,\s+(?:because|since|as|so|which)\b")
_ALTERNATIVE = re.compile(r"^\s*,?\s*(?:or|/|,\s*or)\s*(?:maybe|perhaps|possibly)?\s*$")
_LIST = re.compile(r"^\s*,\s*$")
_TOKEN = re.compile(r"[^\W\d_]+(?:'(?!s\b)[^\W\d_]+)?")  # "Hungary's" reads "Hungary"
_EXPRESSION = re.compile(r"[\\^*+=(){}\[\]]|\bsqrt\b|\bpi\b|[a-z]\s*/|/\s*[a-z]", re.IGNORECASE)
_SINGLE_LETTER = re.compile(r"^\s*[A-Za-z]\s*$")
_QUOTED = re.compile("[\"'\u201c\u2018]([^\"'\u201c\u201d\u2018\u2019]+)[\"'\u201d\u2019]")
_OR_OPTIONS = re.compile(r":\s*([^:?\n]+?\bor\b[^:?\n]+?)\?")
_FIRST_SENTENCE = re.compile(r"(?<!\d)[.!?](?:\s|$)|\n")
_JOINED = re.compile(r"[,;:()]|\b(?:and|or|but|with|nor|versus|vs)\b", re.IGNORECASE)
_NEGATION = re.compile(r"\b(?:not|no|never|isn't|aren't|wasn't|neither|nor)\b|n't\b", re.IGNORECASE)
_LIST_REFERENCE = re.compile(r"^\s*[^\W_]+(?:\s*,\s*[^\W_]+)+\s*$")
_NAMED_LETTER = (
    re.compile("[\"'\u201c\u2018*]([A-Za-z])[\"'\u201d\u2019*]"),
    re.compile(r"\bletter\s+(?:is\s+)?([A-Za-z])\b(?!')"),
    re.compile(r"\b(?i:answer)\s*(?:is\s*)?:?\s*([A-Za-z])\b(?!')"),
    re.compile(r"\b(?:is|comes|be)\s+([A-Za-z])\b(?:\s*[.!,]|\s*$)"),
)
_STANDALONE_LETTER = re.compile(r"(?<![A-Za-z'])([B-HJ-Z])(?![A-Za-z'])")


@dataclass(frozen=True, slots=True)
class _Span:
    """A stretch of the reply that states an answer, and how explicitly it does so."""

    text: str
    start: int


class ShortAnswerVerifier:
    """Binary verifier for short answers: 1.0 when a reply states the request's reference.

    Works on any request with a ``reference`` (see the module docstring for how numbers, units,
    words, letters, yes/no and expressions are read). Simple expressions are compared with
    math-verify, imported on first use (``pip install 'howhard[math]'``).
    """

    def __init__(
        self, *, math_timeout_s: int = 5, isolation: Literal["process", "inline"] = "process"
    ) -> None:
        if isolation not in ("process", "inline"):
            raise ConfigError(f"isolation must be 'process' or 'inline', got {isolation!r}")
        self._math = MathAnswerVerifier(timeout_s=math_timeout_s, isolation="inline")
        self._math_timeout_s = math_timeout_s
        self._isolation = isolation

    async def score(self, request: Request, completions: Sequence[Completion]) -> list[float]:
        """1.0 for each completion whose answer matches ``request.reference``, else 0.0.

        With ``isolation="process"`` (the default) each reply is verified in a worker process
        under a hard time limit (see :mod:`howhard.scoring.worker`): math-verify on a
        pathological expression would otherwise stall the event loop. A reply that fails or
        times out scores 0.0 with a ``scoring.verify_failed`` warning. ``verify`` itself is
        synchronous and inline (for offline tools).
        """
        if request.reference is None:
            raise ScoringError(
                f"request {request.id!r} has no reference; ShortAnswerVerifier needs "
                "submit(..., reference=...)"
            )
        reference, prompt = request.reference, request.prompt
        if self._isolation == "inline":
            return [1.0 if self.verify(c.text, reference, prompt) else 0.0 for c in completions]
        out = []
        for completion in completions:
            try:
                verified = await in_worker_process(
                    _verify_in_worker,
                    completion.text,
                    reference,
                    prompt,
                    self._math_timeout_s,
                    timeout_s=2 * self._math_timeout_s,  # parsing and comparing: two limits
                )
            except Exception as exc:
                log.warning(
                    "scoring.verify_failed",
                    request_id=request.id,
                    answer=completion.text[:200],
                    error=f"{type(exc).__name__}: {exc}",
                )
                verified = False
            out.append(1.0 if verified else 0.0)
        return out

    def verify(self, reply: str, reference: str, prompt: str = "") -> bool:
        """Whether ``reply`` (to ``prompt``) states ``reference`` (``|``-separated alternatives)."""
        alternatives = [a.strip() for a in reference.split("|") if a.strip()]
        if not alternatives:
            raise ScoringError(f"reference must name an answer, got {reference!r}")
        return any(self._verify_one(reply, alt, prompt, alternatives) for alt in alternatives)

    def answer(self, reply: str, prompt: str = "", reference: str | None = None) -> str | None:
        """The reply's answer in canonical form (for majority votes), or ``None``.

        With a ``reference`` the reply is read the way that reference asks (a number, a letter
        …); without one, the most explicit statement in the reply decides. Numbers are given by
        value (``"15"`` for "fifteen" or "15.0"; units dropped), letters upper-case, words
        lower-case without accents.
        """
        kind = _kind(reference.split("|")[0].strip()) if reference else None
        if kind is None:
            kind = _reply_kind(reply, prompt)
        if kind == "number":
            mention = _number_answer(reply, prompt)
            return None if mention is None else format_value(mention.value)
        if kind == "yesno":
            return _polarity(reply, reference or "yes", prompt)
        if kind == "letter":
            return _letter_answer(reply, prompt)
        if kind == "list" and reference is not None:
            return _list_answer(reply, split_list(reference), prompt)
        if kind == "expression":
            return extract_final_answer(reply)
        return _phrase_answer(reply, prompt, case_sensitive=False)

    def _verify_one(self, reply: str, alt: str, prompt: str, alternatives: list[str]) -> bool:
        kind = _kind(alt)
        if kind == "number":
            if "\\" in reply and not _number_matches(reply, alt, prompt):
                return self._equivalent(reply, alt)  # "\\frac{1}{2}" for "1/2"
            return _number_matches(reply, alt, prompt)
        if kind == "yesno":
            return _polarity(reply, alt, prompt) == _normal(alt)
        if kind == "letter":
            return _letter_answer(reply, prompt) == alt.upper()
        if kind == "list":
            return _list_answer(reply, split_list(alt), prompt) == ", ".join(split_list(alt))
        if kind == "expression":
            return self._equivalent(reply, alt)
        return _phrase_matches(reply, alt, prompt, alternatives)

    def _equivalent(self, reply: str, alt: str) -> bool:
        """math-verify equivalence of the reply's final answer (both read as inline math)."""
        found = extract_final_answer(reply)
        return found is not None and self._math.equivalent(_inline(alt), _inline(found))


def _inline(text: str) -> str:
    """Bare expressions ("x^2+1") parse in math-verify only as inline math."""
    return text if "$" in text else f"${text}$"


def _kind(reference: str) -> str:
    if _normal(reference) in ("yes", "no", "true", "false"):
        return "yesno"
    if _SINGLE_LETTER.match(reference):
        return "letter"
    if parse_number(reference) is not None:
        return "number"
    if _LIST_REFERENCE.match(reference):
        return "list"
    if _EXPRESSION.search(reference):
        return "expression"
    return "text"


def _reply_kind(reply: str, prompt: str) -> str:
    """How to read a reply with no reference: its first explicit answer decides."""
    first = _TOKEN.search(reply)
    if first is not None and _normal(first.group(0)) in _YES | _NO:
        return "yesno"
    if options_in(prompt) and option_letter(reply, prompt) is not None:
        return "letter"
    asked = {m.value for m in find_numbers(prompt)}
    if any(m.value not in asked for m in find_numbers(reply)):
        return "number"
    return "text"


def _normal(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold().strip()


# --- where the reply states its answer -------------------------------------------------------


def _clause(reply: str, start: int) -> _Span:
    """The reply from ``start`` to the end of that clause."""
    end = _CLAUSE_END.search(reply, start)
    stop = end.start() if end is not None else len(reply)
    return _Span(reply[start:stop], start)


def _boxed(reply: str) -> list[_Span]:
    at = max(reply.rfind("\\boxed{"), reply.rfind("\\fbox{"))
    if at < 0:
        return []
    i = reply.index("{", at) + 1
    depth = 1
    for j in range(i, len(reply)):
        depth += {"{": 1, "}": -1}.get(reply[j], 0)
        if depth == 0:
            return [_Span(reply[i:j], i)]
    return []


def _explicit_tiers(reply: str) -> list[list[_Span]]:
    """Answer statements, most explicit first: boxed, "the answer is", bold."""
    marked = [_clause(reply, m.end()) for m in _MARKER.finditer(reply)]
    marked = [span for span in marked if not _NEGATED.match(span.text)]  # "is not 3 but …"
    bold = [
        _Span(m.group(1) or m.group(2), m.start(1) if m.group(1) else m.start(2))
        for m in _BOLD.finditer(reply)
    ]
    return [_boxed(reply), marked, bold]


# --- numbers ---------------------------------------------------------------------------------


def _number_answer(reply: str, prompt: str) -> NumberMention | None:
    """The number the reply states as its answer, or ``None`` (none, or several)."""
    mentions = find_numbers(reply)
    if not mentions:
        return None
    asked = {m.value for m in find_numbers(prompt)}
    decided, chosen = _explicit_number(reply, mentions, asked)
    if not decided:
        chosen = _implicit_number(mentions, asked)
    if chosen is None or _offered_alternatives(reply, mentions, chosen, asked):
        return None
    return chosen


def _in_span(mentions: list[NumberMention], span: _Span) -> list[NumberMention]:
    end = span.start + len(span.text)
    inside = [m for m in mentions if span.start <= m.start and m.end <= end]
    equals = span.text.rfind("=")
    if equals >= 0:  # "7 + 8 = 15": the result, not the operands
        inside = [m for m in inside if m.start >= span.start + equals]
    return inside[:1]  # "the answer is 15 apples, 3 more than …": the number stated first


def _explicit_number(
    reply: str, mentions: list[NumberMention], asked: set[Fraction]
) -> tuple[bool, NumberMention | None]:
    """(whether an explicit statement decides, the number it states or ``None`` if several)."""
    named = [m for m in mentions if _NAMED_AS_ANSWER.match(reply, m.end)]
    for tier in [*_explicit_tiers(reply), None]:
        if tier is None:  # "52 is the larger one", "15 is correct"
            stated = [[m] for m in named]
        else:
            stated = [found for span in tier if (found := _in_span(mentions, span))]
        if stated:
            values = {m.value for group in stated for m in group}
            return True, (stated[-1][-1] if len(values) == 1 else None)
    results, copulas = (
        _stated_after(reply, mentions, _EQUALS),
        _stated_after(reply, mentions, _COPULA),
    )
    for found in (results, copulas):
        if found:
            chosen = found[-1]
            # "= $11. So, together they cost $10.": a later statement of a new number that
            # disagrees ("Leo has 3 bags", restating the prompt, does not).
            later = {m.value for m in copulas if m.start > chosen.start} - asked
            return True, (chosen if later <= {chosen.value} else None)
    return False, None


def _stated_after(
    reply: str, mentions: list[NumberMention], pattern: re.Pattern[str]
) -> list[NumberMention]:
    """The numbers right after ``pattern`` ("= 15", "is 15"), operands ("is 4 x 2") excluded."""
    starts = {_value_start(reply, match) for match in pattern.finditer(reply)}
    return [m for m in mentions if m.start in starts and not _OPERATOR.match(reply, m.end)]


def _value_start(reply: str, match: re.Match[str]) -> int:
    """Where the value after an "=" or "is" starts, past markdown emphasis."""
    i = match.end()
    while i < len(reply) and reply[i] in "*_ ":
        i += 1
    return i


def _implicit_number(mentions: list[NumberMention], asked: set[Fraction]) -> NumberMention | None:
    """The one value the reply states beyond the prompt's numbers (else its only value)."""
    new = [m for m in mentions if m.value not in asked]
    pool = new or mentions
    return pool[-1] if len({m.value for m in pool}) == 1 else None


def _offered_alternatives(
    reply: str, mentions: list[NumberMention], chosen: NumberMention, asked: set[Fraction]
) -> bool:
    """Whether the reply offers another new number beside ``chosen`` ("15 or 16", "15, 16")."""
    for left, right in itertools.pairwise(mentions):
        if chosen not in (left, right) or left.value == right.value:
            continue
        other = right if left is chosen else left
        if other.value in asked:
            continue  # restating the prompt's numbers ("2, 4, 6, 8, 10") offers nothing new
        between = reply[left.end : right.start]
        if left.unit is not None and left.unit == right.unit:
            between = re.sub(r"^\s*\S+", "", between, count=1)  # "5 cm or 6 cm"
        if _ALTERNATIVE.match(between) or _LIST.match(between):
            return True
    return False


def _number_matches(reply: str, alt: str, prompt: str) -> bool:
    expected = parse_number(alt)
    found = _number_answer(reply, prompt)
    if expected is None or found is None or found.value != expected.value:
        return False
    if expected.words and not found.words:
        return False  # asked for words: "42" does not spell "forty-two"
    in_prompt = [m for m in find_numbers(prompt) if m.value == expected.value]
    if found.words and in_prompt and all(m.words for m in in_prompt):
        return False  # "seven" with digits is "7": restating the prompt's words converts nothing
    units = {m.unit for m in find_numbers(reply) if m.value == found.value and m.unit}
    return expected.unit is None or units <= {expected.unit}


# --- yes/no ----------------------------------------------------------------------------------


def _polarity(reply: str, reference: str, prompt: str) -> str | None:
    """ "yes"/"no" (or "true"/"false", as the reference is) the reply answers, else ``None``.

    A word the prompt quotes is a restatement when the reply quotes it too ("the opposite of
    "yes" is "no"" answers no).
    """
    boolean = _normal(reference) in ("true", "false")
    positive, negative = (_TRUE, _FALSE) if boolean else (_YES, _NO)
    quoted = {_normal(q) for q in _QUOTED.findall(prompt)}
    reply = _QUOTED.sub(lambda m: " " if _normal(m.group(1)) in quoted else m.group(0), reply)
    words = [_normal(t) for t in _TOKEN.findall(reply)]
    said = [w for w in words if w in positive or w in negative]
    if not said:
        return None
    if re.search(r"\b(?:yes|true)\s*(?:or|/)\s*(?:no|false)\b", reply, re.IGNORECASE):
        return None
    polarities = {w in positive for w in said}
    leading = words[0] in positive or words[0] in negative
    if len(polarities) > 1 and not leading:
        return None
    first = said[0] in positive
    if boolean:
        return "true" if first else "false"
    return "yes" if first else "no"


# --- letters ---------------------------------------------------------------------------------


def _letter_answer(reply: str, prompt: str) -> str | None:
    if options_in(prompt):
        return option_letter(reply, prompt)
    bare = reply.strip().strip("*_\"'().:").strip()
    if len(bare) == 1 and bare.isalpha():
        return bare.upper()
    asked = {m.group(1).upper() for m in re.finditer(r"(?<![A-Za-z'])([A-Z])(?![A-Za-z'])", prompt)}
    explicit = {m.group(1).upper() for pattern in _NAMED_LETTER for m in pattern.finditer(reply)}
    named = explicit - asked
    if not named:
        named = {m.group(1) for m in _STANDALONE_LETTER.finditer(reply)} - asked
    if not named:
        named = explicit  # the answer is one of the prompt's letters ("first: D or K")
    return named.pop() if len(named) == 1 else None


# --- lists ----------------------------------------------------------------------------------


def _list_answer(reply: str, items: list[str], prompt: str) -> str | None:
    """The one complete list of ``items`` the reply gives, not counting the prompt's own order
    (a restatement of the question); a reply that gives two different orders gives none."""
    complete = len(items)
    asked = {run for run in item_runs(prompt, set(items)) if len(run) == complete}
    orders = {run for run in item_runs(reply, set(items)) if len(run) >= complete}
    if tuple(items) not in asked:
        orders -= asked
    return ", ".join(orders.pop()) if len(orders) == 1 else None


# --- words -----------------------------------------------------------------------------------


def _tokens(text: str, case_sensitive: bool) -> list[tuple[str, int, int]]:
    return [
        (m.group(0) if case_sensitive else _normal(m.group(0)), m.start(), m.end())
        for m in _TOKEN.finditer(text)
    ]


def _phrase_answer(reply: str, prompt: str, *, case_sensitive: bool) -> str | None:
    """The reply's answer phrase (its first content word, or what it marks as the answer)."""
    for tier in _explicit_tiers(reply):
        phrases = {p for span in tier if (p := _first_content(span.text, prompt, False))}
        if phrases:
            return phrases.pop() if len(phrases) == 1 else None
    return _first_content(reply, prompt, case_sensitive)


def _first_content(text: str, prompt: str, case_sensitive: bool) -> str | None:
    asked = {t for t, _, _ in _tokens(prompt, case_sensitive)}
    for token, _, _ in _tokens(text, case_sensitive):
        if token not in asked and _normal(token) not in _FILLER:
            return token
    return None


def _phrase_matches(reply: str, alt: str, prompt: str, alternatives: list[str]) -> bool:
    """Whether the reply's answer phrase is ``alt`` (and it offers no other candidate)."""
    case_sensitive = alt.isupper() and len(alt) > 1
    wanted = [t for t, _, _ in _tokens(alt, case_sensitive)]
    if not wanted:
        return False
    accepted = [[t for t, _, _ in _tokens(a, case_sensitive)] for a in alternatives]
    for tier in _explicit_tiers(reply):
        verdicts = [
            _phrase_at_content(span.text, prompt, wanted, accepted, case_sensitive) for span in tier
        ]
        stated = [v for v in verdicts if v is not None]
        if stated:
            return all(stated)
    if _phrase_at_content(reply, prompt, wanted, accepted, case_sensitive):
        return True
    return _stated_in_first_sentence(reply, prompt, wanted, case_sensitive)


def _stated_in_first_sentence(
    reply: str, prompt: str, wanted: list[str], case_sensitive: bool
) -> bool:
    """Whether the reply's first sentence is a plain statement ending in ``wanted``.

    "Poland is a sovereign state in Central Europe." names Europe. A sentence with a negation,
    a comma or a conjunction may name several candidates ("a hint of purple and a hint of red",
    "not Paris"), so it names none; so does a sentence that only repeats the prompt's words.
    """
    asked = {t for t, _, _ in _tokens(prompt, case_sensitive)}
    if all(w in asked for w in wanted):
        return False
    sentence = _FIRST_SENTENCE.split(reply.strip(), maxsplit=1)[0]
    if _NEGATION.search(sentence) or _JOINED.search(sentence):
        return False
    tokens = [t for t, _, _ in _tokens(sentence, case_sensitive)]
    return len(tokens) > len(wanted) and tokens[-len(wanted) :] == wanted


def _phrase_at_content(
    text: str,
    prompt: str,
    wanted: list[str],
    accepted: list[list[str]],
    case_sensitive: bool,
) -> bool | None:
    """At the first content word of ``text``: is ``wanted`` stated there (``None``: no word)?"""
    asked = {t for t, _, _ in _tokens(prompt, case_sensitive)}
    tokens = _tokens(text, case_sensitive)
    offered = _offered_words(prompt, case_sensitive)
    if len(wanted) == 1 and wanted[0] in offered:
        # "Which word means the same as "big": large or cold?": the first option named decides.
        for i, (token, _, _) in enumerate(tokens):
            if token in offered:
                return token == wanted[0] and not _offers_another(text, tokens, i + 1, accepted)
        return None
    all_asked = all(w in asked for w in wanted)
    for i, (token, _, _) in enumerate(tokens):
        if _normal(token) in _FILLER and token != wanted[0]:
            continue
        if token in asked and not (all_asked and token == wanted[0]):
            continue
        if [t for t, _, _ in tokens[i : i + len(wanted)]] != wanted:
            return False
        return not _offers_another(text, tokens, i + len(wanted), accepted)
    return None


def _offered_words(prompt: str, case_sensitive: bool) -> set[str]:
    """One-word options a prompt offers as ": X, Y or Z?" (empty when it offers none)."""
    match = _OR_OPTIONS.search(prompt)
    if match is None:
        return set()
    items = [i.strip() for i in re.split(r",|\bor\b", match.group(1)) if i.strip()]
    words = [_tokens(i, case_sensitive) for i in items]
    if len(words) < 2 or any(len(w) != 1 for w in words):
        return set()
    return {w[0][0] for w in words}


def _offers_another(
    text: str, tokens: list[tuple[str, int, int]], after: int, accepted: list[list[str]]
) -> bool:
    """Whether the answer ending before ``tokens[after]`` is followed by another candidate:
    "or X", "/ X", or a list "X, Y, Z" — unless every candidate offered is accepted."""
    if after >= len(tokens):
        return False
    between = _unquoted(text[tokens[after - 1][2] : tokens[after][1]])
    if tokens[after][0] == "or" and re.fullmatch(r"[\s,]*", between):
        start = after + 1
    elif re.fullmatch(r"\s*/\s*", between) or (
        re.fullmatch(r"\s*,\s*", between) and _listed_next(text, tokens, after)
    ):
        start = after
    else:
        return False
    if start >= len(tokens):
        return False
    following = [t for t, _, _ in tokens[start:]]
    return not any(following[: len(a)] == a for a in accepted if a)


def _listed_next(text: str, tokens: list[tuple[str, int, int]], at: int) -> bool:
    """Whether ``tokens[at]`` is a peer item of a list ("Paris, London, Rome"), not the start of
    an aside ("Paris, a city of …"): a content word ending the clause or followed by another
    separator."""
    if _normal(tokens[at][0]) in _FILLER or at + 1 > len(tokens):
        return False
    if at + 1 == len(tokens):
        return True
    between = _unquoted(text[tokens[at][2] : tokens[at + 1][1]])
    return bool(re.fullmatch(r"\s*[,/.;!?]\s*", between)) or tokens[at + 1][0] in ("or", "and")


def _unquoted(text: str) -> str:
    """``text`` without quotes and emphasis marks ("\"felt\" or \"feeling\"" joins by "or")."""
    return re.sub("[\"'*_\u201c\u201d\u2018\u2019]", "", text)


_WORKER_VERIFIERS: dict[int, ShortAnswerVerifier] = {}


def _verify_in_worker(reply: str, reference: str, prompt: str, math_timeout_s: int) -> bool:
    """``verify`` in a worker process (module level: called by name; one verifier per process)."""
    verifier = _WORKER_VERIFIERS.get(math_timeout_s)
    if verifier is None:
        verifier = _WORKER_VERIFIERS[math_timeout_s] = ShortAnswerVerifier(
            math_timeout_s=math_timeout_s, isolation="inline"
        )
    return verifier.verify(reply, reference, prompt)
