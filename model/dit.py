"""Transformer blocks of the world model: differential self-attention (3D RoPE, QK-norm,
chunk-causal mask, KV cache), differential cross-attention to text, SwiGLU MLP, adaLN-single
modulation per latent frame, and Plücker camera tokens added in every block.

Tokens are in raster order (latent frame, row, column); with a temporal patch of 1 every latent
frame owns `tokens_per_frame` consecutive tokens, so per-frame modulation is a broadcast over a
(B, F, P, width) view.
"""
from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from model.configs import DiTConfig
from model.diff_attention import AttentionKind, make_attention
from model.kv_cache import KVCache


def chunk_causal_mask(chunk_of_token_q: torch.Tensor, chunk_of_token_k: torch.Tensor) -> torch.Tensor:
    """(Nq, Nk) bool: query may attend key iff key's chunk <= query's chunk (bidirectional within)."""
    return chunk_of_token_k[None, :] <= chunk_of_token_q[:, None]


class SwiGLU(nn.Module):
    def __init__(self, width: int, hidden: int) -> None:
        super().__init__()
        self.gate = nn.Linear(width, hidden, bias=False)
        self.up = nn.Linear(width, hidden, bias=False)
        self.down = nn.Linear(hidden, width, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.silu(self.gate(x)) * self.up(x))


def _per_frame(x: torch.Tensor, frames: int) -> torch.Tensor:
    """(B, N, W) -> (B, F, P, W) view."""
    b, n, w = x.shape
    return x.view(b, frames, n // frames, w)


class DiTBlock(nn.Module):
    def __init__(self, config: DiTConfig, layer_index: int) -> None:
        super().__init__()
        width = config.width
        self.norm1 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        kind = cast(AttentionKind, config.attention)  # DiTConfig checks it is one of ATTENTION_KINDS
        self.self_attn = make_attention(kind, width, config.heads, config.head_dim, layer_index,
                                        qk_norm=config.qk_norm)
        self.norm_cross = nn.LayerNorm(width, eps=1e-6)
        self.cross_attn = make_attention(kind, width, config.heads, config.head_dim, layer_index,
                                         context_dim=width, qk_norm=config.qk_norm)
        self.norm2 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.mlp = SwiGLU(width, config.swiglu_hidden)
        # adaLN-single: this block's learned table added to the shared modulation
        self.modulation = nn.Parameter(torch.randn(6, width) / width ** 0.5)
        # camera tokens are zero-initialised at the embedding; the gate lets each block scale them
        self.camera_gate = nn.Parameter(torch.ones(width)) if config.camera else None
        self.layer_index = layer_index

    def forward(self, x: torch.Tensor, modulation: torch.Tensor, *, camera: torch.Tensor | None,
                text: torch.Tensor, text_mask: torch.Tensor | None,
                rope: tuple[torch.Tensor, torch.Tensor], mask: torch.Tensor | None,
                cache: KVCache | None, write_cache: bool) -> torch.Tensor:
        """x (B, N, W); modulation (B, F, 6, W) from the shared adaLN MLP; camera (B, N, W) or None;
        text (B, L, W); text_mask (B, 1, 1, L) bool or None."""
        frames = modulation.shape[1]
        shift1, scale1, gate1, shift2, scale2, gate2 = (modulation + self.modulation).unsqueeze(2).unbind(3)
        if camera is not None and self.camera_gate is not None:
            x = x + self.camera_gate * camera
        h = _per_frame(self.norm1(x), frames) * (1 + scale1) + shift1
        h = self.self_attn(h.flatten(1, 2), rope_q=rope, rope_k=rope, mask=mask,
                           cache=cache, cache_layer=self.layer_index, write_cache=write_cache)
        x = x + (_per_frame(h, frames) * gate1).flatten(1, 2)
        x = x + self.cross_attn(self.norm_cross(x), text, mask=text_mask)
        h = _per_frame(self.norm2(x), frames) * (1 + scale2) + shift2
        x = x + (_per_frame(self.mlp(h.flatten(1, 2)), frames) * gate2).flatten(1, 2)
        return x


class FinalLayer(nn.Module):
    """adaLN (shift, scale) from the conditioning vector + zero-initialised linear to patches."""

    def __init__(self, width: int, patch_volume: int, out_channels: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.modulation = nn.Parameter(torch.randn(2, width) / width ** 0.5)
        self.linear = nn.Linear(width, patch_volume * out_channels)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, x: torch.Tensor, conditioning: torch.Tensor) -> torch.Tensor:
        """x (B, N, W); conditioning (B, F, W)."""
        frames = conditioning.shape[1]
        shift, scale = (conditioning[:, :, None, :] + self.modulation).unsqueeze(2).unbind(3)
        h = _per_frame(self.norm(x), frames) * (1 + scale) + shift
        return self.linear(h.flatten(1, 2))
