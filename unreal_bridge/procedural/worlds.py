"""World generators: city, forest, terrain, physics_sandbox, empty.

Each generator is a pure function of (params, world seed, camera path): it creates static and
dynamic bodies through a `SceneBuilder` (which assigns segmentation ids in build order) and
returns a `World`. The camera path (the clip's pose rollout, or the vehicle's start) is passed in
so generators can keep it clear: no tree grows through the walker, no hill swallows the camera.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pybullet as p

from contract.errors import UserError
from unreal_bridge.procedural.heightfield import Heightfield, fractal_noise, load_heightmap_png
from unreal_bridge.procedural.ids import SegmentationIds
from unreal_bridge.procedural.renderer import TerrainTint
from unreal_bridge.procedural.scene import SceneBuilder, World, cone_mesh, yaw_quaternion

# Caps that keep a world renderable: TinyRenderer cost grows with every body in view.
MAX_TREES = 4000
MAX_ROCKS = 300
WALKER_CORRIDOR_M = 3.0  # no tree trunk this close to a first-person path (canopies reach ~2.8 m)


@dataclass(frozen=True)
class WorldContext:
    """What a generator may know about the camera: where it walks and where the ground must be."""

    path_xy: np.ndarray  # (N, 2) world xy the rig base visits (at least the start)
    ground_z: float  # ground level under the rig base at the start
    frame_count: int = 48  # rendered frames, so timed events can spread over the clip
    asset_dirs: tuple[Path, ...] = ()  # server-side folders a heightmap name may come from (besides pybullet_data)


def _jitter(rng: np.random.Generator, rgb: tuple[float, float, float], amount: float) -> list[float]:
    colour = np.clip(np.asarray(rgb) * (1.0 + rng.uniform(-amount, amount, size=3)), 0.0, 1.0)
    return [float(c) for c in colour] + [1.0]


def _min_distance(points: np.ndarray, path_xy: np.ndarray) -> np.ndarray:
    """Distance from each of (M, 2) points to the nearest of (N, 2) path samples."""
    if len(points) == 0:
        return np.zeros(0)
    path = path_xy[:: max(1, len(path_xy) // 256)]
    diff = points[:, None, :] - path[None, :, :]
    return np.sqrt((diff**2).sum(-1).min(axis=1))


# --------------------------------------------------------------------------- empty


def build_empty(builder: SceneBuilder, params: dict, rng: np.random.Generator, ctx: WorldContext) -> World:
    if params.get("ground", True):
        builder.ground_plane([0.55, 0.55, 0.52, 1.0], "ground")
    return World(ids=builder.ids, description="empty")


# --------------------------------------------------------------------------- city


BUILDING_PALETTE = [
    (0.72, 0.68, 0.62), (0.55, 0.52, 0.50), (0.62, 0.42, 0.34), (0.80, 0.78, 0.72),
    (0.42, 0.46, 0.52), (0.70, 0.60, 0.45), (0.35, 0.38, 0.40), (0.85, 0.83, 0.80),
]
CAR_PALETTE = [(0.75, 0.1, 0.1), (0.1, 0.2, 0.6), (0.9, 0.9, 0.9), (0.1, 0.1, 0.1), (0.5, 0.5, 0.55), (0.8, 0.65, 0.1)]


def _parked_car(builder: SceneBuilder, x: float, y: float, yaw: float, colour: list[float]) -> int:
    """A static car silhouette: a body box and a cabin box, one segmentation id."""
    client = builder.client
    body_half, cabin_half = [2.1, 0.9, 0.35], [1.1, 0.8, 0.3]
    body = (
        p.createCollisionShape(p.GEOM_BOX, halfExtents=body_half, physicsClientId=client),
        p.createVisualShape(p.GEOM_BOX, halfExtents=body_half, rgbaColor=colour, physicsClientId=client),
    )
    glass = [0.15, 0.18, 0.22, 1.0]
    cabin = (
        p.createCollisionShape(p.GEOM_BOX, halfExtents=cabin_half, physicsClientId=client),
        p.createVisualShape(p.GEOM_BOX, halfExtents=cabin_half, rgbaColor=glass, physicsClientId=client),
        [-0.2, 0.0, 0.65],
    )
    uid = builder.compound_static(body, [x, y, 0.55], [cabin], "vehicle")
    p.resetBasePositionAndOrientation(uid, [x, y, 0.55], yaw_quaternion(yaw), physicsClientId=client)
    return uid


def build_city(builder: SceneBuilder, params: dict, rng: np.random.Generator, ctx: WorldContext) -> World:
    """Blocks x blocks of city: asphalt everywhere, raised sidewalks, box buildings, parked cars.

    Road centre lines lie on multiples of `pitch = block + road` on both axes, so the origin is
    always an intersection and a rig starting there drives down a road.
    """
    blocks = int(params.get("blocks", 3))
    block = float(params.get("block_size_m", 40.0))
    road = float(params.get("road_width_m", 10.0))
    h_min, h_max = (float(v) for v in params.get("building_height_m", [8.0, 40.0]))
    parked = int(params.get("parked_vehicles", 8))
    pitch = block + road
    lines = (np.arange(blocks + 1) - blocks // 2) * pitch  # road centre lines (x and y)
    builder.ground_plane([0.20, 0.20, 0.21, 1.0], "road", half_size=max(500.0, float(lines.max() + pitch) * 2))

    sidewalk = [0.62, 0.61, 0.58, 1.0]
    building_tops: dict[int, float] = {}
    for bx in range(blocks):
        for by in range(blocks):
            cx = (lines[bx] + lines[bx + 1]) / 2.0
            cy = (lines[by] + lines[by + 1]) / 2.0
            builder.box([block / 2, block / 2, 0.075], [cx, cy, 0.075], sidewalk, "sidewalk")
            lots = 2 if block >= 24.0 else 1
            lot = (block - 4.0) / lots
            for lx in range(lots):
                for ly in range(lots):
                    if rng.random() < 0.08:
                        continue  # a plaza
                    half_x = lot / 2 - rng.uniform(0.5, 0.25 * lot)
                    half_y = lot / 2 - rng.uniform(0.5, 0.25 * lot)
                    height = rng.uniform(h_min, h_max)
                    x = cx - block / 2 + 2.0 + (lx + 0.5) * lot
                    y = cy - block / 2 + 2.0 + (ly + 0.5) * lot
                    colour = _jitter(rng, BUILDING_PALETTE[int(rng.integers(len(BUILDING_PALETTE)))], 0.08)
                    uid = builder.box([max(half_x, 1.0), max(half_y, 1.0), height / 2], [x, y, 0.15 + height / 2], colour, "building")
                    building_tops[builder.ids.body_to_id[uid]] = 0.15 + height

    # Parked cars along the curbs, never within 8 m of the start.
    start = ctx.path_xy[:1]
    placed = 0
    for _ in range(parked * 4):
        if placed >= parked:
            break
        along_x = rng.random() < 0.5
        line = lines[int(rng.integers(len(lines)))]
        side = 1.0 if rng.random() < 0.5 else -1.0
        offset = line + side * (road / 2 - 1.2)
        span = float(rng.uniform(lines[0], lines[-1]))
        # Not inside an intersection.
        if np.min(np.abs(span - lines)) < road / 2 + 3.0:
            continue
        x, y, yaw = (span, offset, 0.0) if along_x else (offset, span, np.pi / 2)
        if _min_distance(np.array([[x, y]]), start)[0] < 8.0:
            continue
        colour = _jitter(rng, CAR_PALETTE[int(rng.integers(len(CAR_PALETTE)))], 0.05)
        _parked_car(builder, x, y, yaw, colour)
        placed += 1
    return World(ids=builder.ids, road_grid=(pitch, road), building_tops=building_tops, description=f"city {blocks}x{blocks}")


# --------------------------------------------------------------------------- forest


def _tree(builder: SceneBuilder, rng: np.random.Generator, x: float, y: float, z: float) -> int:
    client = builder.client
    conifer = rng.random() < 0.55
    trunk_h = rng.uniform(1.8, 4.0) if not conifer else rng.uniform(1.0, 2.0)
    trunk_r = rng.uniform(0.12, 0.3)
    bark = _jitter(rng, (0.36, 0.26, 0.17), 0.12)
    base = (
        p.createCollisionShape(p.GEOM_CYLINDER, radius=trunk_r, height=trunk_h, physicsClientId=client),
        p.createVisualShape(p.GEOM_CYLINDER, radius=trunk_r, length=trunk_h, rgbaColor=bark, physicsClientId=client),
    )
    links = []
    if conifer:
        green = _jitter(rng, (0.13, 0.33, 0.16), 0.15)
        radius, height = rng.uniform(1.2, 2.2), rng.uniform(3.0, 6.0)
        for tier in range(3):
            r = radius * (1.0 - 0.25 * tier)
            vertices, indices = cone_mesh(r, height * 0.55)
            visual = p.createVisualShape(p.GEOM_MESH, vertices=vertices, indices=indices, rgbaColor=green, physicsClientId=client)
            links.append((-1, visual, [0.0, 0.0, trunk_h / 2 + tier * height * 0.28]))
    else:
        green = _jitter(rng, (0.25, 0.45, 0.15), 0.18)
        radius = rng.uniform(1.2, 2.4)
        for blob in range(int(rng.integers(1, 3))):
            r = radius * (1.0 - 0.3 * blob)
            visual = p.createVisualShape(p.GEOM_SPHERE, radius=r, rgbaColor=green, physicsClientId=client)
            offset = [float(rng.uniform(-0.4, 0.4)), float(rng.uniform(-0.4, 0.4)), trunk_h / 2 + radius * (0.6 + 0.7 * blob)]
            links.append((-1, visual, offset))
    return builder.compound_static(base, [x, y, z + trunk_h / 2], links, "tree")


def build_forest(builder: SceneBuilder, params: dict, rng: np.random.Generator, ctx: WorldContext) -> World:
    """Seeded trees (conifers: stacked cones; broadleaf: spheres) on gently rolling ground.

    The walker's corridor (3 m either side of the path) and a clearing around the start stay
    free of trees, and the ground is flattened to the walker's level along the path.
    """
    area = float(params.get("area_m", 80.0))
    density = float(params.get("tree_density", 0.04))
    roughness = float(params.get("terrain_roughness", 0.2))
    clearing = float(params.get("clearing_radius_m", 3.0))
    n = 65
    field = Heightfield(ctx.ground_z + (fractal_noise(n, rng, 0.5) - 0.5) * 3.0 * roughness, area)
    field.flatten_along(ctx.path_xy, ctx.ground_z, inner=2.5, outer=8.0)
    ground = field.create_body(builder.client, [0.36, 0.33, 0.22, 1.0])
    builder.ids.assign(ground, "ground")

    count = min(int(round(density * area * area)), MAX_TREES)
    points = rng.uniform(-area / 2 + 1.0, area / 2 - 1.0, size=(count, 2))
    keep = _min_distance(points, ctx.path_xy) > WALKER_CORRIDOR_M
    keep &= np.hypot(points[:, 0] - ctx.path_xy[0, 0], points[:, 1] - ctx.path_xy[0, 1]) > clearing
    for x, y in points[keep]:
        _tree(builder, rng, float(x), float(y), field.height_at(float(x), float(y)) - 0.1)
    return World(ids=builder.ids, ground_height=field.height_at, description=f"forest {int(keep.sum())} trees")


# --------------------------------------------------------------------------- terrain


def build_terrain(builder: SceneBuilder, params: dict, rng: np.random.Generator, ctx: WorldContext) -> World:
    """A heightfield (PNG or seeded fractal) coloured by height: grass, rock, snow; scattered rocks."""
    size = float(params.get("size_m", 100.0))
    scale = float(params.get("height_scale_m", 8.0))
    roughness = float(params.get("roughness", 0.5))
    n = 129
    heightmap = params.get("heightmap")
    unit = load_heightmap_png(str(heightmap), n, ctx.asset_dirs) if heightmap else fractal_noise(n, rng, roughness)
    field = Heightfield(unit * scale, size)
    # Put the rig on the surface: shift the field so the start is at ground level, then flatten
    # the path corridor to that level (a kinematic walker cannot climb).
    field.heights += ctx.ground_z - field.height_at(float(ctx.path_xy[0, 0]), float(ctx.path_xy[0, 1]))
    field.flatten_along(ctx.path_xy, ctx.ground_z, inner=2.0, outer=10.0)
    body = field.create_body(builder.client, [1.0, 1.0, 1.0, 1.0])
    builder.ids.assign(body, "terrain")
    tint = TerrainTint(z_min=float(field.heights.min()), z_max=float(field.heights.max()))
    for _ in range(min(int(size * size / 400), MAX_ROCKS)):
        x, y = rng.uniform(-size / 2 + 2, size / 2 - 2, size=2)
        if _min_distance(np.array([[x, y]]), ctx.path_xy)[0] < 3.0:
            continue
        r = float(rng.uniform(0.3, 1.2))
        grey = _jitter(rng, (0.45, 0.43, 0.40), 0.1)
        builder.box([r, r * 0.8, r * 0.6], [x, y, field.height_at(float(x), float(y)) + r * 0.3], grey, "rock",
                    yaw=float(rng.uniform(0, np.pi)))
    return World(ids=builder.ids, terrain_tint=tint, ground_height=field.height_at, description="terrain")


# --------------------------------------------------------------------------- physics sandbox


def build_physics_sandbox(builder: SceneBuilder, params: dict, rng: np.random.Generator, ctx: WorldContext) -> World:
    """Dominoes, box stacks, falling and rolling objects around the world origin, with real physics.

    Timed events (a push, drops, launches) happen at seeded frame indices, so frame i is the same
    whichever frame rendering started from.
    """
    client = builder.client
    builder.ground_plane([0.78, 0.76, 0.70, 1.0], "ground")
    world = World(ids=builder.ids, description="physics sandbox")
    friction = {"lateralFriction": 0.6, "physicsClientId": client}

    # Dominoes on an arc in front of the origin (y < 0 side), pushed at a seeded frame.
    dominoes = int(params.get("dominoes", 12))
    domino_ids: list[int] = []
    if dominoes:
        radius = 2.2
        arc = np.linspace(-0.9, 0.9, dominoes) * min(1.0, dominoes * 0.28 / (1.8 * radius))
        for k, angle in enumerate(arc):
            x, y = radius * np.sin(angle), -radius * np.cos(angle) + 0.6
            colour = _jitter(rng, (0.92, 0.92, 0.88) if k % 2 else (0.15, 0.15, 0.18), 0.05)
            uid = builder.box([0.03, 0.12, 0.24], [x, y, 0.24], colour, "prop", mass=0.2, yaw=float(angle))
            p.changeDynamics(uid, -1, **friction)
            domino_ids.append(uid)
        push_frame = int(rng.integers(2, 8))
        first, first_angle = domino_ids[0], float(arc[0])

        def push(frame: int) -> None:
            if frame == push_frame:  # tip the first domino about its own y axis, along the arc
                axis = [-np.sin(first_angle) * 4.0, np.cos(first_angle) * 4.0, 0.0]
                p.resetBaseVelocity(first, angularVelocity=axis, physicsClientId=client)

        world.frame_events.append(push)

    # Stacks of cubes on the far side.
    for s in range(int(params.get("stacks", 2))):
        sx, sy = -1.6 + 3.2 * (s + 0.5) / max(1, int(params.get("stacks", 2))), float(rng.uniform(1.2, 2.2))
        colour_base = (0.8, 0.35, 0.15) if s % 2 == 0 else (0.2, 0.45, 0.75)
        for level in range(int(params.get("stack_height", 4))):
            jitter = rng.uniform(-0.02, 0.02, size=2)
            shade = 1.0 if level % 2 == 0 else 0.7  # alternate shades so the courses read as blocks
            uid = builder.box([0.15, 0.15, 0.15], [sx + jitter[0], sy + jitter[1], 0.15 + 0.302 * level],
                              _jitter(rng, tuple(c * shade for c in colour_base), 0.1), "prop", mass=0.5)
            p.changeDynamics(uid, -1, **friction)

    # A ramp for rolling objects, launched at seeded frames from its top.
    rolling = int(params.get("rolling_objects", 3))
    if rolling:
        tilt = -0.28  # the +x end is high: balls roll from x = 3.4 towards the origin
        ramp_quat = p.getQuaternionFromEuler([0.0, tilt, 0.0])
        builder.box([1.0, 0.5, 0.05], [2.6, 0.0, 0.35], [0.55, 0.45, 0.35, 1.0], "prop", orientation=ramp_quat)
        launches = sorted(int(v) for v in rng.integers(0, max(8, int(ctx.frame_count * 0.8)), size=rolling))
        roller_specs = [(float(rng.uniform(0.08, 0.16)), _jitter(rng, (0.2, 0.7, 0.3), 0.3), float(rng.uniform(-0.3, 0.3))) for _ in range(rolling)]

        def launch_rollers(frame: int) -> None:
            for launch, (r, colour, dy) in zip(launches, roller_specs, strict=False):
                if frame == launch:
                    uid = builder.sphere(r, [3.35, dy, 0.64 + r], colour, "prop", mass=0.3)
                    p.changeDynamics(uid, -1, rollingFriction=0.001, **friction)

        world.frame_events.append(launch_rollers)

    # Falling objects dropped from 3-5 m at seeded frames.
    falling = int(params.get("falling_objects", 4))
    if falling:
        drops = sorted(int(v) for v in rng.integers(0, max(8, ctx.frame_count), size=falling))
        drop_specs = []
        for _ in range(falling):
            kind = int(rng.integers(3))
            xy = rng.uniform(-1.5, 1.5, size=2)
            drop_specs.append((kind, float(xy[0]), float(xy[1]), float(rng.uniform(3.0, 5.0)),
                          _jitter(rng, (0.85, 0.75, 0.2), 0.3), float(rng.uniform(0, np.pi))))

        def drop(frame: int) -> None:
            for when, (kind, x, y, z, colour, yaw) in zip(drops, drop_specs, strict=False):
                if frame != when:
                    continue
                if kind == 0:
                    uid = builder.sphere(0.15, [x, y, z], colour, "prop", mass=0.4)
                elif kind == 1:
                    uid = builder.box([0.12, 0.2, 0.1], [x, y, z], colour, "prop", mass=0.4, yaw=yaw)
                else:
                    uid = builder.cylinder(0.12, 0.3, [x, y, z], colour, "prop", mass=0.4,
                                           orientation=p.getQuaternionFromEuler([0.4, 0.2, yaw]))
                p.changeDynamics(uid, -1, restitution=0.4, **friction)

        world.frame_events.append(drop)
    return world


GENERATORS: dict[str, Callable[[SceneBuilder, dict, np.random.Generator, WorldContext], World]] = {
    "empty": build_empty,
    "city": build_city,
    "forest": build_forest,
    "terrain": build_terrain,
    "physics_sandbox": build_physics_sandbox,
}


def build_world(client: int, world_spec: dict, seed: int, ctx: WorldContext) -> World:
    if "level" in world_spec and "generator" not in world_spec:
        raise UserError(
            f"world.level: {world_spec['level']!r} is an Unreal level; the procedural backend builds worlds from generators",
            hint=f"use renderer.backend: unreal, or world.generator: one of {', '.join(GENERATORS)}",
        )
    name = world_spec.get("generator")
    if name not in GENERATORS:
        raise UserError(f"world.generator: {name!r} is unknown", hint=f"use one of {', '.join(GENERATORS)}")
    builder = SceneBuilder(client, SegmentationIds())
    return GENERATORS[name](builder, dict(world_spec.get("params") or {}), np.random.default_rng(seed), ctx)
