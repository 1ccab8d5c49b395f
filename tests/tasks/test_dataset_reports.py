"""Dataset reports: verifier agreement sample by sample, and the families table."""

import json
from pathlib import Path

from howhard.tasks.__main__ import main
from howhard.tasks.agreement import verifier_agreement
from howhard.tasks.summary import family_summaries, markdown_table


def _write(path: Path, rows: list[dict[str, object]]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_counts_agreements_and_keeps_the_disagreements(tmp_path: Path) -> None:
    prompt = "What is 49 + 1? Answer with just the number."
    _write(
        tmp_path / "requests.jsonl",
        [{"id": "q", "prompt": prompt, "reference": "50", "metadata": {"family": "addition"}}],
    )
    replies = ["50", "The answer: 49 + 1 = 50.", "51", "The answer is 50 or 51."]
    _write(
        tmp_path / "samples.jsonl",
        [{"id": "q", "sample": i, "text": t, "tokens": 3} for i, t in enumerate(replies)],
    )
    counts = verifier_agreement(tmp_path)["addition"]
    # The addition verifier reads "answer: 49" and takes the 50 of "50 or 51"; the general one
    # reads the result after "=" and refuses the hedge.
    assert (counts.both, counts.family_only, counts.general_only, counts.neither) == (1, 1, 1, 1)
    assert counts.rate == 0.5
    assert {e["accepted_by"] for e in counts.examples} == {"family", "general"}
    assert main(["agree", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "agreement.json").read_text())
    assert report["all"]["samples"] == 4 and report["addition"]["agreement"] == 0.5


def test_summary_table_has_one_row_per_family_and_a_total(tmp_path: Path) -> None:
    def row(i: int, family: str, lam: float, style: str) -> dict[str, object]:
        meta = {"family": family, "style": style}
        return {"id": f"q{i}", "prompt": "p", "metadata": meta, "lambda": lam}

    _write(
        tmp_path / "requests.jsonl",
        [
            row(0, "yes_no", 0.5, "qa"),
            row(1, "addition", 0.0, "bare"),
            row(2, "addition", 0.5, "qa"),
        ],
    )
    summaries = family_summaries(tmp_path)
    assert [(s.family, s.questions, s.styles) for s in summaries] == [
        ("addition", 2, ("bare", "qa")),
        ("yes_no", 1, ("qa",)),
    ]
    assert summaries[0].mean_lambda == 0.25 and summaries[0].never_solved == 0.5
    table = markdown_table(summaries)
    assert "| addition | 2 | 2 | 0.250 | 50% |" in table
    assert table.endswith("| **all** | | 3 | 0.333 | 33% |")
