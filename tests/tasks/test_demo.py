"""`howhard demo` answers held-out questions on the embedded model and compares with uniform."""

import re

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
    assert out.count("[ 6/6 ]") == 3  # adaptive, sequential and uniform answered every question
    assert "(abstained)" not in out  # the default policy gives every question a sample
    # The sequential run's own line and its comparison with uniform, in the summary.
    assert re.search(r"^sequential: \d/6 correct, \d+ samples \(uniform best-of-k: 12, ", out, re.M)
    summary = out.split("== summary", 1)[1]
    assert re.search(r"^sequential +\d/6 ", summary, re.M)
    assert re.search(r"^sequential answered [+-]\d+ questions vs uniform, using ", summary, re.M)


def test_demo_closes_the_backend_even_when_the_predictor_fails_to_close(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import howhard.commands._factory as factory
    from howhard.backends import ScriptedBackend
    from howhard.probes import ProbePredictor

    backend = ScriptedBackend()

    class BrokenPredictor:
        marginals_map = None
        max_budget = 16

        async def read(self, requests: object) -> object:
            raise RuntimeError("encoder crashed")

        async def aclose(self) -> None:
            raise RuntimeError("encoder would not close")

    monkeypatch.setattr(factory, "make_backend", lambda *a, **k: backend)
    monkeypatch.setattr(ProbePredictor, "load", classmethod(lambda cls, *a, **k: BrokenPredictor()))
    with pytest.raises(RuntimeError, match="encoder would not close"):
        main(["demo", "--backend", "scripted", "--questions", "2"])
    assert backend.closed


def test_demo_help_names_the_backend_it_runs_by_default(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from howhard.cli import build_parser

    assert build_parser().parse_args(["demo"]).backend == "vllm"
    # The sequential run is on by default; --no-sequential skips it, the old flag still parses.
    assert build_parser().parse_args(["demo"]).sequential is True
    assert build_parser().parse_args(["demo", "--no-sequential"]).sequential is False
    assert build_parser().parse_args(["demo", "--sequential"]).sequential is True
    collect = ["collect", "--input", "x", "--out", "y", "--scorer", "math"]
    assert build_parser().parse_args(collect).backend == "transformers"  # its own default
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "(default: vllm)" in help_text
    assert "(default: transformers)" not in help_text


class _FixedProbe:
    """Stands in for the shipped probe: λ = 0.5 for every question, no encoder to load."""

    max_budget = 16
    marginals_map = None  # the default map: at logit 0 its predicted success is 0.5

    def __init__(self) -> None:
        self.predicted = 0
        self.closed = False

    async def read(self, requests: list[object]) -> object:
        import numpy as np

        self.predicted += len(requests)
        return np.zeros(len(requests)), np.ones((len(requests), 4))

    async def aclose(self) -> None:
        self.closed = True


def test_demo_shows_the_policys_own_predictions_and_encodes_each_prompt_once(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from howhard.probes import ProbePredictor

    probe = _FixedProbe()
    monkeypatch.setattr(ProbePredictor, "load", classmethod(lambda cls, *a, **k: probe))
    argv = ["demo", "--backend", "scripted", "--questions", "3", "--budget", "2"]
    assert main([*argv, "--no-sequential"]) == 0
    out = capsys.readouterr().out
    assert out.count("[ 3/3 ]") == 2  # adaptive, then uniform
    rows = [line for line in out.splitlines() if line.startswith("[")]
    assert len(rows) == 6 and all(" 0.50 " in row for row in rows)
    assert probe.predicted == 1 + 3  # the warm-up, then one read per question; no second pass
    assert probe.closed
    assert out.splitlines()[1].startswith("hardware: ")
    assert "summary" in out


def test_the_status_line_says_what_runs_and_how_far_it_got() -> None:
    import io
    import re

    from howhard.commands.demo import _Screen

    screen = _Screen(io.StringIO())
    assert screen.status() == ""
    screen.phase("starting the model backend")
    assert re.fullmatch(r"… starting the model backend: \d+ s", screen.status())
    screen.phase("adaptive", total=32)
    screen.progress(5, 20, 400)
    assert re.fullmatch(
        r"… adaptive: 5/32 answered, 20 samples, 400 tokens, \d+ s", screen.status()
    )
    # While generating: the samples the answered questions used against what uniform best-of-k
    # draws for the same questions, and every sample drawn so far.
    screen.phase("sequential", total=16, uniform=4.0)
    assert "0/16 answered, 0 samples, 0 tokens" in screen.status()
    screen.drawn(3)
    screen.drawn(8)
    screen.progress(9, 8, 100)
    expected = (
        r"… sequential: 9/16 answered, 8 samples \(uniform: 36, -78%\), 11 drawn, 100 tokens, \d+ s"
    )
    assert re.fullmatch(expected, screen.status())
    # A backend's own running count moves between answers; the phase counts from its start.
    generated = [1000]
    screen.phase("uniform", total=32, tokens=lambda: generated[0], uniform=4.0)
    generated[0] = 1234
    assert "0/32 answered, 0 samples, 234 tokens" in screen.status()
    # On a terminal: one row per run, finished runs kept above the running one.
    from rich.console import Console

    console = Console(file=io.StringIO(), width=120)
    console.print(screen.display())
    rows = [line.split() for line in console.file.getvalue().splitlines()]  # type: ignore[attr-defined]
    assert rows[0][:7] == ["run", "answered", "samples", "uniform", "saving", "drawn", "tokens"]
    assert rows[1][:5] == ["✓", "adaptive", "5/32", "20", "20"]
    assert rows[2][:8] == ["✓", "sequential", "9/16", "8", "36", "-78%", "11", "100"]
    assert rows[3][:6] == ["…", "uniform", "0/32", "0", "0", "234"]
    screen.say("a table row")
    assert screen.out.getvalue() == "a table row\n"  # type: ignore[attr-defined]


def test_sequential_run_stops_at_the_first_verified_sample_and_says_how_much_it_saved(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import howhard.commands._factory as factory
    from howhard.backends import ScriptedBackend
    from howhard.probes import ProbePredictor

    questions = held_out_requests(4, seed=0)
    answers = {r.prompt: r.reference.split("|")[0] for r in questions}
    backend = ScriptedBackend(lambda prompt, n, params: [answers.get(prompt, "hi")] * n)
    monkeypatch.setattr(factory, "make_backend", lambda *a, **k: backend)
    monkeypatch.setattr(ProbePredictor, "load", classmethod(lambda cls, *a, **k: _FixedProbe()))
    argv = ["demo", "--backend", "scripted", "--questions", "4", "--budget", "4"]
    assert main(argv) == 0  # the sequential run is part of the default demo
    out = capsys.readouterr().out
    assert out.count("[ 4/4 ]") == 3  # adaptive, sequential, uniform
    # Every first sample is right: each sequential request uses 1 of the samples it was granted.
    section = out.split("== sequential adaptive", 1)[1].split("sequential:", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("[")]
    assert len(rows) == 4 and all(re.search(r" 1/\d+  ", row) for row in rows)
    assert "sequential: 4/4 correct, 4 samples (uniform best-of-k: 16, -75%)" in out
    assert "sequential answered +0 questions vs uniform, using -12 samples (-75%)" in out
    summary = out.split("== summary", 1)[1]
    assert "latency p50/p99" in summary and "rounds p50/p99" in summary
    assert re.search(r"^sequential +4/4 +100% +4 +75% ", summary, re.M)
    assert re.search(r"^uniform +4/4 +100% +16 +0% ", summary, re.M)
