"""Differential attention V2 against a naive reference written from its equations:

    q: 2h heads, k/v: h heads (q heads 2i, 2i+1 read k/v head i), one softmax map per q head,
    head_i = A_{2i} v_i - sigmoid(W_lambda x)_i A_{2i+1} v_i,  out = W_o concat(head_i)
"""
from __future__ import annotations

import math

import pytest
import torch

from model.configs import get_config
from model.diff_attention import DifferentialAttention, DifferentialAttentionV2, make_attention
from model.dit import chunk_causal_mask
from model.kv_cache import KVCache
from model.rope import apply_rope
from model.world_model import WorldModel
from model.errors import ModelError


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _rms(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def naive_v2(attn: DifferentialAttentionV2, x: torch.Tensor, context: torch.Tensor | None = None,
             mask: torch.Tensor | None = None, rope=None) -> torch.Tensor:
    """Materialises every softmax map, loops over differential heads."""
    b, n, _ = x.shape
    src = x if context is None else context
    m = src.shape[1]
    h, dh = attn.heads, attn.head_dim
    q = attn.to_q(x).view(b, n, 2 * h, dh).transpose(1, 2)
    k = attn.to_k(src).view(b, m, h, dh).transpose(1, 2)
    v = attn.to_v(src).view(b, m, h, dh).transpose(1, 2)
    q = _rms(q, attn.q_norm.weight, attn.q_norm.eps)
    k = _rms(k, attn.k_norm.weight, attn.k_norm.eps)
    if rope is not None:
        q, k = apply_rope(q, *rope), apply_rope(k, *rope)
    lam = torch.sigmoid(x @ attn.to_lambda.weight.T)  # (B, N, h)
    heads = []
    for i in range(h):
        s1 = q[:, 2 * i] @ k[:, i].transpose(-1, -2) / math.sqrt(dh)
        s2 = q[:, 2 * i + 1] @ k[:, i].transpose(-1, -2) / math.sqrt(dh)
        if mask is not None:
            s1 = s1.masked_fill(~mask, float("-inf"))
            s2 = s2.masked_fill(~mask, float("-inf"))
        heads.append(s1.softmax(-1) @ v[:, i] - lam[:, :, i, None] * (s2.softmax(-1) @ v[:, i]))
    return attn.to_out(torch.cat(heads, dim=-1))


def _module(context_dim: int | None = None) -> DifferentialAttentionV2:
    torch.manual_seed(5)
    attn = DifferentialAttentionV2(width=64, heads=4, head_dim=8, layer_index=2, context_dim=context_dim)
    with torch.no_grad():
        for norm in (attn.q_norm, attn.k_norm):
            norm.weight.uniform_(0.5, 1.5)
    return attn


def _chunk_mask() -> torch.Tensor:  # 6 frames of 4 tokens, chunks of 2 frames
    chunk_of_token = torch.arange(6).div(2, rounding_mode="floor").repeat_interleave(4)
    return chunk_causal_mask(chunk_of_token, chunk_of_token)


@pytest.mark.parametrize("masked", [False, True])
def test_v2_equals_naive_reference_outputs_and_gradients(masked: bool) -> None:
    attn = _module()
    x = torch.randn(2, 24, 64, requires_grad=True)
    mask = _chunk_mask() if masked else None
    fused = attn(x, mask=mask)
    grads_fused = torch.autograd.grad(fused.square().sum(), [x, *attn.parameters()])
    naive = naive_v2(attn, x, mask=mask)
    grads_naive = torch.autograd.grad(naive.square().sum(), [x, *attn.parameters()])
    torch.testing.assert_close(fused, naive, atol=1e-5, rtol=0)
    names = ["x", *dict(attn.named_parameters())]
    for name, g_fused, g_naive in zip(names, grads_fused, grads_naive):
        scale = max(1.0, g_naive.abs().max().item())
        assert (g_fused - g_naive).abs().max().item() <= 1e-5 * scale, name
    assert grads_fused[names.index("to_lambda.weight")].abs().sum() > 0  # lambda is learned


def test_v2_mask_blocks_future_chunks_and_lambda_is_per_token() -> None:
    attn = _module()
    x = torch.randn(1, 24, 64)
    mask = _chunk_mask()
    base = attn(x, mask=mask)
    changed = x.clone()
    changed[:, 16:] += 3.0  # the last chunk
    out = attn(changed, mask=mask)
    torch.testing.assert_close(out[:, :16], base[:, :16], atol=1e-6, rtol=0)
    assert (out[:, 16:] - base[:, 16:]).abs().max() > 1e-3
    lam = torch.sigmoid(attn.to_lambda(x))
    assert lam.shape == (1, 24, 4) and lam.std(dim=1).min() > 0  # varies over tokens, per head


def test_v2_cross_attention_matches_reference() -> None:
    attn = _module(context_dim=32)
    x, text = torch.randn(2, 12, 64), torch.randn(2, 5, 32)
    keep = torch.tensor([True, True, True, False, False])
    out = attn(x, text, mask=keep[None, None, None, :])
    torch.testing.assert_close(out, naive_v2(attn, x, context=text, mask=keep[None, None, :]), atol=1e-5, rtol=0)


def test_v2_kv_cache_equals_full_forward_and_halves_v1_cache() -> None:
    attn = _module()
    x = torch.randn(1, 24, 64)
    with torch.no_grad():
        full = attn(x, mask=_chunk_mask())
        cache = KVCache(depth=1, window_chunks=None)
        pieces = []
        for a, b in ((0, 8), (8, 16), (16, 24)):
            cache.pending_frames = 2  # what the world model records before a committing forward
            pieces.append(attn(x[:, a:b], cache=cache, write_cache=True))
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, atol=1e-5, rtol=0)
    v1 = DifferentialAttention(width=64, heads=4, head_dim=8, layer_index=2)
    cache_v1 = KVCache(depth=1, window_chunks=None)
    with torch.no_grad():
        cache_v1.pending_frames = 6
        v1(x, cache=cache_v1, write_cache=True)
    assert cache_v1.nbytes() == 2 * cache.nbytes()


