"""AdamW with parameter groups: weight decay on weight matrices only.

Decay pulls a parameter towards zero. That is a useful prior for the weights of linear and
convolution layers (nanoGPT and torchtitan decay exactly the >= 2-D weights), and harmful for
everything else: norm gains (pulled to zero = the layer switched off), biases, adaLN tables and
gates, differential-attention lambda vectors, and the conditioning embeddings that start at zero
on purpose (actions, camera): decay fights their growth from the first step, and their gradient
is small exactly when the conditioning signal is weak. So the decayed set is the `weight` of
every nn.Linear / nn.Conv* outside the conditioning embeddings; all other trainable parameters
get weight_decay 0.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

# modules whose parameters never decay (zero-initialised conditioning paths)
NO_DECAY_MODULES = ("action_embed", "camera_embed")
_MATRIX_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


@dataclass(frozen=True)
class ParameterGroups:
    decay: list[str]
    no_decay: list[str]


def split_parameters(module: nn.Module) -> ParameterGroups:
    """Names of the trainable parameters that decay (weight matrices) and that do not (the rest)."""
    matrices: set[str] = set()
    for name, child in module.named_modules():
        if isinstance(child, _MATRIX_LAYERS) and getattr(child, "weight", None) is not None:
            parts = name.split(".")
            if not any(part in NO_DECAY_MODULES for part in parts):
                matrices.add(f"{name}.weight" if name else "weight")
    decay, no_decay = [], []
    for name, parameter in module.named_parameters():
        if parameter.requires_grad:
            (decay if name in matrices else no_decay).append(name)
    return ParameterGroups(decay, no_decay)


def build_adamw(module: nn.Module, *, lr: float, betas: tuple[float, float], weight_decay: float,
                fused: bool | None = None) -> torch.optim.AdamW:
    """AdamW over `module`'s trainable parameters: group 0 decays (weight matrices), group 1 not."""
    groups = split_parameters(module)
    parameters = dict(module.named_parameters())
    return torch.optim.AdamW(
        [{"params": [parameters[n] for n in groups.decay], "weight_decay": weight_decay},
         {"params": [parameters[n] for n in groups.no_decay], "weight_decay": 0.0}],
        lr=lr, betas=tuple(betas), fused=fused,
    )
