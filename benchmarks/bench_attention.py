"""Differential vs standard attention with equal parameters: forward + backward time on this device.

    .venv/bin/python benchmarks/bench_attention.py --tokens 4096 16384 --width 256

Standard: 2h heads of dh (q, k, v, out projections, one SDPA call).
Differential (model.diff_attention, what the model uses): h heads, the four maps stacked as 4h heads
of width dh into one fused SDPA call.
Two-call variant (--two-call, for reference): two SDPA calls with the wide (2 dh) V; PyTorch's CPU
flash kernel needs equal q/v head widths, so it falls back to the unfused math kernel.
Prints seconds per forward+backward and the ratio to standard attention measured in the same process.
"""
from __future__ import annotations

import argparse
import os
import time

import torch
import torch.nn.functional as F
from torch import nn

from model.diff_attention import DifferentialAttention


class StandardAttention(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width, bias=False)
        self.out = nn.Linear(width, width, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, w = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, w // self.heads).permute(2, 0, 3, 1, 4)
        o = F.scaled_dot_product_attention(q, k, v)
        return self.out(o.transpose(1, 2).reshape(b, n, w))


class TwoCallDifferential(DifferentialAttention):
    """Same maths, two SDPA calls with the wide V: (q1, k1, v) and (q2, k2, v)."""

    def attend(self, q, k, v, mask):
        b, _, n, dh = q.shape
        m = k.shape[2]
        q = q.view(b, self.heads, 2, n, dh)
        k = k.view(b, self.heads, 2, m, dh)
        wide_v = v.view(b, self.heads, 2, m, dh).transpose(2, 3).reshape(b, self.heads, m, 2 * dh)
        o1 = F.scaled_dot_product_attention(q[:, :, 0], k[:, :, 0], wide_v, attn_mask=mask)
        o2 = F.scaled_dot_product_attention(q[:, :, 1], k[:, :, 1], wide_v, attn_mask=mask)
        return (o1.float() - self.lambda_value() * o2.float()).to(q.dtype)


class FlexDifferential(DifferentialAttention):
    """Same maths with FlexAttention: two calls with the wide V (flex accepts a V head width
    different from Q/K); compiled, which on CPU goes through the C++ compiler."""

    _flex = None

    def attend(self, q, k, v, mask):
        from torch.nn.attention.flex_attention import flex_attention

        if FlexDifferential._flex is None:
            FlexDifferential._flex = torch.compile(flex_attention, dynamic=False)
        b, _, n, dh = q.shape
        m = k.shape[2]
        q = q.view(b, self.heads, 2, n, dh)
        k = k.view(b, self.heads, 2, m, dh)
        wide_v = v.view(b, self.heads, 2, m, dh).transpose(2, 3).reshape(b, self.heads, m, 2 * dh)
        o1 = FlexDifferential._flex(q[:, :, 0].contiguous(), k[:, :, 0].contiguous(), wide_v)
        o2 = FlexDifferential._flex(q[:, :, 1].contiguous(), k[:, :, 1].contiguous(), wide_v)
        return (o1.float() - self.lambda_value() * o2.float()).to(q.dtype)


def time_forward_backward(modules: list[nn.Module], tokens: int, width: int, repeats: int) -> list[float]:
    """Best-of-`repeats` seconds per module; the modules alternate within each round so that
    load from other processes on a shared machine hits them alike."""
    x = torch.randn(1, tokens, width, requires_grad=True)
    best = [float("inf")] * len(modules)
    for round_index in range(repeats + 1):
        for i, module in enumerate(modules):
            start = time.perf_counter()
            module(x).sum().backward()
            if round_index > 0 or tokens > 4096:  # round 0 is warm-up (skipped for long runs)
                best[i] = min(best[i], time.perf_counter() - start)
    return best


def _flex_trains_here(tokens: int, width: int, flex: nn.Module) -> bool:
    try:
        flex(torch.randn(1, 128, width, requires_grad=True)).sum().backward()
        return True
    except NotImplementedError as error:  # torch 2.14 on CPU: "does not support backward on CPU"
        print(f"flex attention skipped: {error}")
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, nargs="+", default=[4096, 16384])
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--head-dim", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--two-call", action="store_true", help="also time the two-call wide-V variant")
    parser.add_argument("--flex", action="store_true", help="also time a FlexAttention (compiled) variant")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    heads = args.width // (2 * args.head_dim)
    standard = StandardAttention(args.width, 2 * heads)
    differential = DifferentialAttention(args.width, heads, args.head_dim, layer_index=1, qk_norm=False)
    two_call = TwoCallDifferential(args.width, heads, args.head_dim, layer_index=1, qk_norm=False)
    flex = FlexDifferential(args.width, heads, args.head_dim, layer_index=1, qk_norm=False)
    params = [sum(p.numel() for p in m.parameters()) for m in (standard, differential)]
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f}")
    print(f"width {args.width}: standard {2 * heads} heads x {args.head_dim} ({params[0]:,} params), "
          f"differential {heads} heads x {args.head_dim} ({params[1]:,} params: +{params[1] - params[0]} "
          f"lambda/norm)")
    for tokens in args.tokens:
        repeats = args.repeats if tokens <= 4096 else 1
        use_flex = args.flex and _flex_trains_here(tokens, args.width, flex)
        modules = [standard, differential] + ([two_call] if args.two_call else []) + ([flex] if use_flex else [])
        times = time_forward_backward(modules, tokens, args.width, repeats)
        base, fused = times[0], times[1]
        line = (f"tokens {tokens:>6}: standard {base:.3f} s, differential (4 maps, 1 SDPA) {fused:.3f} s "
                f"-> ratio {fused / base:.2f}")
        if args.two_call:
            line += f"; two calls wide V {times[2]:.3f} s -> ratio {times[2] / base:.2f}"
        if use_flex:
            line += f"; flex (compiled, wide V) {times[-1]:.3f} s -> ratio {times[-1] / base:.2f}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