def test_world_model_with_v2_cache_equals_full_forward() -> None:
    torch.manual_seed(0)
    model = WorldModel(get_config("tiny", attention="diff_v2")).eval()
    assert isinstance(model.blocks[0].self_attn, DifferentialAttentionV2)
    with torch.no_grad():
        for module in (model.final.linear,):
            module.weight.normal_(0, 0.05)
    g = torch.Generator().manual_seed(0)
    x = torch.randn((1, 8, 5, 8, 8), generator=g)
    t = torch.rand((1, 5), generator=g)
    text, mask = model.encode_text(["a street"])
    with torch.no_grad():
        full = model(x, t, text, mask)
        cache = KVCache(depth=model.config.dit.depth, window_chunks=None)
        pieces = [model(x[:, :, a:b], t[:, a:b], text, mask, frame_offset=a, cache=cache, write_cache=True)
                  for a, b in ((0, 1), (1, 3), (3, 5))]
    assert (torch.cat(pieces, dim=2) - full).abs().max().item() <= 1e-5
    assert full.abs().max() > 0


def test_attention_option_is_validated() -> None:
    assert get_config("tiny").dit.attention == "diff_v1"  # V1 stays the default
    with pytest.raises(ModelError, match="dit.attention"):
        get_config("tiny", attention="diff_v3")
    assert isinstance(make_attention("diff_v1", 64, 4, 8, 0), DifferentialAttention)
    assert get_config("tiny:diff_v2").dit.attention == "diff_v2"  # what a train config's `model:` may say
    assert get_config("tiny:diff_v2", attention="diff_v1").dit.attention == "diff_v1"  # explicit wins
    with pytest.raises(ModelError, match="dit.attention"):
        get_config("tiny:v9")
