"""Per-family difficulty of a collected dataset: questions, styles, mean λ, share never solved."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from howhard.tasks.answers import read_jsonl
from howhard.tasks.suite import FAMILIES

__all__ = ["FamilySummary", "family_summaries", "markdown_table"]


@dataclass(frozen=True, slots=True)
class FamilySummary:
    """One family's row of the benchmark's families table."""

    family: str
    questions: int
    styles: tuple[str, ...]
    mean_lambda: float
    never_solved: float
    """Share of the family's questions with no correct sample."""


def family_summaries(dataset: Path) -> list[FamilySummary]:
    """One summary per family of ``dataset/requests.jsonl``, in the suite's family order."""
    rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for request in read_jsonl(dataset / "requests.jsonl"):
        rows[request["metadata"]["family"]].append(request)
    order = {f.name: i for i, f in enumerate(FAMILIES)}
    out = []
    for name, requests in sorted(
        rows.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])
    ):
        lambdas = [float(r["lambda"]) for r in requests]
        styles = sorted({str(r["metadata"].get("style", "instruction")) for r in requests})
        out.append(
            FamilySummary(
                family=name,
                questions=len(requests),
                styles=tuple(styles),
                mean_lambda=sum(lambdas) / len(lambdas),
                never_solved=sum(lam == 0.0 for lam in lambdas) / len(lambdas),
            )
        )
    return out


def markdown_table(summaries: list[FamilySummary]) -> str:
    """The summaries as a Markdown table, with an "all" row over every question."""
    lines = [
        "| family | styles | questions | mean λ | never solved |",
        "|---|---|---|---|---|",
    ]
    for s in summaries:
        lines.append(
            f"| {s.family} | {len(s.styles)} | {s.questions} | {s.mean_lambda:.3f} | "
            f"{s.never_solved:.0%} |"
        )
    total = sum(s.questions for s in summaries)
    if total:
        mean = sum(s.mean_lambda * s.questions for s in summaries) / total
        never = sum(s.never_solved * s.questions for s in summaries) / total
        lines.append(f"| **all** | | {total} | {mean:.3f} | {never:.0%} |")
    return "\n".join(lines)
