"""Procedural surface detail computed per pixel from world coordinates (no texture files).

The renderer knows every pixel's world position (camera pose + planar depth), so surface detail
can be a function of world coordinates: it sticks to the geometry as the camera moves, which is
what makes camera motion visible in otherwise flat-coloured TinyRenderer output.
"""
from __future__ import annotations

import numpy as np

TABLE_SIZE = 256  # lattice period in noise cells


class NoiseTable:
    """Smooth 2D value noise from a seeded 256x256 lattice (bilinear with smoothstep weights)."""

    def __init__(self, seed: int) -> None:
        self.table = np.random.default_rng([seed, 0x7E47]).random((TABLE_SIZE, TABLE_SIZE), dtype=np.float32)

    def sample(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Noise in [0, 1] at lattice coordinates (x, y) (float arrays of the same shape)."""
        xf, yf = np.floor(x), np.floor(y)
        fx, fy = (x - xf).astype(np.float32), (y - yf).astype(np.float32)
        xi = xf.astype(np.int64) & (TABLE_SIZE - 1)
        yi = yf.astype(np.int64) & (TABLE_SIZE - 1)
        xj, yj = (xi + 1) & (TABLE_SIZE - 1), (yi + 1) & (TABLE_SIZE - 1)
        t = self.table
        sx, sy = fx * fx * (3 - 2 * fx), fy * fy * (3 - 2 * fy)
        top = t[yi, xi] + (t[yi, xj] - t[yi, xi]) * sx
        bottom = t[yj, xi] + (t[yj, xj] - t[yj, xi]) * sx
        return top + (bottom - top) * sy


def building_windows(points: np.ndarray, roof: np.ndarray) -> np.ndarray:
    """Boolean mask of window pixels on box-building facades.

    Facades of axis-aligned boxes have x or y constant, so `x + y` runs along any facade; floors
    are 3.2 m apart. Roof pixels (known from each building's height) never get windows.
    """
    along = points[:, 0] + points[:, 1]
    z = points[:, 2]
    floor_phase = np.mod(z - 0.15, 3.2)
    column_phase = np.mod(along, 2.6)
    return (floor_phase > 1.0) & (floor_phase < 2.3) & (column_phase > 0.6) & (column_phase < 2.0) & (z > 3.0) & ~roof
