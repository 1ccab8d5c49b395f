"""In-process vLLM: one ``AsyncLLM`` engine serving many concurrent ``generate`` calls.

``generate(prompt, n=b)`` sends one request with ``SamplingParams(n=b)``, so vLLM prefills the
prompt once and shares its KV cache across the b samples. With ``encoder=True`` a second,
pooling engine of the same model returns last-token hidden states for difficulty probes.

The engine starts on first use (or in ``async with``/``await backend.start()``), in a worker
thread so the event loop keeps running. Engine failures surface as
:class:`~howhard.errors.BackendUnavailable`; once the engine has died every later call fails
fast with that error instead of hanging. vLLM needs the asyncio event loop (not trio).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import anyio
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from howhard import hardware
from howhard.backends._loading import LOADING
from howhard.backends._options import parse_options
from howhard.backends._prompts import hub_offline, prompt_ids
from howhard.errors import (
    BackendError,
    BackendRejected,
    BackendTimeout,
    BackendUnavailable,
    ConfigError,
    missing_extra,
)
from howhard.models import model_name, resolve_model
from howhard.types import Completion, Generation, GenerationParams

if TYPE_CHECKING:
    import numpy.typing as npt

__all__ = ["VLLMBackend", "VLLMConfig"]


class VLLMConfig(BaseModel):
    """Options of :class:`VLLMBackend`; the defaults are safe on a small CPU host."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str | None = Field(
        default=None, description="Model folder or id; None is the embedded default model."
    )
    served_name: str | None = Field(
        default=None, description="Name reported as Backend.model; default: the folder name."
    )
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field(
        default="auto",
        description="Weights and activations dtype of the generation engine. auto: bfloat16 "
        "where bf16 is fast (AVX512-BF16/AMX CPUs, GPUs), else float32 on CPU / float16 on GPU "
        "(howhard.hardware.choose_dtype); bf16 on other CPUs is ~7x slower.",
    )
    max_model_len: int = Field(default=2048, ge=16, description="Prompt + completion tokens.")
    enforce_eager: bool = Field(
        default=True, description="Skip graph capture/compilation (slow to start on CPU)."
    )
    kv_cache_gib: int = Field(
        default=1, ge=1, description="KV cache size on CPU (VLLM_CPU_KVCACHE_SPACE), per engine."
    )
    seed: int = Field(default=0, description="Engine-wide sampling seed.")
    max_num_seqs: int | None = Field(
        default=None, ge=1, description="Sequences decoded together; None is vLLM's default."
    )
    request_seeds: bool | None = Field(
        default=None,
        description=(
            "Forward GenerationParams.seed per request; None means only off CPU, where a "
            "per-request seed crashes vLLM 0.32's engine."
        ),
    )
    chat: bool = Field(default=True, description="Apply the tokenizer's chat template.")
    system_prompt: str | None = Field(
        default=None, description="System message; None keeps the chat template's default."
    )
    encoder: bool = Field(
        default=False, description="Also start a pooling engine (LAST token) for encode()."
    )
    request_timeout_s: float | None = Field(
        default=None, gt=0, description="Per-call time limit; None leaves it to the caller."
    )
    engine_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="Extra vllm AsyncEngineArgs, passed through verbatim."
    )


