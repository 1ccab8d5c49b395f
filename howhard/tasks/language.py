"""Families about words and letters: alphabet order, past tenses and synonyms.

Word answers are the reply's first content word (see :mod:`howhard.tasks.pools`); synonym
questions accept any word of a ``|``-separated list.
"""

from __future__ import annotations

import random
import re
import string

from howhard.tasks.base import Question
from howhard.tasks.extract import first_mention
from howhard.tasks.pools import (
    Item,
    content_word,
    content_word_accepted,
    draw_balanced,
    split_words,
)

__all__ = ["Alphabet", "PastTense", "Synonyms"]

_LETTERS = string.ascii_uppercase
_NAMED_LETTER = (
    re.compile("[\"'\u201c\u2018*]([A-Za-z])[\"'\u201d\u2019*]"),
    re.compile(r"\bletter\s+(?:is\s+)?([A-Za-z])\b"),
    re.compile(r"\b(?i:answer)\s*(?:is\s*)?:?\s*([A-Za-z])\b(?!')"),
    re.compile(r"\b(?:is|comes|be)\s+([A-Za-z])\b(?:\s*[.!,]|\s*$)"),
    re.compile(r"^\s*([A-Za-z])\s*[.!]?\s*$"),
    re.compile(r"(?<![A-Za-z'])([B-HJ-Z])(?![A-Za-z'])"),
)


class Alphabet:
    """Alphabet order: which of two letters far apart comes first (level 1), the letter right
    after one of the first twelve (2), the letter right before one or after a late one (3)."""

    name = "alphabet"
    instruction = "Answer with just the letter."

    def generate(self, rng: random.Random, n: int) -> list[Question]:
        """Draw up to ``n`` distinct questions, the levels in turn."""
        pool: list[Item] = []
        for i, letter in enumerate(_LETTERS):
            for j in range(i + 5, len(_LETTERS)):
                pair = (letter, _LETTERS[j]) if (i + j) % 2 else (_LETTERS[j], letter)
                stem = f"Which letter comes first in the alphabet: {pair[0]} or {pair[1]}?"
                pool.append((1, f"{stem} {self.instruction}", letter))
            if i + 1 < len(_LETTERS):
                after = self._prompt(f"comes right after {letter}")
                pool.append((2 if i < 12 else 3, after, _LETTERS[i + 1]))
            if i > 0:
                pool.append((3, self._prompt(f"comes right before {letter}"), _LETTERS[i - 1]))
        return draw_balanced(self.name, pool, rng, n)

    def _prompt(self, relation: str) -> str:
        return f"Which letter {relation} in the alphabet? {self.instruction}"

    def answer(self, reply: str, prompt: str) -> str | None:
        """The first letter the reply names: one of the two offered, or any but the one asked
        about; upper-cased."""
        offered = _OFFERED.search(prompt)
        asked = _ASKED.search(prompt)
        for pattern in _NAMED_LETTER:
            for match in pattern.finditer(reply):
                letter = match.group(1).upper()
                if offered is not None and letter not in offered.groups():
                    continue
                if asked is not None and letter == asked.group(1):
                    continue
                return letter
        return None

    def verify(self, reply: str, reference: str, prompt: str) -> bool:
        """The first letter named in the reply is the right one."""
        return self.answer(reply, prompt) == reference.upper()


_OFFERED = re.compile(r"first in the alphabet: ([A-Z]) or ([A-Z])\?")
_ASKED = re.compile(r"(?:after|before) ([A-Z]) in the alphabet")


