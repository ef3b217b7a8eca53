"""Clip planning: turn shots into clips of bounded length.

Rules, in order: each shot is trimmed by `trim_s` on every side that touches a cut (never at
the start or end of the file, which are not cuts); shots left shorter than `min_clip_s` are
dropped; shots longer than `max_clip_s` are re-split into the fewest equal parts that fit.
Frame indices are half-open `[start, end)` in presentation order; times come from decoded
timestamps, so a variable frame rate changes frame counts, not durations.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pipeline.curate.config import PlanConfig


@dataclass(frozen=True)
class ClipPlan:
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


def plan_clips(times: np.ndarray, cuts: list[int], config: PlanConfig) -> list[ClipPlan]:
    count = int(times.size)
    if count == 0:
        return []
    ends = frame_end_times(times)
    bounds = [0, *sorted(cuts), count]
    plans: list[ClipPlan] = []
    for shot, (first, stop) in enumerate(zip(bounds[:-1], bounds[1:])):
        if stop <= first:
            continue
        start, end = first, stop
        if first > 0 and config.trim_s > 0:       # a cut precedes this shot
            start = int(np.searchsorted(times, times[first] + config.trim_s - 1e-9, side="left"))
        if stop < count and config.trim_s > 0:    # a cut follows this shot
            limit = times[stop] - config.trim_s
            end = int(np.searchsorted(ends, limit + 1e-9, side="right"))
        if end <= start:
            continue
        duration = float(ends[end - 1] - times[start])
        if duration + 1e-9 < config.min_clip_s:
            continue
        parts = max(1, math.ceil(duration / config.max_clip_s - 1e-9))
        boundaries = [start]
        for part in range(1, parts):
            target = times[start] + duration * part / parts
            boundaries.append(int(np.searchsorted(times, target - 1e-9, side="left")))
        boundaries.append(end)
        for a, b in zip(boundaries[:-1], boundaries[1:]):
            if b > a:
                plans.append(ClipPlan(a, b, float(times[a]), float(ends[b - 1]), shot))
    return plans