class VLLMBackend:
    """A vLLM engine in this process, implementing ``Backend`` (and ``Encoder`` if configured).

    >>> async with VLLMBackend(model="/path/to/model", encoder=True) as backend:  # doctest: +SKIP
    ...     generation = await backend.generate("What is 2+3?", n=8, params=GenerationParams())
    """

    def __init__(self, model: str | os.PathLike[str] | None = None, **options: Any) -> None:
        self.config = parse_options(
            VLLMConfig, "VLLMBackend", {"model": None if model is None else str(model), **options}
        )
        self._path: str | None = None
        self._engine: Any = None
        self._pooler: Any = None
        self._tokenizer: Any = None
        self._dead: BaseException | None = None
        self._closed = False
        self._start_lock = anyio.Lock()
        self._on_cpu = True
        self._dtype: str | None = None
        self._tokens_generated = 0

    @property
    def model(self) -> str:
        """The served name, or the model folder's name."""
        if self.config.served_name:
            return self.config.served_name
        return model_name(self.config.model)

    @property
    def dtype(self) -> str:
        """The generation engine's dtype: the configured one, or the hardware's choice for auto."""
        if self._dtype is not None:
            return self._dtype
        device = "cuda" if hardware.detect().gpu else "cpu"
        return hardware.choose_dtype(self.config.dtype, device=device)

    @property
    def tokens_generated(self) -> int:
        """Tokens the generation engine has produced so far, all calls together.

        Updated at every engine step, while calls are still running (their results arrive only
        when they finish), so a progress display can show a batch advancing.
        """
        return self._tokens_generated

    async def __aenter__(self) -> VLLMBackend:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def start(self) -> None:
        """Start the engine(s) now rather than on the first call. Idempotent."""
        async with self._start_lock:
            if self._closed:
                raise BackendUnavailable("this VLLMBackend is closed; create a new one")
            if self._engine is not None:
                return
            # Engine construction blocks for tens of seconds; keep the event loop responsive.
            engine, pooler, tokenizer = await anyio.to_thread.run_sync(self._build)
            if self._closed:
                # aclose() ran while the engines were starting and found nothing to stop:
                # stop them here, or their processes would outlive the backend.
                await self._shutdown([e for e in (engine, pooler) if e is not None])
                raise BackendUnavailable("this VLLMBackend was closed while it was starting")
            self._engine, self._pooler, self._tokenizer = engine, pooler, tokenizer

    def _build(self) -> tuple[Any, Any, Any]:
        with LOADING:  # imports and the tokenizer; the engine loads in its own processes
            try:
                import transformers
                from vllm.config import PoolerConfig
                from vllm.engine.arg_utils import AsyncEngineArgs
                from vllm.platforms import current_platform
                from vllm.v1.engine.async_llm import AsyncLLM
            except ImportError as exc:
                raise missing_extra("vllm", "vllm") from exc
            hub_offline()
            self._path = resolve_model(self.config.model)
            tokenizer = transformers.AutoTokenizer.from_pretrained(self._path)
            # Resolved here, under the lock: vLLM reads the model's config through transformers.
            transformers.AutoConfig.from_pretrained(self._path)
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(self.config.kv_cache_gib))
        os.environ.setdefault("VLLM_HOST_IP", "127.0.0.1")
        self._on_cpu = bool(current_platform.is_cpu())
        self._dtype = hardware.choose_dtype(
            self.config.dtype, device="cpu" if self._on_cpu else "cuda"
        )
        common: dict[str, Any] = {
            "model": self._path,
            "max_model_len": self.config.max_model_len,
            "enforce_eager": self.config.enforce_eager,
            "seed": self.config.seed,
            "disable_log_stats": True,
            "served_model_name": self.model,
        }
        generate_args = {**common, "dtype": self._dtype, **self.config.engine_kwargs}
        if self.config.max_num_seqs is not None:
            generate_args["max_num_seqs"] = self.config.max_num_seqs
        if self._on_cpu:
            # From now on the engine's worker keeps these cores busy: in-process torch work
            # (an encoder) takes the others (howhard.hardware.torch_threads).
            hardware.claim_cpus(self, hardware.vllm_cpu_plan().cpus)
        try:
            engine = AsyncLLM.from_engine_args(
                AsyncEngineArgs(**generate_args), stat_loggers=[_token_counter(self)]
            )
        except BaseException:
            hardware.release_cpus(self)
            raise
        pooler = None
        if self.config.encoder:
            try:
                pooler = AsyncLLM.from_engine_args(
                    AsyncEngineArgs(
                        **common,
                        runner="pooling",
                        convert="embed",
                        # float32 so the features match the transformers encoder's exactly.
                        dtype="float32",
                        pooler_config=PoolerConfig(pooling_type="LAST", use_activation=False),
                    )
                )
            except BaseException:
                engine.shutdown()
                hardware.release_cpus(self)
                raise
        return engine, pooler, tokenizer

    async def _ready(self) -> Any:
        if self._engine is None:
            await self.start()
        if self._dead is not None:
            raise BackendUnavailable(
                f"the vLLM engine for {self.model!r} died ({self._dead!r}); "
                "create a new VLLMBackend"
            ) from self._dead
        if self._engine.errored:
            self._dead = self._engine.dead_error
            raise BackendUnavailable(
                f"the vLLM engine for {self.model!r} died; create a new VLLMBackend"
            )
        return self._engine

    def _sampling_params(self, n: int, params: GenerationParams) -> Any:
        from vllm.sampling_params import RequestOutputKind, SamplingParams

        seeds = self.config.request_seeds
        if seeds is None:
            seeds = not self._on_cpu
        return SamplingParams(
            n=n,
            temperature=params.temperature,
            top_p=params.top_p,
            max_tokens=params.max_tokens,
            stop=list(params.stop) or None,
            # 0 = just the sampled token's logprob (vLLM always includes it).
            logprobs=0 if params.logprobs else None,
            seed=params.seed if seeds else None,
            output_kind=RequestOutputKind.FINAL_ONLY,
        )

    async def generate(self, prompt: str, *, n: int, params: GenerationParams) -> Generation:
        """Sample ``n`` completions of ``prompt`` in one engine request (shared prefill).

        With ``temperature=0`` the engine decodes once and the sample is repeated ``n`` times.
        """
        if not isinstance(n, int) or n < 1:
            raise ConfigError(f"n must be an integer >= 1, got {n!r}")
        engine = await self._ready()
        ids = prompt_ids(
            self._tokenizer, prompt, chat=self.config.chat, system_prompt=self.config.system_prompt
        )
        request_id = f"howhard-{uuid.uuid4().hex}"
        started = time.monotonic()
        final = None
        try:
            with anyio.fail_after(self.config.request_timeout_s):
                async for output in engine.generate(
                    _engine_input(engine, ids),
                    # Greedy samples are all alike, and vLLM rejects n > 1 without sampling.
                    self._sampling_params(1 if params.temperature == 0 else n, params),
                    request_id,
                ):
                    final = output
        except TimeoutError as exc:
            # vLLM aborts the request itself when its generator is cancelled.
            raise BackendTimeout(
                f"vLLM call exceeded request_timeout_s={self.config.request_timeout_s}; "
                "raise it or lower max_tokens"
            ) from exc
        except (asyncio.CancelledError, BackendError):
            raise
        except Exception as exc:
            raise self._translate(exc) from exc
        if final is None:
            raise BackendUnavailable(f"vLLM returned no output for request {request_id}")
        completions = tuple(_completion(c, params.logprobs) for c in final.outputs)
        if len(completions) < n:  # greedy: one sample stands for all n
            completions = completions * n
        return Generation(
            completions=completions,
            prompt_tokens=len(final.prompt_token_ids or ids),
            model=self.model,
            latency_s=time.monotonic() - started,
        )

    def _translate(self, exc: Exception) -> BackendError:
        from vllm.exceptions import VLLMClientError
        from vllm.v1.engine.exceptions import EngineDeadError

        if isinstance(exc, EngineDeadError) or self._engine.errored:
            self._dead = exc
            return BackendUnavailable(
                f"the vLLM engine for {self.model!r} died; create a new VLLMBackend"
            )
        if isinstance(exc, VLLMClientError | ValueError):
            return BackendRejected(f"vLLM rejected the request: {exc}")
        return BackendUnavailable(f"vLLM failed: {type(exc).__name__}: {exc}")

    async def encode(self, prompts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Last-token final-layer hidden states, ``(len(prompts), hidden_size)``, float32.

        Prompts are rendered exactly as :meth:`generate` renders them.
        """
        if not self.config.encoder:
            raise ConfigError(
                "encode() needs the pooling engine: create VLLMBackend(..., encoder=True)"
            )
        await self._ready()
        if self._pooler.errored:
            raise BackendUnavailable("the vLLM pooling engine died; create a new VLLMBackend")
        if not prompts:
            raise ConfigError("encode() got no prompts; pass at least one")
        from vllm.pooling_params import PoolingParams

        rows: list[Any] = [None] * len(prompts)

        async def one(index: int, prompt: str) -> None:
            ids = prompt_ids(
                self._tokenizer,
                prompt,
                chat=self.config.chat,
                system_prompt=self.config.system_prompt,
            )
            async for output in self._pooler.encode(
                _engine_input(self._pooler, ids),
                PoolingParams(task="embed"),
                f"howhard-embed-{uuid.uuid4().hex}",
            ):
                rows[index] = output.outputs.data

        try:
            async with anyio.create_task_group() as group:
                for index, prompt in enumerate(prompts):
                    group.start_soon(one, index, prompt)
        except Exception as exc:  # an ExceptionGroup from the task group
            cause = exc.exceptions[0] if isinstance(exc, BaseExceptionGroup) else exc
            if isinstance(cause, asyncio.CancelledError):
                raise
            raise BackendUnavailable(f"vLLM encode failed: {cause!r}") from exc
        return np.stack([np.asarray(row.float().numpy(), dtype=np.float32) for row in rows])

    async def aclose(self) -> None:
        """Shut the engine processes down. Idempotent."""
        self._closed = True
        engines = [e for e in (self._engine, self._pooler) if e is not None]
        self._engine = self._pooler = None
        if engines:
            self._dead = BackendUnavailable("closed")
        await self._shutdown(engines)

    async def _shutdown(self, engines: list[Any]) -> None:
        """Shut ``engines`` down, every one even if another fails; then raise the first error."""
        errors: list[Exception] = []
        for engine in engines:
            with anyio.CancelScope(shield=True):
                # Stop the output handler first: otherwise it sees the engine process exit
                # during shutdown and logs a spurious "engine dead" traceback.
                handler = getattr(engine, "output_handler", None)
                if handler is not None and not handler.done():
                    handler.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await handler
                try:
                    await anyio.to_thread.run_sync(engine.shutdown)
                except Exception as exc:
                    errors.append(exc)
                    continue
                # AsyncLLM.__del__ shuts down again; if that runs at interpreter exit, vLLM's
                # module globals are already gone and it prints a TypeError. Once is enough.
                engine.shutdown = _already_shut_down
        hardware.release_cpus(self)
        if errors:
            raise BackendUnavailable(f"vLLM engine shutdown failed: {errors[0]!r}") from errors[0]


def _token_counter(backend: VLLMBackend) -> Any:
    """A vLLM stat logger class adding each engine step's generated tokens to ``backend``."""
    from vllm.v1.metrics.loggers import StatLoggerBase

    class TokenCounter(StatLoggerBase):
        def __init__(self, vllm_config: Any, engine_index: int = 0) -> None:
            del vllm_config, engine_index

        def record(
            self,
            scheduler_stats: Any,
            iteration_stats: Any,
            mm_cache_stats: Any = None,
            engine_idx: int = 0,
        ) -> None:
            if iteration_stats is not None:
                backend._tokens_generated += int(iteration_stats.num_generation_tokens)

        def log_engine_initialized(self) -> None:
            pass

    return TokenCounter


def _already_shut_down(*_: object, **__: object) -> None:
    """Stands in for ``AsyncLLM.shutdown`` after the backend has shut the engine down."""


def _engine_input(engine: Any, ids: list[int]) -> Any:
    """Pre-render token ids the way vLLM's own servers do (raw prompts are deprecated there)."""
    from vllm.inputs import TokensPrompt

    prompt = TokensPrompt(prompt_token_ids=ids)
    renderer = getattr(engine, "renderer", None)
    if renderer is None or not hasattr(renderer, "render_cmpl"):
        return prompt
    return renderer.render_cmpl([prompt])[0]


def _completion(output: Any, want_logprobs: bool) -> Completion:
    logprobs: tuple[float, ...] | None = None
    if want_logprobs and output.logprobs is not None:
        logprobs = tuple(
            float(position[token].logprob)
            for token, position in zip(output.token_ids, output.logprobs, strict=False)
        )
    return Completion(
        text=output.text,
        tokens=len(output.token_ids),
        logprobs=logprobs,
        finish_reason=output.finish_reason,
    )
