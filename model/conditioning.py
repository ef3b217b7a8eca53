"""Conditioning signals: timesteps (adaLN-single), per-frame actions, Plücker camera rays, text.

adaLN-single (PixArt-alpha): one shared MLP maps the per-frame conditioning vector c (timestep
embedding + action embedding) to 6 * width modulation parameters; every block adds its own
learned (6, width) table. Actions are per video frame; the `tc` actions of one latent frame are
concatenated (latent frame 0 gets zeros then action 0) and embedded by an MLP, so each latent
frame is modulated by exactly the key presses and look deltas that produced it.
"""
from __future__ import annotations

import math
from typing import cast

import torch
from torch import nn


def timestep_features(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal features of t in [0, 1] (scaled by 1000), (...,) -> (..., dim), float32."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = (t.float() * 1000.0)[..., None] * freqs
    return torch.cat((torch.cos(args), torch.sin(args)), dim=-1)


class TimestepEmbedding(nn.Module):
    """t (B, F) -> c (B, F, width)."""

    def __init__(self, width: int, feature_dim: int = 256) -> None:
        super().__init__()
        self.feature_dim = feature_dim
        self.mlp = nn.Sequential(nn.Linear(feature_dim, width), nn.SiLU(), nn.Linear(width, width))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        dtype = cast(nn.Linear, self.mlp[0]).weight.dtype  # the MLP's precision (bf16 under FSDP2's policy)
        return self.mlp(timestep_features(t, self.feature_dim).to(dtype))


class AdaLNSingle(nn.Module):
    """The one shared modulation MLP: c (B, F, width) -> (B, F, 6, width)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.proj = nn.Sequential(nn.SiLU(), nn.Linear(width, 6 * width))

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        return self.proj(c).unflatten(-1, (6, -1))


class ActionEmbedding(nn.Module):
    """Per-latent-frame action features (B, F, tc * 8) -> (B, F, width); zero-initialised output
    so a model trained without actions is unchanged by adding them."""

    def __init__(self, action_dim: int, temporal_compression: int, width: int) -> None:
        super().__init__()
        self.action_dim = action_dim
        self.temporal_compression = temporal_compression
        self.mlp = nn.Sequential(nn.Linear(action_dim * temporal_compression, width), nn.SiLU(),
                                 nn.Linear(width, width))
        output = cast(nn.Linear, self.mlp[2])
        nn.init.zeros_(output.weight)
        nn.init.zeros_(output.bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.mlp(features.to(cast(nn.Linear, self.mlp[0]).weight.dtype))


def group_actions(actions: torch.Tensor, temporal_compression: int) -> torch.Tensor:
    """(B, T, A) per video frame, T = 1 + tc*k -> (B, 1 + k, tc * A) per latent frame.

    Latent frame 0 covers video frame 0 alone: its group is tc-1 zero rows then action 0.
    """
    b, t, a = actions.shape
    tc = temporal_compression
    if (t - 1) % tc:
        raise ValueError(f"actions have {t} frames; need 1 + {tc}*k")
    first = torch.cat((actions.new_zeros(b, tc - 1, a), actions[:, :1]), dim=1)
    groups = torch.cat((first, actions[:, 1:]), dim=1)  # (B, tc * (1 + k), A)
    return groups.reshape(b, -1, tc * a)


def latent_frame_poses(camera_to_world: torch.Tensor, temporal_compression: int) -> torch.Tensor:
    """(B, T, 4, 4) per video frame -> (B, F, 4, 4): the pose of each latent frame's last video frame."""
    return camera_to_world[:, ::temporal_compression]


def plucker_rays(camera_to_world: torch.Tensor, intrinsics: torch.Tensor, height: int, width: int,
                 pixel_stride: int) -> torch.Tensor:
    """Per-pixel Plücker rays (B, 6, F, height, width) at latent resolution.

    camera_to_world: (B, F, 4, 4) OpenCV (x right, y down, z forward), metres; made relative to
    the first frame so the world origin does not matter. intrinsics: (B, 3, 3) or (B, F, 3, 3) in
    pixels of the video; latent cell (i, j) looks through video pixel ((j + 0.5) s, (i + 0.5) s).
    Ray = (o x d, d) with unit direction d in the first camera's frame.
    """
    c2w = camera_to_world.double()
    b, f = c2w.shape[:2]
    relative = torch.linalg.inv(c2w[:, :1]) @ c2w  # (B, F, 4, 4)
    k = intrinsics.double()
    if k.dim() == 3:
        k = k[:, None].expand(b, f, 3, 3)
    rows = (torch.arange(height, dtype=torch.float64, device=c2w.device) + 0.5) * pixel_stride
    cols = (torch.arange(width, dtype=torch.float64, device=c2w.device) + 0.5) * pixel_stride
    v, u = torch.meshgrid(rows, cols, indexing="ij")
    pixels = torch.stack((u, v, torch.ones_like(u)), dim=-1).reshape(-1, 3)  # (P, 3)
    directions_cam = pixels @ torch.linalg.inv(k).transpose(-1, -2)  # (B, F, P, 3)
    directions = directions_cam @ relative[..., :3, :3].transpose(-1, -2)
    directions = directions / directions.norm(dim=-1, keepdim=True)
    origins = relative[..., None, :3, 3].expand_as(directions)
    moments = torch.cross(origins, directions, dim=-1)
    rays = torch.cat((moments, directions), dim=-1)  # (B, F, P, 6)
    return rays.permute(0, 3, 1, 2).reshape(b, 6, f, height, width).float()


class CameraEmbedding(nn.Module):
    """Plücker rays (B, 6, F, h, w) -> tokens (B, N, width) by the same 3D patching as the latents.
    Zero-initialised, so camera control starts as a no-op; every block adds it through its own
    learned gate vector (initialised to one)."""

    def __init__(self, patch_size: tuple[int, int, int], width: int) -> None:
        super().__init__()
        self.proj = nn.Conv3d(6, width, kernel_size=patch_size, stride=patch_size)
        nn.init.zeros_(self.proj.weight)
        if self.proj.bias is not None:  # always there (bias=True); typed Optional by torch
            nn.init.zeros_(self.proj.bias)

    def forward(self, rays: torch.Tensor) -> torch.Tensor:
        return self.proj(rays.to(self.proj.weight.dtype)).flatten(2).transpose(1, 2)
