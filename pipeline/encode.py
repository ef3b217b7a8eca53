"""H.264 encode and decode through PyAV (libx264), deterministic.

Why these settings: training readers seek to random clips, so the GOP is short (a keyframe
every `gop` frames, no scene-cut keyframes, no B-frames) and a seek decodes at most `gop`
frames. The encoder is single-threaded with fixed options and the MP4 carries no creation
time, so the same frames give the same bytes on every run and machine with the same
libx264 build (the x264 version string is part of the stream).
"""
from __future__ import annotations

import io
from dataclasses import dataclass

import av
import numpy as np


@dataclass(frozen=True)
class EncodeSettings:
    crf: int = 23           # x264 constant rate factor: lower = better quality, bigger files
    gop: int = 8            # keyframe interval in frames
    preset: str = "veryfast"
    pix_fmt: str = "yuv420p"

    def describe(self) -> dict[str, object]:
        return {"codec": "h264", "encoder": "libx264", "crf": self.crf, "gop": self.gop,
                "preset": self.preset, "pix_fmt": self.pix_fmt, "bframes": 0}


def encode_mp4(frames: np.ndarray, fps: float, settings: EncodeSettings = EncodeSettings()) -> bytes:
    """Encode `(T, H, W, 3)` uint8 RGB frames to MP4/H.264 bytes. H and W must be even."""
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"expected (T, H, W, 3) uint8 frames, got {frames.shape} {frames.dtype}")
    count, height, width, _ = frames.shape
    if count == 0:
        raise ValueError("cannot encode an empty clip")
    if height % 2 or width % 2:
        raise ValueError(f"yuv420p needs even width and height, got {width}x{height}")
    x264_params = ":".join([
        f"keyint={settings.gop}", f"min-keyint={settings.gop}", "scenecut=0", "bframes=0",
        "threads=1", "sliced-threads=0", "lookahead-threads=1",
    ])
    buffer = io.BytesIO()
    rate = _fraction(fps)
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream(
            "libx264", rate=rate,
            options={"crf": str(settings.crf), "preset": settings.preset, "x264-params": x264_params},
        )
        stream.width = width
        stream.height = height
        stream.pix_fmt = settings.pix_fmt
        stream.codec_context.thread_count = 1
        stream.codec_context.gop_size = settings.gop
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()


def decode_mp4(data: bytes, *, max_frames: int | None = None) -> np.ndarray:
    """Decode MP4 bytes to `(T, H, W, 3)` uint8 RGB, counting frames as they come (never
    trusting a declared length)."""
    frames: list[np.ndarray] = []
    with av.open(io.BytesIO(data), mode="r") as container:
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            if max_frames is not None and len(frames) >= max_frames:
                break
    if not frames:
        raise ValueError("no video frames in the mp4")
    return np.stack(frames)


def _fraction(fps: float):
    from fractions import Fraction

    return Fraction(fps).limit_denominator(1001)
