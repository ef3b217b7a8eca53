"""The learning-rate schedule: linear warm-up, then cosine decay to `lr * min_lr_ratio`.

Warm-up keeps AdamW's first steps (whose second-moment estimates are still poor) small; the
cosine decay to a floor rather than to zero keeps the last steps learning.

The factor is a plain function (a closure), not a callable object: `LambdaLR.state_dict` stores
the `__dict__` of callable objects, and checkpoints keep the scheduler state as JSON.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch

from training.config import TrainConfig


def warmup_cosine(warmup_steps: int, total_steps: int, min_lr_ratio: float) -> Callable[[int], float]:
    """step -> the factor of the peak LR: (step + 1) / warmup during warm-up, then cosine to `min_lr_ratio`."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def build_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig) -> torch.optim.lr_scheduler.LambdaLR:
    """The run's scheduler on `optimizer` (`optim.warmup_steps`, `steps`, `optim.min_lr_ratio`), stepped per step."""
    factor = warmup_cosine(config.optim.warmup_steps, config.steps, config.optim.min_lr_ratio)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
