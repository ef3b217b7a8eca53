"""Vehicles driven by per-frame actions with real physics; the vehicle camera rides on them.

forward = throttle towards `speed_mps` (times `sprint_multiplier` with sprint), back = brake then
reverse at half speed, left/right = steer (the angle shrinks with speed so that lateral
acceleration stays near 5 m/s^2, like a driver would), no key = coast.

Models:
- `sedan` (recommended): a 1.3 t car built from primitives: box chassis (4.2 x 1.7 m),
  steerable front wheels on hinge links, sphere-collision wheels (smooth, stable contacts),
  all-wheel drive with torque limited to ~2.5 m/s^2. Drives straight, steers and brakes.
- `racecar`, `husky`: loaded from `pybullet_data` (the MIT racecar scaled x3; Clearpath husky,
  skid steering). Bullet's quadratic link damping is switched off (it caps wheel speed at a few
  m/s) and torque is limited (otherwise they wheelie and flip), but their cylinder/mesh wheel
  contacts still make them drift off a straight line: use them for variety, not precision.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pybullet as p
import pybullet_data

from contract.errors import UserError
from contract.sample import BACK, FORWARD, LEFT, RIGHT, SPRINT

LATERAL_ACCEL_MPS2 = 5.0
DRIVE_ACCEL_MPS2 = 3.5


@dataclass(frozen=True)
class VehicleModel:
    wheel_radius: float  # metres, as simulated
    wheelbase: float  # metres, for the speed-dependent steering limit
    drive_joints: tuple[int, ...]
    steer_joints: tuple[int, ...]  # empty = skid steering (left/right wheel speeds differ)
    left_wheels: tuple[int, ...] = ()
    right_wheels: tuple[int, ...] = ()
    max_steer_rad: float = 0.5
    origin_height: float = 0.0  # chassis origin above the ground at rest
    roof_height: float = 0.0  # the camera never goes below this (inside the body) relative to the ground
    camera_forward: float = 0.2  # camera mount ahead of the chassis origin, metres
    urdf: str | None = None  # pybullet_data path; None = built from primitives
    scale: float = 1.0


MODELS: dict[str, VehicleModel] = {
    "sedan": VehicleModel(0.33, 2.7, (1, 3, 4, 5), (0, 2), max_steer_rad=0.55, origin_height=0.6, roof_height=0.95,
                          camera_forward=1.0),  # the hood shows as a sliver at the bottom
    "racecar": VehicleModel(0.15, 0.975, (2, 3, 5, 7), (4, 6), origin_height=0.0, roof_height=0.6,
                            urdf="racecar/racecar.urdf", scale=3.0),
    "husky": VehicleModel(0.1651, 0.55, (2, 3, 4, 5), (), (2, 4), (3, 5), origin_height=0.0, roof_height=0.5,
                          urdf="husky/husky.urdf"),
}


def _build_sedan(client: int, position: list[float], orientation: list[float], colour: list[float]) -> int:
    """Chassis box + two steering hinge links + four sphere-collision wheels, one multibody."""
    wheelbase, track, radius = 2.7, 1.6, 0.33
    chassis_half = [2.1, 0.85, 0.25]
    chassis_col = p.createCollisionShape(p.GEOM_BOX, halfExtents=chassis_half, physicsClientId=client)
    chassis_vis = p.createVisualShape(p.GEOM_BOX, halfExtents=chassis_half, rgbaColor=colour, physicsClientId=client)
    hinge_col = p.createCollisionShape(p.GEOM_SPHERE, radius=0.05, physicsClientId=client)
    wheel_col = p.createCollisionShape(p.GEOM_SPHERE, radius=radius, physicsClientId=client)
    wheel_vis = p.createVisualShape(
        p.GEOM_CYLINDER, radius=radius, length=0.22, rgbaColor=[0.08, 0.08, 0.08, 1.0],
        visualFrameOrientation=p.getQuaternionFromEuler([math.pi / 2, 0.0, 0.0]), physicsClientId=client,
    )
    dz = radius - 0.6  # wheel centres below the chassis origin
    # (mass, collision, visual, position relative to parent, parent (0 = chassis), joint, axis)
    links = [
        (10.0, hinge_col, -1, [wheelbase / 2, track / 2, dz], 0, p.JOINT_REVOLUTE, [0, 0, 1]),  # 1 front-left steer
        (25.0, wheel_col, wheel_vis, [0, 0, 0], 1, p.JOINT_REVOLUTE, [0, 1, 0]),  # 2 front-left wheel
        (10.0, hinge_col, -1, [wheelbase / 2, -track / 2, dz], 0, p.JOINT_REVOLUTE, [0, 0, 1]),  # 3 front-right steer
        (25.0, wheel_col, wheel_vis, [0, 0, 0], 3, p.JOINT_REVOLUTE, [0, 1, 0]),  # 4 front-right wheel
        (25.0, wheel_col, wheel_vis, [-wheelbase / 2, track / 2, dz], 0, p.JOINT_REVOLUTE, [0, 1, 0]),  # 5 rear-left
        (25.0, wheel_col, wheel_vis, [-wheelbase / 2, -track / 2, dz], 0, p.JOINT_REVOLUTE, [0, 1, 0]),  # 6 rear-right
    ]
    n = len(links)
    body = p.createMultiBody(
        baseMass=1200.0, baseCollisionShapeIndex=chassis_col, baseVisualShapeIndex=chassis_vis,
        basePosition=position, baseOrientation=orientation,
        linkMasses=[link[0] for link in links], linkCollisionShapeIndices=[link[1] for link in links],
        linkVisualShapeIndices=[link[2] for link in links], linkPositions=[link[3] for link in links],
        linkOrientations=[[0, 0, 0, 1]] * n, linkInertialFramePositions=[[0, 0, 0]] * n,
        linkInertialFrameOrientations=[[0, 0, 0, 1]] * n, linkParentIndices=[link[4] for link in links],
        linkJointTypes=[link[5] for link in links], linkJointAxis=[link[6] for link in links],
        physicsClientId=client,
    )
    # link indices in PyBullet calls are 0-based: hinges are 0 and 2, wheels 1, 3, 4, 5.
    for hinge in (0, 2):
        p.setCollisionFilterGroupMask(body, hinge, 0, 0, physicsClientId=client)
    for wheel in (1, 3, 4, 5):
        p.changeDynamics(body, wheel, lateralFriction=1.6, maxJointVelocity=200.0, physicsClientId=client)
    return body


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
        orientation = p.getQuaternionFromEuler([0.0, 0.0, heading])
        spawn = [position[0], position[1], position[2] + self.model.origin_height + 0.02]
        if self.model.urdf is None:
            self.body = _build_sedan(client, spawn, orientation, [0.75, 0.12, 0.10, 1.0])
        else:
            self.body = p.loadURDF(f"{pybullet_data.getDataPath()}/{self.model.urdf}", spawn, orientation,
                                   globalScaling=self.model.scale, physicsClientId=client)
        self.drive, self.steer = self.model.drive_joints, self.model.steer_joints
        for link in range(-1, p.getNumJoints(self.body, physicsClientId=client)):
            # Bullet's multibody damping has a quadratic term that caps wheel speed at a few m/s.
            p.changeDynamics(self.body, link, linearDamping=0.0, angularDamping=0.0, physicsClientId=client)
        for joint in range(p.getNumJoints(self.body, physicsClientId=client)):
            p.setJointMotorControl2(self.body, joint, p.VELOCITY_CONTROL, targetVelocity=0.0, force=0.0, physicsClientId=client)
        masses = [p.getDynamicsInfo(self.body, link, physicsClientId=client)[0]
                  for link in range(-1, p.getNumJoints(self.body, physicsClientId=client))]
        wheels = len(self.drive) or 1
        self.max_torque = sum(masses) * DRIVE_ACCEL_MPS2 * self.model.wheel_radius / wheels

    def forward_speed(self) -> float:
        linear, _ = p.getBaseVelocity(self.body, physicsClientId=self.client)
        return float(np.dot(linear, self.base_pose()[:3, 0]))

    def apply(self, action: np.ndarray) -> None:
        """Set motor targets for the coming physics substeps."""
        m, client = self.model, self.client
        speed = self.speed_mps * (self.sprint_multiplier if action[SPRINT] > 0.5 else 1.0)
        if action[FORWARD] > 0.5:
            target, force = speed / m.wheel_radius, self.max_torque
        elif action[BACK] > 0.5:
            target, force = -0.5 * speed / m.wheel_radius, 2.0 * self.max_torque
        else:
            target, force = 0.0, 0.03 * self.max_torque  # coasting: rolling resistance only
        steer = float(action[RIGHT]) - float(action[LEFT])  # +1 = right
        v = abs(self.forward_speed())
        limit = min(m.max_steer_rad, math.atan(m.wheelbase * LATERAL_ACCEL_MPS2 / max(v, 1.0) ** 2))
        if self.steer:
            for joint in self.drive:
                p.setJointMotorControl2(self.body, joint, p.VELOCITY_CONTROL, targetVelocity=target, force=force,
                                        physicsClientId=client)
            for joint in self.steer:  # positive hinge angle turns left
                p.setJointMotorControl2(self.body, joint, p.POSITION_CONTROL, targetPosition=-steer * limit,
                                        force=50.0 * self.max_torque, physicsClientId=client)
        else:  # skid steering: the outer wheels turn faster
            base = target if target else 0.5 * speed / m.wheel_radius * abs(steer)
            turn = steer * 0.5 * abs(base)
            force = (force if target else self.max_torque) * (1.0 + 4.0 * abs(steer))  # skidding takes torque
            for joint in m.left_wheels:
                p.setJointMotorControl2(self.body, joint, p.VELOCITY_CONTROL, targetVelocity=target + turn, force=force,
                                        physicsClientId=client)
            for joint in m.right_wheels:
                p.setJointMotorControl2(self.body, joint, p.VELOCITY_CONTROL, targetVelocity=target - turn, force=force,
                                        physicsClientId=client)

    def base_pose(self) -> np.ndarray:
        """(4, 4) chassis-to-world (x forward, y left, z up)."""
        position, orientation = p.getBasePositionAndOrientation(self.body, physicsClientId=self.client)
        pose = np.eye(4)
        pose[:3, :3] = np.asarray(p.getMatrixFromQuaternion(orientation), dtype=np.float64).reshape(3, 3)
        pose[:3, 3] = position
        return pose
