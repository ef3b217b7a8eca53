"""One clip's simulation in its own PyBullet DIRECT client: world, rig, physics clock, renderer.

The clock is fixed: each frame is `simulation.step` seconds split into `substeps` physics steps;
`warmup_frames` zero-action frames run first and are not rendered. `action[t]` is applied, then
the frame's physics steps run, then the camera pose is read and the frame rendered — pose and
pixels of the same tick. Nothing here reads the wall clock or an unseeded random source.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pybullet as p

from contract.clip import ResolvedClip, plain
from unreal_bridge.procedural.renderer import ALL_PASSES, CameraSpec, PassRenderer
from unreal_bridge.procedural.rigs import ScriptedRig, VehicleRig
from unreal_bridge.procedural.vehicle import Vehicle
from unreal_bridge.procedural.worlds import WorldContext, build_world


class ClipSimulation:
    """Builds the clip's world in a fresh DIRECT client and advances it frame by frame."""

    def __init__(self, clip: ResolvedClip | Mapping[str, Any], *, shadows: bool = False, asset_dirs: tuple = ()) -> None:
        clip = ResolvedClip.parse(clip)
        self.clip = clip
        self.width, self.height = clip.output.width, clip.output.height
        self.frame_count = clip.output.frames
        self.step = clip.simulation.step_s
        self.substeps = clip.simulation.substeps
        self.warmup_frames = clip.simulation.warmup_frames
        camera = clip.camera
        self.rig_name = camera.rig
        self.world_seed = int(clip.seeds["world"])
        self.environment_seed = int(clip.seeds["environment"])
        self.actions = clip.actions
        self.K = camera.intrinsics.matrix(self.width, self.height)
        self.environment = clip.environment

        self.client = p.connect(p.DIRECT)
        try:
            p.resetSimulation(physicsClientId=self.client)
            p.setPhysicsEngineParameter(
                fixedTimeStep=self.step / self.substeps, numSubSteps=0, deterministicOverlappingPairs=1, physicsClientId=self.client
            )
            p.setGravity(0.0, 0.0, -9.81, physicsClientId=self.client)

            base = [float(v) for v in camera.start_position]
            if clip.kinematic:  # the poses are the clip's action rollout
                self.poses = np.array(clip.poses)
                path_xy = self.poses[:, :2, 3]
                ground_z = base[2] if self.rig_name == "first_person" else 0.0
            else:  # the vehicle: poses come from physics
                self.poses = None
                path_xy = np.array([base[:2]], dtype=np.float64)
                ground_z = base[2]
            ctx = WorldContext(path_xy=np.vstack([np.array([base[:2]]), path_xy]), ground_z=ground_z,
                               frame_count=self.frame_count, asset_dirs=tuple(asset_dirs))
            self.world = build_world(self.client, plain(clip.world), self.world_seed, ctx)

            if self.poses is None:
                vehicle = Vehicle(
                    self.client, camera.vehicle_model, base, camera.start_yaw_deg,
                    clip.motion.speed_mps, clip.motion.sprint_multiplier,
                )
                self.world.ids.assign(vehicle.body, "ego_vehicle")
                self.rig = VehicleRig(vehicle, camera.height_m, camera.start_pitch_deg)
            else:
                self.rig = ScriptedRig(self.poses)

            spec = CameraSpec(self.K, self.width, self.height, camera.near_m, camera.far_m)
            self.renderer = PassRenderer(
                self.client, spec, self.world.ids, self.environment,
                texture_seed=self.world_seed, terrain_tint=self.world.terrain_tint, road_grid=self.world.road_grid,
                building_tops=self.world.building_tops,
                shadows=shadows, extra_ambient=self.environment.ambient,
            )
            self.next_frame = 0  # the frame whose action applies next
            # A vehicle is dropped from a few centimetres and bounces on its suspension; let it
            # come to rest (1 s, zero throttle) before warm-up so frame 0 starts from standstill.
            settle_frames = int(math.ceil(1.0 / self.step)) if self.poses is None else 0
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
