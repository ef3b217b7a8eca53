"""OpenCV camera-to-world (worldloom) <-> Unreal actor transforms.

worldloom (docs/architecture.md): world right-handed, Z up, metres; camera axes OpenCV
(x right, y down, z forward). Unreal: world left-handed, Z up, centimetres; an actor's axes are
X forward, Y right, Z up, and its orientation is a Rotator (roll, pitch, yaw in degrees).

The conversion, written once here and nowhere else:

* World points: ``p_ue = 100 * S @ p_wl`` with ``S = diag(1, -1, 1)``. Flipping Y turns the
  right-handed frame into Unreal's left-handed one (worldloom +Y, to the left of +X, becomes
  Unreal -Y, also to the left of +X because Unreal's +Y points right).
* Camera axes: Unreal forward = OpenCV +z, Unreal right = OpenCV +x, Unreal up = OpenCV -y,
  each carried into Unreal coordinates by ``S``. So the actor's axis matrix (columns forward,
  right, up) is ``R_ue = S @ R_cv @ P`` with ``P`` picking (z, x, -y). Both ``S`` and ``P`` have
  determinant -1, so ``R_ue`` is a proper rotation in Unreal's numbers.
* ``R_ue`` <-> Rotator follows FRotationMatrix: forward = (cos p cos y, cos p sin y, sin p);
  positive yaw turns right (towards +Y), positive pitch looks up.

A level camera looking along worldloom +X is the identity OpenCV-to-Unreal case:
Rotator(roll=0, pitch=0, yaw=0).
"""
from __future__ import annotations

import math

import numpy as np

CM_PER_METRE = 100.0
FLIP_Y = np.diag([1.0, -1.0, 1.0])
# Columns: which OpenCV camera axis becomes Unreal's forward, right and up.
CV_AXES_TO_UE_AXES = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])


def rotator_to_axes(roll_deg: float, pitch_deg: float, yaw_deg: float) -> np.ndarray:
    """Unreal Rotator -> 3x3 whose columns are the actor's forward, right, up (Unreal coordinates)."""
    sr, cr = math.sin(math.radians(roll_deg)), math.cos(math.radians(roll_deg))
    sp, cp = math.sin(math.radians(pitch_deg)), math.cos(math.radians(pitch_deg))
    sy, cy = math.sin(math.radians(yaw_deg)), math.cos(math.radians(yaw_deg))
    forward = [cp * cy, cp * sy, sp]
    right = [sr * sp * cy - cr * sy, sr * sp * sy + cr * cy, -sr * cp]
    up = [-(cr * sp * cy + sr * sy), cy * sr - cr * sp * sy, cr * cp]
    return np.array([forward, right, up], dtype=np.float64).T


def axes_to_rotator(axes: np.ndarray) -> tuple[float, float, float]:
    """3x3 (columns forward, right, up) -> (roll, pitch, yaw) in degrees, as FMatrix::Rotator does."""
    forward, right, up = axes[:, 0], axes[:, 1], axes[:, 2]
    pitch = math.degrees(math.atan2(forward[2], math.hypot(forward[0], forward[1])))
    yaw = math.degrees(math.atan2(forward[1], forward[0]))
    right_without_roll = rotator_to_axes(0.0, pitch, yaw)[:, 1]
    roll = math.degrees(math.atan2(float(up @ right_without_roll), float(right @ right_without_roll)))
    return roll, pitch, yaw


def opencv_pose_to_unreal(pose: np.ndarray) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """OpenCV camera-to-world (metres) -> (Unreal location in cm, (roll, pitch, yaw) in degrees)."""
    pose = np.asarray(pose, dtype=np.float64)
    axes_ue = FLIP_Y @ pose[:3, :3] @ CV_AXES_TO_UE_AXES
    location = CM_PER_METRE * (FLIP_Y @ pose[:3, 3])
    return (float(location[0]), float(location[1]), float(location[2])), axes_to_rotator(axes_ue)


def unreal_to_opencv_pose(location_cm, rotator_deg) -> np.ndarray:
    """(Unreal location in cm, (roll, pitch, yaw) degrees) -> OpenCV camera-to-world 4x4 in metres."""
    roll, pitch, yaw = rotator_deg
    axes_ue = rotator_to_axes(roll, pitch, yaw)
    pose = np.eye(4)
    # Inverse of the forward mapping: S and P^-1 = P^T (P is a signed permutation).
    pose[:3, :3] = FLIP_Y @ axes_ue @ CV_AXES_TO_UE_AXES.T
    pose[:3, 3] = FLIP_Y @ np.asarray(location_cm, dtype=np.float64) / CM_PER_METRE
    return pose


def horizontal_fov_deg(fx: float, width: int) -> float:
    """SceneCapture2D takes a horizontal field of view; a centred pinhole gives fx = W / (2 tan(fov/2))."""
    return math.degrees(2.0 * math.atan(width / (2.0 * fx)))


def fx_from_fov(fov_deg: float, width: int) -> float:
    return width / (2.0 * math.tan(math.radians(fov_deg) / 2.0))
