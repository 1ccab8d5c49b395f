"""`collect` samples m completions per request, scores them, and resumes after interruptions."""

import json
from pathlib import Path

import anyio
import numpy as np
import pytest

from howhard.backends import ScriptedBackend
from howhard.cli import main
from howhard.config import RetryConfig
from howhard.errors import BackendUnavailable, ConfigError, InvalidRequest, RateLimited
from howhard.scoring.registry import resolve_scorer
from howhard.training.collect import collect
from howhard.training.dataset import load_dataset, read_requests
from howhard.types import GenerationParams, Request
from tests.training.helpers import ContainsReference

pytestmark = pytest.mark.anyio

PARAMS = GenerationParams(max_tokens=8, temperature=0.7)


def _requests(n: int) -> list[Request]:
    return [Request(prompt=f"q{i}", id=f"r{i}", reference=str(i)) for i in range(n)]


def _cycle(prompt: str, n: int, params: GenerationParams) -> list[str]:
    """Request q<i> answers correctly in (i % 5) of every 4 samples (0, 1, 2, 3 or 4 of 4)."""
    i = int(prompt[1:])
    right = min(i % 5, 4)
    return [f"answer {i}" if j < right else "answer x" for j in range(n)]


async def test_collect_writes_samples_aggregates_and_manifest(tmp_path: Path) -> None:
    backend = ScriptedBackend(_cycle, model="tiny")
    summary = await collect(
        _requests(6),
        backend,
        ContainsReference(),
        samples=4,
        params=PARAMS,
        out=tmp_path,
        progress=False,
        scorer_name="contains",
    )
    assert (summary.completed, summary.skipped, summary.failed) == (6, 0, ())
    assert summary.samples == 24
    assert all(call.n == 4 for call in backend.calls)  # one call per request, prefix shared

    data = load_dataset(tmp_path)
    assert data.ids == tuple(f"r{i}" for i in range(6))
    assert data.rewards.shape == (6, 4)
    np.testing.assert_array_equal(data.rewards.sum(axis=1), [0, 1, 2, 3, 4, 0])
    assert [row["lambda"] for row in data.rows] == [0.0, 0.25, 0.5, 0.75, 1.0, 0.0]
    assert data.rows[1]["completion_tokens"] == 8
    manifest = data.manifest
    assert (manifest["model"], manifest["scorer"], manifest["samples"]) == ("tiny", "contains", 4)
    assert manifest["params"]["temperature"] == 0.7
    samples = list(data.samples())
    assert len(samples) == 24
    assert samples[4] == {
        "id": "r1",
        "sample": 0,
        "text": "answer 1",
        "reward": 1.0,
        "tokens": 2,
        "finish_reason": "stop",
    }


def _tear_last_append(folder: Path) -> None:
    """Leave what a crash in the middle of an append leaves: orphan samples, a torn row."""
    orphan = {"id": "r9", "sample": 0, "text": "x", "reward": 0.0, "tokens": 1}
    with open(folder / "samples.jsonl", "a") as f:
        f.write(json.dumps(orphan) + "\n")
    with open(folder / "requests.jsonl", "a") as f:
        f.write('{"id": "r9", "prompt": "q9", "rewa')


class ProcessKilled(BaseException):
    """Stands in for the process being stopped mid-run (like KeyboardInterrupt on SIGTERM)."""


async def test_interrupted_run_resumes_without_losing_or_duplicating_rows(tmp_path: Path) -> None:
    requests = _requests(10)
    calls = 0

    def crash_on_sixth(prompt: str, n: int, params: GenerationParams) -> list[str]:
        nonlocal calls
        calls += 1
        if calls == 6:
            raise ProcessKilled("process killed")
        return _cycle(prompt, n, params)

    with pytest.raises(BaseExceptionGroup) as excinfo:
        await collect(
            requests,
            ScriptedBackend(crash_on_sixth),
            ContainsReference(),
            samples=4,
            params=PARAMS,
            out=tmp_path,
            concurrency=1,
            progress=False,
        )
    assert excinfo.group_contains(ProcessKilled, match="process killed")
    assert len(load_dataset(tmp_path)) == 5

    _tear_last_append(tmp_path)
    assert len(load_dataset(tmp_path)) == 5  # readers ignore the torn tail

    backend = ScriptedBackend(_cycle)
    summary = await collect(
        requests,
        backend,
        ContainsReference(),
        samples=4,
        params=PARAMS,
        out=tmp_path,
        concurrency=3,
        progress=False,
    )
    assert (summary.skipped, summary.completed) == (5, 5)
    assert sorted(call.prompt for call in backend.calls) == [f"q{i}" for i in range(5, 10)]
    data = load_dataset(tmp_path)
    assert sorted(data.ids) == sorted(r.id for r in requests)
    assert len(list(data.samples())) == 40
    lines = (tmp_path / "samples.jsonl").read_text().splitlines()
    assert len(lines) == 40  # the orphan sample of the torn request is gone
    assert len(data.manifest["runs"]) == 2

    again = await collect(
        requests,
        ScriptedBackend(_cycle),
        ContainsReference(),
        samples=4,
        params=PARAMS,
        out=tmp_path,
        progress=False,
    )
    assert (again.skipped, again.completed) == (10, 0)


