"""Chunk-by-chunk autoregressive sampling with a sink + rolling-window KV cache.

For every chunk of latent frames (chunk 0 = `first_chunk_frames`, then `chunk_frames` each):
  1. start from noise and integrate the rectified-flow ODE from t = 1 to t = 0 with `steps`
     Euler steps on the shifted schedule, attending to the cached context;
  2. classifier-free guidance with up to three branches, each with its own KV cache:
        uncond (empty caption, no actions/camera), text (caption, no actions/camera), full;
        v = v_uncond + cfg_text (v_text - v_uncond) + cfg_action (v_full - v_text);
  3. run the finished chunk once more with `write_cache=True`, so later chunks attend to it,
     re-noised to the context level training used (`context_noise`, below); the cache keeps the
     first chunk (sink) and the last `window_chunks` chunks, so memory is constant however long
     the video, and its time positions stay inside the training window (model/kv_cache.py).
Image-to-video: the image is encoded as latent frame 0, held clean (t = 0) in chunk 0 and
committed clean (training holds the image frame clean too).

Context noise, the one choice: training shows the model context chunks lightly noised
(t ~ U(0, context_noise_max), flow.py) and a clean image frame; so generated chunks are committed
at the same kind of level (default: the middle of that range), never at a level training did not
use. Noising generated context (GameNGen's noise augmentation, Diffusion Forcing's stabilisation)
tells the model its context is imperfect, which curbs the drift of long rollouts; the real image
is committed clean because it is exact.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import torch

from model import flow
from model.errors import ModelError
from model.kv_cache import KVCache
from model.vae import StreamState, VideoVAE
from model.world_model import WorldModel


@dataclass
class _Branch:
    name: str
    text: torch.Tensor
    text_mask: torch.Tensor
    use_actions: bool
    cache: KVCache


@dataclass(frozen=True)
class _ChunkConditioning:
    """What one chunk is generated under: its first latent frame and its slices of the conditioning."""

    start: int
    action_features: torch.Tensor | None
    rays: torch.Tensor | None


def _velocity(model: WorldModel, chunk: _ChunkConditioning, branch: _Branch, x_in: torch.Tensor,
              t_frames: torch.Tensor, write: bool) -> torch.Tensor:
    """The model's velocity for one guidance branch (actions and camera only on branches that use them)."""
    return model(x_in, t_frames, branch.text, branch.text_mask,
                 action_features=chunk.action_features if branch.use_actions else None,
                 rays=chunk.rays if branch.use_actions else None,
                 frame_offset=chunk.start, cache=branch.cache, write_cache=write)


