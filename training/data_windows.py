"""Training windows: which frames of a clip a sample uses, and everything aligned to them.

A window is `frames` frames at `fps`, every `round(source_fps / fps)`-th source frame from a
random start. `plan_window` makes the draws (and is replayed, without decoding, when resuming);
`clip_window` decodes the planned frames and aligns poses, actions, intrinsics and caption to
them; `latent_window` reads a window `worldloom encode` already cut.
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from contract.sample import ACTION_DIM, ACTIONS, INTRINSICS, JSON, KEY_CHANNELS, LATENTS, LOOK_CHANNELS, MP4, POSES
from training.data_crops import crop_resize_intrinsics, resize_frames
from training.data_decode import OpenVideo, parse_npy

# Legend: T frames in a window, H x W output resolution, A = 8 action channels.


@dataclass
class WindowSpec:
    """What a window is: `frames` frames at `fps`, `height` x `width` pixels (the model config's clip)."""

    frames: int
    fps: float
    height: int
    width: int


def window_stride_span(source_fps: float, frames: int, fps: float) -> tuple[int, int]:
    """(stride, span) of a window of `frames` at `fps` cut from a clip at `source_fps`: every
    stride-th source frame, stride the integer nearest source_fps / fps (at least 1), covering
    `span` source frames. The one rule for training windows, `window_fits` and `worldloom encode`."""
    stride = max(1, round(source_fps / fps))
    return stride, (frames - 1) * stride + 1


def window_indices(num_source_frames: int, source_fps: float, frames: int, fps: float,
                   rng: random.Random) -> tuple[list[int], int]:
    """Source frame indices for a window of `frames` at `fps` and the stride between them.

    The start is random. Returns ([], stride) when the clip is too short.
    """
    stride, span = window_stride_span(source_fps, frames, fps)
    if span > num_source_frames:
        return [], stride
    start = rng.randint(0, num_source_frames - span)
    return [start + k * stride for k in range(frames)], stride


def align_actions(actions_TA: np.ndarray, indices: list[int], stride: int) -> np.ndarray:
    """Actions for the subsampled frames: frame k covers source frames (i_k - stride, i_k].

    Key channels are multi-hot, so a key counts as pressed if it was pressed on any covered frame;
    look channels are per-frame deltas, so they add up.
    """
    out = np.zeros((len(indices), actions_TA.shape[1]), dtype=np.float32)
    for k, index in enumerate(indices):
        covered = actions_TA[max(0, index - stride + 1): index + 1]
        out[k, KEY_CHANNELS] = covered[:, KEY_CHANNELS].max(axis=0)
        out[k, LOOK_CHANNELS] = covered[:, LOOK_CHANNELS].sum(axis=0)
    return out


def window_fits(frames: int, fps: float, spec: WindowSpec) -> bool:
    """Whether a clip of `frames` at `fps` gives a window (the same rule as `window_indices`)."""
    return window_stride_span(fps or spec.fps, spec.frames, spec.fps)[1] <= frames


@dataclass
class WindowPlan:
    """The drawn window of one clip: its opened video, metadata, source frame indices and stride."""

    video: OpenVideo
    meta: dict[str, Any]
    indices: list[int]
    stride: int
    arrays: dict[str, np.ndarray] = field(default_factory=dict)  # parsed .npy members, reused by clip_window


@dataclass
class OpenedSample:
    """A raw shard sample opened for windowing: its video, metadata, parsed arrays, usable length."""

    video: OpenVideo
    meta: dict[str, Any]
    arrays: dict[str, np.ndarray]  # poses, actions, intrinsics when present
    num_frames: int  # frames that have video and (when present) poses and actions
    source_fps: float


def open_sample(sample: dict[str, Any]) -> OpenedSample:
    """Open a raw sample's mp4 (lazily decoded) and parse its .npy members once."""
    meta = json.loads(sample[JSON]) if JSON in sample else {}
    video = OpenVideo(sample[MP4])
    num_frames = len(video)
    arrays = {name: parse_npy(sample[name]) for name in (POSES, ACTIONS, INTRINSICS) if name in sample}
    for name in (POSES, ACTIONS):
        if name in arrays:
            num_frames = min(num_frames, len(arrays[name]))
    return OpenedSample(video, meta, arrays, num_frames, float(meta.get("fps") or video.fps))


def plan_window(sample: dict[str, Any], spec: WindowSpec, rng: random.Random) -> WindowPlan | None:
    """Open the clip and choose its window; None when the clip is shorter than a window.

    Used both when training and when skipping on resume, so both make the same draws.
    """
    opened = open_sample(sample)
    indices, stride = window_indices(opened.num_frames, opened.source_fps, spec.frames, spec.fps, rng)
    return WindowPlan(opened.video, opened.meta, indices, stride, opened.arrays) if indices else None


def clip_window(sample: dict[str, Any], plan: WindowPlan, spec: WindowSpec) -> dict[str, Any]:
    """Decode the planned window of one raw shard sample, with poses, actions and caption aligned to it."""
    indices, meta = plan.indices, plan.meta
    poses = plan.arrays.get(POSES)
    actions = plan.arrays.get(ACTIONS)
    intrinsics = plan.arrays.get(INTRINSICS)
    frames = plan.video.read(indices)
    source_height, source_width = frames.shape[1:3]
    video = resize_frames(frames, spec.height, spec.width)
    if intrinsics is not None and intrinsics.ndim == 3:  # per-frame intrinsics
        intrinsics = intrinsics[indices[0]]
    identity = np.broadcast_to(np.eye(4), (spec.frames, 4, 4))  # unknown camera motion: the camera stays put
    scaled_K = crop_resize_intrinsics(intrinsics, source_height, source_width, spec.height, spec.width)
    return {
        "key": sample["__key__"],
        "video": video,                                                     # (T, H, W, 3) uint8
        "poses": torch.from_numpy(
            (poses[indices] if poses is not None else identity).astype(np.float32)
        ),                                                                   # (T, 4, 4) camera-to-world
        "actions": torch.from_numpy(
            align_actions(actions, indices, plan.stride) if actions is not None
            else np.zeros((spec.frames, ACTION_DIM), np.float32)
        ),                                                                   # (T, A)
        "has_actions": torch.tensor(actions is not None),
        "intrinsics": torch.from_numpy(scaled_K.astype(np.float32)),         # (3, 3) at H x W
        "caption": str(meta.get("caption", "")),
        "window_start": indices[0],
    }


def latent_window(sample: dict[str, Any]) -> dict[str, Any]:
    """A sample written by `worldloom encode`: latents and aligned conditioning, no decoding."""
    meta = json.loads(sample[JSON]) if JSON in sample else {}
    return {
        "key": sample["__key__"],
        "latents": torch.from_numpy(parse_npy(sample[LATENTS]).astype(np.float32)),
        "poses": torch.from_numpy(parse_npy(sample[POSES]).astype(np.float32)),
        "actions": torch.from_numpy(parse_npy(sample[ACTIONS]).astype(np.float32)),
        "has_actions": torch.tensor(bool(meta.get("has_actions", True))),
        "intrinsics": torch.from_numpy(parse_npy(sample[INTRINSICS]).astype(np.float32)),
        "caption": str(meta.get("caption", "")),
        "window_start": int(meta.get("window_start", 0)),
    }
