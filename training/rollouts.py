"""The rollouts a training run logs to MLflow (every `mlflow.sample_every` steps and at the end).

vae: the batch's first clip and its reconstruction side by side; world: a short sampled rollout
from the batch's first caption, decoded by the frozen VAE. They are for a person looking at the
run, so they use the live weights at that step and the run's seed (the same rollout each time).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from training.config import TrainConfig
from training.tracking import Rank0Tracker
from training.video_io import to_uint8_frames


@torch.no_grad()
def log_rollout(config: TrainConfig, model_cfg: Any, inner: nn.Module, vae: nn.Module | None,
                batch: dict[str, Any], tracker: Rank0Tracker, step: int, device: torch.device) -> None:
    """vae: input | reconstruction side by side; world: a short rollout from the batch's first caption.

    Runs on every rank (FSDP2 gathers parameters collectively); only rank 0 logs.
    """
    net = inner.net
    was_training = net.training
    net.eval()
    sharded = hasattr(inner, "unshard")  # FSDP2: gather the root's parameters; blocks gather on their own
    if sharded:
        inner.unshard()
    try:
        if config.stage == "vae":
            video = batch["video"][:1]
            mean, _ = net.encode(video)
            reconstruction = net.decode(mean)
            frames = np.concatenate([to_uint8_frames(video), to_uint8_frames(reconstruction)], axis=2)
        else:
            frames = world_rollout(config, model_cfg, net, vae, batch, device)
        tracker.log_rollout(frames, model_cfg.fps, step)
    finally:
        if sharded:
            inner.reshard()
        net.train(was_training)


def world_rollout(config: TrainConfig, model_cfg: Any, net: nn.Module, vae: nn.Module | None,
                  batch: dict[str, Any], device: torch.device) -> np.ndarray:
    """(T, H, W, 3) uint8: `mlflow.sample_frames` (rounded to 1 + tc*k) sampled from the first caption."""
    from model.sampler import sample

    if vae is None:  # trained on precomputed latents: only a VAE can show pixels
        return np.zeros((1, model_cfg.height, model_cfg.width, 3), np.uint8)
    tc = model_cfg.vae.temporal_compression
    frames = 1 + tc * max(1, (config.mlflow.sample_frames - 1) // tc)
    return sample(net, vae, prompt=batch["caption"][0], num_frames=frames,
                  steps=config.mlflow.sample_steps, seed=config.seed)