_REGULAR = split_words(
    "walk jump play talk open help cook clean look want rain paint kick pull push wash climb "
    "laugh start visit"
)
_SPELLING = (
    ("dance", "danced"), ("smile", "smiled"), ("bake", "baked"), ("like", "liked"),
    ("live", "lived"), ("stop", "stopped"), ("plan", "planned"), ("hug", "hugged"),
    ("drop", "dropped"), ("cry", "cried"), ("try", "tried"), ("carry", "carried"),
    ("study", "studied"), ("hurry", "hurried"), ("clap", "clapped"), ("skip", "skipped"),
    ("close", "closed"), ("move", "moved"), ("shop", "shopped"), ("hop", "hopped"),
)  # fmt: skip
_IRREGULAR = (
    ("go", "went"), ("eat", "ate"), ("see", "saw"), ("run", "ran"), ("swim", "swam"),
    ("write", "wrote"), ("take", "took"), ("sing", "sang"), ("drink", "drank"), ("give", "gave"),
    ("fly", "flew"), ("buy", "bought"), ("think", "thought"), ("catch", "caught"),
    ("teach", "taught"), ("bring", "brought"), ("sleep", "slept"), ("keep", "kept"),
    ("feel", "felt"), ("find", "found"), ("make", "made"), ("say", "said"), ("sit", "sat"),
    ("speak", "spoke"), ("break", "broke"), ("drive", "drove"), ("ride", "rode"),
    ("begin", "began"), ("know", "knew"), ("grow", "grew"), ("draw", "drew"),
    ("throw", "threw"), ("fall", "fell"), ("hold", "held"), ("meet", "met"), ("win", "won"),
    ("lose", "lost"), ("tell", "told"), ("sell", "sold"), ("stand", "stood"),
    ("wake", "woke"), ("wear", "wore"), ("choose", "chose"), ("forget", "forgot"),
    ("hide", "hid"), ("bite", "bit"), ("shake", "shook"), ("steal", "stole"),
)  # fmt: skip


class PastTense:
    """Simple past of a verb: regular ``-ed`` (level 1), spelling changes (2), irregular (3)."""

    name = "past_tense"
    instruction = "Answer with one word."

    def generate(self, rng: random.Random, n: int) -> list[Question]:
        """Draw up to ``n`` distinct verbs, the levels in turn."""
        items = [(1, verb, verb + "ed") for verb in _REGULAR]
        items += [(2, verb, past) for verb, past in _SPELLING]
        items += [(3, verb, past) for verb, past in _IRREGULAR]
        pool: list[Item] = [
            (level, f'What is the past tense of "{verb}"? {self.instruction}', past)
            for level, verb, past in items
        ]
        return draw_balanced(self.name, pool, rng, n)

    def answer(self, reply: str, prompt: str) -> str | None:
        """The first content word of the reply that the question does not contain."""
        return content_word(reply, prompt)

    def verify(self, reply: str, reference: str, prompt: str) -> bool:
        """The reply's first content word is the past tense."""
        return content_word_accepted(reply, reference, prompt)


