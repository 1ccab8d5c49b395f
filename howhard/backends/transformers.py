"""A local causal LM through transformers: prefill once, sample ``n`` continuations from it.

``generate(prompt, n=b)`` runs the prompt through the model once, copies the resulting KV cache
``b`` times (``cache.batch_repeat_interleave``) and decodes the ``b`` samples together, dropping
rows from the batch as they finish. That is about twice as fast on CPU as
``model.generate(num_return_sequences=b)``, which prefills the prompt once per sample.
``encode(prompts, layer=-1)`` returns last-token hidden states for difficulty probes.

Model calls run in worker threads under a concurrency limit, so the event loop stays free.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import anyio
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from howhard import hardware
from howhard.backends._loading import LOADING
from howhard.backends._options import parse_options
from howhard.backends._prompts import hub_offline, prompt_ids
from howhard.errors import BackendRejected, BackendUnavailable, ConfigError, missing_extra
from howhard.models import model_name, resolve_model
from howhard.types import Completion, Generation, GenerationParams

if TYPE_CHECKING:
    import numpy.typing as npt

__all__ = ["TransformersBackend", "TransformersConfig"]


class TransformersConfig(BaseModel):
    """Options of :class:`TransformersBackend`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str | None = Field(
        default=None, description="Model folder or id; None is the embedded default model."
    )
    served_name: str | None = Field(
        default=None, description="Name reported as Backend.model; default: the folder name."
    )
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field(
        default="auto",
        description="auto: bfloat16 where the hardware has fast bf16 (AVX512-BF16/AMX, CUDA), "
        "else float32 on CPU / float16 on GPU (howhard.hardware.choose_dtype).",
    )
    device: str | None = Field(default=None, description="torch device; None: cuda if present.")
    chat: bool = Field(default=True, description="Apply the tokenizer's chat template.")
    system_prompt: str | None = Field(
        default=None, description="System message; None keeps the chat template's default."
    )
    max_concurrency: int = Field(
        default=1, ge=1, description="Model calls running at once (each in a worker thread)."
    )
    encode_batch_size: int = Field(default=16, ge=1, description="Prompts per encode forward.")
    num_threads: int | None = Field(
        default=None,
        ge=1,
        description="torch CPU threads for this backend's model calls; None: OMP_NUM_THREADS "
        "if set, else the cores no vLLM engine of this process holds "
        "(howhard.hardware.torch_threads). Use 1 on a CPU shared with other busy processes, "
        "where spinning OpenMP threads can slow decoding tenfold.",
    )
    max_prompt_tokens: int = Field(
        default=4096, ge=1, description="Longer prompts are rejected (BackendRejected)."
    )


