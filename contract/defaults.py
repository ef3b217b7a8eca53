"""Defaults that more than one part falls back to, defined once.

The resolver writes every one of them into the ResolvedClip, so a renderer or reader needs them
only for a clip that lacks the field (an older or hand-written clip, a sample without a camera).
"""
from __future__ import annotations

import numpy as np

#: Camera height above the start position per rig, metres (`camera.height` when the manifest gives none).
DEFAULT_CAMERA_HEIGHT_M: dict[str, float] = {"first_person": 1.7, "vehicle": 1.6, "orbit": 0.0, "fixed": 0.0}

#: Horizontal field of view of a manifest camera without `intrinsics`, degrees.
DEFAULT_FOV_DEG = 70.0

#: The sun when a manifest gives none: degrees above the horizon, compass degrees toward the sun (0 = +Y, 90 = +X).
DEFAULT_SUN_ELEVATION_DEG = 45.0
DEFAULT_SUN_AZIMUTH_DEG = 135.0

#: A manifest's `motion` defaults (the schema's, the rollout's and every reader's): walking speed, metres per
#: second; degrees per frame while a look key is held; the sprint key's speed factor; a jump's upward speed, m/s.
DEFAULT_SPEED_MPS = 1.4
DEFAULT_LOOK_DEG_PER_FRAME = 3.0
DEFAULT_SPRINT_MULTIPLIER = 2.0
DEFAULT_JUMP_SPEED_MPS = 3.5

#: Horizontal field of view assumed for a sample or a camera path without intrinsics (training, sample), degrees.
UNKNOWN_CAMERA_FOV_DEG = 90.0


def unknown_camera_intrinsics(width: int, height: int) -> np.ndarray:
    """(3, 3) float64 K for an unknown camera: `UNKNOWN_CAMERA_FOV_DEG` horizontally, square pixels, centred.

    fx = (W/2) / tan(90°/2) = W/2, written exactly (tan(pi/4) is not exactly 1 in floating point).
    """
    return np.array([[width / 2, 0, width / 2], [0, width / 2, height / 2], [0, 0, 1]], dtype=np.float64)
