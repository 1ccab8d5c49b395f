"""The suite builds disjoint, deterministic splits covering every family."""

import json
from collections import Counter
from pathlib import Path

import pytest

from howhard.tasks import CORE_FAMILIES, SPLITS, build_splits, question_id, write_jsonl
from howhard.tasks.__main__ import main


def test_splits_have_the_requested_sizes_and_are_disjoint() -> None:
    splits = build_splits((300, 100, 100), seed=3)
    assert [len(splits[name]) for name in SPLITS] == [300, 100, 100]
    keys = [q.key for name in SPLITS for q in splits[name]]
    assert len(set(keys)) == len(keys)


def test_every_split_covers_every_family() -> None:
    splits = build_splits((300, 100, 100), seed=3)
    for name in SPLITS:
        assert set(Counter(q.family for q in splits[name])) == {f.name for f in CORE_FAMILIES}


def test_build_is_deterministic_and_seed_dependent() -> None:
    assert build_splits((60, 20, 20), seed=1) == build_splits((60, 20, 20), seed=1)
    assert build_splits((60, 20, 20), seed=1) != build_splits((60, 20, 20), seed=2)


def test_bad_sizes_are_rejected() -> None:
    with pytest.raises(ValueError, match="sizes must be three"):
        build_splits((10, 10))


def test_jsonl_rows_are_collect_input(tmp_path: Path) -> None:
    question = build_splits((5, 0, 0))["train"][0]
    path = tmp_path / "train.jsonl"
    assert write_jsonl([question], path, split="train") == 1
    row = json.loads(path.read_text())
    assert row == {
        "id": question_id(question),
        "prompt": question.prompt,
        "reference": question.reference,
        "metadata": {"family": question.family, "level": question.level, "split": "train"},
    }


def test_module_entry_point_writes_one_file_per_split(tmp_path: Path) -> None:
    assert main(["questions", "--out", str(tmp_path), "--sizes", "30", "10", "10"]) == 0
    counts = [len((tmp_path / f"{name}.jsonl").read_text().splitlines()) for name in SPLITS]
    assert counts == [30, 10, 10]
