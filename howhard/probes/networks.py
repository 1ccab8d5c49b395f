"""Difficulty probes in torch: a 2-layer MLP on hidden states, or LoRA on the base LM.

Both end in the same heads:

- ``lambda`` / ``preference``: one logit; sigmoid gives λ or ``P(strong ≻ weak)``; trained with
  cross-entropy on soft labels (the paper's Eq. 7).
- ``delta``: ``max_budget`` logits; ``softplus`` makes them non-negative increments that are
  summed from the end, so every predicted row is non-increasing by construction (what the
  greedy allocator needs to be exact); trained with squared error (Eq. 6).

This module imports torch; import it only where a probe is trained or a LoRA probe is served.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from howhard.errors import CheckpointError, ConfigError, missing_extra
from howhard.probes.heads import HEADS

try:
    import torch
    from torch import nn
    from torch.nn import functional as F
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise missing_extra("torch", "probe") from exc

__all__ = ["LoRAProbe", "MLPProbe", "head_loss", "head_output", "init_head"]


def _check_head(head: str, max_budget: int) -> int:
    if head not in HEADS:
        raise ConfigError(f"head must be one of {HEADS}, got {head!r}")
    if max_budget < 1:
        raise ConfigError(f"max_budget must be >= 1, got {max_budget}")
    return max_budget if head == "delta" else 1


def head_output(head: str, raw: torch.Tensor) -> torch.Tensor:
    """Map raw outputs to predictions: probabilities ``(n,)`` or non-increasing Δ ``(n, B)``."""
    if head == "delta":
        return torch.flip(torch.cumsum(torch.flip(F.softplus(raw), [1]), 1), [1])
    return torch.sigmoid(raw[:, 0])


def head_loss(head: str, raw: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Training loss: soft-label cross-entropy (λ, preference) or ``‖Δ - Δ̂‖²`` (delta)."""
    if head == "delta":
        return ((head_output(head, raw) - target) ** 2).sum(dim=1).mean()
    return F.binary_cross_entropy_with_logits(raw[:, 0], target)


def init_head(layer: nn.Linear, head: str, targets: npt.ArrayLike) -> None:
    """Make ``layer`` start as the constant predictor of the targets' mean.

    Without this a Δ head starts near ``B·log 2`` per row (softplus(0) summed ``B`` times), far
    from marginals that sum to at most 1, and spends its early epochs unlearning that.
    """
    mean = np.asarray(targets, dtype=np.float64).mean(axis=0)
    if head == "delta":
        increments = mean - np.append(mean[1:], 0.0)
        bias = np.log(np.expm1(np.maximum(increments, 1e-4)))  # inverse softplus
    else:
        p = float(np.clip(mean, 1e-4, 1 - 1e-4))
        bias = np.array([np.log(p / (1 - p))])
    with torch.no_grad():
        layer.bias.copy_(torch.as_tensor(bias, dtype=torch.float32))
        layer.weight.mul_(0.1)