class TransformersBackend:
    """A local model, implementing ``Backend`` and ``Encoder``.

    >>> backend = TransformersBackend(model="/path/to/folder")  # doctest: +SKIP
    >>> generation = await backend.generate("What is 2+3?", n=8, params=GenerationParams())
    >>> features = await backend.encode(["What is 2+3?"])  # (1, hidden_size)
    """

    def __init__(self, model: str | os.PathLike[str] | None = None, **options: Any) -> None:
        self.config = parse_options(
            TransformersConfig,
            "TransformersBackend",
            {"model": None if model is None else str(model), **options},
        )
        self._limiter = anyio.CapacityLimiter(self.config.max_concurrency)
        self._load_lock = threading.Lock()
        self._loaded: tuple[Any, Any, Any] | None = None  # (model, tokenizer, device)
        self._path: str | None = None
        self._closed = False
        self._default_threads: int | None = None  # torch's, while the policy has lowered it
        self._tokens_generated = 0

    @property
    def model(self) -> str:
        """The served name, or the model folder's name."""
        if self.config.served_name:
            return self.config.served_name
        return model_name(self.config.model)

    @property
    def tokens_generated(self) -> int:
        """Tokens sampled so far, all calls together, counted at every decoding step (for
        progress displays: results arrive only when a call finishes)."""
        return self._tokens_generated

    @property
    def device(self) -> str:
        """The torch device the model runs on: the configured one, else cuda where a GPU is."""
        return self.config.device or ("cuda" if hardware.detect().gpu else "cpu")

    @property
    def dtype(self) -> str:
        """The dtype the model loads in: the configured one, or the hardware's choice for auto."""
        return hardware.choose_dtype(self.config.dtype, device=self.device)

    async def __aenter__(self) -> TransformersBackend:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def start(self) -> None:
        """Load the model now rather than on the first call. Idempotent."""
        await anyio.to_thread.run_sync(self._load)

    def _load(self) -> tuple[Any, Any, Any]:
        with self._load_lock:
            if self._closed:
                # Without this a call after aclose() would silently load the model again.
                raise BackendUnavailable("this TransformersBackend is closed; create a new one")
            if self._loaded is not None:
                return self._loaded
            with LOADING:
                try:
                    import torch
                    import transformers
                except ImportError as exc:
                    raise missing_extra("transformers", "probe") from exc
                hub_offline()
                path = resolve_model(self.config.model)
                device = torch.device(self.device)
                dtype = getattr(torch, self.dtype)
                tokenizer = transformers.AutoTokenizer.from_pretrained(path)
                tokenizer.padding_side = "left"
                if tokenizer.pad_token_id is None:
                    tokenizer.pad_token = tokenizer.eos_token
                model: Any = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
                model = model.to(device).eval()
            self._path = path
            self._loaded = (model, tokenizer, device)
            return self._loaded

    def _ids(self, tokenizer: Any, prompt: str) -> list[int]:
        ids = prompt_ids(
            tokenizer, prompt, chat=self.config.chat, system_prompt=self.config.system_prompt
        )
        if len(ids) > self.config.max_prompt_tokens:
            raise BackendRejected(
                f"prompt has {len(ids)} tokens, more than max_prompt_tokens="
                f"{self.config.max_prompt_tokens}; shorten it or raise the limit"
            )
        return ids

    async def generate(self, prompt: str, *, n: int, params: GenerationParams) -> Generation:
        """Sample ``n`` completions of ``prompt`` from one shared prefill.

        With ``temperature=0`` the prompt is decoded once and the sample repeated ``n`` times.
        """
        if not isinstance(n, int) or n < 1:
            raise ConfigError(f"n must be an integer >= 1, got {n!r}")
        started = time.monotonic()
        cancelled = threading.Event()
        # Greedy samples are all alike: decode one and repeat it.
        rows = 1 if params.temperature == 0 else n
        try:
            ids, completions = await anyio.to_thread.run_sync(
                self._generate_sync,
                prompt,
                rows,
                params,
                cancelled,
                # Return at once on cancellation; the worker sees `cancelled` and stops within
                # one decoding step instead of finishing all max_tokens.
                abandon_on_cancel=True,
                limiter=self._limiter,
            )
        except anyio.get_cancelled_exc_class():
            cancelled.set()
            raise
        return Generation(
            completions=completions * (n // rows),
            prompt_tokens=len(ids),
            model=self.model,
            latency_s=time.monotonic() - started,
        )

    def _generate_sync(
        self, prompt: str, n: int, params: GenerationParams, cancelled: threading.Event
    ) -> tuple[list[int], tuple[Completion, ...]]:
        import torch

        model, tokenizer, device = self._load()
        self._set_threads(torch)
        ids = self._ids(tokenizer, prompt)
        stop_ids = _eos_ids(model, tokenizer)
        generator = None
        if params.seed is not None:
            generator = torch.Generator(device=device).manual_seed(params.seed)

        generated: list[list[int]] = [[] for _ in range(n)]
        logprobs: list[list[float]] = [[] for _ in range(n)]
        finish: list[str | None] = [None] * n
        active = list(range(n))  # sample index of each row still in the batch
        with torch.inference_mode():
            out = model(input_ids=torch.tensor([ids], device=device), use_cache=True)
            cache = out.past_key_values
            logits = out.logits[:, -1, :].float()
            if n > 1:
                cache.batch_repeat_interleave(n)
                logits = logits.expand(n, -1)
            length = len(ids)
            for step in range(params.max_tokens):
                if cancelled.is_set():
                    break
                token, token_logprob = _sample(torch, logits, params, generator)
                self._tokens_generated += len(active)
                done_rows: list[int] = []
                for row, sample in enumerate(active):
                    token_id = int(token[row])
                    generated[sample].append(token_id)
                    logprobs[sample].append(float(token_logprob[row]))
                    hit_stop = bool(params.stop) and _hits_stop(
                        tokenizer, generated[sample], params.stop
                    )
                    if token_id in stop_ids or hit_stop:
                        finish[sample] = "stop"
                    elif step + 1 == params.max_tokens:
                        finish[sample] = "length"
                    if finish[sample] is not None:
                        done_rows.append(row)
                if len(done_rows) == len(active):
                    break
                if done_rows:
                    keep = [row for row in range(len(active)) if row not in set(done_rows)]
                    index = torch.tensor(keep, device=device)
                    cache.batch_select_indices(index)
                    token = token[index]
                    active = [active[row] for row in keep]
                length += 1
                out = model(
                    input_ids=token[:, None],
                    past_key_values=cache,
                    attention_mask=torch.ones(len(active), length, device=device),
                    use_cache=True,
                )
                cache = out.past_key_values
                logits = out.logits[:, -1, :].float()
        completions = tuple(
            _completion(tokenizer, generated[i], logprobs[i], finish[i], params, stop_ids)
            for i in range(n)
        )
        return ids, completions

    async def encode(self, prompts: Sequence[str], *, layer: int = -1) -> npt.NDArray[np.float32]:
        """Hidden state of each prompt's last token at ``layer``: ``(len(prompts), hidden)``.

        ``layer=-1`` is the final layer's output after the model's last norm (what a vLLM
        LAST-token pooling engine returns); ``0`` is the token embeddings; ``k`` the output of
        the k-th decoder layer. Prompts are rendered exactly as :meth:`generate` renders them
        and batched with left padding.
        """
        if isinstance(prompts, str) or not prompts:
            raise ConfigError(f"prompts must be a non-empty sequence of strings, got {prompts!r}")
        return await anyio.to_thread.run_sync(
            self._encode_sync, list(prompts), layer, limiter=self._limiter
        )

    def _encode_sync(self, prompts: list[str], layer: int) -> npt.NDArray[np.float32]:
        import torch

        model, tokenizer, device = self._load()
        self._set_threads(torch)
        layers = int(model.config.num_hidden_layers)
        if not -(layers + 1) <= layer <= layers:
            raise ConfigError(
                f"layer must be in [-{layers + 1}, {layers}] for this {layers}-layer model, "
                f"got {layer}"
            )
        rows: list[npt.NDArray[np.float32]] = []
        size = self.config.encode_batch_size
        with torch.inference_mode():
            for start in range(0, len(prompts), size):
                batch = [self._ids(tokenizer, p) for p in prompts[start : start + size]]
                width = max(len(ids) for ids in batch)
                pad = int(tokenizer.pad_token_id)
                input_ids = torch.tensor(
                    [[pad] * (width - len(ids)) + ids for ids in batch], device=device
                )
                mask = torch.tensor(
                    [[0] * (width - len(ids)) + [1] * len(ids) for ids in batch], device=device
                )
                # Positions must ignore the left padding, or padded rows would differ from the
                # same prompt encoded alone.
                positions = (mask.cumsum(-1) - 1).clamp(min=0)
                out = model(
                    input_ids=input_ids,
                    attention_mask=mask,
                    position_ids=positions,
                    output_hidden_states=True,
                    use_cache=False,
                )
                state = out.hidden_states[layer][:, -1, :]
                rows.append(state.float().cpu().numpy().astype(np.float32))
        return np.concatenate(rows, axis=0)

    def _set_threads(self, torch: Any) -> None:
        # OpenMP thread counts are per calling thread, and each call may land on a different
        # worker thread, so this is set on every call (it is cheap). The policy is asked each
        # time because a vLLM engine of this process may have started or stopped since.
        threads = hardware.torch_threads(self.config.num_threads)
        if threads is None:
            # Nothing to ask for: leave torch alone, unless this backend lowered the count
            # beside an engine that has gone since; then give torch its count back.
            threads, self._default_threads = self._default_threads, None
        elif self.config.num_threads is None and self._default_threads is None:
            self._default_threads = int(torch.get_num_threads())
        if threads is not None and torch.get_num_threads() != threads:
            torch.set_num_threads(threads)

    async def aclose(self) -> None:
        """Drop the model so its memory can be freed; later calls raise. Idempotent."""
        with self._load_lock:
            self._closed = True
            self._loaded = None


def _eos_ids(model: Any, tokenizer: Any) -> frozenset[int]:
    ids: set[int] = set()
    for source in (getattr(model, "generation_config", None), model.config):
        value = getattr(source, "eos_token_id", None)
        if isinstance(value, int):
            ids.add(value)
        elif value:
            ids.update(int(v) for v in value)
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    return frozenset(ids)


def _sample(torch: Any, logits: Any, params: GenerationParams, generator: Any) -> tuple[Any, Any]:
    """Draw one token per row; return it with its log-probability under the model."""
    # Reported logprobs are the model's own distribution (as vLLM and OpenAI report them),
    # not the temperature/top-p adjusted one used for drawing.
    logp = torch.log_softmax(logits, dim=-1)
    if params.temperature == 0:
        token = logits.argmax(dim=-1)
    else:
        scaled = logits / params.temperature
        if params.top_p < 1:
            sorted_logits, order = scaled.sort(dim=-1, descending=True)
            sorted_probs = sorted_logits.softmax(dim=-1)
            # Keep the smallest prefix whose mass reaches top_p (always at least one token).
            drop = sorted_probs.cumsum(dim=-1) - sorted_probs >= params.top_p
            sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
            scaled = torch.full_like(scaled, float("-inf")).scatter(-1, order, sorted_logits)
        probs = scaled.softmax(dim=-1)
        token = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
    return token, logp.gather(-1, token[:, None]).squeeze(-1)


def _hits_stop(tokenizer: Any, tokens: list[int], stop: tuple[str, ...]) -> bool:
    # Only the tail can contain a stop string that was not there one token ago.
    text = tokenizer.decode(tokens[-16:], skip_special_tokens=True)
    return any(s in text for s in stop)


def _completion(
    tokenizer: Any,
    tokens: list[int],
    logprobs: list[float],
    finish: str | None,
    params: GenerationParams,
    stop_ids: frozenset[int],
) -> Completion:
    body = tokens[:-1] if tokens and tokens[-1] in stop_ids else tokens
    text = tokenizer.decode(body, skip_special_tokens=True)
    if params.stop:
        cut = min((i for i in (text.find(s) for s in params.stop) if i >= 0), default=-1)
        if cut >= 0:
            text = text[:cut]
    return Completion(
        text=text,
        tokens=len(tokens),
        logprobs=tuple(logprobs) if params.logprobs else None,
        finish_reason=finish or "length",
    )
