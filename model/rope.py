"""3D rotary position embedding over (latent frame, row, column).

The head width is split into three even parts, one per axis: rows and columns get
`2 * (head_dim // 6)` channels each and time gets the rest (time is the axis that grows during
long rollouts, so it gets the most frequencies). Positions are absolute latent indices, so keys
kept in the KV cache stay valid as the rollout advances.
"""
from __future__ import annotations

import torch


def axis_dims(head_dim: int) -> tuple[int, int, int]:
    """(time, height, width) channel split of one head; each even."""
    if head_dim % 2:
        raise ValueError(f"head_dim={head_dim} must be even for RoPE")
    spatial = 2 * (head_dim // 6)
    return head_dim - 2 * spatial, spatial, spatial


def grid_positions(frames: int, height: int, width: int, frame_offset: int = 0,
                   device: torch.device | None = None) -> torch.Tensor:
    """(N, 3) integer positions of a (frames, height, width) token grid in raster order."""
    f = torch.arange(frame_offset, frame_offset + frames, device=device)
    h = torch.arange(height, device=device)
    w = torch.arange(width, device=device)
    grid = torch.stack(torch.meshgrid(f, h, w, indexing="ij"), dim=-1)
    return grid.reshape(-1, 3)


def rope_angles(positions: torch.Tensor, head_dim: int, theta: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin tables, each (N, head_dim // 2), float32."""
    parts = []
    for axis, dim in enumerate(axis_dims(head_dim)):
        if dim == 0:
            continue
        inv_freq = theta ** (-torch.arange(0, dim, 2, device=positions.device, dtype=torch.float64) / dim)
        parts.append(positions[:, axis, None].double() * inv_freq[None, :])
    angles = torch.cat(parts, dim=-1)
    return angles.cos().float(), angles.sin().float()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate channel pairs (2i, 2i+1) of x (..., N, head_dim) by the per-token angles."""
    x32 = x.float().unflatten(-1, (-1, 2))  # (..., N, dh/2, 2)
    x_even, x_odd = x32[..., 0], x32[..., 1]
    rotated = torch.stack((x_even * cos - x_odd * sin, x_even * sin + x_odd * cos), dim=-1)
    return rotated.flatten(-2).to(x.dtype)
