"""The world model: a chunk-causal differential-attention DiT on VAE latents.

    latents (B, Cz, F, h, w) --3D patch embed--> tokens (B, N, W), N = F * (h/ph) * (w/pw)
    t (B, F) per latent frame --timestep MLP--> c (B, F, W)  (+ action embedding per frame)
    c --shared adaLN-single MLP--> (B, F, 6, W), plus each block's learned (6, W) table
    text --frozen open_clip tower--> (B, L, Dt) --projection--> (B, L, W) for cross-attention
    camera poses + intrinsics --Plücker rays--> (B, 6, F, h, w) --zero-init patch embed--> added in
    every block
    blocks: differential self-attention (3D RoPE, QK-norm, chunk-causal mask or KV cache),
            differential cross-attention to text, SwiGLU MLP
    final adaLN + linear --unpatchify--> velocity (B, Cz, F, h, w)

`training_loss` implements rectified flow with diffusion forcing (see model/flow.py).
bf16 autocast is used only on CUDA; on CPU everything runs in float32.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from model import flow
from model.conditioning import (
    ActionEmbedding,
    AdaLNSingle,
    CameraEmbedding,
    TimestepEmbedding,
    group_actions,
    latent_frame_poses,
    plucker_rays,
)
from model.configs import WorldModelConfig
from model.dit import DiTBlock, FinalLayer, chunk_causal_mask
from model.kv_cache import KVCache
from model.rope import grid_positions, rope_angles
from model.text_encoder import TextEncoder


class WorldModel(nn.Module):
    latent_mean: torch.Tensor  # (Cz,) buffers, see __init__
    latent_std: torch.Tensor
    def __init__(self, config: WorldModelConfig) -> None:
        super().__init__()
        dit = config.dit
        if dit.patch_size[0] != 1:
            raise ValueError("temporal patch size must be 1 (one chunk-causal unit per latent frame)")
        self.config = config
        width = dit.width
        self.patch_embed = nn.Conv3d(dit.latent_channels, width, kernel_size=dit.patch_size, stride=dit.patch_size)
        self.text_encoder = TextEncoder(dit.text)
        self.text_proj = nn.Sequential(nn.Linear(self.text_encoder.width, width), nn.GELU(approximate="tanh"),
                                       nn.Linear(width, width))
        self.timestep_embed = TimestepEmbedding(width, dit.timestep_dim)
        self.action_embed = ActionEmbedding(dit.action_dim, config.vae.temporal_compression, width)
        self.adaln = AdaLNSingle(width)
        self.camera_embed = CameraEmbedding(dit.patch_size, width) if dit.camera else None
        self.blocks = nn.ModuleList(DiTBlock(dit, i) for i in range(dit.depth))
        patch_volume = dit.patch_size[0] * dit.patch_size[1] * dit.patch_size[2]
        self.final = FinalLayer(width, patch_volume, dit.latent_channels)
        # Per-channel statistics of the VAE's latents (Wan, LTX and SD normalise the same way):
        # the flow interpolates latents with unit Gaussian noise, so latents of another scale
        # shift the signal-to-noise of every timestep (a latent of std 0.1 is buried under the
        # noise at t = 0.2 already). Set once from data before training (`set_latent_statistics`),
        # saved with the weights; the model sees (z - mean) / std and the sampler returns VAE scale.
        self.register_buffer("latent_mean", torch.zeros(dit.latent_channels))
        self.register_buffer("latent_std", torch.ones(dit.latent_channels))
        self.register_load_state_dict_pre_hook(_default_latent_statistics)
        self._null_text: tuple[torch.Tensor, torch.Tensor] | None = None

    # ---------------------------------------------------------------- helpers
    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for name, p in self.named_parameters() if not name.startswith("text_encoder.")]

    def encode_text(self, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, L, Dt) float32 token embeddings and (B, L) bool mask from the frozen text tower."""
        return self.text_encoder.encode(captions)

    def null_text(self, batch: int, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The empty caption's embedding, the unconditional branch of classifier-free guidance."""
        if self._null_text is None:
            self._null_text = self.encode_text([""])
        emb, mask = self._null_text
        emb, mask = _fit_length(emb, mask, length)
        return emb.expand(batch, -1, -1), mask.expand(batch, -1)

    @torch.no_grad()
    def set_latent_statistics(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Per-channel mean and std (Cz,) of the training latents, measured before training."""
        self.latent_mean.copy_(mean.to(self.latent_mean))
        self.latent_std.copy_(std.to(self.latent_std).clamp(min=1e-4))

    def normalise_latents(self, z: torch.Tensor) -> torch.Tensor:
        """VAE latents (B, Cz, F, h, w) -> the unit-scale latents the transformer works on."""
        return (z - self.latent_mean.view(1, -1, 1, 1, 1)) / self.latent_std.view(1, -1, 1, 1, 1)

    def denormalise_latents(self, z: torch.Tensor) -> torch.Tensor:
        return z * self.latent_std.view(1, -1, 1, 1, 1) + self.latent_mean.view(1, -1, 1, 1, 1)

    def chunk_of_frames(self, frame_offset: int, frames: int) -> torch.Tensor:
        dit = self.config.dit
        return torch.tensor([dit.chunk_index_of_frame(f) for f in range(frame_offset, frame_offset + frames)])

    def action_features(self, actions: torch.Tensor) -> torch.Tensor:
        """(B, T, 8) per video frame -> (B, F, tc * 8) per latent frame."""
        return group_actions(actions.float(), self.config.vae.temporal_compression)

    def camera_rays(self, camera_to_world: torch.Tensor, intrinsics: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """(B, T, 4, 4) + (B, 3, 3)|(B, T, 3, 3) per video frame -> Plücker rays (B, 6, F, h, w)."""
        tc = self.config.vae.temporal_compression
        poses = latent_frame_poses(camera_to_world, tc)
        if intrinsics.dim() == 4:
            intrinsics = intrinsics[:, ::tc]
        return plucker_rays(poses, intrinsics, h, w, self.config.vae.spatial_compression)

    # ---------------------------------------------------------------- forward
    def forward(self, x: torch.Tensor, t: torch.Tensor, text: torch.Tensor, text_mask: torch.Tensor | None = None,
                *, action_features: torch.Tensor | None = None, rays: torch.Tensor | None = None,
                condition_mask: torch.Tensor | None = None,
                frame_offset: int = 0, cache: KVCache | None = None, write_cache: bool = False) -> torch.Tensor:
        """Velocity for noisy latents.

        x (B, Cz, F, h, w); t (B, F) per latent frame; text (B, L, Dt) and text_mask (B, L);
        action_features (B, F, tc*8); rays (B, 6, F, h, w); condition_mask (B,) bool: which samples
        use their actions + camera (False = exactly the same as passing None for that sample, the
        unconditional branch of guidance); frame_offset: absolute index of x's first latent frame
        (chunk boundaries; RoPE without a cache). Without a cache the frames attend chunk-causally;
        with one, x must be one chunk and attends to the cached sink + window and itself
        (bidirectionally), at time positions that follow the cached frames (model/kv_cache.py).
        """
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=x.is_cuda):
            return self._forward(x, t, text, text_mask, action_features, rays, condition_mask, frame_offset,
                                 cache, write_cache)

    def _forward(self, x, t, text, text_mask, action_features, rays, condition_mask, frame_offset, cache,
                 write_cache):
        dit = self.config.dit
        b, _, frames, h, w = x.shape
        _, ph, pw = dit.patch_size
        hp, wp = h // ph, w // pw
        tokens = self.patch_embed(x).flatten(2).transpose(1, 2)  # (B, N, W)

        # RoPE time positions: absolute without a cache; with one, right after the cached sink +
        # window, so a rollout of any length uses the positions of a training window
        position = frame_offset
        if cache is not None:
            cache.set_rope(dit.head_dim, dit.rope_theta)
            position = cache.next_position()
            if write_cache:
                cache.pending_frames = frames
        positions = grid_positions(frames, hp, wp, position, device=x.device)
        rope = rope_angles(positions, dit.head_dim, dit.rope_theta)

        # Dropped samples get no action/camera term at all (mask on the embeddings' outputs, not
        # on their inputs: embed(0) has a bias, and zero actions mean "stand still", not "unknown")
        keep = None if condition_mask is None else condition_mask.to(x.device, torch.bool)
        conditioning = self.timestep_embed(t)  # (B, F, W)
        if action_features is not None:
            action = self.action_embed(action_features)  # (B, F, W)
            if keep is not None:
                action = action * keep[:, None, None].to(action.dtype)
            conditioning = conditioning + action
        modulation = self.adaln(conditioning)  # (B, F, 6, W)

        camera = None
        if rays is not None and self.camera_embed is not None:
            camera = self.camera_embed(rays)  # (B, N, W)
            if keep is not None:
                camera = camera * keep[:, None, None].to(camera.dtype)

        context = self.text_proj(text.to(tokens.dtype))
        context_mask = None if text_mask is None else text_mask[:, None, None, :].to(x.device)

        chunk_of_token = self.chunk_of_frames(frame_offset, frames).repeat_interleave(hp * wp).to(x.device)
        mask = chunk_causal_mask(chunk_of_token, chunk_of_token)
        mask = None if bool(mask.all()) else mask
        if mask is not None and cache is not None and cache.cached_tokens() > 0:
            past = torch.ones(mask.shape[0], cache.cached_tokens(), dtype=torch.bool, device=x.device)
            mask = torch.cat((past, mask), dim=1)

        for block in self.blocks:
            tokens = block(tokens, modulation, camera=camera, text=context, text_mask=context_mask,
                           rope=rope, mask=mask, cache=cache, write_cache=write_cache)
        out = self.final(tokens, conditioning)  # (B, N, ph*pw*Cz)
        out = out.view(b, frames, hp, wp, ph, pw, dit.latent_channels)
        return out.permute(0, 6, 1, 2, 4, 3, 5).reshape(b, dit.latent_channels, frames, h, w).float()

    # ---------------------------------------------------------------- training
    def training_loss(self, latents: torch.Tensor, *, captions: list[str] | None = None,
                      text_emb: torch.Tensor | None = None, text_mask: torch.Tensor | None = None,
                      actions: torch.Tensor | None = None, camera_to_world: torch.Tensor | None = None,
                      intrinsics: torch.Tensor | None = None, image_condition_prob: float | None = None,
                      has_actions: torch.Tensor | None = None,
                      generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        """Rectified-flow loss under diffusion forcing; see docs/model.md "API for training".

        latents: (B, Cz, F, h, w) as the VAE encodes them; normalised here with the model's latent
        statistics (`set_latent_statistics`).

        has_actions (B,) bool: samples whose actions/camera are real (False: real footage with
        placeholder zeros, trained unconditionally like a guidance-dropped sample); None = all.
        `generator` must live on latents.device."""
        config = self.config
        b, _, frames, h, w = latents.shape
        device = latents.device
        latents = self.normalise_latents(latents)
        if text_emb is None:
            text_emb, text_mask = self.encode_text(captions if captions is not None else [""] * b)
        text_emb = text_emb.to(device)
        if text_mask is None:
            text_mask = torch.ones(text_emb.shape[:2], dtype=torch.bool, device=device)
        text_mask = text_mask.to(device)

        drops = torch.rand((b, 2), generator=generator, device=device)
        drop_text = drops[:, 0] < config.flow.text_dropout_prob
        drop_action = drops[:, 1] < config.flow.action_dropout_prob
        if bool(drop_text.any()):
            null_emb, null_mask = self.null_text(b, text_emb.shape[1])
            text_emb = torch.where(drop_text[:, None, None], null_emb.to(device), text_emb)
            text_mask = torch.where(drop_text[:, None], null_mask.to(device), text_mask)

        video_frames = config.vae.video_frames(frames)
        for name, value in (("actions", actions), ("camera_to_world", camera_to_world)):
            if value is not None and value.shape[1] != video_frames:
                raise ValueError(f"{name} has {value.shape[1]} frames; latents with {frames} latent frames "
                                 f"need {video_frames} (one per video frame)")
        keep = ~drop_action
        if has_actions is not None:
            keep = keep & has_actions.to(device, torch.bool)
        action_features = None
        if actions is not None:
            action_features = self.action_features(actions.to(device))
        rays = None
        if camera_to_world is not None:
            if intrinsics is None:
                raise ValueError("camera_to_world needs intrinsics")
            rays = self.camera_rays(camera_to_world.to(device), intrinsics.to(device), h, w)

        _, ph, pw = config.dit.patch_size
        shift = flow.resolution_shift(config.flow, (h // ph) * (w // pw))
        prob = config.flow.image_condition_prob if image_condition_prob is None else image_condition_prob
        t, weight = flow.sample_training_timesteps(b, self.chunk_of_frames(0, frames), config.flow, shift,
                                                   prob, generator, device)
        noise = torch.randn(latents.shape, generator=generator, device=device, dtype=latents.dtype)
        x_t = flow.interpolate(latents, noise, t)
        velocity = self(x_t, t, text_emb, text_mask, action_features=action_features, rays=rays,
                        condition_mask=keep)
        per_frame = (velocity - flow.velocity_target(latents, noise)).pow(2).mean(dim=(1, 3, 4))  # (B, F)
        loss = (per_frame * weight).sum() / weight.sum().clamp(min=1.0)
        metrics = {
            "loss": loss.item(),
            "t_mean": t.mean().item(),
            "scored_frames": weight.sum().item(),
            "frame0_unscored": float((weight[:, 0] == 0).float().mean().item()),  # image-cond. or context
            "text_dropped": drop_text.float().mean().item(),
            "conditioned": keep.float().mean().item() if (actions is not None or camera_to_world is not None) else 0.0,
            "shift": shift,
        }
        return loss, metrics


def _default_latent_statistics(module: nn.Module, state_dict: dict, prefix: str, *args: object) -> None:
    """Weights saved before the latent statistics existed load as identity statistics (mean 0, std 1),
    which is exactly how those models were trained."""
    for name, fill in (("latent_mean", torch.zeros_like), ("latent_std", torch.ones_like)):
        if prefix + name not in state_dict and any(k.startswith(prefix) for k in state_dict):
            state_dict[prefix + name] = fill(getattr(module, name))


def _fit_length(emb: torch.Tensor, mask: torch.Tensor, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    if emb.shape[1] >= length:
        return emb[:, :length], mask[:, :length]
    pad = length - emb.shape[1]
    return F.pad(emb, (0, 0, 0, pad)), F.pad(mask, (0, pad), value=False)
