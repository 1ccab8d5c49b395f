"""TransformersBackend: shared-prefill sampling and hidden-state features on a tiny local model."""

from __future__ import annotations

from pathlib import Path

import anyio
import numpy as np
import pytest

from howhard.backends import Backend, Encoder, TransformersBackend
from howhard.errors import BackendRejected, BackendUnavailable, ConfigError
from howhard.types import GenerationParams
from tests.conftest import ForceHardware

pytest.importorskip("torch")
pytestmark = pytest.mark.anyio

PROMPT = "What is 2 + 3?"


@pytest.fixture(scope="module")
def backend(tiny_model: Path) -> TransformersBackend:
    return TransformersBackend(tiny_model, dtype="float32")


async def test_it_is_a_backend_and_an_encoder(backend: TransformersBackend) -> None:
    assert isinstance(backend, Backend)
    assert isinstance(backend, Encoder)
    assert backend.model == "tiny-model0"


async def test_n_samples_with_usage_and_token_logprobs(backend: TransformersBackend) -> None:
    params = GenerationParams(max_tokens=6, temperature=1.0, logprobs=True, seed=3)
    generation = await backend.generate(PROMPT, n=4, params=params)

    assert len(generation.completions) == 4
    _, tokenizer, _ = backend._load()
    chat = tokenizer.apply_chat_template(
        [{"role": "user", "content": PROMPT}], add_generation_prompt=True, tokenize=False
    )
    assert generation.prompt_tokens == len(tokenizer(chat, add_special_tokens=False).input_ids)
    for completion in generation.completions:
        assert 1 <= completion.tokens <= 6
        assert completion.logprobs is not None and len(completion.logprobs) == completion.tokens
        assert all(lp <= 0 for lp in completion.logprobs)
        assert completion.finish_reason in {"stop", "length"}
    assert len({c.text for c in generation.completions}) > 1, "samples should differ at T=1"


async def test_the_same_seed_gives_the_same_samples(backend: TransformersBackend) -> None:
    params = GenerationParams(max_tokens=5, temperature=1.0, seed=11)
    first = await backend.generate(PROMPT, n=3, params=params)
    second = await backend.generate(PROMPT, n=3, params=params)
    assert [c.text for c in first.completions] == [c.text for c in second.completions]


async def test_greedy_samples_match_transformers_generate(backend: TransformersBackend) -> None:
    import torch

    params = GenerationParams(max_tokens=8, temperature=0.0, logprobs=True)
    generation = await backend.generate(PROMPT, n=2, params=params)

    model, tokenizer, _ = backend._load()
    chat = tokenizer.apply_chat_template(
        [{"role": "user", "content": PROMPT}], add_generation_prompt=True, tokenize=False
    )
    prompt = tokenizer(chat, add_special_tokens=False, return_tensors="pt").input_ids
    with torch.inference_mode():
        reference = model.generate(
            prompt, max_new_tokens=8, do_sample=False, pad_token_id=tokenizer.pad_token_id
        )
        new = reference[0, prompt.shape[1] :]
        # Teacher-forced log-probabilities of the greedy tokens from one full forward pass.
        logits = model(reference).logits[0, prompt.shape[1] - 1 : -1].float()
        expected = torch.log_softmax(logits, -1).gather(-1, new[:, None]).squeeze(-1)
    text = tokenizer.decode(new, skip_special_tokens=True)
    for completion in generation.completions:
        assert completion.text == text
        assert completion.logprobs is not None
        np.testing.assert_allclose(completion.logprobs, expected.numpy(), atol=1e-4)


