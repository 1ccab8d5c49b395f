"""`howhard demo` answers held-out questions on the embedded model and compares with uniform."""

import pytest

from howhard.cli import main
from howhard.commands.demo import DEFAULT_PROBE, held_out_requests
from howhard.tasks import build_splits


def test_demo_questions_come_from_the_test_split() -> None:
    test_prompts = {q.prompt for q in build_splits()["test"]}
    requests = held_out_requests(8, seed=1)
    assert len({r.id for r in requests}) == 8
    assert all(r.prompt in test_prompts and r.reference for r in requests)
    assert [r.id for r in held_out_requests(8, seed=1)] == [r.id for r in requests]


def test_demo_rejects_a_budget_above_the_cap(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--budget", "20", "--max-budget", "16"]) == 2
    assert "budget must be in" in capsys.readouterr().err


@pytest.mark.integration
def test_demo_runs_end_to_end_on_the_embedded_model(capsys: pytest.CaptureFixture[str]) -> None:
    assert DEFAULT_PROBE.exists()
    # One torch thread: on a shared CI machine spinning OpenMP threads slow decoding tenfold.
    args = ["--backend", "transformers", "--backend-option", "num_threads=1"]
    code = main(["demo", *args, "--questions", "6", "--budget", "2"])
    out = capsys.readouterr().out
    assert code == 0
    assert "summary" in out
    assert out.count("[ 6/6 ]") == 2  # both runs answered every question
