"""One clip's simulation in its own PyBullet DIRECT client: world, rig, physics clock, renderer.

The clock is fixed: each frame is `simulation.step` seconds split into `substeps` physics steps;
`warmup_frames` zero-action frames run first and are not rendered. `action[t]` is applied, then
the frame's physics steps run, then the camera pose is read and the frame rendered — pose and
pixels of the same tick. Nothing here reads the wall clock or an unseeded random source.
"""
from __future__ import annotations

import math

import numpy as np
import pybullet as p

from contract.defaults import DEFAULT_CAMERA_HEIGHT_M, DEFAULT_FOV_DEG
from contract.errors import UserError
from unreal_bridge.procedural.camera import intrinsics_matrix
from unreal_bridge.procedural.environment import Environment
from unreal_bridge.procedural.renderer import ALL_PASSES, CameraSpec, PassRenderer
from unreal_bridge.procedural.rigs import ScriptedRig, VehicleRig
from unreal_bridge.procedural.vehicle import Vehicle
from unreal_bridge.procedural.worlds import WorldContext, build_world

KINEMATIC_RIGS = ("first_person", "orbit", "fixed")


def _require(clip: dict, dotted: str):
    value = clip
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            raise UserError(f"resolved clip: field {dotted} is missing", hint="resolve the manifest with `worldloom manifest resolve`")
        value = value[part]
    return value


def seed_int(value) -> int:
    """Sub-seeds are ints in resolved clips; accept hex strings too."""
    if isinstance(value, int):
        return value
    return int(str(value), 16) if isinstance(value, str) else int(value)


def clip_intrinsics(clip: dict, width: int, height: int) -> np.ndarray:
    """K at the output resolution (rescaled if the clip states it for another size)."""
    intr = _require(clip, "camera.intrinsics")
    sx = width / float(intr.get("width") or width)
    sy = height / float(intr.get("height") or height)
    if intr.get("fx") is None:  # an unresolved FOV: derive a centred pinhole
        fov = math.radians(float(intr.get("fov_deg") or DEFAULT_FOV_DEG))
        fx = width / (2.0 * math.tan(fov / 2.0))
        return intrinsics_matrix(fx, fx, width / 2.0, height / 2.0)
    return intrinsics_matrix(float(intr["fx"]) * sx, float(intr["fy"]) * sy, float(intr["cx"]) * sx, float(intr["cy"]) * sy)


def start_camera_to_world(camera: dict) -> np.ndarray:
    from contract.manifest.rollout import camera_to_world

    start = camera.get("start") or {}
    base = np.asarray(start.get("position", [0.0, 0.0, 0.0]), dtype=np.float64)
    height = camera.get("height")
    height = DEFAULT_CAMERA_HEIGHT_M.get(camera["rig"], 0.0) if height is None else float(height)
    return camera_to_world(base + np.array([0.0, 0.0, height]), float(start.get("yaw_deg", 0.0)), float(start.get("pitch_deg", 0.0)))


def kinematic_poses(clip: dict, actions: np.ndarray) -> np.ndarray:
    """The clip's `poses` (T, 16 or 4x4) if present, else the manifest rollout of its actions."""
    poses = clip.get("poses")
    if poses is not None and len(poses):
        return np.asarray(poses, dtype=np.float64).reshape(-1, 4, 4)
    from contract.manifest.rollout import rollout_poses

    camera, motion = clip["camera"], clip.get("motion") or {}
    return rollout_poses(
        actions,
        start_camera_to_world(camera),
        float(motion.get("speed_mps", 1.4)),
        float(clip["output"]["fps"]),
        rig=camera["rig"],
        orbit_target=camera.get("orbit_target"),
        sprint_multiplier=float(motion.get("sprint_multiplier", 2.0)),
        jump_speed_mps=float(motion.get("jump_speed_mps", 3.5)),
    )


