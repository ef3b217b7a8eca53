"""Clip quality scores from pixels and camera poses, the thresholds, and the keep/reject decision.

Pure numpy on `(T, H, W, 3)` uint8 frames and `(T, 4, 4)` camera-to-world poses, so the
curate pipeline (real footage, no poses) reuses the pixel scores. Every score is computed for
every clip and stored in the index; thresholds only decide which clips go into shards, so
they can be changed later without rendering again.

One thresholds model for generate and curate (`ThresholdsConfig`, the `thresholds:` section of
both configs; defaults written once, in `QualityThresholds`) and one motion score
(`motion_score`, stored as `pixel_motion` by both): the same score has the same name, scale and
gate wherever it is computed.

Scores (all floats):
- black_fraction: share of frames whose mean luma < `black_luma` (0-1 scale) and whose
  `black_pixel_share` of pixels are below `black_pixel_luma` (ffmpeg blackdetect style).
- frozen_fraction: share of consecutive frame pairs whose mean absolute difference is below
  `frozen_diff` (0-1 luma scale; ffmpeg freezedetect noise 0.001).
- luma_mean, clipped_dark_fraction (luma < 0.02), clipped_bright_fraction (luma > 0.98).
- sharpness: mean over sampled frames of the variance of a 4-neighbour Laplacian of luma (0-255 scale).
- pixel_motion: mean absolute luma difference between consecutive frames (0-1 scale; `motion_score`).
- camera_speed_mps / camera_rotation_dps: mean translation speed and rotation rate from poses.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

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


DEFAULT_THRESHOLDS = QualityThresholds()  # the one place the default thresholds are written
_D = DEFAULT_THRESHOLDS


class ThresholdsConfig(BaseModel):
    """The `thresholds:` section of the generate and the curate config: every field of
    `QualityThresholds`, under the same name in both.

    Gates (`max_*` / `min_*`) decide keep or reject; the definitions (`black_luma`,
    `black_pixel_luma`, `black_pixel_share`, `frozen_diff`) say what counts as a black or a
    frozen frame, for the scores and for curate's black and frozen stretches.
    """

    model_config = ConfigDict(extra="forbid")

    max_black_fraction: float = Field(_D.max_black_fraction, description="black_fraction above: `black`")
    max_frozen_fraction: float = Field(_D.max_frozen_fraction, description="frozen_fraction above: `frozen`")
    min_luma_mean: float = Field(_D.min_luma_mean, description="luma_mean below: `dark`")
    max_luma_mean: float = Field(_D.max_luma_mean, description="luma_mean above: `overexposed`")
    max_clipped_fraction: float = Field(_D.max_clipped_fraction,
                                        description="clipped dark + bright pixels above: `clipped`")
    min_sharpness: float = Field(_D.min_sharpness, description="sharpness below: `blurry`")
    min_pixel_motion: float = Field(_D.min_pixel_motion, description="pixel_motion below, camera still too: `static`")
    min_camera_speed_mps: float = Field(_D.min_camera_speed_mps, description="a still camera moves slower than this")
    min_camera_rotation_dps: float = Field(_D.min_camera_rotation_dps, description="... and turns slower than this")
    black_luma: float = Field(_D.black_luma, ge=0, le=1, description="a black frame's mean luma is below this")
    black_pixel_luma: float = Field(_D.black_pixel_luma, ge=0, le=1,
                                    description="a dark pixel's luma is below this (blackdetect pix_th)")
    black_pixel_share: float = Field(_D.black_pixel_share, ge=0, le=1,
                                     description="share of dark pixels in a black frame (blackdetect pic_th)")
    frozen_diff: float = Field(_D.frozen_diff, ge=0,
                               description="mean luma change below which a frame repeats the one before")

    def to_thresholds(self) -> QualityThresholds:
        return QualityThresholds(**self.model_dump())


def luma(frames: np.ndarray) -> np.ndarray:
    """(T, H, W, 3) uint8 -> (T, H, W) float32 in [0, 1] (BT.601 weights)."""
    return (frames.astype(np.float32) @ _LUMA) / 255.0


def black_fraction(y: np.ndarray, thresholds: QualityThresholds = DEFAULT_THRESHOLDS) -> float:
    dark_share = (y < thresholds.black_pixel_luma).reshape(len(y), -1).mean(axis=1)
    black = (y.reshape(len(y), -1).mean(axis=1) < thresholds.black_luma) & (dark_share >= thresholds.black_pixel_share)
    return float(black.mean())


def frame_differences(y: np.ndarray) -> np.ndarray:
    """(T-1,) mean absolute luma difference of consecutive frames."""
    if len(y) < 2:
        return np.zeros(0, dtype=np.float32)
    return np.abs(np.diff(y, axis=0)).reshape(len(y) - 1, -1).mean(axis=1)


def frozen_fraction(differences: np.ndarray, thresholds: QualityThresholds = DEFAULT_THRESHOLDS) -> float:
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


def motion_score(frames: np.ndarray) -> float:
    """The motion score of generate and curate (`pixel_motion`): mean absolute luma difference
    of consecutive frames, 0-1 scale; 0.0 for a single frame.

    Why this one: it is what generate has always stored (its bytes are pinned), and curate's
    former `motion` (frames 1/4 s apart, x 10) measured the same thing on another scale, so a
    mixture of real and rendered clips could not be filtered on one column.
    """
    return _mean_motion(frame_differences(luma(frames)))


def _mean_motion(differences: np.ndarray) -> float:
    return float(differences.mean()) if differences.size else 0.0


def pixel_scores(frames: np.ndarray, thresholds: QualityThresholds = DEFAULT_THRESHOLDS) -> dict[str, float]:
    """Every pixel-only score of a (T, H, W, 3) uint8 clip (used by generate and curate)."""
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected (T, H, W, 3) frames, got {frames.shape}")
    y = luma(frames)
    differences = frame_differences(y)
    scores = {
        "black_fraction": black_fraction(y, thresholds),
        "frozen_fraction": frozen_fraction(differences, thresholds),
        "sharpness": sharpness(y),
        "pixel_motion": _mean_motion(differences),
    }
    scores.update(exposure(y))
    return scores


def clip_scores(frames: np.ndarray, poses: np.ndarray | None, fps: float,
                thresholds: QualityThresholds = DEFAULT_THRESHOLDS) -> dict[str, float]:
    scores = pixel_scores(frames, thresholds)
    if poses is not None:
        scores.update(camera_motion(poses, fps))
    return scores


def reject_reasons(scores: dict[str, float], thresholds: QualityThresholds = DEFAULT_THRESHOLDS) -> list[str]:
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


# -- what every score means: units and ranges, for users choosing a `--where` threshold ----------
# Written into the Parquet field metadata of each score column and into dataset.json ("scores"),
# and printed by `worldloom inspect` next to p5/p50/p95 of the data. One table for generate and
# curate; a score missing here is stored with unit "" and a description saying so.

@dataclass(frozen=True)
class ScoreInfo:
    unit: str
    low: float | None        # the range the score can take (None: unbounded on that side)
    high: float | None
    description: str

    def as_dict(self) -> dict[str, object]:
        return {"unit": self.unit, "range": [self.low, self.high], "description": self.description}


SCORE_INFO: dict[str, ScoreInfo] = {
    "black_fraction": ScoreInfo("fraction of frames", 0.0, 1.0, "share of frames that are black (blackdetect style)"),
    "frozen_fraction": ScoreInfo("fraction of frame pairs", 0.0, 1.0,
                                 "share of consecutive frame pairs that do not change"),
    "luma_mean": ScoreInfo("luma, 0-1", 0.0, 1.0, "mean BT.601 luma of the clip"),
    "clipped_dark_fraction": ScoreInfo("fraction of pixels", 0.0, 1.0, "pixels with luma < 0.02"),
    "clipped_bright_fraction": ScoreInfo("fraction of pixels", 0.0, 1.0, "pixels with luma > 0.98"),
    "sharpness": ScoreInfo("Laplacian variance, luma 0-255", 0.0, None,
                           "variance of a 4-neighbour Laplacian; ~0 for flat or blurred frames, grows with detail "
                           "and noise (compare within a dataset: `worldloom inspect` prints its p5/p50/p95)"),
    "pixel_motion": ScoreInfo("mean |luma difference|, 0-1", 0.0, 1.0,
                              "between consecutive frames; static ~0.001, walking footage ~0.005-0.06"),
    # no longer written (issue 10: one motion score, `pixel_motion`); kept for datasets curated before
    "motion": ScoreInfo("mean |luma difference| x 10, frames 1/4 s apart", 0.0, 10.0,
                        "curate's former motion score (datasets curated before issue 10); use pixel_motion"),
    "camera_speed_mps": ScoreInfo("metres per second", 0.0, None, "mean camera translation speed from poses"),
    "camera_rotation_dps": ScoreInfo("degrees per second", 0.0, None, "mean camera rotation rate from poses"),
    "clip_text_similarity": ScoreInfo("cosine", -1.0, 1.0, "CLIP image embedding vs caption text embedding"),
    "aesthetic": ScoreInfo("LAION aesthetic score", 1.0, 10.0,
                           "MLP head on the CLIP embedding; null without a head file"),
    "duplicate_similarity": ScoreInfo("cosine", -1.0, 1.0, "highest CLIP cosine to another kept clip"),
    "caption_is_placeholder": ScoreInfo("flag 0/1", 0.0, 1.0, "1 when no caption source was found"),
}


def score_info(name: str) -> dict[str, object]:
    """Unit, range and description of a score (an undocumented score says so)."""
    info = SCORE_INFO.get(name)
    if info is None:
        return {"unit": "", "range": [None, None], "description": "not documented in pipeline/quality.py SCORE_INFO"}
    return info.as_dict()
