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


def test_demo_closes_the_backend_even_when_the_predictor_fails_to_close(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import howhard.commands._factory as factory
    from howhard.backends import ScriptedBackend
    from howhard.probes import ProbePredictor

    backend = ScriptedBackend()

    class BrokenPredictor:
        async def scores(self, requests: object) -> object:
            raise RuntimeError("encoder crashed")

        async def aclose(self) -> None:
            raise RuntimeError("encoder would not close")

    monkeypatch.setattr(factory, "make_backend", lambda *a, **k: backend)
    monkeypatch.setattr(ProbePredictor, "load", classmethod(lambda cls, *a, **k: BrokenPredictor()))
    with pytest.raises(RuntimeError, match="encoder would not close"):
        main(["demo", "--backend", "scripted", "--questions", "2"])
    assert backend.closed
