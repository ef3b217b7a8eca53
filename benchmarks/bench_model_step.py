"""Tokens per second of one world-model training step (forward + backward + AdamW) on this device.

    .venv/bin/python benchmarks/bench_model_step.py --config tiny --steps 10

Reports latent tokens per second (tokens = latent frames x (h/ph) x (w/pw) x batch) and, as the
baseline measured in the same process, the same step with a standard-attention block stack of
equal parameters (the differential attention modules swapped for a 2h-head standard form).
"""
from __future__ import annotations

import argparse
import os
import time

import torch
import torch.nn.functional as F

from model.configs import get_config
from model.diff_attention import DifferentialAttention
from model.world_model import WorldModel


def _standard_attend(self: DifferentialAttention, q, k, v, mask):
    """Standard multi-head attention on the same projections: 2h heads of dh, same parameters."""
    b, _, n, dh = q.shape
    o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, 2h, N, dh)
    return o.view(b, self.heads, 2, n, dh).transpose(2, 3).reshape(b, self.heads, n, 2 * dh)


def run(model: WorldModel, latents, text, mask, actions, steps: int) -> float:
    optimizer = torch.optim.AdamW(model.trainable_parameters(), lr=1e-4)
    generator = torch.Generator().manual_seed(0)
    timings = []
    for step in range(steps + 1):
        start = time.perf_counter()
        loss, _ = model.training_loss(latents, text_emb=text, text_mask=mask, actions=actions, generator=generator)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step:  # step 0 is warm-up
            timings.append(time.perf_counter() - start)
    return sorted(timings)[len(timings) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="tiny")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--frames", type=int, default=None)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = get_config(args.config)
    frames = cfg.frames if args.frames is None else args.frames
    model = WorldModel(cfg)
    channels, latent_frames, h, w = cfg.latent_shape(frames)
    latents = torch.randn(args.batch, channels, latent_frames, h, w)
    text, mask = model.encode_text(["a car drives down a road"] * args.batch)
    actions = torch.zeros(args.batch, frames, 8)
    _, ph, pw = cfg.dit.patch_size
    tokens = args.batch * latent_frames * (h // ph) * (w // pw)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f}")
    print(f"config {cfg.name}: batch {args.batch} x {frames} frames {cfg.height}x{cfg.width} -> {tokens} latent tokens "
          f"per step, {sum(p.numel() for p in model.trainable_parameters()):,} trainable params")
    original = DifferentialAttention.attend
    differential = standard = float("inf")
    for _ in range(2):  # alternate so that load from other processes hits both alike; keep the best
        differential = min(differential, run(model, latents, text, mask, actions, args.steps))
        DifferentialAttention.attend = _standard_attend
        try:
            standard = min(standard, run(model, latents, text, mask, actions, args.steps))
        finally:
            DifferentialAttention.attend = original
    print(f"differential attention: {differential * 1000:.1f} ms/step, {tokens / differential:,.0f} tokens/s")
    print(f"standard attention (same params): {standard * 1000:.1f} ms/step, {tokens / standard:,.0f} tokens/s")
    print(f"ratio differential / standard step time: {differential / standard:.2f}")


if __name__ == "__main__":
    main()
