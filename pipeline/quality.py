"""Clip quality scores from pixels and camera poses, and the keep/reject decision.

Pure numpy on `(T, H, W, 3)` uint8 frames and `(T, 4, 4)` camera-to-world poses, so the
curate pipeline (real footage, no poses) reuses the pixel scores. Every score is computed for
every clip and stored in the index; thresholds only decide which clips go into shards, so
they can be changed later without rendering again.

Scores (all floats):
- black_fraction: share of frames whose mean luma < `black_luma` (0-1 scale) and whose
  `black_pixel_share` of pixels are below `black_pixel_luma` (ffmpeg blackdetect style).
- frozen_fraction: share of consecutive frame pairs whose mean absolute difference is below
  `frozen_diff` (0-1 luma scale; ffmpeg freezedetect noise 0.001).
- luma_mean, clipped_dark_fraction (luma < 0.02), clipped_bright_fraction (luma > 0.98).
- sharpness: mean over sampled frames of the variance of a 4-neighbour Laplacian of luma (0-255 scale).
- pixel_motion: mean absolute luma difference between consecutive frames (0-1 scale).
- camera_speed_mps / camera_rotation_dps: mean translation speed and rotation rate from poses.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


@dataclass(frozen=True)
class QualityThresholds:
    """Rejection rules; a clip is rejected with every reason whose rule it breaks."""

    max_black_fraction: float = 0.5        # "black": more than half the frames are black
    max_frozen_fraction: float = 0.5       # "frozen"
    min_luma_mean: float = 0.04            # "dark"
    max_luma_mean: float = 0.96            # "overexposed"
    max_clipped_fraction: float = 0.6      # "clipped": dark+bright clipped pixels
    min_sharpness: float = 0.5             # "blurry"
    min_pixel_motion: float = 0.002        # "static" needs pixel and camera stillness
    min_camera_speed_mps: float = 0.05
    min_camera_rotation_dps: float = 1.0
    # blackdetect-style definition of a black frame
    black_luma: float = 0.10
    black_pixel_luma: float = 0.10
    black_pixel_share: float = 0.98
    frozen_diff: float = 0.001


def luma(frames: np.ndarray) -> np.ndarray:
    """(T, H, W, 3) uint8 -> (T, H, W) float32 in [0, 1] (BT.601 weights)."""
    return (frames.astype(np.float32) @ _LUMA) / 255.0


def black_fraction(y: np.ndarray, thresholds: QualityThresholds = QualityThresholds()) -> float:
    dark_share = (y < thresholds.black_pixel_luma).reshape(len(y), -1).mean(axis=1)
    black = (y.reshape(len(y), -1).mean(axis=1) < thresholds.black_luma) & (dark_share >= thresholds.black_pixel_share)
    return float(black.mean())


def frame_differences(y: np.ndarray) -> np.ndarray:
    """(T-1,) mean absolute luma difference of consecutive frames."""
    if len(y) < 2:
        return np.zeros(0, dtype=np.float32)
    return np.abs(np.diff(y, axis=0)).reshape(len(y) - 1, -1).mean(axis=1)


def frozen_fraction(differences: np.ndarray, thresholds: QualityThresholds = QualityThresholds()) -> float:
    if differences.size == 0:
        return 1.0
    return float((differences < thresholds.frozen_diff).mean())


def exposure(y: np.ndarray) -> dict[str, float]:
    return {
        "luma_mean": float(y.mean()),
        "clipped_dark_fraction": float((y < 0.02).mean()),
        "clipped_bright_fraction": float((y > 0.98).mean()),
    }


def sharpness(y: np.ndarray, samples: int = 4) -> float:
    """Variance of the Laplacian (0-255 luma scale), averaged over a few evenly spaced frames."""
    if y.shape[1] < 3 or y.shape[2] < 3:
        return 0.0
    picks = np.unique(np.linspace(0, len(y) - 1, min(samples, len(y))).round().astype(int))
    values = []
    for frame in y[picks] * 255.0:
        lap = (frame[1:-1, :-2] + frame[1:-1, 2:] + frame[:-2, 1:-1] + frame[2:, 1:-1] - 4.0 * frame[1:-1, 1:-1])
        values.append(float(lap.var()))
    return float(np.mean(values))


def camera_motion(poses: np.ndarray, fps: float) -> dict[str, float]:
    """Mean translation speed (m/s) and rotation rate (deg/s) from (T, 4, 4) camera-to-world."""
    poses = np.asarray(poses, dtype=np.float64)
    if poses.ndim != 3 or len(poses) < 2:
        return {"camera_speed_mps": 0.0, "camera_rotation_dps": 0.0}
    steps = np.linalg.norm(np.diff(poses[:, :3, 3], axis=0), axis=1)
    relative = np.einsum("tji,tjk->tik", poses[:-1, :3, :3], poses[1:, :3, :3])  # R_t^T R_{t+1}
    cos = np.clip((np.trace(relative, axis1=1, axis2=2) - 1.0) / 2.0, -1.0, 1.0)
    angles = np.degrees(np.arccos(cos))
    return {"camera_speed_mps": float(steps.mean() * fps), "camera_rotation_dps": float(angles.mean() * fps)}


def pixel_scores(frames: np.ndarray, thresholds: QualityThresholds = QualityThresholds()) -> dict[str, float]:
    """Every pixel-only score of a (T, H, W, 3) uint8 clip (used by generate and curate)."""
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected (T, H, W, 3) frames, got {frames.shape}")
    y = luma(frames)
    differences = frame_differences(y)
    scores = {
        "black_fraction": black_fraction(y, thresholds),
        "frozen_fraction": frozen_fraction(differences, thresholds),
        "sharpness": sharpness(y),
        "pixel_motion": float(differences.mean()) if differences.size else 0.0,
    }
    scores.update(exposure(y))
    return scores


def clip_scores(frames: np.ndarray, poses: np.ndarray | None, fps: float,
                thresholds: QualityThresholds = QualityThresholds()) -> dict[str, float]:
    scores = pixel_scores(frames, thresholds)
    if poses is not None:
        scores.update(camera_motion(poses, fps))
    return scores


def reject_reasons(scores: dict[str, float], thresholds: QualityThresholds = QualityThresholds()) -> list[str]:
    """Names of the rules a clip breaks (empty list: keep). Order is fixed for stable output."""
    reasons: list[str] = []
    if scores.get("black_fraction", 0.0) > thresholds.max_black_fraction:
        reasons.append("black")
    elif scores.get("luma_mean", 0.5) < thresholds.min_luma_mean:
        reasons.append("dark")
    if scores.get("luma_mean", 0.5) > thresholds.max_luma_mean:
        reasons.append("overexposed")
    clipped = scores.get("clipped_dark_fraction", 0.0) + scores.get("clipped_bright_fraction", 0.0)
    if clipped > thresholds.max_clipped_fraction and "black" not in reasons and "dark" not in reasons:
        reasons.append("clipped")
    if scores.get("frozen_fraction", 0.0) > thresholds.max_frozen_fraction:
        reasons.append("frozen")
    # static: nothing moves, neither the camera (when poses are known) nor the pixels; a still
    # camera watching moving things is kept, so is a moving camera (its actions carry signal)
    pixel_still = scores.get("pixel_motion", 1.0) < thresholds.min_pixel_motion
    camera_still = (
        scores.get("camera_speed_mps", 0.0) < thresholds.min_camera_speed_mps
        and scores.get("camera_rotation_dps", 0.0) < thresholds.min_camera_rotation_dps
    )
    if pixel_still and camera_still:
        reasons.append("static")
    if scores.get("sharpness", 1e9) < thresholds.min_sharpness and "black" not in reasons:
        reasons.append("blurry")
    return reasons