class ClipSimulation:
    """Builds the clip's world in a fresh DIRECT client and advances it frame by frame."""

    def __init__(self, clip: dict, *, shadows: bool = False, asset_dirs: tuple = ()) -> None:
        output = _require(clip, "output")
        self.width, self.height = int(output["width"]), int(output["height"])
        self.frame_count = int(output["frames"])
        fps = float(output["fps"])
        sim = clip.get("simulation") or {}
        self.step = float(sim.get("step") or 1.0 / fps)
        self.substeps = int(sim.get("substeps") or 4)
        self.warmup_frames = int(sim.get("warmup_frames") or 0)
        camera = _require(clip, "camera")
        self.rig_name = _require(clip, "camera.rig")
        seeds = _require(clip, "seeds")
        self.world_seed = seed_int(seeds["world"])
        self.environment_seed = seed_int(seeds["environment"])

        actions = (clip.get("actions") or {}).get("per_frame")
        self.actions = (
            np.asarray(actions, dtype=np.float32).reshape(-1, 8) if actions is not None else np.zeros((self.frame_count, 8), np.float32)
        )
        if len(self.actions) < self.frame_count:
            raise UserError(
                f"resolved clip: actions.per_frame has {len(self.actions)} rows but output.frames is {self.frame_count}",
                hint="resolve the manifest again so every frame has an action",
            )
        self.K = clip_intrinsics(clip, self.width, self.height)
        self.environment = Environment.from_clip(clip)
        extra_ambient = (clip.get("environment") or {}).get("ambient")

        self.client = p.connect(p.DIRECT)
        try:
            p.resetSimulation(physicsClientId=self.client)
            p.setPhysicsEngineParameter(
                fixedTimeStep=self.step / self.substeps, numSubSteps=0, deterministicOverlappingPairs=1, physicsClientId=self.client
            )
            p.setGravity(0.0, 0.0, -9.81, physicsClientId=self.client)

            start = camera.get("start") or {}
            base = [float(v) for v in start.get("position", [0.0, 0.0, 0.0])]
            if self.rig_name in KINEMATIC_RIGS:
                self.poses = kinematic_poses(clip, self.actions)
                path_xy = self.poses[:, :2, 3]
                ground_z = base[2] if self.rig_name == "first_person" else 0.0
            elif self.rig_name == "vehicle":
                self.poses = None
                path_xy = np.array([base[:2]], dtype=np.float64)
                ground_z = base[2]
            else:
                raise UserError(f"camera.rig: {self.rig_name!r} is unknown", hint="use first_person, vehicle, orbit or fixed")
            ctx = WorldContext(path_xy=np.vstack([np.array([base[:2]]), path_xy]), ground_z=ground_z,
                               frame_count=self.frame_count, asset_dirs=tuple(asset_dirs))
            self.world = build_world(self.client, _require(clip, "world"), self.world_seed, ctx)

            if self.rig_name == "vehicle":
                motion = clip.get("motion") or {}
                vehicle = Vehicle(
                    self.client, str(camera.get("vehicle_model") or "sedan"), base, float(start.get("yaw_deg", 0.0)),
                    float(motion.get("speed_mps", 8.0)), float(motion.get("sprint_multiplier", 2.0)),
                )
                self.world.ids.assign(vehicle.body, "ego_vehicle")
                height = camera.get("height")
                self.rig = VehicleRig(vehicle, DEFAULT_CAMERA_HEIGHT_M["vehicle"] if height is None else float(height),
                                      float(start.get("pitch_deg", 0.0)))
            else:
                self.rig = ScriptedRig(self.poses)

            spec = CameraSpec(self.K, self.width, self.height, float(camera.get("near_m") or 0.05), float(camera.get("far_m") or 500.0))
            self.renderer = PassRenderer(
                self.client, spec, self.world.ids, self.environment,
                texture_seed=self.world_seed, terrain_tint=self.world.terrain_tint, road_grid=self.world.road_grid,
                building_tops=self.world.building_tops,
                shadows=shadows, extra_ambient=None if extra_ambient is None else float(extra_ambient),
            )
            self.next_frame = 0  # the frame whose action applies next
            # A vehicle is dropped from a few centimetres and bounces on its suspension; let it
            # come to rest (1 s, zero throttle) before warm-up so frame 0 starts from standstill.
            settle_frames = int(math.ceil(1.0 / self.step)) if self.rig_name == "vehicle" else 0
            for _ in range(settle_frames + self.warmup_frames):
                self._physics_steps()
        except BaseException:
            p.disconnect(physicsClientId=self.client)
            raise

    def _physics_steps(self) -> None:
        for _ in range(self.substeps):
            p.stepSimulation(physicsClientId=self.client)

    def advance(self) -> int:
        """Apply the next frame's action and simulate to it; returns that frame's index."""
        frame = self.next_frame
        action = self.actions[frame]
        for event in self.world.frame_events:
            event(frame)
        self.rig.apply(frame, action)
        self._physics_steps()
        self.next_frame += 1
        return frame

    def sim_time(self, frame: int) -> float:
        """Seconds since the first rendered frame (warm-up excluded), as render.proto states."""
        return frame * self.step

    def camera_pose(self, frame: int) -> np.ndarray:
        return self.rig.pose(frame)

    def render(self, frame: int, camera_to_world: np.ndarray, passes: tuple[str, ...] = ALL_PASSES) -> dict[str, np.ndarray]:
        rain_rng = np.random.default_rng([self.environment_seed, frame]) if self.environment.rain > 0 else None
        return self.renderer.render(camera_to_world, passes=passes, rain_rng=rain_rng)

    def close(self) -> None:
        if self.client is not None and p.isConnected(physicsClientId=self.client):
            p.disconnect(physicsClientId=self.client)
        self.client = None
