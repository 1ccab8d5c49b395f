"""The transfer build: every family, several phrasings, splits for leave-one-family-out work."""

import json
import random
from collections import Counter
from pathlib import Path

import pytest

from howhard.tasks import (
    ADDED_FAMILIES,
    CORE_FAMILIES,
    FAMILIES,
    SPLITS,
    STYLES,
    build_splits,
    build_transfer,
    family,
    question_id,
    restyle,
    style,
    write_jsonl,
)

TRANSFER = Path(__file__).resolve().parents[2] / "data" / "questions" / "transfer.jsonl"


@pytest.fixture(scope="module")
def transfer() -> list:
    return build_transfer()


def test_the_suite_has_at_least_25_families_with_distinct_names() -> None:
    names = [f.name for f in FAMILIES]
    assert len(names) >= 25 and len(ADDED_FAMILIES) >= 12
    assert len(set(names)) == len(names)


def test_every_family_has_every_split_and_several_styles(transfer: list) -> None:
    for fam in FAMILIES:
        mine = [q for q in transfer if q.family == fam.name]
        assert {q.metadata["split"] for q in mine} == set(SPLITS), fam.name
        assert len({q.metadata["style"] for q in mine}) >= 4, fam.name
        assert {q.level for q in mine} == {1, 2, 3}, fam.name


def test_core_families_get_only_new_phrasings(transfer: list) -> None:
    core = {f.name for f in CORE_FAMILIES}
    core_build = {q.prompt for split in build_splits().values() for q in split}
    for q in transfer:
        assert q.metadata["build"] == "transfer"
        if q.family in core:
            assert q.metadata["style"] != "instruction"
            assert q.prompt not in core_build


def test_ids_are_unique_and_disjoint_from_the_core_build(transfer: list) -> None:
    ids = [question_id(q) for q in transfer]
    core_ids = {question_id(q) for split in build_splits().values() for q in split}
    assert len(set(ids)) == len(ids)
    assert not set(ids) & core_ids


def test_splits_follow_the_fractions_within_each_family(transfer: list) -> None:
    for fam in FAMILIES:
        counts = Counter(q.metadata["split"] for q in transfer if q.family == fam.name)
        total = sum(counts.values())
        assert abs(counts["train"] - 0.6 * total) <= 1, (fam.name, counts)
        assert abs(counts["test"] - 0.2 * total) <= 1, (fam.name, counts)


def test_every_question_accepts_its_reference_in_its_style(transfer: list) -> None:
    for q in transfer:
        fam = family(q.family)
        reply = style(q.metadata["style"]).reply.format(answer=q.reference.split("|")[0])
        assert fam.verify(reply, q.reference, q.prompt), (q.prompt, reply)
        assert not fam.verify("I don't know.", q.reference, q.prompt), q.prompt


@pytest.mark.parametrize("chosen", STYLES, ids=lambda s: s.name)
def test_styles_keep_the_stem_and_the_answer(chosen) -> None:
    fam = family("addition")
    question = fam.generate(random.Random(0), 1)[0]
    styled = restyle(question, fam, chosen)
    assert question.prompt.removesuffix(" " + fam.instruction) in styled.prompt
    assert styled.reference == question.reference and styled.level == question.level
    assert styled.metadata["style"] == chosen.name


def test_style_texts_hold_no_digits_or_question_marks() -> None:
    for s in STYLES:
        text = s.template.replace("{stem}", "").replace("{instruction}", "")
        assert not any(c.isdigit() for c in text) and "?" not in text, s.name


def test_restyle_refuses_a_prompt_without_its_family_instruction() -> None:
    fam = family("addition")
    question = fam.generate(random.Random(0), 1)[0]
    with pytest.raises(ValueError, match="does not end with its family's instruction"):
        restyle(restyle(question, fam, style("qa")), fam, style("bare"))
    with pytest.raises(ValueError, match="style must be one of"):
        style("haiku")


def test_build_is_deterministic_and_seed_dependent() -> None:
    small = {"added": 6, "core": 3}
    assert build_transfer(**small, seed=1) == build_transfer(**small, seed=1)
    assert build_transfer(**small, seed=1) != build_transfer(**small, seed=2)
    with pytest.raises(ValueError, match="fractions must be three"):
        build_transfer(fractions=(1.0, 0.0))


def test_rows_carry_family_level_split_style_and_build(tmp_path: Path, transfer: list) -> None:
    path = tmp_path / "transfer.jsonl"
    assert write_jsonl(transfer[:3], path) == 3
    row = json.loads(path.read_text().splitlines()[0])
    assert set(row["metadata"]) == {"family", "level", "split", "style", "build"}
    with pytest.raises(ValueError, match="has no split"):
        write_jsonl(build_splits((3, 0, 0))["train"], path)


@pytest.mark.skipif(not TRANSFER.exists(), reason="transfer questions not generated")
def test_committed_transfer_questions_are_what_the_generator_builds(transfer: list) -> None:
    rows = [json.loads(line) for line in TRANSFER.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in rows] == [question_id(q) for q in transfer]
    assert [r["prompt"] for r in rows] == [q.prompt for q in transfer]
    assert [r["metadata"]["split"] for r in rows] == [q.metadata["split"] for q in transfer]