def trained_window_chunks(model: WorldModel) -> int:
    """The most window chunks (besides the sink) whose positions a training clip covered:
    sink + window + the chunk being generated must fit in the trained latent frames."""
    dit = model.config.dit
    trained = model.config.latent_frames
    return max(0, (trained - dit.first_chunk_frames) // dit.chunk_frames - 1)


def context_noise_level(model: WorldModel, context_noise: float | None) -> float:
    """The t at which generated chunks are committed; inside the training range [0, context_noise_max]."""
    high = model.config.flow.context_noise_max
    level = high / 2 if context_noise is None else float(context_noise)
    if not 0.0 <= level <= high:
        raise ModelError(f"context_noise={level}: training noised context with t in [0, {high}]; "
                        f"pick a level inside it")
    return level


def chunk_ranges(model: WorldModel, latent_frames: int) -> list[tuple[int, int]]:
    dit = model.config.dit
    ranges, start = [], 0
    while start < latent_frames:
        size = dit.first_chunk_frames if start == 0 else dit.chunk_frames
        ranges.append((start, min(start + size, latent_frames)))
        start += size
    return ranges


@torch.inference_mode()
def iter_sample_latents(model: WorldModel, *, latent_frames: int, latent_height: int, latent_width: int,
                        prompt: str = "", image_latent: torch.Tensor | None = None,
                        action_features: torch.Tensor | None = None, rays: torch.Tensor | None = None,
                        cfg_text: float = 3.0, cfg_action: float = 1.5, steps: int = 8,
                        window_chunks: int | None = None, context_noise: float | None = None,
                        seed: int = 0) -> Iterator[torch.Tensor]:
    """Yield clean latent chunks (1, Cz, f, h, w) one by one, at the VAE's scale (ready to decode).

    action_features: (1, F, tc*8) for all `latent_frames` (see WorldModel.action_features);
    rays: (1, 6, F, h, w) Plücker rays (see WorldModel.camera_rays); image_latent: (1, Cz, 1, h, w), as the
    VAE encodes it (normalised here with the model's latent statistics).
    window_chunks: chunks kept besides the sink; None (and anything larger) = what the training
    clip covered (`trained_window_chunks`), so no time position is new to the model.
    context_noise: t at which generated chunks are committed (None = context_noise_max / 2).
    """
    model.eval()
    config = model.config
    device = next(model.parameters()).device
    channels = config.dit.latent_channels
    generator = torch.Generator(device="cpu").manual_seed(seed)
    trained = trained_window_chunks(model)
    window_chunks = trained if window_chunks is None else min(int(window_chunks), trained)
    context_t = context_noise_level(model, context_noise)

    text, text_mask = model.encode_text([prompt])
    text, text_mask = text.to(device), text_mask.to(device)
    null_text, null_mask = model.null_text(1, text.shape[1])
    null_text, null_mask = null_text.to(device), null_mask.to(device)
    has_action = action_features is not None or rays is not None
    depth = config.dit.depth
    branches = [_Branch("full", text, text_mask, True, KVCache(depth, window_chunks))]
    if has_action and cfg_action != 1.0:
        branches.append(_Branch("text", text, text_mask, False, KVCache(depth, window_chunks)))
    if cfg_text != 1.0:
        branches.append(_Branch("uncond", null_text, null_mask, False, KVCache(depth, window_chunks)))
    names = {branch.name for branch in branches}

    _, ph, pw = config.dit.patch_size
    shift = flow.resolution_shift(config.flow, (latent_height // ph) * (latent_width // pw))
    schedule = flow.shift_timesteps(torch.linspace(1.0, 0.0, steps + 1), shift).tolist()

    if image_latent is not None:  # the transformer works on normalised latents; chunks leave at VAE scale
        image_latent = model.normalise_latents(image_latent.to(device))
    for start, end in chunk_ranges(model, latent_frames):
        n = end - start
        x = torch.randn((1, channels, n, latent_height, latent_width), generator=generator).to(device)
        # image-to-video: chunk 0 starts with the given image frame, held clean throughout
        first = image_latent.to(device) if image_latent is not None and start == 0 else None
        clean_first = first is not None
        if first is not None:
            x[:, :, :1] = first
        acts = None if action_features is None else action_features[:, start:end].to(device)
        ray_chunk = None if rays is None else rays[:, :, start:end].to(device)
        chunk = _ChunkConditioning(start, acts, ray_chunk)

        for t_now, t_next in pairwise(schedule):
            t_frames = torch.full((1, n), t_now, device=device)
            if clean_first:
                t_frames[:, 0] = 0.0
            v = {branch.name: _velocity(model, chunk, branch, x, t_frames, False) for branch in branches}
            guided = v["full"]
            if "uncond" in names:
                text_v = v["text"] if "text" in names else v["full"]
                guided = v["uncond"] + cfg_text * (text_v - v["uncond"])
                if "text" in names:
                    guided = guided + cfg_action * (v["full"] - v["text"])
            elif "text" in names:
                guided = v["text"] + cfg_action * (v["full"] - v["text"])
            x = x + (t_next - t_now) * guided
            if first is not None:
                x[:, :, :1] = first

        # commit the chunk's K/V at the context level training used (the real image: clean)
        t_commit = torch.full((1, n), context_t, device=device)
        committed = x
        if context_t > 0.0:
            noise = torch.randn(x.shape, generator=generator).to(device)
            committed = flow.interpolate(x, noise, t_commit)
        if first is not None:
            t_commit[:, 0] = 0.0
            committed[:, :, :1] = first
        for branch in branches:
            _velocity(model, chunk, branch, committed, t_commit, True)
        yield model.denormalise_latents(x)


def _frames_for(model: WorldModel, num_frames: int | None, seconds: float | None, fps: float) -> int:
    tc = model.config.vae.temporal_compression
    if num_frames is None:
        if seconds is None:
            return model.config.frames
        num_frames = int(round(seconds * fps)) + 1
    k = max(0, -(-(num_frames - 1) // tc))  # round up to 1 + tc*k
    return 1 + tc * k


def prepare_conditioning(model: WorldModel, num_frames: int, height: int, width: int,
                         actions: np.ndarray | None, camera_to_world: np.ndarray | None,
                         intrinsics: np.ndarray | None) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Per-video-frame arrays -> (action_features (1,F,tc*8) | None, rays (1,6,F,h,w) | None).
    Shorter arrays are an error; longer ones are cut to `num_frames`."""
    s = model.config.vae.spatial_compression
    action_features = rays = None
    if actions is not None:
        actions = np.asarray(actions, dtype=np.float32)
        if actions.ndim != 2 or actions.shape[1] != model.config.dit.action_dim or len(actions) < num_frames:
            raise ModelError(f"actions: need shape (>= {num_frames}, {model.config.dit.action_dim}), got "
                            f"{actions.shape}; give one action row per video frame")
        action_features = model.action_features(torch.from_numpy(actions[:num_frames])[None])
    if camera_to_world is not None:
        poses = np.asarray(camera_to_world, dtype=np.float64)
        if poses.ndim != 3 or poses.shape[1:] != (4, 4) or len(poses) < num_frames:
            raise ModelError(f"camera_to_world: need shape (>= {num_frames}, 4, 4), got {poses.shape}; "
                            f"give one camera-to-world matrix per video frame")
        if intrinsics is None:
            raise ModelError("intrinsics: required with camera_to_world; give K = [[fx,0,cx],[0,fy,cy],[0,0,1]]")
        k = torch.as_tensor(np.asarray(intrinsics, dtype=np.float64))
        k = k[None] if k.dim() == 2 else k[None, :num_frames]
        rays = model.camera_rays(torch.from_numpy(poses[:num_frames])[None], k, height // s, width // s)
    return action_features, rays


@torch.inference_mode()
def sample(model: WorldModel, vae: VideoVAE, *, prompt: str = "", num_frames: int | None = None,
           seconds: float | None = None, fps: float | None = None, height: int | None = None,
           width: int | None = None, image: np.ndarray | None = None, actions: np.ndarray | None = None,
           camera_to_world: np.ndarray | None = None, intrinsics: np.ndarray | None = None,
           cfg_text: float = 3.0, cfg_action: float = 1.5, steps: int = 8, window_chunks: int | None = None,
           context_noise: float | None = None, seed: int = 0,
           progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Generate a video; returns (T, H, W, 3) uint8 with T = 1 + tc*k >= the requested frames.

    `progress`, if given, is called with (chunks done, chunks in all) after each chunk is decoded:
    the caller draws the progress bar (model/ imports no display library)."""
    config = model.config
    fps = config.fps if fps is None else fps
    height = config.height if height is None else height
    width = config.width if width is None else width
    frames = _frames_for(model, num_frames, seconds, fps)
    channels, latent_frames, lh, lw = config.latent_shape(frames, height, width)
    device = next(model.parameters()).device
    image_latent = None
    if image is not None:
        image = np.asarray(image)
        if image.shape != (height, width, 3) or image.dtype != np.uint8:
            raise ModelError(f"image: need ({height}, {width}, 3) uint8, got {image.shape} {image.dtype}; "
                            f"resize the image or pass --height/--width")
        pixels = torch.from_numpy(image).float().div(127.5).sub(1.0).permute(2, 0, 1)[None, :, None]
        image_latent = vae.encode(pixels.to(device))[0]
    action_features, rays = prepare_conditioning(model, frames, height, width, actions, camera_to_world, intrinsics)

    decoded, state = [], StreamState()
    chunks = iter_sample_latents(model, latent_frames=latent_frames, latent_height=lh, latent_width=lw,
                                 prompt=prompt, image_latent=image_latent, action_features=action_features,
                                 rays=rays, cfg_text=cfg_text, cfg_action=cfg_action, steps=steps,
                                 window_chunks=window_chunks, context_noise=context_noise, seed=seed)
    total = len(chunk_ranges(model, latent_frames))
    for done, latent_chunk in enumerate(chunks, start=1):
        video = vae.decoder(latent_chunk, state)  # streaming causal decode, exact
        decoded.append(((video.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)[0].permute(1, 2, 3, 0).cpu())
        if progress is not None:
            progress(done, total)
    return torch.cat(decoded, dim=0).numpy()
