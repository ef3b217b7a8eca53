"""Camera rigs: where the camera is at frame t.

- first_person / orbit / fixed: the clip's pose rollout (`poses[t]`), reported and rendered
  exactly, so poses always equal `contract.manifest.rollout_poses` of the clip's actions.
- vehicle: a camera mounted on the chassis `height` metres above the base; look deltas turn the
  camera relative to the chassis (a driver looking around). Poses come from physics.
"""
from __future__ import annotations

import math

import numpy as np

from contract.sample import PITCH, YAW
from unreal_bridge.procedural.vehicle import Vehicle


class ScriptedRig:
    """Replays precomputed camera-to-world poses."""

    def __init__(self, poses: np.ndarray) -> None:
        self.poses = np.asarray(poses, dtype=np.float64).reshape(-1, 4, 4)

    def apply(self, frame: int, action: np.ndarray) -> None:  # nothing to drive
        pass

    def pose(self, frame: int) -> np.ndarray:
        return self.poses[frame].copy()


class VehicleRig:
    """A camera bolted to a vehicle; OpenCV camera axes from the chassis frame plus look offsets."""

    def __init__(self, vehicle: Vehicle, height: float, pitch_deg: float) -> None:
        self.vehicle = vehicle
        # `height` is above the ground (the rig base); the mount is relative to the chassis origin,
        # and never inside the body (a camera inside a box renders its inner faces).
        model = vehicle.model
        self.height = max(height, model.roof_height + 0.1) - model.origin_height
        self.forward_offset = model.camera_forward
        self.look_yaw_deg = 0.0
        self.look_pitch_deg = pitch_deg

    def apply(self, frame: int, action: np.ndarray) -> None:
        self.look_yaw_deg += float(action[YAW])
        self.look_pitch_deg = min(89.0, max(-89.0, self.look_pitch_deg + float(action[PITCH])))
        self.vehicle.apply(action)

    def pose(self, frame: int) -> np.ndarray:
        chassis = self.vehicle.base_pose()
        yaw, pitch = math.radians(self.look_yaw_deg), math.radians(self.look_pitch_deg)
        # In chassis axes (x forward, y left, z up); positive yaw turns right (towards -y).
        forward = np.array([math.cos(yaw) * math.cos(pitch), -math.sin(yaw) * math.cos(pitch), math.sin(pitch)])
        right = np.array([-math.sin(yaw), -math.cos(yaw), 0.0])
        down = np.cross(forward, right)
        mount = np.eye(4)
        mount[:3, 0], mount[:3, 1], mount[:3, 2] = right, down, forward
        mount[:3, 3] = [self.forward_offset, 0.0, self.height]
        return chassis @ mount
