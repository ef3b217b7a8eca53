"""Frame-accurate transcode of planned clips to the target fps, size and aspect.

Frame selection is decided from the decoded timestamps of pass one, before any pixels are
converted: output frame k of a clip shows the source frame on screen at `clip_start + k / fps`
(see `select_source_frames`). With the source rate as target this is the
identity, so a clip `[a, b)` holds exactly source frames a..b-1. The file is then decoded once,
sequentially, and only the selected frames are scaled (stops after the last one needed).

Rotation: the display matrix (or rotate tag, which FFmpeg turns into one) is applied, so the
output is in display orientation, the way players show it.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from pipeline.curate.config import OutputConfig
from pipeline.curate.plan import ShotClipPlan
from pipeline.curate.video import iter_frames, new_reformatter, rotation_quarter_turns, to_rgb


@dataclass(frozen=True)
class OutputGeometry:
    """How stored pictures become output frames."""

    scale_width: int        # size to scale the *stored* picture to (before rotation)
    scale_height: int
    quarter_turns: int      # np.rot90 k applied after scaling
    crop_x: int             # centre crop in display orientation
    crop_y: int
    width: int              # final output size
    height: int


def _even(value: float) -> int:
    return max(2, int(round(value / 2.0)) * 2)


def output_geometry(stored_width: int, stored_height: int, rotation_deg: int, config: OutputConfig) -> OutputGeometry:
    turns = rotation_quarter_turns(rotation_deg)
    display_width, display_height = (stored_height, stored_width) if turns % 2 else (stored_width, stored_height)
    if config.width is None and config.height is None:
        width, height = _even(display_width), _even(display_height)
        scaled_w, scaled_h = width, height
    elif config.width is None or config.height is None:
        if config.height is not None:
            height = _even(config.height)
            width = _even(display_width * height / display_height)
        else:
            width = _even(config.width)
            height = _even(display_height * width / display_width)
        scaled_w, scaled_h = width, height
    else:
        width, height = _even(config.width), _even(config.height)
        cover = max(width / display_width, height / display_height)
        scaled_w = max(width, int(round(display_width * cover)))
        scaled_h = max(height, int(round(display_height * cover)))
    crop_x, crop_y = (scaled_w - width) // 2, (scaled_h - height) // 2
    stored_scale = (scaled_h, scaled_w) if turns % 2 else (scaled_w, scaled_h)
    return OutputGeometry(stored_scale[0], stored_scale[1], turns, crop_x, crop_y, width, height)


def select_source_frames(times: np.ndarray, plan: ShotClipPlan, fps: float) -> np.ndarray:
    """Source frame index for every output frame of `plan` at `fps`.

    Output frame k shows the frame on screen at `start + k / fps`: the latest source frame
    whose time is <= that instant, with a tolerance of a quarter source frame so that
    millisecond-rounded timestamps (Matroska) do not slip a frame. No ties, no guessing.
    """
    clip_times = times[plan.start:plan.end]
    count = max(1, int(round(plan.duration_s * fps + 1e-6)))
    targets = plan.start_s + np.arange(count) / fps
    step = float(np.median(np.diff(clip_times))) if clip_times.size > 1 else 1.0 / fps
    shown = np.searchsorted(clip_times, targets + 0.25 * step, side="right") - 1
    return plan.start + shown.clip(0, clip_times.size - 1)


@dataclass
class TranscodedClip:
    plan: ShotClipPlan
    frames: np.ndarray          # (T, H, W, 3) uint8, display orientation
    source_indices: np.ndarray  # (T,) source frame shown by each output frame
    fps: float


class FrameCache:
    """Output-size frames kept during pass one, so short files are decoded only once.

    Stops keeping (and frees what it kept) as soon as the budget would be exceeded; then
    `transcode_clips` decodes the file a second time for the selected frames only.
    """

    def __init__(self, geometry: OutputGeometry, budget_bytes: int) -> None:
        self.geometry = geometry
        self.budget_frames = budget_bytes // max(1, geometry.width * geometry.height * 3)
        self.frames: list[np.ndarray] | None = []
        self.scaler = new_reformatter()

    def __call__(self, index: int, frame) -> None:
        if self.frames is None:
            return
        if len(self.frames) >= self.budget_frames:
            self.frames = None
            return
        self.frames.append(output_frame(frame, self.geometry, self.scaler))


def output_frame(frame, geometry: OutputGeometry, scaler=None) -> np.ndarray:
    image = to_rgb(frame, width=geometry.scale_width, height=geometry.scale_height, quarter_turns=geometry.quarter_turns,
                   reformatter=scaler)
    return image[geometry.crop_y:geometry.crop_y + geometry.height, geometry.crop_x:geometry.crop_x + geometry.width]


def transcode_clips(
    uri: str,
    times: np.ndarray,
    plans: list[ShotClipPlan],
    geometry: OutputGeometry,
    fps: float,
    cache: FrameCache | None = None,
) -> Iterator[TranscodedClip]:
    """Yield each planned clip: from `cache` when pass one kept every frame, else by decoding
    `uri` once more and yielding each clip as soon as its last frame is decoded."""
    if not plans:
        return
    selections = [select_source_frames(times, plan, fps) for plan in plans]
    if cache is not None and cache.frames is not None and len(cache.frames) == len(times):
        for plan, selection in zip(plans, selections, strict=False):
            yield TranscodedClip(plan, np.stack([cache.frames[i] for i in selection.tolist()]), selection, fps)
        return
    needed: dict[int, list[tuple[int, int]]] = {}
    for clip_number, selection in enumerate(selections):
        for position, source in enumerate(selection.tolist()):
            needed.setdefault(source, []).append((clip_number, position))
    buffers = [np.empty((len(s), geometry.height, geometry.width, 3), np.uint8) for s in selections]
    remaining = [len(s) for s in selections]
    last_needed = max(needed)
    emitted = 0
    scaler = new_reformatter()
    for decoded in iter_frames(uri):
        targets = needed.get(decoded.index)
        if targets:
            image = output_frame(decoded.frame, geometry, scaler)
            for clip_number, position in targets:
                buffers[clip_number][position] = image
                remaining[clip_number] -= 1
            while emitted < len(plans) and remaining[emitted] == 0:
                yield TranscodedClip(plans[emitted], buffers[emitted], selections[emitted], fps)
                buffers[emitted] = None  # type: ignore[call-overload]  # release memory early
                emitted += 1
        if decoded.index >= last_needed:
            break
    if emitted < len(plans):
        raise RuntimeError(f"{uri}: decoding ended before frame {last_needed} (file changed since analysis?)")