async def test_cancelled_run_keeps_finished_rows(tmp_path: Path) -> None:
    done = anyio.Event()
    seen = 0

    async def stall_after_three(prompt: str, n: int, params: GenerationParams) -> list[str]:
        nonlocal seen
        seen += 1
        if seen > 3:
            done.set()
            await anyio.sleep_forever()
        return _cycle(prompt, n, params)

    async with anyio.create_task_group() as tg:

        async def run() -> None:
            await collect(
                _requests(8),
                ScriptedBackend(stall_after_three),
                ContainsReference(),
                samples=2,
                params=PARAMS,
                out=tmp_path,
                concurrency=1,
                progress=False,
            )

        tg.start_soon(run)
        await done.wait()
        tg.cancel_scope.cancel()
    assert load_dataset(tmp_path).ids == ("r0", "r1", "r2")


async def test_transient_backend_failures_are_retried_within_the_run(tmp_path: Path) -> None:
    backend = ScriptedBackend(
        _cycle, faults=[BackendUnavailable("restarting"), RateLimited("429", retry_after=0.0)]
    )
    summary = await collect(
        _requests(2),
        backend,
        ContainsReference(),
        samples=2,
        params=PARAMS,
        out=tmp_path,
        progress=False,
        concurrency=1,
        retry=RetryConfig(max_attempts=3, initial_backoff_s=0.0),
    )
    assert (summary.completed, summary.failed) == (2, ())
    assert [call.error is not None for call in backend.calls] == [True, True, False, False]


async def test_failed_requests_are_reported_and_retried_next_run(tmp_path: Path) -> None:
    def flaky(prompt: str, n: int, params: GenerationParams) -> list[str]:
        if prompt == "q2":
            raise BackendUnavailable("server down")
        return _cycle(prompt, n, params)

    summary = await collect(
        _requests(4),
        ScriptedBackend(flaky),
        ContainsReference(),
        samples=2,
        params=PARAMS,
        out=tmp_path,
        progress=False,
    )
    assert summary.failed == ("r2",)
    assert summary.completed == 3
    retry = await collect(
        _requests(4),
        ScriptedBackend(_cycle),
        ContainsReference(),
        samples=2,
        params=PARAMS,
        out=tmp_path,
        progress=False,
    )
    assert (retry.completed, retry.skipped) == (1, 3)


async def test_backend_that_ignores_n_is_topped_up(tmp_path: Path) -> None:
    def one_at_a_time(prompt: str, n: int, params: GenerationParams) -> list[str]:
        return _cycle(prompt, n, params)[:n]

    class IgnoresN(ScriptedBackend):
        async def generate(self, prompt: str, *, n: int, params: GenerationParams):  # type: ignore[no-untyped-def]
            return await super().generate(prompt, n=1, params=params)

    backend = IgnoresN(one_at_a_time)
    await collect(
        _requests(2),
        backend,
        ContainsReference(),
        samples=3,
        params=PARAMS,
        out=tmp_path,
        progress=False,
    )
    assert load_dataset(tmp_path).rewards.shape == (2, 3)
    assert [c.n for c in backend.calls] == [1, 1, 1, 1, 1, 1]


async def test_resuming_with_different_settings_is_refused(tmp_path: Path) -> None:
    args = dict(params=PARAMS, out=tmp_path, progress=False)
    await collect(_requests(1), ScriptedBackend(_cycle), ContainsReference(), samples=2, **args)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="samples was 2, now 4"):
        await collect(_requests(1), ScriptedBackend(_cycle), ContainsReference(), samples=4, **args)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="already holds a dataset"):
        await collect(
            _requests(1),
            ScriptedBackend(_cycle),
            ContainsReference(),
            samples=2,
            resume=False,
            **args,  # type: ignore[arg-type]
        )


