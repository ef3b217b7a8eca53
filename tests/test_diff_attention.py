"""Differential attention against a naive N x N reference written straight from the paper."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from model.dit import chunk_causal_mask
from model.diff_attention import DifferentialAttention, lambda_init_for_layer


def _rms(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def naive_differential_attention(attn: DifferentialAttention, x: torch.Tensor,
                                 mask: torch.Tensor | None = None) -> torch.Tensor:
    """Materialises both N x N softmax maps: head = RMSNorm((A1 - lambda A2) V) * (1 - lambda_init)."""
    b, n, _ = x.shape
    h, dh = attn.heads, attn.head_dim
    q = attn.to_q(x).view(b, n, 2 * h, dh).transpose(1, 2)
    k = attn.to_k(x).view(b, n, 2 * h, dh).transpose(1, 2)
    v = attn.to_v(x).view(b, n, h, 2 * dh).transpose(1, 2)  # h heads of width 2 dh
    q = _rms(q, attn.q_norm.weight, attn.q_norm.eps)
    k = _rms(k, attn.k_norm.weight, attn.k_norm.eps)
    q1, q2 = q[:, 0::2], q[:, 1::2]
    k1, k2 = k[:, 0::2], k[:, 1::2]
    s1 = q1 @ k1.transpose(-1, -2) / math.sqrt(dh)
    s2 = q2 @ k2.transpose(-1, -2) / math.sqrt(dh)
    if mask is not None:
        s1 = s1.masked_fill(~mask, float("-inf"))
        s2 = s2.masked_fill(~mask, float("-inf"))
    a1, a2 = s1.softmax(-1), s2.softmax(-1)
    lam = (torch.exp((attn.lambda_q1 * attn.lambda_k1).sum()) - torch.exp((attn.lambda_q2 * attn.lambda_k2).sum())
           + attn.lambda_init)
    heads = (a1 - lam * a2) @ v  # (B, h, N, 2 dh)
    heads = _rms(heads, attn.head_norm.weight, 1e-5) * (1 - attn.lambda_init)
    return attn.to_out(heads.transpose(1, 2).reshape(b, n, 2 * h * dh))


def _module(layer_index: int = 3) -> DifferentialAttention:
    torch.manual_seed(layer_index)
    attn = DifferentialAttention(width=64, heads=4, head_dim=8, layer_index=layer_index)
    with torch.no_grad():  # make every learnable piece non-trivial
        for norm in (attn.q_norm, attn.k_norm, attn.head_norm):
            norm.weight.uniform_(0.5, 1.5)
    return attn


@pytest.mark.parametrize("masked", [False, True])
def test_fused_equals_naive_reference_outputs_and_gradients(masked: bool) -> None:
    attn = _module()
    x = torch.randn(2, 24, 64, requires_grad=True)
    mask = None
    if masked:  # 6 frames of 4 tokens, chunks of 2 frames -> 3 chunks
        chunk_of_token = torch.arange(6).div(2, rounding_mode="floor").repeat_interleave(4)
        mask = chunk_causal_mask(chunk_of_token, chunk_of_token)
        assert not mask.all() and mask.any()

    fused = attn(x, mask=mask)
    grads_fused = torch.autograd.grad(fused.square().sum(), [x, *attn.parameters()])
    naive = naive_differential_attention(attn, x, mask)
    grads_naive = torch.autograd.grad(naive.square().sum(), [x, *attn.parameters()])

    torch.testing.assert_close(fused, naive, atol=1e-5, rtol=0)
    for name_param, g_fused, g_naive in zip(["x", *dict(attn.named_parameters())], grads_fused, grads_naive):
        scale = max(1.0, g_naive.abs().max().item())
        assert (g_fused - g_naive).abs().max().item() <= 1e-5 * scale, name_param
    # the lambda vectors are part of the computation: they receive gradient
    names = list(dict(attn.named_parameters()))
    assert grads_fused[1 + names.index("lambda_q2")].abs().sum() > 0


def test_masked_attention_ignores_future_chunks() -> None:
    attn = _module()
    x = torch.randn(1, 24, 64)
    chunk_of_token = torch.arange(6).div(2, rounding_mode="floor").repeat_interleave(4)
    mask = chunk_causal_mask(chunk_of_token, chunk_of_token)
    y = attn(x, mask=mask)
    x2 = x.clone()
    x2[:, 16:] += torch.randn(1, 8, 64)  # change the last chunk only
    y2 = attn(x2, mask=mask)
    torch.testing.assert_close(y[:, :16], y2[:, :16], atol=1e-6, rtol=0)
    assert (y[:, 16:] - y2[:, 16:]).abs().max() > 1e-3


def test_lambda_init_schedule() -> None:
    assert lambda_init_for_layer(0) == pytest.approx(0.2, abs=1e-12)
    values = [lambda_init_for_layer(i) for i in range(60)]
    assert all(a < b for a, b in zip(values, values[1:]))
    assert values[-1] == pytest.approx(0.8, abs=1e-6)
    assert DifferentialAttention(64, 4, 8, layer_index=0).lambda_init == pytest.approx(0.2)


def test_lambda_is_float32_scalar_from_four_vectors() -> None:
    attn = _module()
    lam = attn.lambda_value()
    assert lam.dtype == torch.float32 and lam.dim() == 0
    with torch.no_grad():
        expected = (math.exp(float((attn.lambda_q1 * attn.lambda_k1).sum()))
                    - math.exp(float((attn.lambda_q2 * attn.lambda_k2).sum())) + attn.lambda_init)
    assert lam.item() == pytest.approx(expected, rel=1e-6)
    attn_bf16 = _module().to(torch.bfloat16)
    assert attn_bf16.lambda_value().dtype == torch.float32


def test_parameter_count_equals_standard_mha_with_twice_the_heads_plus_extras() -> None:
    width, heads, head_dim = 256, 4, 32  # 2 * 4 * 32 = width
    diff = DifferentialAttention(width, heads, head_dim, layer_index=2, qk_norm=True)
    standard = nn.MultiheadAttention(width, num_heads=2 * heads, bias=False)
    standard_count = sum(p.numel() for p in standard.parameters())
    extras = 4 * head_dim + 2 * head_dim + 2 * head_dim  # lambda vectors, per-head norm, QK-norm
    assert sum(p.numel() for p in diff.parameters()) == standard_count + extras
    no_qk = DifferentialAttention(width, heads, head_dim, layer_index=2, qk_norm=False)
    assert sum(p.numel() for p in no_qk.parameters()) == standard_count + 6 * head_dim