class MLPProbe(nn.Module):
    """Two linear layers with a ReLU between, on standardised features (the paper's probe).

    ``feature_mean``/``feature_std`` (training-set statistics) are buffers, so they travel with
    the weights; tensor names match :func:`howhard.probes.checkpoint.expected_shapes`.
    """

    feature_mean: torch.Tensor
    feature_std: torch.Tensor

    def __init__(
        self,
        input_dim: int,
        *,
        head: str = "lambda",
        max_budget: int = 1,
        hidden_dim: int = 256,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.head = head
        self.max_budget = max_budget
        self.input_dim = input_dim
        self.hidden_dim = hidden_dim
        out_dim = _check_head(head, max_budget)
        self.register_buffer("feature_mean", torch.zeros(input_dim))
        self.register_buffer("feature_std", torch.ones(input_dim))
        self.fc1 = nn.Linear(input_dim, hidden_dim)
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden_dim, out_dim)

    def set_normalisation(self, features: npt.ArrayLike) -> None:
        """Standardise inputs with these (training) features' mean and std."""
        x = np.asarray(features, dtype=np.float64)
        std = x.std(axis=0)
        std[std < 1e-6] = 1.0  # constant features stay unscaled instead of exploding
        self.feature_mean.copy_(torch.as_tensor(x.mean(axis=0), dtype=torch.float32))
        self.feature_std.copy_(torch.as_tensor(std, dtype=torch.float32))

    def init_output(self, targets: npt.ArrayLike) -> None:
        """Start from the constant predictor of these (training) targets' mean."""
        init_head(self.fc2, self.head, targets)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Raw outputs ``(n, 1)`` or ``(n, max_budget)``; see :func:`head_output`."""
        z = (x - self.feature_mean) / self.feature_std
        out: torch.Tensor = self.fc2(self.dropout(F.relu(self.fc1(z))))
        return out

    def config(self) -> dict[str, Any]:
        """The architecture part of the checkpoint config."""
        return {
            "kind": "mlp",
            "head": self.head,
            "max_budget": self.max_budget,
            "input_dim": self.input_dim,
            "hidden_dim": self.hidden_dim,
            "activation": "relu",
        }

    def tensors(self) -> dict[str, npt.NDArray[np.float32]]:
        """Weights and normalisation as float32 numpy arrays, named for the checkpoint."""
        return {k: v.detach().cpu().float().numpy() for k, v in self.state_dict().items()}


class LoRAProbe(nn.Module):
    """LoRA adapters on a causal LM plus a linear head on a layer's last-token hidden state.

    The base model is loaded from ``model`` (a local folder) and frozen; only the adapters
    (rank ``r`` on ``target_modules``) and the head train. Inputs are prompts, rendered as
    ``TransformersBackend`` renders them for generation.
    """

    def __init__(
        self,
        model: str | os.PathLike[str],
        *,
        head: str = "lambda",
        max_budget: int = 1,
        layer: int = -1,
        chat: bool = True,
        r: int = 8,
        alpha: int = 16,
        dropout: float = 0.0,
        target_modules: Sequence[str] = ("q_proj", "v_proj"),
        max_length: int = 1024,
    ) -> None:
        super().__init__()
        try:
            from peft import LoraConfig, get_peft_model
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError as exc:
            raise missing_extra("peft", "probe") from exc
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        out_dim = _check_head(head, max_budget)
        self.head, self.max_budget, self.layer, self.chat = head, max_budget, layer, chat
        self.model_name, self.max_length = str(model), max_length
        self.lora = {
            "r": r,
            "alpha": alpha,
            "dropout": dropout,
            "target_modules": list(target_modules),
        }
        tokenizer = AutoTokenizer.from_pretrained(self.model_name)
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.tokenizer = tokenizer
        base = AutoModelForCausalLM.from_pretrained(self.model_name, dtype=torch.float32)
        lora = LoraConfig(
            r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(target_modules)
        )
        self.base = get_peft_model(base, lora)
        self.score = nn.Linear(int(base.config.hidden_size), out_dim)

    def forward(self, prompts: Sequence[str]) -> torch.Tensor:
        """Raw outputs for a batch of prompts; see :func:`head_output`."""
        from howhard.backends._prompts import prompt_ids

        # Rendered exactly like TransformersBackend renders prompts for generation.
        batch = [prompt_ids(self.tokenizer, p, chat=self.chat)[-self.max_length :] for p in prompts]
        width = max(len(ids) for ids in batch)
        pad = int(self.tokenizer.pad_token_id)
        input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for ids in batch])
        mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in batch])
        out = self.base(
            input_ids=input_ids,
            attention_mask=mask,
            position_ids=(mask.cumsum(-1) - 1).clamp(min=0),
            output_hidden_states=True,
            use_cache=False,
        )
        result: torch.Tensor = self.score(out.hidden_states[self.layer][:, -1, :])
        return result

    def config(self) -> dict[str, Any]:
        """The architecture part of the checkpoint config."""
        return {
            "kind": "lora",
            "head": self.head,
            "max_budget": self.max_budget,
            "lora": dict(self.lora),
            "encoder": {
                "encoder": "transformers",
                "model": self.model_name,
                "layer": self.layer,
                "chat": self.chat,
            },
        }

    def tensors(self) -> dict[str, npt.NDArray[np.float32]]:
        """Adapter and head weights (``lora.*``, ``score.*``) for the checkpoint."""
        from peft import get_peft_model_state_dict

        out = {
            f"lora.{k}": v.detach().cpu().float().numpy()
            for k, v in get_peft_model_state_dict(self.base).items()
        }
        out.update(
            {
                f"score.{k}": v.detach().cpu().float().numpy()
                for k, v in self.score.state_dict().items()
            }
        )
        return out

    @classmethod
    def from_checkpoint(
        cls, config: Mapping[str, Any], tensors: Mapping[str, npt.NDArray[Any]]
    ) -> LoRAProbe:
        """Rebuild a LoRA probe; tensors must match the rebuilt model exactly."""
        from peft import set_peft_model_state_dict

        try:
            encoder, lora = config["encoder"], config["lora"]
            arguments: dict[str, Any] = {
                "head": config["head"],
                "max_budget": int(config["max_budget"]),
                "layer": int(encoder["layer"]),
                "chat": bool(encoder["chat"]),
                "r": int(lora["r"]),
                "alpha": int(lora["alpha"]),
                "dropout": float(lora["dropout"]),
                "target_modules": lora["target_modules"],
            }
            model = encoder["model"]
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(
                f"LoRA checkpoint config is incomplete or malformed ({exc!r}); pass a folder "
                "written by howhard train --probe lora"
            ) from exc
        probe = cls(model, **arguments)
        wanted = {f"lora.{k}": v.shape for k, v in _peft_state(probe).items()}
        wanted.update({f"score.{k}": v.shape for k, v in probe.score.state_dict().items()})
        for name, shape in wanted.items():
            if name not in tensors or tuple(tensors[name].shape) != tuple(shape):
                got = tuple(tensors[name].shape) if name in tensors else "missing"
                raise CheckpointError(
                    f"LoRA checkpoint tensor {name!r}: expected shape {tuple(shape)}, got {got}"
                )
        set_peft_model_state_dict(
            probe.base,
            {
                k[5:]: torch.from_numpy(np.array(v))
                for k, v in tensors.items()
                if k.startswith("lora.")
            },
        )
        probe.score.load_state_dict(
            {
                k[6:]: torch.from_numpy(np.array(v))
                for k, v in tensors.items()
                if k.startswith("score.")
            }
        )
        probe.eval()
        return probe


def _peft_state(probe: LoRAProbe) -> dict[str, torch.Tensor]:
    from peft import get_peft_model_state_dict

    state: dict[str, torch.Tensor] = get_peft_model_state_dict(probe.base)
    return state
