"""Phrasings of one question: the instruction style a prompt is written in.

Every family writes its questions as ``"{stem} {instruction}"`` (``"What is 7 + 8? Answer with
just the number."``). A :class:`Style` rewrites that into another way a user might ask the same
thing — a different instruction, none at all, a one-line preface, a ``Question:/Answer:`` frame,
or a request for a full sentence — so that a probe is trained and judged on phrasings as well as
contents. The answer is the same under every style, and so is the family's verifier.

Style texts hold no digits, no ``?`` and no word that is an accepted answer of any family: the
verifiers read the whole prompt (to skip the words a reply merely repeats, or the options of a
comparison), and a test checks every styled question against its own reference.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from howhard.tasks.base import Question, TaskFamily

__all__ = ["STYLES", "Style", "restyle", "style"]


@dataclass(frozen=True, slots=True)
class Style:
    """One way to phrase a question around its stem."""

    name: str
    """Stable identifier stored with every question (``metadata["style"]``)."""
    template: str
    """The prompt, with ``{stem}`` (the question itself) and ``{instruction}`` (the family's
    own answer-format instruction) as placeholders."""
    reply: str = "{answer}"
    """A reply in the form the style asks for, with ``{answer}`` for the answer: a family is
    given the style only if its verifier accepts the reference written this way."""

    def render(self, stem: str, instruction: str) -> str:
        """The prompt for ``stem`` in this style."""
        return self.template.format(stem=stem, instruction=instruction)

    def fits(self, question: Question, family: TaskFamily) -> bool:
        """Whether ``family``'s verifier reads the reference in the form this style asks for."""
        prompt = restyle(question, family, self).prompt
        reply = self.reply.format(answer=question.reference.split("|")[0])
        return family.verify(reply, question.reference, prompt)


STYLES: tuple[Style, ...] = (
    Style("instruction", "{stem} {instruction}"),
    Style("only", "{stem} Reply with only the answer."),
    Style("bare", "{stem}"),
    Style("preface", "You are a helpful quiz assistant. Give a brief reply.\n{stem}"),
    Style("qa", "Question: {stem}\nAnswer:"),
    Style("final", '{stem} Write "Answer:" followed by your answer.', "Answer: {answer}"),
    Style("sentence", "{stem} Reply with a complete sentence.", "The answer is {answer}."),
)
"""Every style; ``instruction`` is each family's own phrasing (the first build's only one)."""

_BY_NAME = {s.name: s for s in STYLES}


def style(name: str) -> Style:
    """Look up a style by name."""
    try:
        return _BY_NAME[name]
    except KeyError:
        known = ", ".join(sorted(_BY_NAME))
        raise ValueError(f"style must be one of {known}; got {name!r}") from None


def restyle(question: Question, family: TaskFamily, chosen: Style) -> Question:
    """``question`` (written in its family's own instruction style) rephrased in ``chosen``.

    The stem is the prompt without its family's trailing instruction; level and reference are
    unchanged, and ``metadata["style"]`` records the style.
    """
    suffix = " " + family.instruction
    if not question.prompt.endswith(suffix):
        raise ValueError(
            f"question {question.prompt!r} does not end with its family's instruction "
            f"{family.instruction!r}; restyle only questions the family generated"
        )
    stem = question.prompt.removesuffix(suffix)
    return replace(
        question,
        prompt=chosen.render(stem, family.instruction),
        metadata={**question.metadata, "style": chosen.name},
    )
