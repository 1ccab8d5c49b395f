"""The agreement report compares each family's verifier with the general one, sample by sample."""

import json
from pathlib import Path

from howhard.tasks.__main__ import main
from howhard.tasks.agreement import verifier_agreement


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
