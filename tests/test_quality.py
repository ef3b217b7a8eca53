"""Quality scores on crafted pixel and pose inputs, and the keep/reject rules."""
from __future__ import annotations

import numpy as np
import pytest

from pipeline.quality import QualityThresholds, camera_motion, clip_scores, pixel_scores, reject_reasons


def _textured(frames: int = 12, shift: int = 2, seed: int = 0) -> np.ndarray:
    base = np.random.default_rng(seed).integers(40, 220, size=(48, 64 + shift * frames, 3), dtype=np.uint8)
    return np.stack([base[:, t * shift: t * shift + 64] for t in range(frames)])


def _walk(frames: int, step_m: float, yaw_step_deg: float) -> np.ndarray:
    poses = np.repeat(np.eye(4)[None], frames, axis=0)
    for t in range(frames):
        angle = np.radians(yaw_step_deg * t)
        poses[t, :3, :3] = [[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]]
        poses[t, :3, 3] = [0, step_m * t, 0]
    return poses


def test_camera_motion_in_metres_and_degrees_per_second() -> None:
    motion = camera_motion(_walk(9, step_m=0.25, yaw_step_deg=3.0), fps=8.0)
    assert motion["camera_speed_mps"] == pytest.approx(2.0)
    assert motion["camera_rotation_dps"] == pytest.approx(24.0)


def test_black_clip_is_rejected_as_black() -> None:
    frames = np.random.default_rng(1).integers(0, 6, size=(10, 48, 64, 3), dtype=np.uint8)
    scores = clip_scores(frames, _walk(10, 0.2, 0.0), fps=8.0)
    assert scores["black_fraction"] == 1.0
    assert reject_reasons(scores) == ["black"]


def test_still_camera_and_still_pixels_is_static_and_frozen() -> None:
    frames = np.repeat(_textured(1), 10, axis=0)
    scores = clip_scores(frames, _walk(10, 0.0, 0.0), fps=8.0)
    assert scores["pixel_motion"] == 0.0 and scores["frozen_fraction"] == 1.0
    assert reject_reasons(scores) == ["frozen", "static"]


def test_moving_textured_clip_is_kept_and_a_moving_camera_is_never_static() -> None:
    scores = clip_scores(_textured(), _walk(12, 0.2, 1.0), fps=8.0)
    assert reject_reasons(scores) == []
    assert scores["sharpness"] > 100 and 0.1 < scores["luma_mean"] < 0.9
    # featureless pixels but a moving camera: not static (its actions still carry signal)
    flat = np.full((12, 48, 64, 3), 128, np.uint8)
    assert "static" not in reject_reasons(clip_scores(flat, _walk(12, 0.2, 0.0), fps=8.0))


def test_exposure_and_thresholds_are_configurable() -> None:
    bright = np.full((4, 16, 16, 3), 254, np.uint8)
    scores = pixel_scores(bright)
    assert scores["clipped_bright_fraction"] == 1.0
    assert "overexposed" in reject_reasons(scores)
    lenient = QualityThresholds(max_luma_mean=1.0, max_clipped_fraction=1.0, max_frozen_fraction=1.0,
                                min_sharpness=0.0, min_pixel_motion=0.0)
    assert reject_reasons(scores, lenient) == []
