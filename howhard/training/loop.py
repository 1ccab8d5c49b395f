"""The one training loop every probe uses: AdamW steps over shuffled batches, early stopping on val.

The MLP and the LoRA probe differ only in what a batch is (feature rows or prompts), how the
best weights are kept (the whole state, or just the trainable adapters) and how often a line is
logged; they share this loop, so both stop, restore and seed the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol

__all__ = ["LoopSettings", "fit_early_stopping"]


class LoopSettings(Protocol):
    """What the loop reads from a ``TrainConfig``."""

    lr: float
    weight_decay: float
    batch_size: int
    max_epochs: int
    patience: int
    seed: int


def fit_early_stopping(
    settings: LoopSettings,
    *,
    parameters: Iterable[Any],
    rows: Any,
    train_step: Callable[[Any], Any],
    val_loss: Callable[[], float],
    snapshot: Callable[[], Any],
    restore: Callable[[Any], None],
    set_train: Callable[[bool], object],
    log: Callable[[str], None] | None = None,
    log_every: int = 1,
) -> int:
    """Train until ``settings.patience`` epochs pass without a better val loss; returns epochs.

    AdamW (``settings.lr``, ``weight_decay``) updates ``parameters``. ``rows`` (a 1-D integer
    tensor) are the training rows; each epoch shuffles them (seeded by ``settings.seed``) and
    calls ``train_step(batch_rows)`` for the loss of each batch of ``settings.batch_size``.
    ``val_loss()`` is read after every epoch (in eval mode, set through ``set_train(False)``);
    ``snapshot()`` keeps the best weights and ``restore(state)`` puts them back at the end. A
    validation loss must improve by more than 1e-6 to count.
    """
    import torch

    optimiser = torch.optim.AdamW(parameters, lr=settings.lr, weight_decay=settings.weight_decay)
    generator = torch.Generator().manual_seed(settings.seed)
    batch_size, patience = settings.batch_size, settings.patience
    best_loss, best_state, stale, epoch = float("inf"), snapshot(), 0, 0
    for epoch in range(1, settings.max_epochs + 1):
        set_train(True)
        order = rows[torch.randperm(len(rows), generator=generator)]
        for start in range(0, len(order), batch_size):
            optimiser.zero_grad()
            loss = train_step(order[start : start + batch_size])
            loss.backward()
            optimiser.step()
        set_train(False)
        current = val_loss()
        if current < best_loss - 1e-6:
            best_loss, best_state, stale = current, snapshot(), 0
        else:
            stale += 1
        if log is not None and (epoch % log_every == 0 or epoch == 1):
            log(f"epoch {epoch}: val loss {current:.4f} (best {best_loss:.4f})")
        if stale >= patience:
            break
    restore(best_state)
    set_train(False)
    return epoch
