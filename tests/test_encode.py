"""H.264 encode/decode through PyAV: round trip, determinism, short GOP."""
from __future__ import annotations

import io

import av
import numpy as np
import pytest

from pipeline.encode import EncodeSettings, decode_mp4, encode_mp4


def _moving_gradient(frames: int = 20, height: int = 64, width: int = 96) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    clip = np.stack([((x + 3 * t) % width) * 255 // width for t in range(frames)]).astype(np.uint8)
    return np.stack([clip, np.broadcast_to(y * 255 // height, clip.shape).astype(np.uint8), 255 - clip], axis=-1)


def test_round_trip_keeps_frames_and_content() -> None:
    frames = _moving_gradient()
    decoded = decode_mp4(encode_mp4(frames, 8.0, EncodeSettings(crf=18)))
    assert decoded.shape == frames.shape and decoded.dtype == np.uint8
    assert np.abs(decoded.astype(int) - frames.astype(int)).mean() < 4.0


def test_same_frames_give_identical_bytes_and_crf_matters() -> None:
    frames = _moving_gradient()
    first = encode_mp4(frames, 8.0, EncodeSettings(crf=23))
    assert first == encode_mp4(frames, 8.0, EncodeSettings(crf=23))
    assert len(encode_mp4(frames, 8.0, EncodeSettings(crf=40))) < len(first)


def test_short_gop_puts_a_keyframe_every_gop_frames() -> None:
    data = encode_mp4(_moving_gradient(frames=20), 10.0, EncodeSettings(gop=4))
    with av.open(io.BytesIO(data)) as container:
        keyframes = [i for i, packet in enumerate(p for p in container.demux(video=0) if p.size) if packet.is_keyframe]
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and float(stream.average_rate) == pytest.approx(10.0)
    assert keyframes == [0, 4, 8, 12, 16]


def test_bad_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="even"):
        encode_mp4(np.zeros((2, 9, 16, 3), np.uint8), 8.0)
    with pytest.raises(ValueError, match="uint8"):
        encode_mp4(np.zeros((2, 8, 16, 3), np.float32), 8.0)
