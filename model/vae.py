"""Causal 3D-convolution video VAE.

Every convolution is causal in time (padded with copies of the first frame in front, never with
future frames), normalisation is per position (RMSNorm over channels, no statistics over time),
so latent frame i depends only on video frames up to i * tc. That gives the frame-count rule
``T = 1 + tc * k  ->  1 + k`` latent frames, lets an image encode to one latent frame, and makes
chunk-by-chunk processing exact: each causal convolution keeps the last (kernel - 1) input
frames of the previous chunk in a `StreamState`, so encoding or decoding a long video chunk by
chunk gives the same result as one pass with memory bounded by the chunk size.

Temporal down-sampling keeps frames with an even *global* index after a causal convolution
(1 + 2k -> 1 + k); temporal up-sampling turns each latent frame into two frames through its
channels (depth-to-time), except global frame 0, which yields one (1 + k -> 1 + 2k).
"""
from __future__ import annotations

import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from model.configs import VAEConfig
from model.errors import ModelError as UserError  # alias: a one-line diff while this file is edited in parallel
from model.norms import RMSNorm


class StreamState:
    """Per-module carry-over between chunks: cached frames of causal convs, global frame counters."""

    def __init__(self) -> None:
        self.frames: dict[int, torch.Tensor] = {}
        self.counters: dict[int, int] = {}


