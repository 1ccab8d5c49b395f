"""The committed benchmark data regenerates exactly and `howhard evaluate` runs on it."""

import json
from pathlib import Path
from typing import Any

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


def _probe_train() -> list[dict[str, Any]]:
    text = (DATA / "runs" / "probe-train" / "requests.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines()]


def test_the_probe_train_build_holds_no_test_question_and_every_row_is_whole() -> None:
    rows = _probe_train()
    test_prompts = {row["prompt"] for row in _rows("test")}
    assert not test_prompts & {str(row["prompt"]) for row in rows}
    assert len({row["id"] for row in rows}) == len(rows)
    for row in rows:
        rewards = row["rewards"]
        assert isinstance(rewards, list) and len(rewards) == 64 and set(rewards) <= {0.0, 1.0}
    # A train/val question keeps its 16 collected vLLM samples first, then the GPU ones.
    collected = [
        json.loads(line)
        for line in (DATA / "runs" / "trainval" / "requests.jsonl").read_text().splitlines()
    ]
    seen = [row for row in rows if row["metadata"]["set"] == "seen"]
    assert [row["id"] for row in seen] == [row["id"] for row in collected]
    assert all(a["rewards"][:16] == b["rewards"] for a, b in zip(seen, collected, strict=True))
    meta = json.loads((DATA / "runs" / "probe-train" / "features.json").read_text())
    assert meta["ids"] == [row["id"] for row in rows] and meta["layer"] == 15


def test_the_probe_train_questions_are_what_its_script_selects() -> None:
    import importlib.util

    path = DATA.parent / "scripts" / "probe_train_data.py"
    spec = importlib.util.spec_from_file_location("probe_train_data", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sets = module.select(DATA)
    rows = _probe_train()
    for name in ("new", "more"):
        committed = [row for row in rows if row["metadata"]["set"] == name]
        assert [q["id"] for q in sets[name]] == [row["id"] for row in committed]
        assert [q["prompt"] for q in sets[name]] == [row["prompt"] for row in committed]