_SYNONYMS: tuple[tuple[str, str], ...] = (
    ("big", "large|huge|giant|enormous|great|massive|gigantic"),
    ("small", "little|tiny|mini|petite|miniature|wee"),
    ("happy", "glad|joyful|cheerful|content|merry|pleased|delighted|joyous"),
    ("sad", "unhappy|upset|gloomy|miserable|sorrowful|down|depressed|blue"),
    ("fast", "quick|rapid|speedy|swift"),
    ("begin", "start|commence"),
    ("smart", "clever|intelligent|bright|wise|brilliant"),
    ("angry", "mad|upset|furious|cross|annoyed"),
    ("pretty", "beautiful|lovely|cute|attractive|gorgeous"),
    ("jump", "leap|hop|bound|spring"),
    ("shut", "close|closed"),
    ("rich", "wealthy|affluent|prosperous"),
    ("quiet", "silent|calm|still|hushed"),
    ("easy", "simple|effortless"),
    ("scared", "afraid|frightened|fearful|terrified"),
    ("gift", "present"),
    ("mistake", "error|fault|blunder"),
    ("buy", "purchase"),
    ("fix", "repair|mend"),
    ("choose", "pick|select"),
    ("funny", "amusing|humorous|comical|hilarious"),
    ("kind", "nice|caring|gentle|friendly|generous"),
    ("shout", "yell|scream|holler|cry|bellow"),
    ("hard", "difficult|tough|firm|solid"),
    ("look", "see|watch|view|gaze|stare|glance|observe"),
    ("speak", "talk|say|chat"),
    ("help", "assist|aid|support"),
    ("tired", "sleepy|exhausted|weary|fatigued|drowsy"),
    ("cold", "chilly|freezing|cool|icy|frosty"),
    ("wet", "damp|soaked|moist|soggy"),
    ("strange", "odd|weird|unusual|peculiar|bizarre"),
    ("brave", "courageous|bold|fearless|heroic|valiant"),
    ("end", "finish|stop|conclude"),
    ("idea", "thought|notion|concept|plan"),
    ("job", "work|occupation|profession|career|task"),
    ("road", "street|path|way|route|avenue"),
    ("house", "home|dwelling|residence"),
    ("story", "tale|narrative|account"),
    ("shiny", "bright|glossy|gleaming|sparkling"),
    ("dirty", "filthy|messy|unclean|grimy"),
    ("enormous", "huge|giant|massive|vast|immense|gigantic|large|big|tremendous"),
    ("tiny", "small|little|minute|miniature|wee|teeny|minuscule"),
    ("ancient", "old|antique|aged|archaic"),
    ("rapid", "fast|quick|swift|speedy"),
    ("weary", "tired|exhausted|fatigued|sleepy"),
    ("assist", "help|aid|support"),
    ("purchase", "buy"),
    ("difficult", "hard|tough|challenging|tricky"),
    ("gather", "collect|assemble|meet"),
    ("wealthy", "rich|affluent|prosperous"),
    ("chilly", "cold|cool|frosty|nippy"),
    ("vanish", "disappear|fade"),
    ("sturdy", "strong|solid|tough|robust"),
    ("silent", "quiet|still|mute|noiseless"),
    ("famous", "renowned|celebrated|popular|noted|notable"),
    ("furious", "angry|mad|enraged|livid"),
    ("timid", "shy|fearful|nervous|bashful"),
    ("delighted", "happy|pleased|glad|thrilled|overjoyed"),
    ("fragile", "delicate|breakable|weak|frail"),
    ("vacant", "empty|unoccupied|free"),
)


class Synonyms:
    """A word with the same meaning: picked from two words (level 1) or three (2), or named
    freely (3); any of a list of accepted synonyms is right when named freely."""

    name = "synonyms"
    instruction = "Answer with one word."

    def generate(self, rng: random.Random, n: int) -> list[Question]:
        """Draw up to ``n`` distinct words, the levels in turn."""
        pool: list[Item] = []
        for word, accepted in _SYNONYMS:
            right = accepted.split("|")[0]
            free = f'What is another word for "{word}"? {self.instruction}'
            pool.append((3, free, accepted))
            for level in (1, 2):
                choices = [right, *self._distractors(rng, word, accepted, level)]
                rng.shuffle(choices)
                listed = (
                    " or ".join(choices)
                    if level == 1
                    else f"{', '.join(choices[:-1])} or {choices[-1]}"
                )
                stem = f'Which word means the same as "{word}": {listed}?'
                pool.append((level, f"{stem} {self.instruction}", right))
        return draw_balanced(self.name, pool, rng, n)

    def _distractors(self, rng: random.Random, word: str, accepted: str, count: int) -> list[str]:
        unrelated = [
            other
            for other, others in _SYNONYMS
            if other not in accepted.split("|") and word not in others.split("|") and other != word
        ]
        return rng.sample(unrelated, count)

    def answer(self, reply: str, prompt: str) -> str | None:
        """The first offered word the reply names, or (asked freely) its first content word."""
        offered = _CHOICES.search(prompt)
        if offered is None:
            return content_word(reply, prompt)
        choices = re.split(r", | or ", offered.group(1))
        found = first_mention(reply, choices)
        return None if found is None else found.lower()

    def verify(self, reply: str, reference: str, prompt: str) -> bool:
        """The word the reply gives is one of the accepted synonyms."""
        found = self.answer(reply, prompt)
        return found is not None and found in reference.lower().split("|")


_CHOICES = re.compile(r'means the same as "[^"]+": (.+?)\?')