async def test_stop_strings_end_a_sample_and_are_not_returned(
    backend: TransformersBackend,
) -> None:
    greedy = await backend.generate(
        PROMPT, n=1, params=GenerationParams(max_tokens=12, temperature=0.0)
    )
    text = greedy.completions[0].text
    stop = text[len(text) // 2 :][:2]
    assert stop, "the tiny model should produce some text"
    stopped = await backend.generate(
        PROMPT, n=1, params=GenerationParams(max_tokens=12, temperature=0.0, stop=(stop,))
    )
    completion = stopped.completions[0]
    assert completion.finish_reason == "stop"
    assert completion.text == text[: text.find(stop)]
    assert stop not in completion.text


async def test_many_concurrent_calls_all_resolve(backend: TransformersBackend) -> None:
    params = GenerationParams(max_tokens=3, temperature=1.0)
    results: list[int] = []

    async def one(i: int) -> None:
        generation = await backend.generate(f"{PROMPT} #{i}", n=2, params=params)
        results.append(len(generation.completions))

    async with anyio.create_task_group() as group:
        for i in range(12):
            group.start_soon(one, i)
    assert results == [2] * 12


async def test_encode_is_independent_of_batching_and_padding(
    backend: TransformersBackend,
) -> None:
    prompts = ["hi", PROMPT, "Seven plus eight equals what number, exactly?"]
    together = await backend.encode(prompts)
    alone = np.concatenate([await backend.encode([p]) for p in prompts])
    assert together.shape == (3, 32) and together.dtype == np.float32
    np.testing.assert_allclose(together, alone, atol=1e-5)


async def test_encode_layer_selects_a_hidden_state(backend: TransformersBackend) -> None:
    last = await backend.encode([PROMPT])
    assert np.allclose(await backend.encode([PROMPT], layer=2), last)  # 2 layers: -1 == 2
    assert not np.allclose(await backend.encode([PROMPT], layer=1), last)
    with pytest.raises(ConfigError, match=r"layer must be in \[-3, 2\].*got 5"):
        await backend.encode([PROMPT], layer=5)


async def test_bad_arguments_are_rejected_with_the_fix(backend: TransformersBackend) -> None:
    with pytest.raises(ConfigError, match="n must be an integer >= 1, got 0"):
        await backend.generate(PROMPT, n=0, params=GenerationParams())
    with pytest.raises(ConfigError, match="prompts must be a non-empty sequence"):
        await backend.encode("just one string")
    with pytest.raises(ConfigError, match="max_concurrency"):
        TransformersBackend("folder", max_concurrency=0)


async def test_overlong_prompts_are_rejected(tiny_model: Path) -> None:
    short = TransformersBackend(tiny_model, dtype="float32", max_prompt_tokens=4)
    with pytest.raises(BackendRejected, match="max_prompt_tokens=4"):
        await short.generate(PROMPT, n=1, params=GenerationParams(max_tokens=2))


async def test_a_closed_backend_refuses_calls_instead_of_reloading(tiny_model: Path) -> None:
    closing = TransformersBackend(tiny_model, dtype="float32")
    await closing.generate(PROMPT, n=1, params=GenerationParams(max_tokens=1))
    await closing.aclose()
    with pytest.raises(BackendUnavailable, match="closed; create a new one"):
        await closing.generate(PROMPT, n=1, params=GenerationParams(max_tokens=1))
    with pytest.raises(BackendUnavailable, match="closed"):
        await closing.encode([PROMPT])
    assert closing._loaded is None


@pytest.mark.parametrize(
    ("fast_bf16", "requested", "loaded"),
    [
        (True, "auto", "bfloat16"),
        (False, "auto", "float32"),  # an AVX2 CPU: bf16 would run ~60x slower
        (False, "bfloat16", "bfloat16"),  # an explicit dtype always wins
        (True, "float32", "float32"),
    ],
)
async def test_the_model_loads_in_the_dtype_the_hardware_calls_for(
    tiny_model: Path, force_hardware: ForceHardware, fast_bf16: bool, requested: str, loaded: str
) -> None:
    import torch

    force_hardware(fast_bf16=fast_bf16)
    local = TransformersBackend(tiny_model, dtype=requested, device="cpu")
    assert local.dtype == loaded
    async with local:
        model, _, _ = local._load()
        assert next(model.parameters()).dtype == getattr(torch, loaded)
        generation = await local.generate(PROMPT, n=2, params=GenerationParams(max_tokens=2))
    assert len(generation.completions) == 2


async def test_threads_leave_the_cores_of_a_live_vllm_engine(
    tiny_model: Path, force_hardware: ForceHardware, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    from howhard import hardware

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    force_hardware(fast_bf16=False, cores=2)
    local = TransformersBackend(tiny_model, dtype="float32")
    engine = object()
    before = torch.get_num_threads()
    try:
        hardware.claim_cpus(engine, frozenset({0}))
        local._set_threads(torch)
        assert torch.get_num_threads() == 1
        hardware.release_cpus(engine)
        local._set_threads(torch)  # the engine is gone: torch's own default again
        assert torch.get_num_threads() == before
        pinned = TransformersBackend(tiny_model, dtype="float32", num_threads=1)
        pinned._set_threads(torch)  # an explicit count wins, engine or not
        assert torch.get_num_threads() == 1
        local._set_threads(torch)  # no engine, no count asked for: torch is left alone
        assert torch.get_num_threads() == 1
    finally:
        hardware.release_cpus(engine)
        torch.set_num_threads(before)


async def test_tokens_generated_counts_every_sampled_token(tiny_model: Path) -> None:
    counting = TransformersBackend(tiny_model, dtype="float32")
    assert counting.tokens_generated == 0
    params = GenerationParams(max_tokens=4, temperature=1.0, seed=1)
    first = await counting.generate(PROMPT, n=3, params=params)
    second = await counting.generate(PROMPT, n=2, params=params)
    assert counting.tokens_generated == first.completion_tokens + second.completion_tokens


def test_two_backends_can_load_at_the_same_time_in_a_fresh_process(tiny_model: Path) -> None:
    # The demo starts its generator and the probe's encoder together. transformers' lazy names
    # and meta-device loading are not thread-safe: first loads in a fresh process failed with
    # "no attribute 'AutoTokenizer'" or "Cannot copy out of meta tensor".
    import subprocess
    import sys

    code = (
        "import sys, anyio\n"
        "from howhard.backends import TransformersBackend\n"
        "async def main():\n"
        "    pair = [TransformersBackend(sys.argv[1], dtype='float32') for _ in range(2)]\n"
        "    async with anyio.create_task_group() as group:\n"
        "        for backend in pair:\n"
        "            group.start_soon(backend.start)\n"
        "    metas = [p.is_meta for b in pair for p in b._load()[0].parameters()]\n"
        "    print('loaded', len(metas), 'meta', sum(metas))\n"
        "anyio.run(main)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tiny_model)],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    loaded, count, _, metas = done.stdout.split()
    assert loaded == "loaded" and int(count) > 0 and metas == "0"
