"""Answer small sums best-of-4 through any OpenAI-compatible endpoint.

    python examples/openai_endpoint.py http://127.0.0.1:8000/v1 MODEL_NAME

Start one, for example, with vLLM (on CPU pass the default model's folder, printed by
``python -m howhard.models``, and the dtype ``howhard doctor`` reports for vllm: bfloat16 only
on CPUs with AVX512-BF16 or AMX, else float32):

    VLLM_CPU_KVCACHE_SPACE=1 python -m vllm.entrypoints.openai.api_server --model FOLDER \
        --served-model-name smollm2 --host 127.0.0.1 --port 8000 --dtype DTYPE \
        --max-model-len 2048 --enforce-eager

Servers that ignore ``n`` or under-report usage for ``n > 1`` (some llama.cpp builds) work too:
the missing samples are requested concurrently and token counts are taken per choice.
"""

import sys

import anyio

from howhard import GenerationParams, Scheduler
from howhard.backends import OpenAIBackend
from howhard.procedures import BestOfK
from howhard.scoring import MathAnswerVerifier


async def main(base_url: str, model: str) -> None:
    async with (
        OpenAIBackend(base_url=base_url, model=model, timeout_s=60) as backend,
        Scheduler(
            backend=backend,
            procedure=BestOfK(MathAnswerVerifier()),
            average_budget=4.0,
            params=GenerationParams(max_tokens=48),
        ) as scheduler,
    ):
        result = await scheduler.submit("What is 7 + 8?", reference="15")
        print(f"answer {result.answer!r}; {result.usage.completion_tokens} tokens in 4 samples")


if __name__ == "__main__":
    url = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8000/v1"
    anyio.run(main, url, sys.argv[2] if len(sys.argv) > 2 else "smollm2")
