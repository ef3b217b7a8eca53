"""OpenCV camera (pose + K) -> PyBullet/OpenGL view and projection matrices, and depth linearisation.

Conventions (docs/architecture.md): camera-to-world is OpenCV (x right, y down, z forward), world Z
up, metres; K is in pixels of the output resolution with (0, 0) at the top-left corner of the
top-left pixel, so pixel (i, j) covers u in [i, i + 1) and its centre is u = i + 0.5, and a centred
principal point is (W/2, H/2) (contract.manifest.resolve writes K this way). OpenGL cameras look down -z with y
up, so the two frames differ by a flip of y and z. PyBullet takes matrices as 16 floats in
column-major (OpenGL) order.
"""
from __future__ import annotations

import numpy as np

# OpenCV camera axes expressed in OpenGL camera axes (and back: the matrix is its own inverse).
CV_TO_GL = np.diag([1.0, -1.0, -1.0, 1.0])


def view_matrix(camera_to_world: np.ndarray) -> list[float]:
    """World -> OpenGL eye transform, flattened column-major for PyBullet."""
    pose_gl = np.asarray(camera_to_world, dtype=np.float64) @ CV_TO_GL
    world_to_eye = np.linalg.inv(pose_gl)
    return [float(v) for v in world_to_eye.flatten(order="F")]


def projection_matrix(K: np.ndarray, width: int, height: int, near: float, far: float) -> list[float]:
    """OpenGL projection that reproduces the pinhole K exactly, off-centre principal points included.

    TinyRenderer samples column i at viewport x = i and writes viewport row j to image row
    H - 1 - j (measured: see tests/test_procedural_backend.py::test_projection_matches_pinhole).
    To make column i / row r sample the pixel centre u = i + 0.5 / v = r + 0.5 we map
    NDC x = 2 (u - 0.5) / W - 1 and NDC y = 1 - 2 (v + 0.5) / H; solving for the matrix gives
    the terms below.
    """
    fx, fy, cx, cy = float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2])
    proj = np.array(
        [
            [2.0 * fx / width, 0.0, 1.0 - 2.0 * (cx - 0.5) / width, 0.0],
            [0.0, 2.0 * fy / height, 2.0 * (cy + 0.5) / height - 1.0, 0.0],
            [0.0, 0.0, -(far + near) / (far - near), -2.0 * far * near / (far - near)],
            [0.0, 0.0, -1.0, 0.0],
        ]
    )
    return [float(v) for v in proj.flatten(order="F")]


def linear_depth(buffer: np.ndarray, near: float, far: float) -> np.ndarray:
    """Non-linear [0, 1] depth buffer -> planar z in metres (float32); 1.0 (sky) -> exactly `far`."""
    d = np.asarray(buffer, dtype=np.float64)
    z = (far * near) / (far - (far - near) * d)
    z = np.clip(z, near, far)
    return z.astype(np.float32)


def intrinsics_matrix(fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=np.float64)


def camera_rays(K: np.ndarray, width: int, height: int) -> np.ndarray:
    """Per-pixel ray directions in the OpenCV camera frame with z = 1, shape (H, W, 3) float64.

    Multiplying by planar depth gives the camera-frame point, so world positions of every pixel
    are `(rays * depth[..., None]) @ R.T + t` — used by sky, fog and terrain tinting.
    """
    u = np.arange(width, dtype=np.float64) + 0.5  # pixel centres
    v = np.arange(height, dtype=np.float64) + 0.5
    uu, vv = np.meshgrid(u, v)
    x = (uu - K[0, 2]) / K[0, 0]
    y = (vv - K[1, 2]) / K[1, 1]
    return np.stack([x, y, np.ones_like(x)], axis=-1)


def project(K: np.ndarray, camera_to_world: np.ndarray, point_world: np.ndarray) -> tuple[float, float, float]:
    """World point -> (u, v, planar z) with the OpenCV pinhole model; the reference the renderer must match."""
    w2c = np.linalg.inv(np.asarray(camera_to_world, dtype=np.float64))
    pc = w2c[:3, :3] @ np.asarray(point_world, dtype=np.float64) + w2c[:3, 3]
    uvw = K @ pc
    return float(uvw[0] / uvw[2]), float(uvw[1] / uvw[2]), float(pc[2])


def look_at(position, target, up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """OpenCV camera-to-world for a camera at `position` looking at `target` (world Z up)."""
    pos = np.asarray(position, dtype=np.float64)
    z = np.asarray(target, dtype=np.float64) - pos
    z /= np.linalg.norm(z)
    x = np.cross(z, np.asarray(up, dtype=np.float64))
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = x, y, z, pos
    return pose
