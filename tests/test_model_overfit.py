"""The tiny world model memorises one batch of generated clips (moving squares) on CPU."""
from __future__ import annotations

import pytest
import torch

from model.configs import get_config
from model.vae import VideoVAE
from model.world_model import WorldModel


def moving_squares(batch: int, frames: int, size: int) -> torch.Tensor:
    """(B, 3, T, H, W) in [-1, 1]: one coloured square per clip moving at its own velocity."""
    video = -torch.ones(batch, 3, frames, size, size)
    for b in range(batch):
        for t in range(frames):
            x, y = 4 + (2 + b) * t, 10 + (1 + b) * t
            video[b, b % 3, t, y:y + 16, x:x + 16] = 1.0
    return video


@pytest.mark.timeout(300)
def test_tiny_model_overfits_one_batch() -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        cfg = get_config("tiny")
        model, vae = WorldModel(cfg), VideoVAE(cfg.vae).eval()
        with torch.no_grad():
            latents, _ = vae.encode(moving_squares(2, cfg.frames, cfg.height))
        latents = (latents - latents.mean()) / latents.std()
        text, mask = model.encode_text(["a red square moves right", "a green square moves down"])
        actions = torch.zeros(2, cfg.frames, 8)
        actions[0, :, 3] = 1.0
        actions[1, :, 1] = 1.0
        optimizer = torch.optim.AdamW(model.trainable_parameters(), lr=1e-3, weight_decay=0.0)
        generator = torch.Generator()
        losses = []
        for _ in range(100):
            generator.manual_seed(1234)  # one batch: the same clips, noise and timesteps every step
            loss, _ = model.training_loss(latents, text_emb=text, text_mask=mask, actions=actions,
                                          generator=generator)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    finally:
        torch.set_num_threads(threads)
    final = sum(losses[-5:]) / 5
    print(f"overfit: loss {losses[0]:.4f} -> {final:.6f} in {len(losses)} steps")
    assert final <= 0.1 * losses[0], (losses[0], final)
