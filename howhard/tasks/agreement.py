"""How often the general short-answer verifier agrees with each family's own verifier.

Run on a collected dataset's samples (``samples.jsonl``): for every sample, the family's verdict
(the dataset's reward) beside :class:`~howhard.scoring.ShortAnswerVerifier`'s on the same reply,
reference and prompt. Disagreements are kept (a few per family and direction) for inspection.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from howhard.scoring.short_answer import ShortAnswerVerifier
from howhard.tasks.answers import read_jsonl
from howhard.tasks.suite import family

__all__ = ["FamilyAgreement", "verifier_agreement", "write_agreement"]


@dataclass(slots=True)
class FamilyAgreement:
    """Verdict counts for one family: both accept, only one of them accepts, both refuse."""

    family: str
    both: int = 0
    family_only: int = 0
    general_only: int = 0
    neither: int = 0
    examples: list[dict[str, Any]] = field(default_factory=list)
    """Disagreeing samples: prompt, reference, reply and which verifier accepted it."""

    @property
    def samples(self) -> int:
        """Samples compared."""
        return self.both + self.family_only + self.general_only + self.neither

    @property
    def rate(self) -> float:
        """Share of samples on which the two verifiers agree."""
        return (self.both + self.neither) / self.samples if self.samples else float("nan")


def verifier_agreement(dataset: Path, *, examples: int = 5) -> dict[str, FamilyAgreement]:
    """Compare the family verifiers with the general one on every sample of ``dataset``.

    Keeps up to ``examples`` disagreements per family and direction. Returns one entry per
    family, in the order families first appear.
    """
    general = ShortAnswerVerifier()
    requests = {r["id"]: r for r in read_jsonl(dataset / "requests.jsonl")}
    out: dict[str, FamilyAgreement] = {}
    kept: dict[tuple[str, str], int] = defaultdict(int)
    for sample in read_jsonl(dataset / "samples.jsonl"):
        request = requests.get(sample["id"])
        if request is None:
            continue  # an interrupted run's sample whose request row was never written
        name = request["metadata"]["family"]
        prompt, reference, reply = request["prompt"], request["reference"], sample["text"]
        own = family(name).verify(reply, reference, prompt)
        theirs = general.verify(reply, reference, prompt)
        counts = out.setdefault(name, FamilyAgreement(family=name))
        if own and theirs:
            counts.both += 1
        elif own:
            counts.family_only += 1
        elif theirs:
            counts.general_only += 1
        else:
            counts.neither += 1
        if own != theirs:
            direction = "family" if own else "general"
            if kept[name, direction] < examples:
                kept[name, direction] += 1
                counts.examples.append(
                    {
                        "accepted_by": direction,
                        "prompt": prompt,
                        "reference": reference,
                        "reply": reply,
                    }
                )
    return out


def write_agreement(dataset: Path, out: Path, *, examples: int = 5) -> dict[str, FamilyAgreement]:
    """Compute :func:`verifier_agreement` and write it as JSON to ``out``."""
    result = verifier_agreement(dataset, examples=examples)
    total = FamilyAgreement(family="all")
    for counts in result.values():
        total.both += counts.both
        total.family_only += counts.family_only
        total.general_only += counts.general_only
        total.neither += counts.neither
    rows = {
        name: {
            "samples": c.samples,
            "agreement": round(c.rate, 4),
            "both": c.both,
            "family_only": c.family_only,
            "general_only": c.general_only,
            "neither": c.neither,
            "examples": c.examples,
        }
        for name, c in [*sorted(result.items()), ("all", total)]
    }
    out.write_text(json.dumps(rows, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return {**result, "all": total}
