"""Differential (V1, V2) vs standard attention of equal width: forward + backward time on this
device, KV-cache bytes per token, and (--train-tiny) the loss of the tiny world model with V1 and V2.

    .venv/bin/python benchmarks/bench_attention.py --tokens 4096 16384 --width 256
    .venv/bin/python benchmarks/bench_attention.py --tokens 4096 --v2 --threads 1
    .venv/bin/python benchmarks/bench_attention.py --train-tiny 200 --threads 1

Standard: 2h heads of dh (q, k, v, out projections, one SDPA call).
Differential (model.diff_attention, what the model uses): h heads, the four maps stacked as 4h heads
of width dh into one fused SDPA call.
Two-call variant (--two-call, for reference): two SDPA calls with the wide (2 dh) V; PyTorch's CPU
flash kernel needs equal q/v head widths, so it falls back to the unfused math kernel.
V2 (--v2, model.diff_attention.DifferentialAttentionV2): 2h query heads of dh against h key/value
heads (grouped-query), one SDPA call, token-wise sigmoid lambda: the attention FLOPs of standard
attention and half of V1's K/V.
Prints seconds per forward+backward and the ratio to standard attention measured in the same process.
"""
from __future__ import annotations

import argparse
import os
import time

import torch
import torch.nn.functional as F
from torch import nn

from model.diff_attention import DifferentialAttention, DifferentialAttentionV2


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


def kv_bytes_per_token(module: nn.Module, width: int, bytes_per_value: int = 2) -> int:
    """K + V values one token leaves in a self-attention KV cache, per layer, in bf16."""
    if isinstance(module, DifferentialAttentionV2):
        return 2 * module.heads * module.head_dim * bytes_per_value
    return 2 * width * bytes_per_value  # standard (2h x dh) and V1 (k: 2h x dh, v: h x 2dh)


