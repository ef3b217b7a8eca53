"""Rectified flow with diffusion forcing.

    x_t = (1 - t) x0 + t * noise,    t in [0, 1], t = 0 is clean data,
    target velocity v = noise - x0    (so dx/dt = v and Euler steps go from t = 1 to t = 0).

Timesteps are drawn logit-normal (t = sigmoid(N(mean, std))) and then shifted towards noise by
a resolution-dependent factor, t' = s t / (1 + (s - 1) t) with
s = base_shift * sqrt(tokens_per_frame / reference_tokens_per_frame) (clamped to [1, max_shift]):
more tokens per frame keep more signal at a given t, so they need more noise.

Diffusion forcing: each chunk of latent frames gets its own independent level. With probability
`teacher_forcing_prob` a sample is instead split at a random chunk: earlier chunks are *context*,
lightly noised (t ~ U(0, context_noise_max), noise augmentation) and not scored, later chunks get
independent levels. With probability `image_condition_prob` latent frame 0 is clean (t = 0) and
not scored (image-to-video).
"""
from __future__ import annotations

import math

import torch

from model.configs import FlowConfig


def resolution_shift(config: FlowConfig, tokens_per_frame: int) -> float:
    shift = config.base_shift * math.sqrt(tokens_per_frame / config.reference_tokens_per_frame)
    return float(min(max(shift, 1.0), config.max_shift))


def shift_timesteps(t: torch.Tensor, shift: float) -> torch.Tensor:
    return shift * t / (1.0 + (shift - 1.0) * t)


def sample_logit_normal(shape: tuple[int, ...], config: FlowConfig, generator: torch.Generator | None,
                        device: torch.device) -> torch.Tensor:
    normal = torch.randn(shape, generator=generator, device=device)
    return torch.sigmoid(config.logit_normal_mean + config.logit_normal_std * normal)


def interpolate(x0: torch.Tensor, noise: torch.Tensor, t_frames: torch.Tensor) -> torch.Tensor:
    """x0, noise (B, C, F, h, w); t_frames (B, F) -> x_t."""
    t = t_frames[:, None, :, None, None].to(x0.dtype)
    return (1.0 - t) * x0 + t * noise


def velocity_target(x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    return noise - x0


def sample_training_timesteps(batch: int, chunk_of_frame: torch.Tensor, config: FlowConfig, shift: float,
                              image_condition_prob: float, generator: torch.Generator | None,
                              device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-frame levels t (B, F) and loss weights (B, F) in {0, 1} under diffusion forcing.

    chunk_of_frame: (F,) chunk index of each latent frame (non-decreasing, starting at 0).
    """
    chunk_of_frame = chunk_of_frame.to(device)
    chunks = int(chunk_of_frame.max().item()) + 1
    t_chunks = shift_timesteps(sample_logit_normal((batch, chunks), config, generator, device), shift)
    weight_chunks = torch.ones(batch, chunks, device=device)
    uniform = torch.rand((batch, 3), generator=generator, device=device)
    if chunks > 1:
        teacher = uniform[:, 0] < config.teacher_forcing_prob  # (B,)
        cut = 1 + (uniform[:, 1] * (chunks - 1)).long().clamp(max=chunks - 2)  # first scored chunk
        is_context = teacher[:, None] & (torch.arange(chunks, device=device)[None, :] < cut[:, None])
        context_t = config.context_noise_max * torch.rand((batch, chunks), generator=generator, device=device)
        t_chunks = torch.where(is_context, context_t, t_chunks)
        weight_chunks = torch.where(is_context, torch.zeros_like(weight_chunks), weight_chunks)
    t = t_chunks[:, chunk_of_frame]
    weight = weight_chunks[:, chunk_of_frame]
    image = uniform[:, 2] < image_condition_prob
    if t.shape[1] > 1:
        t[:, 0] = torch.where(image, torch.zeros_like(t[:, 0]), t[:, 0])
        weight[:, 0] = torch.where(image, torch.zeros_like(weight[:, 0]), weight[:, 0])
    return t, weight
