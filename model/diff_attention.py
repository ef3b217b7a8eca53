"""Differential attention (Ye et al., "Differential Transformer", ICLR 2025): V1, and V2 below.

For `h` differential heads of width `dh` (half the heads of a standard layer of equal width, so
the projections have the same parameters as standard multi-head attention with 2h heads):

    q, k -> 2h heads of dh, split into (q1, q2), (k1, k2)   [heads 2i, 2i+1 belong to head i]
    v    -> h heads of 2dh, split into halves (v1, v2)
    A1 = softmax(q1 k1^T / sqrt(dh)),  A2 = softmax(q2 k2^T / sqrt(dh))
    lambda = exp(lq1 . lk1) - exp(lq2 . lk2) + lambda_init      (float32, one scalar per layer)
    head_i = RMSNorm_2dh((A1 - lambda A2) [v1 v2]) * (1 - lambda_init)
    out = W_o concat_i(head_i)

Extras over standard attention: the four lambda vectors (4 dh) and the per-head RMSNorm weight
(2 dh, shared by the heads as in the reference code), plus QK-norm weights (2 dh) when enabled.

Fused form: the four maps (q1,k1,v1), (q1,k1,v2), (q2,k2,v1), (q2,k2,v2) are stacked as 4h heads
of equal width dh into ONE `scaled_dot_product_attention` call, so PyTorch keeps its fused
(flash) kernel; two calls with the wide V would drop to the unfused math kernel on CPU (see
docs/bench/model.md). The attention FLOPs are 2x those of standard attention.
"""
from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from model.kv_cache import KVCache
from model.norms import RMSNorm
from model.rope import apply_rope


def lambda_init_for_layer(layer_index: int) -> float:
    """0.8 - 0.6 exp(-0.3 l) with a 0-based layer index: 0.2 at layer 0, tending to 0.8."""
    return 0.8 - 0.6 * math.exp(-0.3 * layer_index)


