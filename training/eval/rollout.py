"""Rollouts from a world-model checkpoint, and held-out clips brought to the model's clip format.

The model was trained on windows taken every `round(source_fps / fps)` source frames, centre
cropped and resized to its resolution, with actions re-aggregated for the stride
(training/data.py). The eval prepares its ground truth the same way, so the model is asked about
the frame rate, resolution and action magnitudes it was trained on.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from contract.errors import UserError
from contract.sample import ACTION_DIM
from training.eval import groundtruth


@dataclass
class ModelBundle:
    world: torch.nn.Module
    vae: torch.nn.Module
    config: object          # model.configs.WorldModelConfig
    checkpoint: str         # the checkpoint folder actually loaded
    state: dict             # its state.json

    @property
    def fps(self) -> float:
        return float(self.config.fps)

    @property
    def size(self) -> tuple[int, int]:
        return int(self.config.height), int(self.config.width)


def load_model(checkpoint: str, device: torch.device | None = None) -> ModelBundle:
    """World model + VAE from a `stage: world` checkpoint (or its run folder). UserError otherwise."""
    from pathlib import Path

    from training.checkpoint import load_for_inference
    from training.sample import build_models

    path = Path(checkpoint)
    if not path.exists():
        raise UserError(f"CHECKPOINT {path}: not found", hint="pass a world checkpoint folder or its run folder")
    loaded = load_for_inference(path)
    world, vae, config = build_models(loaded, device or torch.device("cpu"))
    return ModelBundle(world, vae, config, str(loaded.path), loaded.state)


@dataclass
class EvalClip:
    """A held-out clip at the model's fps and resolution: frames 0..T-1 of the ground truth."""

    key: str
    caption: str
    frames: np.ndarray        # (T, H, W, 3) uint8
    actions: np.ndarray       # (T, 8) float32, re-aggregated for the stride
    poses: np.ndarray         # (T, 4, 4) camera-to-world
    intrinsics: np.ndarray    # (3, 3) at H x W
    stride: int               # source frames per model frame
    source: str               # "shard" or "rendered" (continued past the stored clip)
    resolved_clip: dict | None
    look_deg: float           # degrees per model frame of a held look key (3 deg x stride by default)
    speed_mps: float


def _crop_resize_K(K: np.ndarray, source_hw: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    from training.data import crop_box

    top, left, crop_height, crop_width = crop_box(source_hw[0], source_hw[1], size[0], size[1])
    shift = np.array([[1, 0, -left], [0, 1, -top], [0, 0, 1]], dtype=np.float64)
    scale = np.diag([size[1] / crop_width, size[0] / crop_height, 1.0])
    return scale @ shift @ np.asarray(K, dtype=np.float64)


def prepare_clip(clip: groundtruth.HeldOutClip, frames: int, fps: float, size: tuple[int, int]) -> EvalClip:
    """Sub-sample, crop and resize a held-out clip to `frames` model frames; render the continuation
    in-process when the stored clip is too short."""
    from training.data import align_actions, resize_frames

    stride = max(1, round(clip.fps / fps))
    needed = (frames - 1) * stride + 1
    source_frames, actions, poses, K, source = clip.frames, clip.actions, clip.poses, clip.intrinsics, "shard"
    if len(source_frames) < needed:
        if clip.resolved_clip is None:
            raise UserError(f"clip {clip.key}: has {len(source_frames)} frames, the horizon needs {needed}, and its json "
                            f"has no resolved_clip to render the rest from", hint="lower --seconds")
        extended = groundtruth.extend_clip(clip.resolved_clip, needed)
        source_frames, poses, K = groundtruth.render(extended)
        actions = np.asarray(extended["actions"]["per_frame"], dtype=np.float32)
        source = "rendered"
    indices = [k * stride for k in range(frames)]
    video = resize_frames(np.ascontiguousarray(source_frames[indices]), *size).numpy()
    motion = (clip.resolved_clip or {}).get("motion") or {}
    return EvalClip(key=clip.key, caption=clip.caption, frames=video,
                    actions=align_actions(actions, indices, stride), poses=np.asarray(poses)[indices],
                    intrinsics=_crop_resize_K(K, source_frames.shape[1:3], size), stride=stride, source=source,
                    resolved_clip=clip.resolved_clip,
                    look_deg=float(motion.get("look_deg_per_frame", 3.0)) * stride,
                    speed_mps=float(motion.get("speed_mps", 1.4)))


@dataclass(frozen=True)
class SamplerSettings:
    steps: int = 8
    cfg_text: float = 3.0
    cfg_action: float = 1.5
    seed: int = 0
    window_chunks: int | None = 4


def rollout(bundle: ModelBundle, first_frame: np.ndarray, frames: int, *, prompt: str,
            actions: np.ndarray | None, poses: np.ndarray | None, intrinsics: np.ndarray | None,
            settings: SamplerSettings) -> np.ndarray:
    """(frames, H, W, 3) uint8 rolled out from `first_frame` (image-to-video) under the given conditioning.

    `poses`: (T, 4, 4) camera-to-world of every frame (the contract's POSES); `intrinsics` only counts with them."""
    from model.sampler import sample

    height, width = bundle.size
    with torch.no_grad():
        video = sample(bundle.world, bundle.vae, prompt=prompt, num_frames=frames, fps=bundle.fps, height=height,
                       width=width, image=first_frame, actions=actions, camera_to_world=poses,
                       intrinsics=intrinsics if poses is not None else None,
                       cfg_text=settings.cfg_text, cfg_action=settings.cfg_action, steps=settings.steps,
                       window_chunks=settings.window_chunks, seed=settings.seed)
    return np.asarray(video)[:frames]


def command_actions(command: str, frames: int, look_deg: float) -> np.ndarray:
    """(frames, 8) actions holding one command from frame 1 on (frame 0 is the given image)."""
    from contract.manifest.rollout import BACK, FORWARD, YAW

    actions = np.zeros((frames, ACTION_DIM), dtype=np.float32)
    if command == "turn_left":
        actions[1:, YAW] = -look_deg
    elif command == "turn_right":
        actions[1:, YAW] = look_deg
    elif command == "forward":
        actions[1:, FORWARD] = 1.0
    elif command == "back":
        actions[1:, BACK] = 1.0
    elif command != "none":
        raise ValueError(f"unknown command {command!r}")
    return actions


def path_for(actions: np.ndarray, start_pose: np.ndarray, speed_mps: float, fps: float) -> np.ndarray:
    """First-person poses (T, 4, 4) of `actions` from `start_pose` (pose[-1]; action 0 is idle so pose[0] = start)."""
    from contract.manifest import rollout_poses

    return rollout_poses(actions, start_pose, speed_mps, fps)