def train_tiny(steps: int, seed: int = 0) -> None:
    """The tiny world model trained with V1 and V2 from the same seed on the same batches of a
    structured latent set (per-clip tinted blobs moving a cell per latent frame, 5 latent frames
    of 8x8, with actions and a camera path), AdamW 1e-3; prints the mean loss of each window of
    steps (the flow loss is noisy: timesteps are drawn per step, so compare windows)."""
    from dataclasses import replace

    from model.configs import get_config
    from model.world_model import WorldModel

    def batch(step: int, batch_size: int = 4) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(10_000 + step)
        clips = torch.randint(0, 64, (batch_size,), generator=g)
        latents = torch.zeros(batch_size, 8, 5, 8, 8)
        for i, clip in enumerate(clips.tolist()):
            cg = torch.Generator().manual_seed(clip)
            tint = torch.randn(8, generator=cg)
            row, speed = int(torch.randint(0, 6, (1,), generator=cg)), int(torch.randint(1, 3, (1,), generator=cg))
            latents[i] += 0.3 * tint[:, None, None, None]
            for f in range(5):
                col = (f * speed + clip) % 6
                latents[i, :, f, row:row + 2, col:col + 2] += tint[:, None, None]
        video_frames = 17
        actions = torch.zeros(batch_size, video_frames, 8)
        actions[:, :, 0] = 1.0
        poses = torch.eye(4).repeat(batch_size, video_frames, 1, 1)
        poses[:, :, 2, 3] = torch.linspace(0, 1, video_frames)
        K = torch.tensor([[32.0, 0, 32], [0, 32.0, 32], [0, 0, 1]]).repeat(batch_size, 1, 1)
        return {"latents": latents, "actions": actions, "poses": poses, "K": K}

    curves: dict[str, list[float]] = {}
    elapsed: dict[str, float] = {}
    for kind in ("diff_v1", "diff_v2"):
        torch.manual_seed(seed)
        config = replace(get_config("tiny", attention=kind), frames=17, height=64, width=64)
        model = WorldModel(config)
        optimizer = torch.optim.AdamW(model.trainable_parameters(), lr=1e-3, weight_decay=0.0)
        generator = torch.Generator().manual_seed(seed)
        text = model.encode_text(["a tinted blob moving right"] * 4)
        losses = []
        start = time.perf_counter()
        for step in range(steps):
            data = batch(step)
            loss, _ = model.training_loss(data["latents"], text_emb=text[0], text_mask=text[1],
                                          actions=data["actions"], camera_to_world=data["poses"],
                                          intrinsics=data["K"], generator=generator)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
        elapsed[kind] = time.perf_counter() - start
        curves[kind] = losses
        params = sum(p.numel() for p in model.trainable_parameters())
        print(f"{kind}: {params:,} trainable parameters, {steps} steps in {elapsed[kind]:.1f} s", flush=True)
    window = max(1, steps // 5)
    print(f"mean loss per window of {window} steps (same batches and noise draws for both):")
    for start in range(0, steps, window):
        v1 = sum(curves["diff_v1"][start:start + window]) / len(curves["diff_v1"][start:start + window])
        v2 = sum(curves["diff_v2"][start:start + window]) / len(curves["diff_v2"][start:start + window])
        print(f"  steps {start + 1:>4}-{min(steps, start + window):>4}: V1 {v1:.4f}  V2 {v2:.4f}  V2/V1 {v2 / v1:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, nargs="+", default=[4096, 16384])
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--head-dim", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--two-call", action="store_true", help="also time the two-call wide-V variant")
    parser.add_argument("--flex", action="store_true", help="also time a FlexAttention (compiled) variant")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--v2", action="store_true", help="also time differential attention V2")
    parser.add_argument("--train-tiny", type=int, default=0, metavar="STEPS",
                        help="instead: train the tiny world model with V1 and V2 for STEPS steps, compare loss")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.train_tiny:
        train_tiny(args.train_tiny)
        return
    torch.manual_seed(0)
    heads = args.width // (2 * args.head_dim)
    standard = StandardAttention(args.width, 2 * heads)
    differential = DifferentialAttention(args.width, heads, args.head_dim, layer_index=1, qk_norm=False)
    two_call = TwoCallDifferential(args.width, heads, args.head_dim, layer_index=1, qk_norm=False)
    flex = FlexDifferential(args.width, heads, args.head_dim, layer_index=1, qk_norm=False)
    v2 = DifferentialAttentionV2(args.width, heads, args.head_dim, layer_index=1, qk_norm=False)
    params = [sum(p.numel() for p in m.parameters()) for m in (standard, differential, v2)]
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f}")
    print(f"width {args.width}: standard {2 * heads} heads x {args.head_dim} ({params[0]:,} params), "
          f"differential {heads} heads x {args.head_dim} ({params[1]:,} params: +{params[1] - params[0]} "
          f"lambda/norm)")
    if args.v2:
        print(f"V2: {2 * heads} query heads x {args.head_dim} on {heads} k/v heads ({params[2]:,} params)")
    print("KV cache per token per layer (bf16): " + ", ".join(
        f"{name} {kv_bytes_per_token(m, args.width)} B" for name, m in
        (("standard", standard), ("V1", differential), ("V2", v2))))
    for tokens in args.tokens:
        repeats = args.repeats if tokens <= 4096 else 1
        use_flex = args.flex and _flex_trains_here(tokens, args.width, flex)
        modules = ([standard, differential] + ([v2] if args.v2 else []) + ([two_call] if args.two_call else [])
                   + ([flex] if use_flex else []))
        times = time_forward_backward(modules, tokens, args.width, repeats)
        base, fused = times[0], times[1]
        line = (f"tokens {tokens:>6}: standard {base:.3f} s, differential (4 maps, 1 SDPA) {fused:.3f} s "
                f"-> ratio {fused / base:.2f}")
        if args.v2:
            line += f"; V2 (2h q heads, h k/v heads) {times[2]:.3f} s -> ratio {times[2] / base:.2f}"
        if args.two_call:
            index = 3 if args.v2 else 2
            line += f"; two calls wide V {times[index]:.3f} s -> ratio {times[index] / base:.2f}"
        if use_flex:
            line += f"; flex (compiled, wide V) {times[-1]:.3f} s -> ratio {times[-1] / base:.2f}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
