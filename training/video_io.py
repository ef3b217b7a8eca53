"""Writing rollouts: H.264 mp4 through PyAV and animated GIF through Pillow, both atomically.

A partially written video never looks complete: bytes go to `<name>.tmp` first, then rename.
"""
from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image


def encode_mp4(frames_THW3: np.ndarray, fps: float, crf: int = 18) -> bytes:
    """(T, H, W, 3) uint8 -> H.264 mp4 bytes through the project's one encoder
    (`pipeline.encode`); odd sizes are padded by one pixel since yuv420p needs even ones."""
    from pipeline.encode import EncodeSettings
    from pipeline.encode import encode_mp4 as encode_h264

    return encode_h264(_even(frames_THW3), fps, EncodeSettings(crf=crf))


def _even(frames: np.ndarray) -> np.ndarray:
    height, width = frames.shape[1:3]
    pad = ((0, 0), (0, height % 2), (0, width % 2), (0, 0))
    return np.pad(frames, pad, mode="edge") if any(p[1] for p in pad) else frames


def encode_gif(frames_THW3: np.ndarray, fps: float) -> bytes:
    images = [Image.fromarray(frame) for frame in frames_THW3]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:],
                   duration=max(20, round(1000 / fps)), loop=0)
    return buffer.getvalue()


def write_atomic(path: str | Path, payload: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(payload)
    os.replace(temporary, path)
    return path


def write_mp4(path: str | Path, frames_THW3: np.ndarray, fps: float) -> Path:
    return write_atomic(path, encode_mp4(frames_THW3, fps))


def write_gif(path: str | Path, frames_THW3: np.ndarray, fps: float) -> Path:
    return write_atomic(path, encode_gif(frames_THW3, fps))


def to_uint8_frames(video_B3THW: torch.Tensor) -> np.ndarray:  # noqa: F821
    """Model video in [-1, 1], (3, T, H, W) or (1, 3, T, H, W) -> (T, H, W, 3) uint8."""
    video = video_B3THW[0] if video_B3THW.dim() == 5 else video_B3THW
    video = ((video.detach().float().clamp(-1, 1) + 1) * 127.5).round().byte()
    return video.permute(1, 2, 3, 0).cpu().numpy()
