"""The committed benchmark data regenerates exactly and `howhard evaluate` runs on it."""

import json
from pathlib import Path

import pytest

from howhard.cli import main
from howhard.tasks import SPLITS, build_splits, question_id

DATA = Path(__file__).resolve().parents[2] / "data"


def _rows(name: str) -> list[dict[str, str]]:
    text = (DATA / "questions" / f"{name}.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines()]


def test_committed_questions_are_what_the_generator_builds() -> None:
    splits = build_splits()
    for name in SPLITS:
        rows = _rows(name)
        assert [r["id"] for r in rows] == [question_id(q) for q in splits[name]]
        assert [r["prompt"] for r in rows] == [q.prompt for q in splits[name]]


def test_no_test_question_appears_in_train_or_val() -> None:
    ids = {name: {row["id"] for row in _rows(name)} for name in SPLITS}
    assert not ids["test"] & (ids["train"] | ids["val"])


@pytest.mark.skipif(not (DATA / "probes" / "lambda").exists(), reason="no trained probe committed")
def test_evaluate_writes_the_report_on_committed_data(tmp_path: Path) -> None:
    assert (
        main(["evaluate", "--data", str(DATA), "--out", str(tmp_path), "--budget-step", "1"]) == 0
    )
    report = json.loads((tmp_path / "report.json").read_text())
    uniform, oracle = report["best_of_k"]["uniform"], report["best_of_k"]["oracle"]
    assert all(o >= u - 1e-9 for o, u in zip(oracle, uniform, strict=True))
    assert (tmp_path / "best_of_k.png").stat().st_size > 0
    assert "Best-of-k" in (tmp_path / "report.md").read_text()
