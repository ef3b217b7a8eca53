"""Probe: decide whether an input can be curated, and say why not when it cannot.

Never raises for a bad input: the caller gets a `Probe` with `reason` set and puts it in the
rejects table. The frame count reported here is the *declared* one and is informational only;
later stages count decoded frames.
"""
from __future__ import annotations

import errno
import os
from dataclasses import asdict, dataclass

import av

from pipeline.curate.inputs import is_remote
from pipeline.curate.video import open_container, rotation_quarter_turns


@dataclass
class Probe:
    uri: str
    reason: str | None = None          # None: usable; else one of REJECT_REASONS plus detail
    detail: str = ""
    size_bytes: int | None = None
    container: str = ""
    codec: str = ""
    width: int = 0                     # stored picture size (before rotation)
    height: int = 0
    rotation_deg: int = 0              # counter-clockwise display rotation
    fps: float = 0.0                   # guessed/average rate; informational
    declared_frames: int = 0           # 0 when the container does not say
    duration_s: float = 0.0
    has_audio: bool = False

    @property
    def ok(self) -> bool:
        return self.reason is None

    @property
    def display_size(self) -> tuple[int, int]:
        if rotation_quarter_turns(self.rotation_deg) % 2:
            return self.height, self.width
        return self.width, self.height

    def as_dict(self) -> dict:
        return asdict(self)


# FFmpeg will "decode" any text file as ANSI art through these demuxers; that is never footage.
TEXT_DEMUXERS = frozenset({"tty", "ansi", "bin", "xbin", "adf", "idf", "srt", "ass", "webvtt"})

REJECT_REASONS = ("missing", "symlink_loop", "empty_file", "not_media", "no_video_stream", "unsupported_codec",
                  "no_decodable_frames", "too_small", "too_short", "decode_error")


def probe(uri: str) -> Probe:
    result = Probe(uri=uri)
    if not is_remote(uri):
        path = uri[len("file://"):] if uri.startswith("file://") else uri
        if not os.path.exists(path):
            if os.path.islink(path):
                try:
                    os.stat(path)
                except OSError as error:
                    if error.errno == errno.ELOOP:
                        return _reject(result, "symlink_loop", f"symbolic link loop: {os.readlink(path)!r} leads back to itself")
                return _reject(result, "missing", f"dangling symbolic link to {os.readlink(path)!r}")
            return _reject(result, "missing", "file does not exist")
        result.size_bytes = os.path.getsize(path)
        if result.size_bytes == 0:
            return _reject(result, "empty_file", "zero bytes")
    try:
        with open_container(uri) as container:
            result.container = container.format.name
            if container.format.name in TEXT_DEMUXERS:
                return _reject(result, "not_media", f"text file read as {container.format.name!r}, not video")
            if container.duration:
                result.duration_s = container.duration / 1_000_000
            result.has_audio = bool(container.streams.audio)
            if not container.streams.video:
                return _reject(result, "no_video_stream", f"container {container.format.name} has no video stream")
            stream = container.streams.video[0]
            codec_context = stream.codec_context
            result.codec = codec_context.name if codec_context is not None else ""
            result.width, result.height = stream.width, stream.height
            result.declared_frames = int(stream.frames or 0)
            rate = stream.guessed_rate or stream.average_rate
            result.fps = float(rate) if rate else 0.0
            # Decode the first frame: it proves the codec works and carries the display matrix.
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                result.rotation_deg = int(getattr(frame, "rotation", 0) or 0)
                result.width, result.height = frame.width, frame.height
                break
            else:
                return _reject(result, "no_decodable_frames", "the video stream decoded to zero frames")
    except av.error.InvalidDataError as error:
        return _reject(result, "not_media", f"not a readable media file ({error.strerror or error})")
    except av.error.DecoderNotFoundError as error:
        return _reject(result, "unsupported_codec", str(error))
    except av.error.FFmpegError as error:
        return _reject(result, "decode_error", str(error))
    except (OSError, ValueError) as error:
        return _reject(result, "decode_error", str(error))
    return result


def _reject(result: Probe, reason: str, detail: str) -> Probe:
    result.reason = reason
    result.detail = detail
    return result
