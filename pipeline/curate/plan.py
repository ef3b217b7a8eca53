"""Clip planning: turn shots into clips of bounded length.

A world model learns dynamics from each clip as if it were one continuous shot, so a clip
must never contain or cross a transition. Boundaries are frame ranges `[start, end)` that
belong to no clip: transitions from shots.py (a hard cut at c is `[c, c)`, a fade or
dissolve covers its frames) and excluded stretches (black frames, frozen frames). What is left
are segments of one shot each.

Rules, in order: each segment is trimmed on every side that touches a boundary (never at
the start or end of the file) by `trim_s` seconds and at least `margin_frames` frames;
segments left shorter than `min_clip_s` are dropped; segments longer than `max_clip_s` are
re-split into the fewest equal parts that fit.
Frame indices are half-open `[start, end)` in presentation order; times come from decoded
timestamps, so a variable frame rate changes frame counts, not durations.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pipeline.curate.config import PlanConfig


@dataclass(frozen=True)
class ShotClipPlan:
    """One clip planned inside one shot of a source video (named apart from the render plans of
    the Unreal backend: this is a frame range of real footage, not something to render)."""

    start: int            # first source frame (inclusive)
    end: int              # last source frame (exclusive)
    start_s: float
    end_s: float
    shot: int             # which shot it came from

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


def frame_end_times(times: np.ndarray) -> np.ndarray:
    """(N,) time at which each frame stops being displayed: the next frame's time, and for
    the last frame its time plus the median frame duration."""
    if times.size == 0:
        return times
    if times.size == 1:
        return times + 1.0 / 25.0
    step = float(np.median(np.diff(times)))
    return np.append(times[1:], times[-1] + step)


def segments_between(count: int, boundaries: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Frame ranges of [0, count) outside every boundary range; a zero-length boundary
    `[c, c)` splits at c."""
    segments: list[tuple[int, int]] = []
    position = 0
    for start, end in sorted(boundaries):
        start, end = max(0, min(start, count)), max(0, min(end, count))
        if start > position:
            segments.append((position, start))
        position = max(position, end)
    if count > position:
        segments.append((position, count))
    return segments


def _as_range(boundary: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(boundary, (tuple, list)):
        return int(boundary[0]), int(boundary[1])
    return int(boundary), int(boundary)


def plan_shot_clips(times: np.ndarray, boundaries: list[int] | list[tuple[int, int]], config: PlanConfig,
                    excluded: list[tuple[int, int]] = ()) -> list[ShotClipPlan]:
    """Clips between `boundaries` (hard-cut frame indices or `[start, end)` transition ranges)
    and outside `excluded` ranges; see the module docstring."""
    count = int(times.size)
    if count == 0:
        return []
    ends = frame_end_times(times)
    ranges = [_as_range(b) for b in boundaries] + [_as_range(e) for e in excluded]
    plans: list[ShotClipPlan] = []
    for shot, (first, stop) in enumerate(segments_between(count, ranges)):
        start, end = first, stop
        if first > 0:                                # a boundary precedes this segment
            if config.trim_s > 0:
                start = int(np.searchsorted(times, times[first] + config.trim_s - 1e-9, side="left"))
            start = max(start, first + config.margin_frames)
        if stop < count:                             # a boundary follows this segment
            if config.trim_s > 0:
                end = int(np.searchsorted(ends, times[stop] - config.trim_s + 1e-9, side="right"))
            end = min(end, stop - config.margin_frames)
        if end <= start:
            continue
        duration = float(ends[end - 1] - times[start])
        if duration + 1e-9 < config.min_clip_s:
            continue
        parts = max(1, math.ceil(duration / config.max_clip_s - 1e-9))
        cut_points = [start]
        for part in range(1, parts):
            target = times[start] + duration * part / parts
            cut_points.append(int(np.searchsorted(times, target - 1e-9, side="left")))
        cut_points.append(end)
        for a, b in zip(cut_points[:-1], cut_points[1:], strict=False):
            if b > a:
                plans.append(ShotClipPlan(a, b, float(times[a]), float(ends[b - 1]), shot))
    return plans
