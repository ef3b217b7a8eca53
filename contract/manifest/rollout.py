"""Action -> camera pose rollout for the kinematic rigs (first_person, orbit, fixed).

Conventions (docs/architecture.md): world is right-handed, Z up, metres. A pose is a 4x4
camera-to-world matrix with OpenCV camera axes: x right, y down, z forward. A heading
`yaw_deg` is a compass angle: 0 looks along world +Y, 90 along world +X, so a positive yaw
action ("turn right") increases it. `pitch_deg` > 0 looks up; roll is always zero.

`pose[t] = step(pose[t-1], action[t])` with `pose[-1]` the rig's start pose. Within a step the
look deltas are applied first and the translation then uses the new heading, so holding `w`
with pitch 0 moves the camera exactly along the +Z axis of the pose it arrives at.

The vehicle rig is not rolled out here: its poses come from physics at render time.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from contract.defaults import DEFAULT_JUMP_SPEED_MPS, DEFAULT_SPRINT_MULTIPLIER
from contract.sample import BACK, FORWARD, JUMP, LEFT, PITCH, RIGHT, SPRINT, YAW

GRAVITY_MPS2 = 9.81
PITCH_LIMIT_DEG = 89.0
ORBIT_ELEVATION_LIMIT_DEG = 85.0
ORBIT_MIN_RADIUS_M = 0.5


def camera_to_world(position: np.ndarray | Sequence[float], yaw_deg: float, pitch_deg: float) -> np.ndarray:
    """(4, 4) float64 OpenCV camera-to-world for a camera at `position` with zero roll."""
    yaw, pitch = math.radians(yaw_deg), math.radians(pitch_deg)
    forward = np.array([math.sin(yaw) * math.cos(pitch), math.cos(yaw) * math.cos(pitch), math.sin(pitch)])
    right = np.array([math.cos(yaw), -math.sin(yaw), 0.0])
    down = np.cross(forward, right)  # x × y = z for a right-handed camera frame, so y = z × x
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2] = right, down, forward
    pose[:3, 3] = np.asarray(position, dtype=np.float64)
    return pose


def yaw_pitch_from_pose(pose: np.ndarray) -> tuple[float, float]:
    """Heading and pitch (degrees) of a camera-to-world pose's +Z axis; roll is discarded."""
    forward = np.asarray(pose, dtype=np.float64)[:3, 2]
    yaw = math.degrees(math.atan2(forward[0], forward[1]))
    pitch = math.degrees(math.asin(max(-1.0, min(1.0, float(forward[2])))))
    return yaw, pitch


@dataclass(frozen=True)
class WalkerState:
    """First-person state: eye position, heading, pitch and the vertical motion of a jump."""

    position: tuple[float, float, float]
    yaw_deg: float
    pitch_deg: float
    ground_z: float
    vertical_speed: float = 0.0

    def pose(self) -> np.ndarray:
        return camera_to_world(self.position, self.yaw_deg, self.pitch_deg)


@dataclass(frozen=True)
class RolloutParams:
    speed_mps: float
    fps: float
    sprint_multiplier: float = DEFAULT_SPRINT_MULTIPLIER
    jump_speed_mps: float = DEFAULT_JUMP_SPEED_MPS
    gravity_mps2: float = GRAVITY_MPS2

    @property
    def dt(self) -> float:
        return 1.0 / self.fps


def walker_step(state: WalkerState, action: np.ndarray, params: RolloutParams) -> WalkerState:
    """One first-person frame: turn, then walk on the ground plane along the new heading, then jump physics.

    Movement is horizontal (a walker does not fly when looking up): forward is the camera's +Z
    projected on the ground plane, right is its +X. Diagonals are normalised, so `wd` is not
    faster than `w`. A jump starts only on the ground and follows exact ballistic motion.
    """
    yaw = state.yaw_deg + float(action[YAW])
    pitch = min(PITCH_LIMIT_DEG, max(-PITCH_LIMIT_DEG, state.pitch_deg + float(action[PITCH])))
    heading = math.radians(yaw)
    forward_h = (math.sin(heading), math.cos(heading))
    right_h = (math.cos(heading), -math.sin(heading))
    along = float(action[FORWARD]) - float(action[BACK])
    across = float(action[RIGHT]) - float(action[LEFT])
    norm = math.hypot(along, across)
    if norm > 1.0:
        along, across = along / norm, across / norm
    speed = params.speed_mps * (params.sprint_multiplier if action[SPRINT] > 0.5 else 1.0)
    distance = speed * params.dt
    x = state.position[0] + distance * (along * forward_h[0] + across * right_h[0])
    y = state.position[1] + distance * (along * forward_h[1] + across * right_h[1])

    z, vz = state.position[2], state.vertical_speed
    on_ground = z <= state.ground_z and vz == 0.0
    if on_ground and action[JUMP] > 0.5:
        vz = params.jump_speed_mps
    if vz != 0.0 or z > state.ground_z:
        z = z + vz * params.dt - 0.5 * params.gravity_mps2 * params.dt**2
        vz = vz - params.gravity_mps2 * params.dt
        if z <= state.ground_z:
            z, vz = state.ground_z, 0.0
    return replace(state, position=(x, y, z), yaw_deg=yaw, pitch_deg=pitch, vertical_speed=vz)


