"""The whole probe pipeline on a tiny random causal LM: collect → features → train → serve.

The model is a 2-layer Llama with hidden size 32 built in the test (no downloads). Requests come
in two kinds that the scripted model answers very differently (7 of 8 samples right vs 1 of 8),
so a probe on the tiny model's hidden states has a real signal to learn.
"""

import json
from collections.abc import Sequence
from pathlib import Path

import anyio
import numpy as np
import pytest

from howhard import Scheduler
from howhard.backends import ScriptedBackend
from howhard.cli import main
from howhard.policies import AdaptivePolicy, OnlineAllocator
from howhard.probes import ProbePredictor, load_checkpoint
from howhard.procedures import BestOfK
from howhard.training.collect import collect
from howhard.training.dataset import load_dataset, read_requests
from howhard.training.features import load_features
from howhard.types import GenerationParams, Request
from tests.training.helpers import ContainsReference

SAMPLES = 8


def _easy(prompt: str) -> bool:
    return prompt.startswith("the quick brown fox")


def _answers(prompt: str, n: int, params: GenerationParams) -> list[str]:
    """Easy prompts: 7 of every 8 samples right; hard prompts: 1 of every 8."""
    right = 7 if _easy(prompt) else 1
    return ["answer 5" if j % SAMPLES < right else "answer 0" for j in range(n)]


def _write_requests(path: Path, n: int) -> None:
    rows = []
    for i in range(n):
        prompt = f"the quick brown fox {i}" if i % 2 else f"What is {i} * 7 + {i % 9}?"
        rows.append({"id": f"q{i}", "prompt": prompt, "reference": "5"})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_collect_features_train_load_predict_allocate(
    tmp_path: Path, tiny_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    queries, data, ckpt = tmp_path / "q.jsonl", tmp_path / "data", tmp_path / "probe"
    _write_requests(queries, 160)

    summary = anyio.run(
        lambda: collect(
            read_requests(queries),
            ScriptedBackend(_answers, model="tiny"),
            ContainsReference(),
            samples=SAMPLES,
            params=GenerationParams(max_tokens=8, temperature=1.0),
            out=data,
            progress=False,
        )
    )
    assert summary.completed == 160
    dataset = load_dataset(data)
    assert sorted({row["lambda"] for row in dataset.rows}) == [0.125, 0.875]

    model = str(tiny_model)
    features_args = ["features", "--dataset", str(data), "--model", model, "--layer", "-1"]
    features_args += ["--encoder-option", "dtype=float32", "--batch-size", "64", "--no-progress"]
    assert main(features_args) == 0
    features = load_features(data / "features")
    assert not list(data.glob("features.partial*"))  # resume files are removed once saved
    assert features.ids == dataset.ids and features.array.shape == (160, 32)
    assert features.array.dtype == np.float16
    assert (features.meta["model"], features.meta["layer"]) == (model, -1)

    train_args = ["train", "--dataset", str(data), "--out", str(ckpt), "--hidden-dim", "32"]
    train_args += ["--lr", "0.01", "--epochs", "300", "--patience", "30", "--seed", "0"]
    assert main([*train_args, "--calibration", "temperature", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "CE probe" in printed and "test" in printed
    metrics = json.loads((ckpt / "metrics.json").read_text())["test"]
    assert metrics["n"] == 24
    assert metrics["loss"] < metrics["avg_loss"] - 0.1  # the signal is learned
    assert metrics["accuracy"] >= 0.8
    config = load_checkpoint(ckpt).config
    assert config["encoder"]["model"] == model and config["max_budget"] == SAMPLES

    async def serve() -> tuple[list[int], list[int]]:
        predictor = ProbePredictor.load(ckpt)  # encoder rebuilt from the checkpoint
        requests = [
            Request(prompt=p, id=i) for i, p in zip(dataset.ids, dataset.prompts, strict=True)
        ]
        lam = (await predictor.predict(requests))[:, 0]
        easy = np.array([_easy(r.prompt) for r in requests])
        assert lam[easy].mean() > 0.6 > 0.3 > lam[~easy].mean()

        policy = AdaptivePolicy(predictor, OnlineAllocator(average_budget=3.0, max_budget=8))
        budgets = await policy.allocate(requests[:20], 60)
        async with Scheduler(
            backend=ScriptedBackend(_answers),
            policy=policy,
            procedure=BestOfK(ContainsReference()),
            average_budget=3.0,
            max_budget=8,
        ) as scheduler:
            results = await _submit_all(scheduler, requests[:8])
        await predictor.aclose()
        return list(budgets), [r.budget for r in results]

    budgets, served = anyio.run(serve)
    easy20 = [_easy(p) for p in dataset.prompts[:20]]
    hard_mean = np.mean([b for b, e in zip(budgets, easy20, strict=True) if not e])
    easy_mean = np.mean([b for b, e in zip(budgets, easy20, strict=True) if e])
    assert sum(budgets) <= 60 and hard_mean > easy_mean  # hard requests get more samples
    assert len(served) == 8 and all(b >= 0 for b in served)


async def _submit_all(scheduler: Scheduler, requests: Sequence[Request]) -> list:  # type: ignore[type-arg]
    results: list = [None] * len(requests)  # type: ignore[type-arg]

    async def one(i: int) -> None:
        results[i] = await scheduler.submit(requests[i])

    async with anyio.create_task_group() as tg:
        for i in range(len(requests)):
            tg.start_soon(one, i)
    return results
