"""Primitive builders shared by the world generators: every body gets a stable segmentation id.

PyBullet bodies are created through one `SceneBuilder` so that (a) every call carries the
builder's physicsClientId (several backends can live in one process) and (b) no body escapes
id assignment.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pybullet as p

from unreal_bridge.procedural.ids import SegmentationIds
from unreal_bridge.procedural.renderer import TerrainTint

Vec3 = Sequence[float]
RGBA = Sequence[float]


@dataclass
class World:
    """What a generator built: ids, optional terrain tint, per-frame events and ground queries."""

    ids: SegmentationIds
    terrain_tint: TerrainTint | None = None
    ground_height: Callable[[float, float], float] = lambda x, y: 0.0
    # Called with the frame index before the physics steps of that frame (e.g. push a domino).
    frame_events: list[Callable[[int], None]] = field(default_factory=list)
    # City road grid (centre-line pitch, road width) for painted lane markings; None elsewhere.
    road_grid: tuple[float, float] | None = None
    # Roof height (world z) per building segmentation id, so facades get windows and roofs not.
    building_tops: dict[int, float] = field(default_factory=dict)
    description: str = ""


def yaw_quaternion(yaw_rad: float) -> list[float]:
    return [0.0, 0.0, float(np.sin(yaw_rad / 2.0)), float(np.cos(yaw_rad / 2.0))]


def cone_mesh(radius: float, height: float, segments: int = 10) -> tuple[list[list[float]], list[int]]:
    """A closed cone with its base centred at z = 0 (PyBullet has no cone primitive)."""
    angles = np.linspace(0.0, 2.0 * np.pi, segments, endpoint=False)
    vertices = [[float(radius * np.cos(a)), float(radius * np.sin(a)), 0.0] for a in angles]
    vertices += [[0.0, 0.0, float(height)], [0.0, 0.0, 0.0]]
    apex, centre = segments, segments + 1
    indices: list[int] = []
    for i in range(segments):
        j = (i + 1) % segments
        indices += [i, j, apex, j, i, centre]
    return vertices, indices


class SceneBuilder:
    """Creates static or dynamic primitives in one PyBullet client and registers their ids."""

    def __init__(self, client: int, ids: SegmentationIds) -> None:
        self.client = client
        self.ids = ids

    def _body(
        self,
        collision: int,
        visual: int,
        position: Vec3,
        orientation: Sequence[float],
        mass: float,
        class_name: str,
    ) -> int:
        uid = p.createMultiBody(
            baseMass=mass,
            baseCollisionShapeIndex=collision,
            baseVisualShapeIndex=visual,
            basePosition=[float(v) for v in position],
            baseOrientation=[float(v) for v in orientation],
            physicsClientId=self.client,
        )
        self.ids.assign(uid, class_name)
        return uid

    def box(
        self,
        half_extents: Vec3,
        position: Vec3,
        rgba: RGBA,
        class_name: str,
        *,
        mass: float = 0.0,
        yaw: float = 0.0,
        orientation: Sequence[float] | None = None,
        collide: bool = True,
    ) -> int:
        half = [float(v) for v in half_extents]
        visual = p.createVisualShape(p.GEOM_BOX, halfExtents=half, rgbaColor=list(rgba), physicsClientId=self.client)
        collision = (
            p.createCollisionShape(p.GEOM_BOX, halfExtents=half, physicsClientId=self.client) if collide else -1
        )
        return self._body(collision, visual, position, orientation or yaw_quaternion(yaw), mass, class_name)

    def sphere(self, radius: float, position: Vec3, rgba: RGBA, class_name: str, *, mass: float = 0.0) -> int:
        visual = p.createVisualShape(p.GEOM_SPHERE, radius=float(radius), rgbaColor=list(rgba), physicsClientId=self.client)
        collision = p.createCollisionShape(p.GEOM_SPHERE, radius=float(radius), physicsClientId=self.client)
        return self._body(collision, visual, position, [0, 0, 0, 1], mass, class_name)

    def cylinder(
        self,
        radius: float,
        length: float,
        position: Vec3,
        rgba: RGBA,
        class_name: str,
        *,
        mass: float = 0.0,
        orientation: Sequence[float] = (0, 0, 0, 1),
    ) -> int:
        visual = p.createVisualShape(
            p.GEOM_CYLINDER, radius=float(radius), length=float(length), rgbaColor=list(rgba), physicsClientId=self.client
        )
        collision = p.createCollisionShape(
            p.GEOM_CYLINDER, radius=float(radius), height=float(length), physicsClientId=self.client
        )
        return self._body(collision, visual, position, orientation, mass, class_name)

    def ground_plane(self, rgba: RGBA, class_name: str = "ground", half_size: float = 500.0) -> int:
        """A thin static slab (a visible, collidable plane with top face at z = 0)."""
        return self.box([half_size, half_size, 0.05], [0.0, 0.0, -0.05], rgba, class_name)

    def compound_static(
        self,
        base: tuple[int, int],
        base_position: Vec3,
        links: list[tuple[int, int, Vec3]],
        class_name: str,
    ) -> int:
        """One static body of several shapes (e.g. a tree: trunk + canopy), one segmentation id.

        base: (collision, visual); links: (collision, visual, offset from the base).
        """
        n = len(links)
        uid = p.createMultiBody(
            baseMass=0.0,
            baseCollisionShapeIndex=base[0],
            baseVisualShapeIndex=base[1],
            basePosition=[float(v) for v in base_position],
            linkMasses=[0.0] * n,
            linkCollisionShapeIndices=[link[0] for link in links],
            linkVisualShapeIndices=[link[1] for link in links],
            linkPositions=[[float(v) for v in link[2]] for link in links],
            linkOrientations=[[0, 0, 0, 1]] * n,
            linkInertialFramePositions=[[0, 0, 0]] * n,
            linkInertialFrameOrientations=[[0, 0, 0, 1]] * n,
            linkParentIndices=[0] * n,
            linkJointTypes=[p.JOINT_FIXED] * n,
            linkJointAxis=[[0, 0, 1]] * n,
            physicsClientId=self.client,
        )
        self.ids.assign(uid, class_name)
        return uid