class DifferentialAttention(nn.Module):
    def __init__(self, width: int, heads: int, head_dim: int, layer_index: int,
                 context_dim: int | None = None, qk_norm: bool = True) -> None:
        super().__init__()
        self.heads = heads
        self.head_dim = head_dim
        self.layer_index = layer_index
        self.lambda_init = lambda_init_for_layer(layer_index)
        inner = 2 * heads * head_dim
        context_dim = width if context_dim is None else context_dim
        self.to_q = nn.Linear(width, inner, bias=False)
        self.to_k = nn.Linear(context_dim, inner, bias=False)
        self.to_v = nn.Linear(context_dim, inner, bias=False)
        self.to_out = nn.Linear(inner, width, bias=False)
        self.lambda_q1 = nn.Parameter(torch.empty(head_dim, dtype=torch.float32))
        self.lambda_k1 = nn.Parameter(torch.empty(head_dim, dtype=torch.float32))
        self.lambda_q2 = nn.Parameter(torch.empty(head_dim, dtype=torch.float32))
        self.lambda_k2 = nn.Parameter(torch.empty(head_dim, dtype=torch.float32))
        self.head_norm = RMSNorm(2 * head_dim, eps=1e-5)
        self.q_norm = RMSNorm(head_dim, eps=1e-6) if qk_norm else None
        self.k_norm = RMSNorm(head_dim, eps=1e-6) if qk_norm else None
        self.reset_lambda()

    def reset_lambda(self) -> None:
        for vector in (self.lambda_q1, self.lambda_k1, self.lambda_q2, self.lambda_k2):
            nn.init.normal_(vector, mean=0.0, std=0.1)

    def lambda_value(self) -> torch.Tensor:
        """The re-parameterised lambda, a float32 scalar."""
        lambda_1 = torch.exp(torch.sum(self.lambda_q1.float() * self.lambda_k1.float()))
        lambda_2 = torch.exp(torch.sum(self.lambda_q2.float() * self.lambda_k2.float()))
        return lambda_1 - lambda_2 + self.lambda_init

    def project_kv(self, context: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys (B, 2h, M, dh) [normed, rotated] and values (B, 2h, M, dh) [v heads split in halves,
        ordered (v1 of head 0, v2 of head 0, v1 of head 1, ...)]."""
        b, m, _ = context.shape
        k = self.to_k(context).view(b, m, 2 * self.heads, self.head_dim).transpose(1, 2)
        v = self.to_v(context).view(b, m, 2 * self.heads, self.head_dim).transpose(1, 2)
        if self.k_norm is not None:
            k = self.k_norm(k)
        if rope is not None:
            k = apply_rope(k, *rope)
        return k, v

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None, *,
                rope_q: tuple[torch.Tensor, torch.Tensor] | None = None,
                rope_k: tuple[torch.Tensor, torch.Tensor] | None = None,
                mask: torch.Tensor | None = None,
                cache: KVCache | None = None, cache_layer: int = 0, write_cache: bool = False
                ) -> torch.Tensor:
        """x (B, N, width) -> (B, N, width).

        context: keys/values source (cross-attention); None = self-attention on x.
        mask: bool, broadcastable to (B, 1, N, M_total), True = may attend.
        cache: self-attention only; the cached sink + window K/V are prepended to this call's
        keys (no mask needed: the new chunk may see all of it). With write_cache the new K/V
        are committed after use.
        """
        b, n, _ = x.shape
        q = self.to_q(x).view(b, n, 2 * self.heads, self.head_dim).transpose(1, 2)  # (B, 2h, N, dh)
        if self.q_norm is not None:
            q = self.q_norm(q)
        if rope_q is not None:
            q = apply_rope(q, *rope_q)
        k, v = self.project_kv(x if context is None else context, rope_k)
        if cache is not None:
            past = cache.context(cache_layer)  # read before committing this chunk
            if write_cache:
                cache.commit(cache_layer, k, v)  # window eviction keeps the sink
            if past is not None:
                k = torch.cat((past[0].to(k.dtype), k), dim=2)
                v = torch.cat((past[1].to(v.dtype), v), dim=2)
        out = self.attend(q, k, v, mask)  # (B, h, N, 2dh)
        out = self.head_norm(out) * (1.0 - self.lambda_init)
        out = out.transpose(1, 2).reshape(b, n, 2 * self.heads * self.head_dim)
        return self.to_out(out)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
               mask: torch.Tensor | None) -> torch.Tensor:
        """(A1 - lambda A2) V for q, k (B, 2h, N|M, dh) and v (B, 2h, M, dh) -> (B, h, N, 2dh),
        as one fused SDPA call over 4h stacked heads of width dh."""
        b, _, n, dh = q.shape
        m = k.shape[2]
        q = q.view(b, self.heads, 2, n, dh)
        k = k.view(b, self.heads, 2, m, dh)
        v = v.view(b, self.heads, 2, m, dh)
        # map order: (q1,k1,v1), (q1,k1,v2), (q2,k2,v1), (q2,k2,v2)
        q4 = q.repeat_interleave(2, dim=2).reshape(b, 4 * self.heads, n, dh)
        k4 = k.repeat_interleave(2, dim=2).reshape(b, 4 * self.heads, m, dh)
        v4 = v.repeat(1, 1, 2, 1, 1).reshape(b, 4 * self.heads, m, dh)
        o = F.scaled_dot_product_attention(q4, k4, v4, attn_mask=mask)  # (B, 4h, N, dh)
        o = o.view(b, self.heads, 4, n, dh)
        o1 = torch.cat((o[:, :, 0], o[:, :, 1]), dim=-1)  # A1 v
        o2 = torch.cat((o[:, :, 2], o[:, :, 3]), dim=-1)  # A2 v
        lam = self.lambda_value()
        return (o1.float() - lam * o2.float()).to(q.dtype)



class DifferentialAttentionV2(nn.Module):
    """Differential attention V2 ("Differential Transformer V2", Microsoft, January 2026).

    For `h` differential heads of width `dh`:

        q -> 2h heads of dh;  k, v -> h heads of dh (grouped-query: q heads 2i, 2i+1 read k/v head i)
        O = softmax(q k^T / sqrt(dh)) v            ONE standard attention call, 2h query heads
        lambda_i(x) = sigmoid(W_lambda x)_i         per token and head (float32)
        head_i = O_{2i} - lambda_i O_{2i+1}         (B, h, N, dh)
        out = W_o concat_i(head_i)                  W_o: h dh -> width

    Against V1: no per-head RMSNorm and no (1 - lambda_init) scale, a token-wise lambda instead of
    one scalar per layer, and keys/values of h heads of dh, i.e. half of V1's K/V (2h heads of dh
    each), so the KV cache of a rollout halves. All heads have one width, so the fused SDPA kernels
    apply. The attention FLOPs equal those of standard attention with 2h heads.

    Grouped-query on SDPA: k/v are repeated to 2h heads right before the call (a transient copy;
    the cache keeps the h-head K/V). `enable_gqa=True` would avoid the copy but rules out the
    memory-efficient kernel, the one that serves masked calls on CUDA.
    """

    def __init__(self, width: int, heads: int, head_dim: int, layer_index: int,
                 context_dim: int | None = None, qk_norm: bool = True) -> None:
        super().__init__()
        self.heads = heads
        self.head_dim = head_dim
        self.layer_index = layer_index
        context_dim = width if context_dim is None else context_dim
        self.to_q = nn.Linear(width, 2 * heads * head_dim, bias=False)
        self.to_k = nn.Linear(context_dim, heads * head_dim, bias=False)
        self.to_v = nn.Linear(context_dim, heads * head_dim, bias=False)
        self.to_lambda = nn.Linear(width, heads, bias=False)  # from the query tokens
        self.to_out = nn.Linear(heads * head_dim, width, bias=False)
        self.q_norm = RMSNorm(head_dim, eps=1e-6) if qk_norm else None
        self.k_norm = RMSNorm(head_dim, eps=1e-6) if qk_norm else None

    def project_kv(self, context: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys (B, h, M, dh) [normed, rotated] and values (B, h, M, dh)."""
        b, m, _ = context.shape
        k = self.to_k(context).view(b, m, self.heads, self.head_dim).transpose(1, 2)
        v = self.to_v(context).view(b, m, self.heads, self.head_dim).transpose(1, 2)
        if self.k_norm is not None:
            k = self.k_norm(k)
        if rope is not None:
            k = apply_rope(k, *rope)
        return k, v

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None, *,
                rope_q: tuple[torch.Tensor, torch.Tensor] | None = None,
                rope_k: tuple[torch.Tensor, torch.Tensor] | None = None,
                mask: torch.Tensor | None = None,
                cache: KVCache | None = None, cache_layer: int = 0, write_cache: bool = False
                ) -> torch.Tensor:
        """x (B, N, width) -> (B, N, width); arguments as `DifferentialAttention.forward`."""
        b, n, _ = x.shape
        q = self.to_q(x).view(b, n, 2 * self.heads, self.head_dim).transpose(1, 2)  # (B, 2h, N, dh)
        if self.q_norm is not None:
            q = self.q_norm(q)
        if rope_q is not None:
            q = apply_rope(q, *rope_q)
        k, v = self.project_kv(x if context is None else context, rope_k)  # (B, h, M, dh)
        if cache is not None:
            past = cache.context(cache_layer)
            if write_cache:
                cache.commit(cache_layer, k, v)
            if past is not None:
                k = torch.cat((past[0].to(k.dtype), k), dim=2)
                v = torch.cat((past[1].to(v.dtype), v), dim=2)
        lam = torch.sigmoid(self.to_lambda(x).float()).transpose(1, 2)  # (B, h, N) float32
        out = self.attend(q, k, v, mask, lam)  # (B, h, N, dh)
        return self.to_out(out.transpose(1, 2).reshape(b, n, self.heads * self.head_dim))

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None,
               lam: torch.Tensor) -> torch.Tensor:
        """O_{2i} - lambda_i O_{2i+1} for q (B, 2h, N, dh), k, v (B, h, M, dh), lam (B, h, N)."""
        b, _, n, dh = q.shape
        k2 = k.repeat_interleave(2, dim=1)  # (B, 2h, M, dh): q heads 2i, 2i+1 -> k/v head i
        v2 = v.repeat_interleave(2, dim=1)
        o = F.scaled_dot_product_attention(q, k2, v2, attn_mask=mask).view(b, self.heads, 2, n, dh)
        return (o[:, :, 0].float() - lam[..., None] * o[:, :, 1].float()).to(q.dtype)


AttentionKind = Literal["diff_v1", "diff_v2"]


def make_attention(kind: AttentionKind, width: int, heads: int, head_dim: int, layer_index: int,
                   context_dim: int | None = None, qk_norm: bool = True) -> nn.Module:
    """The attention module a `DiTConfig.attention` names."""
    cls = {"diff_v1": DifferentialAttention, "diff_v2": DifferentialAttentionV2}[kind]
    return cls(width, heads, head_dim, layer_index, context_dim=context_dim, qk_norm=qk_norm)
