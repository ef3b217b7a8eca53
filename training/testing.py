"""Tiny WebDataset shards for loader tests and benchmarks (real H.264 through PyAV, real tars).

Not a fake of the generator: the clips are simple moving patterns, but the members are the ones
the shard schema defines (`mp4`, `json`, `poses.npy`, `intrinsics.npy`, `actions.npy`), so the
loader is exercised on real bytes. End-to-end tests use the real `worldloom generate` output.
"""
from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np

from contract.sample import ACTION_DIM, ACTIONS, INTRINSICS, JSON, MP4, POSES


def encode_mp4(frames_THW3: np.ndarray, fps: int) -> bytes:  # fixed GOP of 8 for seek tests
    from pipeline.encode import EncodeSettings
    from pipeline.encode import encode_mp4 as encode_h264

    return encode_h264(frames_THW3, fps, EncodeSettings(crf=18, gop=8, preset="ultrafast"))


def pattern_clip(index: int, frames: int, height: int, width: int) -> np.ndarray:
    """A bright square moving across a tinted background; frame t's square column encodes t."""
    rng = np.random.default_rng(index)
    tint = rng.integers(30, 120, size=3, dtype=np.uint8)
    video = np.broadcast_to(tint, (frames, height, width, 3)).copy()
    size = max(2, height // 4)
    for t in range(frames):
        x = (t * 2 + index) % max(1, width - size)
        video[t, height // 3: height // 3 + size, x: x + size] = 230
    return video


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def write_pattern_shards(folder: Path, *, num_shards: int = 2, clips_per_shard: int = 4, frames: int = 24,
                         height: int = 32, width: int = 32, fps: int = 8, prefix: str = "pattern") -> Path:
    """A dataset folder `folder/shards/*.tar` with clips whose actions/poses encode the frame index."""
    shards = folder / "shards"
    shards.mkdir(parents=True, exist_ok=True)
    for shard in range(num_shards):
        path = shards / f"{prefix}-{shard:06d}.tar"
        with tarfile.open(path, "w") as tar:
            for local in range(clips_per_shard):
                index = shard * clips_per_shard + local
                key = f"{prefix}_{index:05d}"
                poses = np.tile(np.eye(4), (frames, 1, 1))
                poses[:, 0, 3] = np.arange(frames)  # x translation = frame index: checks alignment
                actions = np.zeros((frames, ACTION_DIM), np.float32)
                actions[:, 0] = np.arange(frames) % 2  # forward on odd frames
                actions[:, 6] = 1.0  # yaw one degree per frame
                K = np.array([[width, 0, width / 2], [0, width, height / 2], [0, 0, 1]], np.float64)
                members = {
                    MP4: encode_mp4(pattern_clip(index, frames, height, width), fps),
                    JSON: json.dumps({"key": key, "caption": f"clip {index} a square moving right",
                                        "fps": fps, "width": width, "height": height, "frames": frames}).encode(),
                    POSES: npy_bytes(poses),
                    ACTIONS: npy_bytes(actions),
                    INTRINSICS: npy_bytes(K),
                }
                for extension, payload in members.items():
                    info = tarfile.TarInfo(f"{key}.{extension}")
                    info.size = len(payload)
                    tar.addfile(info, io.BytesIO(payload))
    return folder