def test_read_requests_defaults_and_validation(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text(
        '{"id": 7, "prompt": "2+2?", "reference": "4", "tenant": "a", "metadata": {"k": 1}}\n'
        "\n"
        '{"prompt": "write f", "reference": ["assert f() == 1"]}\n'
    )
    first, second = read_requests(path)
    assert (first.id, first.tenant, first.reference, dict(first.metadata)) == (
        "7",
        "a",
        "4",
        {"k": 1},
    )
    assert second.reference == '["assert f() == 1"]'
    assert second.id == read_requests(path)[1].id  # stable across reads
    path.write_text('{"id": "a", "prompt": "x"}\n{"id": "a", "prompt": "y"}\n')
    with pytest.raises(InvalidRequest, match="duplicate id 'a'"):
        read_requests(path)
    path.write_text('{"id": "a"}\n')
    with pytest.raises(
        InvalidRequest, match=r'q\.jsonl:1: each line must be an object with a string "prompt"'
    ):
        read_requests(path)


def test_scorer_registry_resolves_aliases_and_import_paths() -> None:
    assert isinstance(
        resolve_scorer("tests.training.helpers:contains_reference"), ContainsReference
    )
    with pytest.raises(ConfigError, match="neither an alias"):
        resolve_scorer("nonsense")
    with pytest.raises(ConfigError, match="has no 'nope'"):
        resolve_scorer("tests.training.helpers:nope")
    with pytest.raises(ConfigError, match="no async score"):
        resolve_scorer("builtins:dict")


def test_cli_collect_then_resume(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    queries = tmp_path / "q.jsonl"
    queries.write_text(
        "".join(
            json.dumps({"id": f"r{i}", "prompt": f"q{i}", "reference": "3"}) + "\n"
            for i in range(5)
        )
    )
    out = tmp_path / "data"
    argv = [
        "collect",
        "--input",
        str(queries),
        "--out",
        str(out),
        "--backend",
        "scripted",
        "--scorer",
        "tests.training.helpers:contains_reference",
        "--samples",
        "4",
        "--max-tokens",
        "8",
        "--no-progress",
        "--limit",
        "3",
    ]
    assert main(argv) == 0
    assert "3 new, 0 already done" in capsys.readouterr().out
    assert main(argv[:-2]) == 0
    assert "2 new, 3 already done" in capsys.readouterr().out
    data = load_dataset(out)
    assert len(data) == 5
    command = data.manifest["runs"][0]["command"]
    assert command[:2] == ["howhard", "collect"]
    assert command[command.index("--samples") + 1] == "4"
    # ScriptedBackend draws "The answer is k." for k in 0..9: the reward is the share with k == 3.
    assert set(np.unique(data.rewards)) <= {0.0, 1.0}


async def test_duplicate_request_ids_are_refused_before_any_sampling(tmp_path: Path) -> None:
    backend = ScriptedBackend(_cycle)
    twice = [*_requests(2), Request(prompt="q7", id="r1", reference="7")]
    with pytest.raises(ConfigError, match="duplicate id 'r1'"):
        await collect(
            twice,
            backend,
            ContainsReference(),
            samples=2,
            params=PARAMS,
            out=tmp_path,
            progress=False,
        )
    assert backend.calls == []
    assert not (tmp_path / "requests.jsonl").exists()


async def test_resuming_with_a_changed_prompt_under_a_finished_id_is_refused(
    tmp_path: Path,
) -> None:
    args = dict(samples=2, params=PARAMS, out=tmp_path, progress=False)
    await collect(_requests(2), ScriptedBackend(_cycle), ContainsReference(), **args)  # type: ignore[arg-type]
    manifest = (tmp_path / "manifest.json").read_text()
    edited = [_requests(2)[0], Request(prompt="q3", id="r1", reference="3")]
    with pytest.raises(
        ConfigError, match=r"different prompt or reference in this input \(first id 'r1'\)"
    ):
        await collect(edited, ScriptedBackend(_cycle), ContainsReference(), **args)  # type: ignore[arg-type]
    assert (tmp_path / "manifest.json").read_text() == manifest  # refused before any write
    assert load_dataset(tmp_path).prompts == ("q0", "q1")


def test_a_corrupt_manifest_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text("{torn")
    with pytest.raises(ConfigError, match=r"manifest\.json is not valid JSON"):
        load_dataset(tmp_path)
    (tmp_path / "manifest.json").write_text("[]")
    with pytest.raises(ConfigError, match=r"is not a howhard\.dataset/1 manifest"):
        load_dataset(tmp_path)


def test_counts_skip_the_padding_of_requests_with_fewer_samples(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text('{"format": "howhard.dataset/1"}')
    rows = [
        {"id": "a", "prompt": "p", "reference": "r", "rewards": [1.0, 0.0, 1.0, 1.0]},
        {"id": "b", "prompt": "q", "reference": "r", "rewards": [0.0, 1.0]},
    ]
    (tmp_path / "requests.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    data = load_dataset(tmp_path)
    assert np.isnan(data.rewards[1, 2:]).all()
    successes, samples = data.counts()
    assert successes.tolist() == [3, 1] and samples.tolist() == [4, 2]
