"""answers.jsonl holds each sample's canonical answer and tokens, in reward order."""

import json
from pathlib import Path

from howhard.tasks.answers import read_answers, write_answers


def _write(path: Path, rows: list[dict[str, object]]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_extracts_answers_in_sample_order_and_skips_unfinished(tmp_path: Path) -> None:
    prompt = "What is 7 + 8? Answer with just the number."
    _write(
        tmp_path / "requests.jsonl",
        [
            {"id": "q1", "prompt": prompt, "metadata": {"family": "addition"}, "rewards": [0, 1]},
            {"id": "q2", "prompt": prompt, "metadata": {"family": "addition"}, "rewards": [0, 0]},
        ],
    )
    _write(
        tmp_path / "samples.jsonl",
        [
            {"id": "q1", "sample": 1, "text": "7 + 8 = 15", "tokens": 6},
            {"id": "q1", "sample": 0, "text": "I think it is 14.", "tokens": 7},
            {"id": "q2", "sample": 0, "text": "16", "tokens": 1},
        ],
    )
    assert write_answers(tmp_path) == 1
    assert read_answers(tmp_path) == {"q1": (["14", "15"], [7, 6])}


def test_vote_dataset_holds_the_exact_majority_vote_success(tmp_path: Path) -> None:
    from howhard.tasks.routing import write_vote_dataset

    prompt = "What is 7 + 8? Answer with just the number."
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "howhard.dataset/1"}))
    _write(
        tmp_path / "requests.jsonl",
        [{"id": "q1", "prompt": prompt, "metadata": {"family": "addition"}, "rewards": [1, 1, 0]}],
    )
    _write(
        tmp_path / "answers.jsonl",
        [{"id": "q1", "answers": ["15", "15", "14"], "tokens": [1, 1, 1]}],
    )
    assert write_vote_dataset(tmp_path, 3, tmp_path / "sc3") == 1
    row = json.loads((tmp_path / "sc3" / "requests.jsonl").read_text())
    assert row["rewards"] == [1.0]  # "15" wins every 3-vote
    manifest = json.loads((tmp_path / "sc3" / "manifest.json").read_text())
    assert manifest["samples"] == 1
    assert "self-consistency@3" in manifest["procedure"]