class CausalConv3d(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel: int = 3, spatial_stride: int = 1) -> None:
        super().__init__()
        self.time_pad = kernel - 1
        self.conv = nn.Conv3d(in_channels, out_channels, kernel_size=kernel,
                              stride=(1, spatial_stride, spatial_stride), padding=(0, kernel // 2, kernel // 2))

    def forward(self, x: torch.Tensor, state: StreamState | None = None) -> torch.Tensor:
        if self.time_pad:
            cached = None if state is None else state.frames.get(id(self))
            pad = x[:, :, :1].expand(-1, -1, self.time_pad, -1, -1) if cached is None else cached
            x = torch.cat((pad, x), dim=2)
            if state is not None:
                state.frames[id(self)] = x[:, :, -self.time_pad:].detach()
        return self.conv(x)


class ChannelNorm(nn.Module):
    """RMSNorm over channels at every (t, y, x): causal and chunk-invariant."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = RMSNorm(channels, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.movedim(1, -1)).movedim(-1, 1)


class ResBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.norm1 = ChannelNorm(in_channels)
        self.conv1 = CausalConv3d(in_channels, out_channels)
        self.norm2 = ChannelNorm(out_channels)
        self.conv2 = CausalConv3d(out_channels, out_channels)
        self.skip = nn.Conv3d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: torch.Tensor, state: StreamState | None = None) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)), state)
        h = self.conv2(F.silu(self.norm2(h)), state)
        return self.skip(x) + h


class Downsample(nn.Module):
    """2x spatial (strided causal conv), optionally 2x temporal (keep even global frame indices)."""

    def __init__(self, channels: int, temporal: bool) -> None:
        super().__init__()
        self.conv = CausalConv3d(channels, channels, spatial_stride=2)
        self.temporal = temporal

    def forward(self, x: torch.Tensor, state: StreamState | None = None) -> torch.Tensor:
        x = self.conv(x, state)
        if not self.temporal:
            return x
        start = 0 if state is None else state.counters.get(id(self), 0)
        if state is not None:
            state.counters[id(self)] = start + x.shape[2]
        keep = [i for i in range(x.shape[2]) if (start + i) % 2 == 0]
        return x[:, :, keep]


class Upsample(nn.Module):
    """Optionally 2x temporal (depth-to-time; global frame 0 yields one frame), then 2x spatial."""

    def __init__(self, channels: int, temporal: bool) -> None:
        super().__init__()
        self.temporal = temporal
        self.time_conv = CausalConv3d(channels, 2 * channels) if temporal else None
        self.conv = CausalConv3d(channels, channels)

    def forward(self, x: torch.Tensor, state: StreamState | None = None) -> torch.Tensor:
        if self.time_conv is not None:
            start = 0 if state is None else state.counters.get(id(self), 0)
            if state is not None:
                state.counters[id(self)] = start + x.shape[2]
            b, c, t, h, w = x.shape
            pairs = self.time_conv(x, state).view(b, 2, c, t, h, w)
            x = pairs.permute(0, 2, 3, 1, 4, 5).reshape(b, c, 2 * t, h, w)  # (a0, b0, a1, b1, ...)
            if start == 0:
                x = x[:, :, 1:]  # global frame 0 maps to one frame
        b, c, t, h, w = x.shape
        x = F.interpolate(x.transpose(1, 2).reshape(b * t, c, h, w), scale_factor=2.0, mode="nearest")
        x = x.view(b, t, c, 2 * h, 2 * w).transpose(1, 2)
        return self.conv(x, state)


def _level_channels(config: VAEConfig) -> list[int]:
    return [config.base_channels * m for m in config.channel_multipliers]


def _temporal_at(config: VAEConfig, level: int) -> bool:
    """Temporal down-sampling happens at the deepest `temporal_levels` spatial levels (cheapest)."""
    return level >= config.spatial_levels - config.temporal_levels


class Encoder(nn.Module):
    def __init__(self, config: VAEConfig) -> None:
        super().__init__()
        channels = _level_channels(config)
        self.conv_in = CausalConv3d(config.in_channels, channels[0])
        self.blocks = nn.ModuleList()
        previous = channels[0]
        for level, width in enumerate(channels):
            for _ in range(config.res_blocks_per_level):
                self.blocks.append(ResBlock(previous, width))
                previous = width
            self.blocks.append(Downsample(width, temporal=_temporal_at(config, level)))
        self.mid = ResBlock(previous, previous)
        self.norm_out = ChannelNorm(previous)
        self.conv_out = CausalConv3d(previous, 2 * config.latent_channels)

    def forward(self, x: torch.Tensor, state: StreamState | None = None) -> torch.Tensor:
        x = self.conv_in(x, state)
        for block in self.blocks:
            x = block(x, state)
        x = self.mid(x, state)
        return self.conv_out(F.silu(self.norm_out(x)), state)


class Decoder(nn.Module):
    def __init__(self, config: VAEConfig) -> None:
        super().__init__()
        channels = _level_channels(config)
        self.conv_in = CausalConv3d(config.latent_channels, channels[-1])
        self.mid = ResBlock(channels[-1], channels[-1])
        self.blocks = nn.ModuleList()
        previous = channels[-1]
        for level in reversed(range(len(channels))):
            width = channels[level]
            for _ in range(config.res_blocks_per_level):
                self.blocks.append(ResBlock(previous, width))
                previous = width
            self.blocks.append(Upsample(width, temporal=_temporal_at(config, level)))
        self.norm_out = ChannelNorm(previous)
        self.conv_out = CausalConv3d(previous, config.in_channels)

    def forward(self, z: torch.Tensor, state: StreamState | None = None) -> torch.Tensor:
        x = self.mid(self.conv_in(z, state), state)
        for block in self.blocks:
            x = block(x, state)
        return self.conv_out(F.silu(self.norm_out(x)), state)


class VideoVAE(nn.Module):
    """video (B, 3, T, H, W) in [-1, 1]  <->  latents (B, Cz, 1 + (T-1)/tc, H/s, W/s)."""

    def __init__(self, config: VAEConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)

    def _check_video(self, video: torch.Tensor) -> None:
        if video.dim() != 5 or video.shape[1] != self.config.in_channels:
            raise ValueError(f"video must be (B, {self.config.in_channels}, T, H, W), got {tuple(video.shape)}")
        self.config.latent_frames(video.shape[2])
        s = self.config.spatial_compression
        if video.shape[3] % s or video.shape[4] % s:
            raise UserError(f"resolution {video.shape[3]}x{video.shape[4]}: height and width must be multiples "
                            f"of the VAE's spatial compression {s}; resize or crop the clips")

    def encode(self, video: torch.Tensor, chunked: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (mean, logvar), each (B, Cz, F, h, w). chunked: bounded memory, same result."""
        self._check_video(video)
        if not chunked:
            moments = self.encoder(video)
        else:
            state = StreamState()
            moments = torch.cat([self.encoder(piece, state) for piece in self._video_chunks(video)], dim=2)
        mean, logvar = moments.chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)

    def _video_chunks(self, video: torch.Tensor) -> Iterator[torch.Tensor]:
        tc, m = self.config.temporal_compression, self.config.chunk_latent_frames
        first = 1 + tc * (m - 1)
        yield video[:, :, :first]
        for start in range(first, video.shape[2], tc * m):
            yield video[:, :, start:start + tc * m]

    def decode(self, z: torch.Tensor, chunked: bool = False) -> torch.Tensor:
        if not chunked:
            return self.decoder(z)
        return torch.cat(list(self.iter_decode(z)), dim=2)

    def iter_decode(self, z: torch.Tensor, state: StreamState | None = None) -> Iterator[torch.Tensor]:
        """Decode chunk by chunk (cfg.chunk_latent_frames latent frames at a time), yielding video
        pieces; pass a `StreamState` to continue decoding across calls (streaming rollouts)."""
        state = StreamState() if state is None else state
        m = self.config.chunk_latent_frames
        for start in range(0, z.shape[2], m):
            yield self.decoder(z[:, :, start:start + m], state)

    @staticmethod
    def sample_latent(mean: torch.Tensor, logvar: torch.Tensor,
                      generator: torch.Generator | None = None) -> torch.Tensor:
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return mean + torch.exp(0.5 * logvar) * noise

    def loss(self, video: torch.Tensor, generator: torch.Generator | None = None
             ) -> tuple[torch.Tensor, dict[str, float]]:
        """MSE reconstruction + kl_weight * KL(q(z|x) || N(0, I)) (KL summed over latent channels,
        averaged over latent positions)."""
        mean, logvar = self.encode(video)
        z = self.sample_latent(mean, logvar, generator)
        reconstruction = self.decode(z)
        mse = F.mse_loss(reconstruction.float(), video.float())
        kl = 0.5 * (mean.float().pow(2) + logvar.float().exp() - 1.0 - logvar.float()).sum(dim=1).mean()
        loss = mse + self.config.kl_weight * kl
        psnr = 10.0 * math.log10(4.0 / max(mse.item(), 1e-12))
        return loss, {"loss": loss.item(), "recon_mse": mse.item(), "kl": kl.item(), "psnr": psnr}
