"""Fidelity and camera-following metrics (pure numpy; the camera estimator lives in camera.py).

PSNR is over all channels of 8-bit RGB (peak 255; identical frames give +inf). SSIM is Wang et
al. 2004 on the luma (BT.601) with an 11x11 Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03,
valid region only, the constants scikit-image uses with `gaussian_weights=True`; identical
frames give exactly 1.

Camera following compares an estimated relative motion per frame with the commanded path:

  rotation error     geodesic angle between the estimated and commanded camera orientation,
                     both accumulated from frame 0 (so a model that does not turn at all scores
                     the commanded turn itself), in degrees
  translation error  angle between estimated and commanded displacement directions per step,
                     on steps where the commanded camera moved at least 1 cm and the estimate
                     found a translation, in degrees
  CamMC-style        mean Frobenius norm of [R | t] (from frame 0) minus its commanded value, with
                     the estimated steps scaled to the commanded step lengths (monocular video
                     has no scale)
"""
from __future__ import annotations

import math

import numpy as np

from training.eval.camera import RelativeMotion, rotation_angle_deg

_LUMA = np.array([0.299, 0.587, 0.114])


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two uint8 images (or stacks) of the same shape; +inf when identical."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"psnr: shapes differ {a.shape} vs {b.shape}")
    mse = float(np.mean((a - b) ** 2))
    return math.inf if mse == 0.0 else 10.0 * math.log10(255.0 ** 2 / mse)


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    x = np.arange(size) - (size - 1) / 2
    g = np.exp(-(x ** 2) / (2 * sigma ** 2))
    return g / g.sum()


def _filter_valid(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Separable 'valid' correlation of a 2-D image with a 1-D kernel on both axes."""
    from numpy.lib.stride_tricks import sliding_window_view

    rows = sliding_window_view(image, len(kernel), axis=0) @ kernel
    return sliding_window_view(rows, len(kernel), axis=1) @ kernel


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM of two uint8 RGB (H, W, 3) or gray (H, W) images; 1.0 when identical."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"ssim: shapes differ {a.shape} vs {b.shape}")
    if a.ndim == 3:
        a, b = a @ _LUMA, b @ _LUMA
    smallest = min(a.shape)
    size = min(11, smallest if smallest % 2 else smallest - 1)   # the window must fit the image
    if size < 3:
        raise ValueError(f"ssim: images of {a.shape} are too small (need at least 3x3)")
    kernel = _gaussian_window(size, 1.5)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_a, mu_b = _filter_valid(a, kernel), _filter_valid(b, kernel)
    var_a = _filter_valid(a * a, kernel) - mu_a ** 2
    var_b = _filter_valid(b * b, kernel) - mu_b ** 2
    cov = _filter_valid(a * b, kernel) - mu_a * mu_b
    # the unbiased covariance, as scikit-image does by default
    n = size * size
    correction = n / (n - 1)
    var_a, var_b, cov = var_a * correction, var_b * correction, cov * correction
    index = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return float(index.mean())


def per_frame(metric, video: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """metric(video[t], reference[t]) for every frame."""
    return np.array([metric(video[t], reference[t]) for t in range(min(len(video), len(reference)))])


def by_second(values: np.ndarray, fps: float, start_frame: int = 1) -> list[float]:
    """Mean of per-frame values grouped by second of horizon (frame t is at t / fps seconds).

    Frames before `start_frame` (the given first frame) are left out. +inf values (identical
    frames) are kept as +inf in a group that is all +inf; otherwise they are skipped.
    """
    values = np.asarray(values, dtype=np.float64)
    seconds = []
    frames = np.arange(len(values))
    last = int(math.ceil((len(values) - 1) / fps)) if len(values) > 1 else 0
    for second in range(1, last + 1):
        pick = (frames >= start_frame) & (frames > (second - 1) * fps) & (frames <= second * fps)
        seconds.append(finite_mean(values[pick]))
    return seconds


def finite_mean(values: np.ndarray) -> float:
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return math.nan
    if np.all(np.isposinf(values)):
        return math.inf
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if len(finite) else math.nan


# --------------------------------------------------------------------------- camera following


def accumulate(motions: list[RelativeMotion], step_lengths: np.ndarray | None = None) -> np.ndarray:
    """Chain per-step estimates into camera-to-first-frame poses (T, 4, 4); failed steps count as no motion.

    With `step_lengths`, step t's unit translation is scaled to that length (else translation is 0).
    """
    poses = [np.eye(4)]
    for index, motion in enumerate(motions):
        step = np.eye(4)
        if motion.rotation is not None:
            step[:3, :3] = motion.rotation
        if motion.translation_dir is not None and step_lengths is not None:
            step[:3, 3] = motion.translation_dir * float(step_lengths[index])
        poses.append(poses[-1] @ step)
    return np.stack(poses)


def relative_to_first(poses: np.ndarray) -> np.ndarray:
    """Camera-to-world poses (T, 4, 4) re-expressed in the first frame's camera (pose 0 = identity)."""
    poses = np.asarray(poses, dtype=np.float64)
    return np.linalg.inv(poses[0])[None] @ poses


def camera_errors(motions: list[RelativeMotion], commanded_poses: np.ndarray) -> dict[str, np.ndarray]:
    """Per-frame rotation error (deg), per-step translation-direction error (deg, NaN where undefined)
    and per-frame CamMC-style error, of estimated motions against a commanded path (T, 4, 4)."""
    commanded = relative_to_first(commanded_poses)
    T = min(len(motions) + 1, len(commanded))
    commanded = commanded[:T]
    steps = np.linalg.inv(commanded[:-1]) @ commanded[1:]
    lengths = np.linalg.norm(steps[:, :3, 3], axis=1)
    estimated = accumulate(motions[:T - 1], lengths)
    rotation = np.array([rotation_angle_deg(estimated[t, :3, :3].T @ commanded[t, :3, :3]) for t in range(T)])
    translation = np.full(T - 1, np.nan)
    for t, motion in enumerate(motions[:T - 1]):
        if lengths[t] >= 0.01 and motion.translation_dir is not None:
            truth = steps[t, :3, 3] / lengths[t]
            translation[t] = math.degrees(math.acos(float(np.clip(truth @ motion.translation_dir, -1.0, 1.0))))
    cammc = np.linalg.norm((estimated - commanded)[:, :3, :], axis=(1, 2))
    return {"rotation_deg": rotation, "translation_deg": translation, "cammc": cammc}


def yaw_total(motions: list[RelativeMotion]) -> float:
    """Sum of per-step yaw over the video (failed steps count as zero), degrees."""
    return float(sum(m.angles()[0] for m in motions if m.ok))


def mean_divergence(motions: list[RelativeMotion]) -> float:
    values = np.array([m.divergence for m in motions], dtype=np.float64)
    values = values[np.isfinite(values)]
    return float(values.mean()) if len(values) else math.nan
