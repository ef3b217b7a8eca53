"""Heightfields: seeded fractal noise or a grayscale PNG, flattened where the camera walks.

Layout (measured, see docs/procedural-renderer.md): PyBullet places sample `h[i, j]` at world
x = (j - (n-1)/2) * cell, y = (i - (n-1)/2) * cell, and centres the shape vertically between the
lowest and highest sample, so the body is lifted by (min + max) / 2 to keep heights absolute.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pybullet as p
import pybullet_data

from contract.errors import UserError


def _smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def fractal_noise(n: int, rng: np.random.Generator, roughness: float, octaves: int = 6) -> np.ndarray:
    """(n, n) float64 in [0, 1]: octaves of bilinearly upsampled random grids (value noise)."""
    total = np.zeros((n, n))
    amplitude, weight = 1.0, 0.0
    persistence = 0.35 + 0.4 * float(roughness)
    coords = np.linspace(0.0, 1.0, n)
    for octave in range(octaves):
        cells = 2 ** (octave + 1) + 1
        grid = rng.random((cells, cells))
        pos = coords * (cells - 1)
        i0 = np.minimum(np.floor(pos).astype(int), cells - 2)
        f = pos - i0
        rows = grid[i0] * (1 - f)[:, None] + grid[i0 + 1] * f[:, None]  # (n, cells)
        layer = rows[:, i0] * (1 - f)[None, :] + rows[:, i0 + 1] * f[None, :]  # (n, n)
        total += amplitude * layer
        weight += amplitude
        amplitude *= persistence
    total /= weight
    return (total - total.min()) / max(total.max() - total.min(), 1e-9)


DATA_URI_PREFIX = "data:image/png;base64,"
MAX_HEIGHTMAP_BYTES = 1 << 20  # an embedded PNG
MAX_HEIGHTMAP_PIXELS = 4096 * 4096  # checked from the PNG header, before any pixel is decoded


def heightmap_roots(asset_dirs: tuple[Path, ...] | list[Path] = ()) -> list[Path]:
    """The folders a heightmap *name* may resolve into: the server's --asset-dir folders, then pybullet_data."""
    return [Path(folder) for folder in asset_dirs] + [Path(pybullet_data.getDataPath())]


def _not_available(spec: str) -> UserError:
    # One message for missing, unreadable, outside the asset folders and not-a-PNG alike: the
    # server never tells a client whether some path exists on its disk.
    shown = repr(spec) if len(spec) <= 60 else repr(spec[:57] + "...")
    return UserError(
        f"world.params.heightmap: {shown} is not an available heightmap",
        hint="name a PNG inside the render server's asset folders (--asset-dir; pybullet_data's, e.g. "
             "heightmaps/wm_height_out.png, are always there), embed one as data:image/png;base64,..., or use null",
    )


def _locate(spec: str, roots: list[Path]) -> Path | None:
    """`spec` as a file strictly inside one of `roots` (symlinks resolved), or None."""
    relative = Path(spec)
    if not spec or relative.is_absolute() or "\\" in spec or any(part in ("..", "") for part in spec.split("/")):
        return None
    for root in roots:
        try:
            base = root.resolve()
            candidate = (base / relative).resolve()
        except (OSError, RuntimeError):  # a symlink loop
            continue
        if candidate.is_relative_to(base) and candidate.is_file():
            return candidate
    return None


def _open_png(source: Path | bytes, spec: str):
    """A PIL image of a PNG, with its size checked before the pixels are decoded."""
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source, formats=["PNG"])
    except (OSError, UnidentifiedImageError, ValueError):
        raise _not_available(spec) from None
    width, height = image.size
    if width * height > MAX_HEIGHTMAP_PIXELS or width < 2 or height < 2:
        image.close()
        raise UserError(f"world.params.heightmap: the PNG is {width}x{height}; use 2x2 up to 4096x4096 pixels")
    return image


def load_heightmap_png(spec: str, n: int, asset_dirs: tuple[Path, ...] | list[Path] = ()) -> np.ndarray:
    """Grayscale PNG -> (n, n) in [0, 1].

    `spec` is either a name relative to one of the server's asset folders (`heightmap_roots`) or
    the PNG itself as `data:image/png;base64,...`. Never an arbitrary path: a render server
    opens no file a client names outside those folders (docs/render-protocol.md, "Security").
    """
    from PIL import Image

    if spec.startswith(DATA_URI_PREFIX):
        import base64
        import binascii

        encoded = spec[len(DATA_URI_PREFIX):]
        if len(encoded) > (MAX_HEIGHTMAP_BYTES * 4) // 3 + 4:
            raise UserError(f"world.params.heightmap: the embedded PNG is over {MAX_HEIGHTMAP_BYTES >> 20} MiB; use a smaller image")
        try:
            source: Path | bytes = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise UserError("world.params.heightmap: the data URI is not valid base64; encode the PNG with base64") from None
    else:
        located = _locate(spec, heightmap_roots(asset_dirs))
        if located is None:
            raise _not_available(spec)
        source = located
    image = _open_png(source, spec)
    try:
        gray = image.convert("L").resize((n, n), Image.Resampling.BILINEAR)
    except (OSError, ValueError, Image.DecompressionBombError):
        raise _not_available(spec) from None
    finally:
        image.close()
    data = np.asarray(gray, dtype=np.float64) / 255.0
    return (data - data.min()) / max(data.max() - data.min(), 1e-9)


