"""The world stage's latent statistics: per-channel mean and std of the training latents.

Why: the DiT trains on per-channel normalised latents (docs/model.md); a VAE's channels differ
in scale by orders of magnitude, so a fresh world run measures them first, on
`data.latent_statistics_batches` batches, and the model keeps them with its weights.
"""
from __future__ import annotations

import torch
from torch import nn

from training.config import TrainConfig
from training.data import WindowSpec, make_loader
from training.steps import to_device_batch

STATISTICS_SEED_OFFSET = 7919  # the statistics loader's seed is config.seed + this: a stream of its own


@torch.no_grad()
def measure_latent_statistics(config: TrainConfig, net: nn.Module, sources: list[tuple[str, float]],
                              spec: WindowSpec, vae: nn.Module | None, device: torch.device, rank: int,
                              world_size: int, autocast: bool) -> None:
    """Per-channel mean/std of the training latents, averaged over ranks, into the world model.

    Read with a loader of its own (another seed), so the training stream and its resumable
    position are untouched; every rank ends with the same statistics (all-reduced)."""
    batches = config.data.latent_statistics_batches
    if batches == 0:
        return
    loader = make_loader(sources, spec, batch_size=config.batch_size, seed=config.seed + STATISTICS_SEED_OFFSET,
                         rank=rank, world_size=world_size, shuffle_buffer=config.data.shuffle_buffer,
                         loader_workers=0, latents=bool(config.data.latents), on_damaged=config.data.on_damaged)
    channels = net.latent_mean.numel()
    moments = torch.zeros(3, channels, dtype=torch.float64, device=device)  # count, sum, sum of squares
    for _ in range(batches):
        latents = to_device_batch(loader.next_batch(), device, vae, autocast)["latents"].double()
        per_channel = latents.transpose(0, 1).reshape(channels, -1)
        moments[0] += per_channel.shape[1]
        moments[1] += per_channel.sum(dim=1)
        moments[2] += per_channel.pow(2).sum(dim=1)
    if torch.distributed.is_initialized():
        torch.distributed.all_reduce(moments)
    mean = moments[1] / moments[0]
    std = (moments[2] / moments[0] - mean.pow(2)).clamp(min=0).sqrt()
    net.set_latent_statistics(mean.float(), std.float())
