"""Vehicles from pybullet_data driven by per-frame actions with real physics.

forward = throttle, back = brake then reverse, left/right = steer, sprint = faster target speed.
The camera rides on the chassis, so the vehicle rig's poses come from physics.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pybullet as p
import pybullet_data

from pipeline.errors import UserError

FORWARD, BACK, LEFT, RIGHT, JUMP, SPRINT, YAW, PITCH = range(8)


@dataclass(frozen=True)
class VehicleModel:
    urdf: str
    scale: float
    wheel_radius: float  # at scale 1
    drive_joints: tuple[int, ...]
    steer_joints: tuple[int, ...]  # empty = skid steering (left/right wheel speeds differ)
    left_wheels: tuple[int, ...] = ()
    right_wheels: tuple[int, ...] = ()
    max_steer_rad: float = 0.5
    spawn_z: float = 0.1


MODELS: dict[str, VehicleModel] = {
    # MIT racecar scaled x3 to roughly the size of a small car (1.5 m wheelbase region).
    "racecar": VehicleModel("racecar/racecar.urdf", 3.0, 0.05, (2, 3, 5, 7), (4, 6), spawn_z=0.1),
    "husky": VehicleModel("husky/husky.urdf", 1.0, 0.1651, (2, 3, 4, 5), (), (2, 4), (3, 5), spawn_z=0.2),
}


class Vehicle:
    def __init__(self, client: int, model_name: str, position: list[float], compass_yaw_deg: float,
                 speed_mps: float, sprint_multiplier: float) -> None:
        if model_name not in MODELS:
            raise UserError(f"camera.vehicle_model: {model_name!r} is not available", hint=f"use one of {', '.join(MODELS)}")
        self.client = client
        self.model = MODELS[model_name]
        self.speed_mps = speed_mps
        self.sprint_multiplier = sprint_multiplier
        heading = math.radians(90.0 - compass_yaw_deg)  # compass (0 = +Y, clockwise) -> yaw about +Z from +X
        self.body = p.loadURDF(
            f"{pybullet_data.getDataPath()}/{self.model.urdf}",
            [position[0], position[1], position[2] + self.model.spawn_z],
            p.getQuaternionFromEuler([0.0, 0.0, heading]),
            globalScaling=self.model.scale,
            physicsClientId=client,
        )
        for joint in range(p.getNumJoints(self.body, physicsClientId=client)):
            p.setJointMotorControl2(self.body, joint, p.VELOCITY_CONTROL, targetVelocity=0.0, force=0.0, physicsClientId=client)

    def apply(self, action: np.ndarray) -> None:
        """Set motor targets for the coming physics substeps."""
        m, client = self.model, self.client
        speed = self.speed_mps * (self.sprint_multiplier if action[SPRINT] > 0.5 else 1.0)
        radius = m.wheel_radius * m.scale
        force = 60.0 * m.scale
        if action[FORWARD] > 0.5:
            target = speed / radius
        elif action[BACK] > 0.5:
            target = -0.5 * speed / radius
        else:
            target, force = 0.0, 2.0 * m.scale  # coasting: only rolling resistance
        steer = float(action[RIGHT]) - float(action[LEFT])  # +1 = right
        if m.steer_joints:
            for joint in m.drive_joints:
                p.setJointMotorControl2(self.body, joint, p.VELOCITY_CONTROL, targetVelocity=target, force=force, physicsClientId=client)
            for joint in m.steer_joints:
                p.setJointMotorControl2(self.body, joint, p.POSITION_CONTROL, targetPosition=-steer * m.max_steer_rad, physicsClientId=client)
        else:
            turn = steer * 0.6 * (abs(target) if target else speed / radius)
            for joint in m.left_wheels:
                p.setJointMotorControl2(self.body, joint, p.VELOCITY_CONTROL, targetVelocity=target + turn, force=force, physicsClientId=client)
            for joint in m.right_wheels:
                p.setJointMotorControl2(self.body, joint, p.VELOCITY_CONTROL, targetVelocity=target - turn, force=force, physicsClientId=client)

    def base_pose(self) -> np.ndarray:
        """(4, 4) chassis-to-world (x forward, y left, z up)."""
        position, orientation = p.getBasePositionAndOrientation(self.body, physicsClientId=self.client)
        pose = np.eye(4)
        pose[:3, :3] = np.asarray(p.getMatrixFromQuaternion(orientation), dtype=np.float64).reshape(3, 3)
        pose[:3, 3] = position
        return pose