@dataclass
class Heightfield:
    heights: np.ndarray  # (n, n) metres, absolute world z
    size_m: float

    @property
    def cell(self) -> float:
        return self.size_m / (self.heights.shape[0] - 1)

    def grid_xy(self) -> tuple[np.ndarray, np.ndarray]:
        n = self.heights.shape[0]
        axis = (np.arange(n) - (n - 1) / 2.0) * self.cell
        return np.meshgrid(axis, axis)  # X varies along columns (j), Y along rows (i)

    def flatten_along(self, path_xy: np.ndarray, level: float, inner: float, outer: float) -> None:
        """Blend heights to `level` within `inner` metres of the path, smoothly back by `outer`."""
        if len(path_xy) == 0:
            return
        gx, gy = self.grid_xy()
        # Subsample long paths: the corridor is metres wide, frames are centimetres apart.
        path = path_xy[:: max(1, len(path_xy) // 64)]
        d2 = np.full(gx.shape, np.inf)
        for x, y in path:
            d2 = np.minimum(d2, (gx - x) ** 2 + (gy - y) ** 2)
        blend = _smoothstep(inner, outer, np.sqrt(d2))
        self.heights = level * (1.0 - blend) + self.heights * blend

    def height_at(self, x: float, y: float) -> float:
        """Bilinear height at a world point (clamped to the edge outside the field)."""
        n = self.heights.shape[0]
        fj = min(max(x / self.cell + (n - 1) / 2.0, 0.0), n - 1.000001)
        fi = min(max(y / self.cell + (n - 1) / 2.0, 0.0), n - 1.000001)
        i, j = int(fi), int(fj)
        a, b = fi - i, fj - j
        h = self.heights
        return float(
            h[i, j] * (1 - a) * (1 - b) + h[i, j + 1] * (1 - a) * b + h[i + 1, j] * a * (1 - b) + h[i + 1, j + 1] * a * b
        )

    def vertex_normals(self) -> np.ndarray:
        """(n*n, 3) unit normals from central differences of the height grid."""
        dz_dy, dz_dx = np.gradient(self.heights, self.cell)
        normals = np.stack([-dz_dx, -dz_dy, np.ones_like(dz_dx)], axis=-1)
        return (normals / np.linalg.norm(normals, axis=-1, keepdims=True)).reshape(-1, 3)

    def triangle_indices(self) -> list[int]:
        """Two counter-clockwise (seen from above) triangles per grid cell."""
        n = self.heights.shape[0]
        i, j = np.meshgrid(np.arange(n - 1), np.arange(n - 1), indexing="ij")
        a = (i * n + j).ravel()
        quads = np.stack([a, a + 1, a + n + 1, a, a + n + 1, a + n], axis=1)
        return [int(v) for v in quads.ravel()]

    def create_body(self, client: int, rgba: list[float]) -> int:
        """Heightfield collision, plus an explicit triangle mesh as the visual.

        PyBullet's own heightfield visual is shaded inconsistently in TinyRenderer (half the
        field comes out darker along a straight seam), so the visual is built here with one
        winding and smooth normals; it has exactly the collision surface's vertices.
        """
        n = self.heights.shape[0]
        shape = p.createCollisionShape(
            p.GEOM_HEIGHTFIELD,
            meshScale=[self.cell, self.cell, 1.0],
            heightfieldData=[float(v) for v in self.heights.ravel()],
            numHeightfieldRows=n,
            numHeightfieldColumns=n,
            physicsClientId=client,
        )
        gx, gy = self.grid_xy()
        lift = (float(self.heights.min()) + float(self.heights.max())) / 2.0
        vertices = np.stack([gx.ravel(), gy.ravel(), self.heights.ravel() - lift], axis=1)
        visual = p.createVisualShape(
            p.GEOM_MESH,
            vertices=vertices.tolist(),
            indices=self.triangle_indices(),
            normals=self.vertex_normals().tolist(),
            rgbaColor=rgba,
            physicsClientId=client,
        )
        return p.createMultiBody(0, shape, visual, basePosition=[0.0, 0.0, lift], physicsClientId=client)
