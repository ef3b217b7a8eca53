"""TinyRenderer passes: one getCameraImage call per frame, then vectorised numpy post-processing.

Output passes (docs/architecture.md, Conventions): rgb (H,W,3) uint8, depth (H,W) float32 planar z
in metres with the sky at the far plane, segmentation (H,W) int32 stable ids (0 = sky).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pybullet as p

from contract.clip import ClipEnvironment
from unreal_bridge.procedural import environment as envmod
from unreal_bridge.procedural.camera import camera_rays, linear_depth, projection_matrix, view_matrix
from unreal_bridge.procedural.ids import CLASS_CODES, GROUND_CLASSES, INSTANCES_PER_CLASS, SegmentationIds
from unreal_bridge.procedural.textures import NoiseTable, building_windows

ALL_PASSES = ("rgb", "depth", "segmentation")


@dataclass(frozen=True)
class CameraSpec:
    K: np.ndarray  # (3, 3) pixels of the output resolution
    width: int
    height: int
    near: float = 0.05
    far: float = 400.0


@dataclass(frozen=True)
class TerrainTint:
    """Height ramp for heightfield terrain, rendered with a white albedo and coloured here."""

    z_min: float
    z_max: float


class PassRenderer:
    """Renders one camera with fixed intrinsics and environment in one PyBullet client."""

    def __init__(
        self,
        client: int,
        camera: CameraSpec,
        ids: SegmentationIds,
        environment: ClipEnvironment,
        *,
        texture_seed: int = 0,
        terrain_tint: TerrainTint | None = None,
        road_grid: tuple[float, float] | None = None,
        building_tops: dict[int, float] | None = None,
        shadows: bool = False,
        extra_ambient: float | None = None,
    ) -> None:
        self.client = client
        self.camera = camera
        self.ids = ids
        self.environment = environment
        self.noise = NoiseTable(int(texture_seed))
        # Roof height per building instance, indexed by segmentation id - building class base.
        tops = building_tops or {}
        base = CLASS_CODES["building"] * INSTANCES_PER_CLASS
        self._building_tops = np.full(INSTANCES_PER_CLASS, np.inf, dtype=np.float32)
        for segment_id, top in tops.items():
            self._building_tops[segment_id - base] = top
        self.terrain_tint = terrain_tint
        self.road_grid = road_grid
        self.lighting = envmod.lighting_for(environment, shadows=shadows, extra_ambient=extra_ambient)
        # Lit windows are a light source: only when the manifest leaves ambient light to the
        # renderer (`environment.ambient: 0` means no light at all, and renders black at night).
        self.window_glow = 0.0 if extra_ambient is not None else 1.0 - envmod.daylight(environment)
        self.sky = envmod.sky_colors(environment)
        self._projection = projection_matrix(camera.K, camera.width, camera.height, camera.near, camera.far)
        self._rays = camera_rays(camera.K, camera.width, camera.height)  # (H, W, 3), z = 1
        self._ray_norm = np.linalg.norm(self._rays, axis=-1).astype(np.float32)  # planar z -> distance
        self._unit_rays = (self._rays / self._ray_norm[..., None]).astype(np.float32)
        self._is_ground = np.zeros(max(CLASS_CODES.values()) + 1, dtype=bool)  # class code -> ground?
        self._is_ground[[CLASS_CODES[name] for name in GROUND_CLASSES]] = True

    def render(
        self, camera_to_world: np.ndarray, *, passes: tuple[str, ...] = ALL_PASSES, rain_rng: np.random.Generator | None = None
    ) -> dict[str, np.ndarray]:
        cam = self.camera
        _, _, rgba, depth_buffer, raw_mask = p.getCameraImage(
            cam.width,
            cam.height,
            viewMatrix=view_matrix(camera_to_world),
            projectionMatrix=self._projection,
            renderer=p.ER_TINY_RENDERER,
            physicsClientId=self.client,
            **self.lighting.camera_image_kwargs(),
        )
        shape = (cam.height, cam.width)
        depth = linear_depth(np.reshape(depth_buffer, shape), cam.near, cam.far)
        segmentation = self.ids.map_mask(np.reshape(raw_mask, shape))
        out: dict[str, np.ndarray] = {}
        if "rgb" in passes:
            rgb = np.reshape(rgba, (cam.height, cam.width, 4))[..., :3]
            out["rgb"] = self._post_process(rgb, depth, segmentation, camera_to_world, rain_rng)
        if "depth" in passes:
            out["depth"] = depth
        if "segmentation" in passes:
            out["segmentation"] = segmentation
        return out

    def _post_process(
        self,
        rgb_u8: np.ndarray,
        depth: np.ndarray,
        segmentation: np.ndarray,
        camera_to_world: np.ndarray,
        rain_rng: np.random.Generator | None,
    ) -> np.ndarray:
        env, sky = self.environment, self.sky
        rgb = rgb_u8.astype(np.float32) * np.float32(1.0 / 255.0)
        rotation = np.asarray(camera_to_world[:3, :3], dtype=np.float32)
        position = np.asarray(camera_to_world[:3, 3], dtype=np.float32)
        world_dirs = self._unit_rays @ rotation.T  # (H, W, 3) unit directions in the world
        distance = depth * self._ray_norm  # (H, W) metres along the ray
        classes = segmentation // INSTANCES_PER_CLASS
        ground = self._is_ground[classes]

        if ground.any():
            # World-space texture on the ground so that camera motion is visible in the pixels.
            points = position[None, :] + world_dirs[ground] * distance[ground][:, None]
            fine = self.noise.sample(points[:, 0] * 1.7, points[:, 1] * 1.7)
            coarse = self.noise.sample(points[:, 0] * 0.21 + 101.0, points[:, 1] * 0.21 + 37.0)
            shade = np.float32(0.78) + np.float32(0.14) * fine + np.float32(0.16) * coarse
            colours = rgb[ground] * shade[:, None]
            if self.terrain_tint is not None:
                terrain = classes[ground] == CLASS_CODES["terrain"]
                if terrain.any():
                    colours[terrain] = self._tint_terrain(colours[terrain], points[terrain, 2])
            if self.road_grid is not None:
                colours = self._paint_lane_markings(colours, points, classes[ground])
            rgb[ground] = colours

        buildings = classes == CLASS_CODES["building"]
        if buildings.any():
            self._shade_facades(rgb, buildings, segmentation, position, world_dirs, distance)

        sky_mask = segmentation == 0
        envmod.shade_sky(rgb, sky_mask, world_dirs, env, sky, self.noise)
        envmod.apply_wetness(rgb, ground, env, sky)
        envmod.apply_fog(rgb, distance, env, sky)
        if rain_rng is not None:
            envmod.apply_rain(rgb, env, sky, rain_rng)
        return (np.clip(rgb, 0.0, 1.0) * np.float32(255.0) + np.float32(0.5)).astype(np.uint8)

    def _shade_facades(self, rgb, buildings, segmentation, position, world_dirs, distance) -> None:
        """Glass windows on building facades: darker, bluish, a little sky reflection (in place)."""
        points = position[None, :] + world_dirs[buildings] * distance[buildings][:, None]
        instance = segmentation[buildings] - CLASS_CODES["building"] * INSTANCES_PER_CLASS
        roof = points[:, 2] > self._building_tops[np.clip(instance, 0, INSTANCES_PER_CLASS - 1)] - 0.05
        windows = building_windows(points, roof)
        if windows.any():
            colours = rgb[buildings]
            glass = np.float32(0.3) * colours[windows] + np.float32(0.22) * self.sky.horizon.astype(np.float32) * np.array(
                [0.8, 0.9, 1.0], dtype=np.float32
            )
            if self.window_glow > 0.0:
                glass = self._light_windows(glass, points[windows], instance[windows])
            colours[windows] = glass
            rgb[buildings] = colours

    def _light_windows(self, glass: np.ndarray, points: np.ndarray, instance: np.ndarray) -> np.ndarray:
        """After dusk about 40 % of windows glow warm; which ones is a seeded function of the
        building, floor and window column, so a window stays lit (or dark) as the camera moves."""
        floor = np.floor((points[:, 2] - 0.15) / 3.2)
        column = np.floor((points[:, 0] + points[:, 1]) / 2.6)
        lit = self.noise.table[(instance * 7 + floor.astype(np.int64)) & 255, column.astype(np.int64) & 255] > 0.6
        warm = np.array([1.0, 0.78, 0.45], dtype=np.float32) * np.float32(0.85 * self.window_glow)
        glass[lit] = glass[lit] + warm
        return glass

    def _paint_lane_markings(self, colours: np.ndarray, points: np.ndarray, classes: np.ndarray) -> np.ndarray:
        """Dashed white centre lines on a road grid (lines on multiples of `pitch`), none in crossings."""
        pitch, road = self.road_grid
        x, y = points[:, 0], points[:, 1]
        dx = np.abs(x - np.round(x / pitch) * pitch)  # distance to the nearest north-south centre line
        dy = np.abs(y - np.round(y / pitch) * pitch)
        dashes_ns = (dx < 0.12) & (np.mod(y, 6.0) < 3.0) & (dy > road / 2)
        dashes_ew = (dy < 0.12) & (np.mod(x, 6.0) < 3.0) & (dx > road / 2)
        paint = (dashes_ns | dashes_ew) & (classes == CLASS_CODES["road"])
        if paint.any():
            colours[paint] = colours[paint] * np.float32(3.6)  # white paint under the same light as asphalt
        return colours

    def _tint_terrain(self, shading: np.ndarray, heights: np.ndarray) -> np.ndarray:
        """Grass low, rock in the middle, snow on top; shading comes from a white-albedo render."""
        tint = self.terrain_tint
        t = np.clip((heights - tint.z_min) / max(tint.z_max - tint.z_min, 1e-6), 0.0, 1.0)[:, None]
        grass = np.array([0.33, 0.50, 0.20], dtype=np.float32)
        rock = np.array([0.48, 0.43, 0.36], dtype=np.float32)
        snow = np.array([0.95, 0.95, 0.97], dtype=np.float32)
        low = grass + (rock - grass) * np.clip(t / 0.6, 0.0, 1.0)
        colour = np.where(t > 0.75, rock + (snow - rock) * np.clip((t - 0.75) / 0.15, 0.0, 1.0), low)
        return shading * colour