@dataclass(frozen=True)
class OrbitState:
    """Orbit state: the camera sits on a sphere around `target` and always looks at it.

    The camera's heading is `azimuth_deg + 180` and its pitch is `-elevation_deg`, where
    `azimuth_deg` is the compass direction from the target to the camera.
    """

    target: tuple[float, float, float]
    azimuth_deg: float
    elevation_deg: float
    radius_m: float

    @classmethod
    def from_position(cls, target: np.ndarray | list[float], position: np.ndarray | list[float]) -> OrbitState:
        offset = np.asarray(position, dtype=np.float64) - np.asarray(target, dtype=np.float64)
        radius = float(np.linalg.norm(offset))
        if radius < 1e-9:
            raise ValueError("orbit camera starts at its target; move camera.start.position away from camera.orbit_target")
        azimuth = math.degrees(math.atan2(offset[0], offset[1]))
        elevation = math.degrees(math.asin(offset[2] / radius))
        elevation = min(ORBIT_ELEVATION_LIMIT_DEG, max(-ORBIT_ELEVATION_LIMIT_DEG, elevation))
        return cls((float(target[0]), float(target[1]), float(target[2])), azimuth, elevation, max(radius, ORBIT_MIN_RADIUS_M))

    def position(self) -> np.ndarray:
        azimuth, elevation = math.radians(self.azimuth_deg), math.radians(self.elevation_deg)
        direction = np.array([math.sin(azimuth) * math.cos(elevation), math.cos(azimuth) * math.cos(elevation), math.sin(elevation)])
        return np.asarray(self.target) + self.radius_m * direction

    def pose(self) -> np.ndarray:
        return camera_to_world(self.position(), self.azimuth_deg + 180.0, -self.elevation_deg)


def orbit_step(state: OrbitState, action: np.ndarray, params: RolloutParams) -> OrbitState:
    """One orbit frame.

    - yaw_deg / pitch_deg change the view exactly as for a walker (heading += yaw, pitch +=
      pitch) by moving the camera around the target: azimuth += yaw, elevation -= pitch.
    - left / right move the camera along the circle toward its own -X / +X by `speed * dt`
      metres of arc (so azimuth decreases for `d`).
    - forward / back move toward / away from the target by `speed * dt` (radius >= 0.5 m).
    - sprint multiplies the speed; jump has no effect.
    """
    azimuth = state.azimuth_deg + float(action[YAW])
    elevation = min(ORBIT_ELEVATION_LIMIT_DEG, max(-ORBIT_ELEVATION_LIMIT_DEG, state.elevation_deg - float(action[PITCH])))
    speed = params.speed_mps * (params.sprint_multiplier if action[SPRINT] > 0.5 else 1.0)
    distance = speed * params.dt
    across = float(action[RIGHT]) - float(action[LEFT])
    ring_radius = max(state.radius_m * math.cos(math.radians(elevation)), 1e-6)
    azimuth -= math.degrees(distance * across / ring_radius)
    radius = max(ORBIT_MIN_RADIUS_M, state.radius_m - distance * (float(action[FORWARD]) - float(action[BACK])))
    return replace(state, azimuth_deg=azimuth, elevation_deg=elevation, radius_m=radius)


def rollout_poses(
    actions: np.ndarray,
    start_pose: np.ndarray,
    speed_mps: float,
    fps: float,
    *,
    rig: str = "first_person",
    orbit_target: np.ndarray | list[float] | None = None,
    sprint_multiplier: float = DEFAULT_SPRINT_MULTIPLIER,
    jump_speed_mps: float = DEFAULT_JUMP_SPEED_MPS,
    gravity_mps2: float = GRAVITY_MPS2,
) -> np.ndarray:
    """(T, 4, 4) float64 camera-to-world poses from (T, 8) actions; `pose[t] = step(pose[t-1], action[t])`.

    `start_pose` is pose[-1] (heading and pitch are read from its +Z axis; roll is dropped).
    The first-person ground height is the start camera height: jumps land back on it.
    """
    actions = np.asarray(actions, dtype=np.float32)
    if actions.ndim != 2 or actions.shape[1] != 8:
        raise ValueError(f"actions must have shape (T, 8), got {actions.shape}")
    start_pose = np.asarray(start_pose, dtype=np.float64)
    params = RolloutParams(speed_mps, fps, sprint_multiplier, jump_speed_mps, gravity_mps2)
    poses = np.empty((len(actions), 4, 4), dtype=np.float64)
    if rig == "fixed":
        poses[:] = start_pose
        return poses
    if rig == "first_person":
        yaw, pitch = yaw_pitch_from_pose(start_pose)
        position = (float(start_pose[0, 3]), float(start_pose[1, 3]), float(start_pose[2, 3]))
        walker = WalkerState(position, yaw, pitch, ground_z=position[2])
        for index, action in enumerate(actions):
            walker = walker_step(walker, action, params)
            poses[index] = walker.pose()
        return poses
    if rig == "orbit":
        if orbit_target is None:
            raise ValueError("the orbit rig needs orbit_target")
        orbit = OrbitState.from_position(orbit_target, start_pose[:3, 3])
        for index, action in enumerate(actions):
            orbit = orbit_step(orbit, action, params)
            poses[index] = orbit.pose()
        return poses
    if rig == "vehicle":
        raise ValueError("vehicle poses come from physics at render time; there is no kinematic rollout")
    raise ValueError(f"unknown rig {rig!r}")
