"""What one training step computes, per stage: the step modules and what they are built from.

The only stage-specific part of training. `vae` trains the autoencoder on pixels; `world` trains
the DiT on latents, which come from a frozen VAE kept outside the step module (so DDP/FSDP never
see its parameters) or straight from shards written by `worldloom encode`.

Why step modules: DDP and FSDP2 fire their gradient hooks around `forward`, so the whole loss
computation has to happen inside one module's `forward`; the networks' own `loss` /
`training_loss` methods are wrapped by `VaeStep` / `WorldStep` for that.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from training import checkpoint as ckpt
from training.config import TrainConfig


class VaeStep(nn.Module):
    """Wraps the VAE so DDP/FSDP see the whole loss computation inside `forward` (gradient hooks fire)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, batch: dict[str, Any], generator: torch.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        return self.net.loss(batch["video"], generator=generator)


class WorldStep(nn.Module):
    """Wraps the world model; latents come from the frozen VAE (outside this module) or from shards."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, batch: dict[str, Any], generator: torch.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        # per sample: clips without actions (real footage) train unconditionally, the others keep
        # their actions and camera even when the batch mixes both
        has_actions = torch.as_tensor(batch["has_actions"], dtype=torch.bool)
        if not bool(has_actions.any()):
            return self.net.training_loss(batch["latents"], captions=batch["caption"],
                                          intrinsics=batch["intrinsics"], generator=generator)
        return self.net.training_loss(
            batch["latents"], captions=batch["caption"], actions=batch["actions"],
            camera_to_world=batch["poses"], intrinsics=batch["intrinsics"], has_actions=has_actions,
            generator=generator,
        )


def model_overrides(config: TrainConfig) -> dict[str, Any]:
    """The clip fields `data` overrides in the named model config (frames, fps, height, width).

    The one place they are read: the model config is built from them, and checkpoints store them
    (`model_overrides`) so that `sample`, `eval` and `encode` rebuild the same model.
    """
    overrides: dict[str, Any] = {}
    if config.data.frames is not None:
        overrides["frames"] = config.data.frames
    if config.data.fps is not None:
        overrides["fps"] = config.data.fps
    if config.data.resolution is not None:
        overrides["height"], overrides["width"] = config.data.resolution
    return overrides


def model_config(config: TrainConfig) -> Any:
    """The named model config with the clip (frames, fps, resolution) overridden by `data`."""
    from model.configs import get_config

    return get_config(config.model, **model_overrides(config))


def tokens_per_sample(config: TrainConfig, model_cfg: Any) -> int:
    """Latent cells (vae) or DiT patches (world) per clip: the unit of tokens/s."""
    _, frames, height, width = model_cfg.latent_shape()
    if config.stage == "vae":
        return frames * height * width
    pt, ph, pw = model_cfg.dit.patch_size
    return (frames // pt) * (height // ph) * (width // pw)


def build_frozen_vae(config: TrainConfig, model_cfg: Any, device: torch.device) -> tuple[nn.Module, dict[str, Any]]:
    """The world stage's VAE from `vae_checkpoint`, frozen, and a copy of its weights (saved with the world's)."""
    from model.vae import VideoVAE

    loaded = ckpt.load_for_inference(config.vae_checkpoint)
    if loaded.state.get("stage") != "vae":
        from contract.errors import UserError

        raise UserError(f"vae_checkpoint {config.vae_checkpoint}: is a {loaded.state.get('stage')!r} checkpoint",
                        hint="point vae_checkpoint at a checkpoint of a `stage: vae` run")
    vae = VideoVAE(model_cfg.vae)
    vae.load_state_dict(loaded.weights)
    vae.requires_grad_(False).eval().to(device)
    return vae, {k: v.clone() for k, v in loaded.weights.items()}


def build_step(config: TrainConfig, model_cfg: Any) -> nn.Module:
    """The stage's step module with freshly initialised weights, identical on every rank (seeded here)."""
    torch.manual_seed(config.seed)  # identical initial weights on every rank
    if config.stage == "vae":
        from model.vae import VideoVAE

        return VaeStep(VideoVAE(model_cfg.vae))
    from model.world_model import WorldModel

    return WorldStep(WorldModel(model_cfg))


def to_device_batch(batch: dict[str, Any], device: torch.device, vae: nn.Module | None,
                    autocast: bool) -> dict[str, Any]:
    """uint8 (B,T,H,W,3) -> float (B,3,T,H,W) in [-1,1]; world stage: + latents (B,Cz,F,h,w) of the frozen VAE."""
    out = {k: (v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}
    if "video" in out:
        out["video"] = out["video"].permute(0, 4, 1, 2, 3).float().div(127.5).sub(1.0)
    if vae is not None and "latents" not in out:
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            mean, _ = vae.encode(out["video"])
        out["latents"] = mean.float()
    return out
