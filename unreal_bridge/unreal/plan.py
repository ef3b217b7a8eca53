"""What the Unreal backend needs from a ResolvedClip, checked before the editor is touched.

Plain Python (no `unreal` import): it runs on the gRPC thread, so a clip the editor cannot
render is refused with a one-line INVALID_ARGUMENT naming the field and the fix, before a level
is loaded.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from contract.clip import ClipEnvironment, ResolvedClip
from contract.errors import UserError
from unreal_bridge.unreal.readback import CM_PER_M, HALF_MAX_CM

SUPPORTED_PASSES = ("rgb", "depth")
# A SceneCapture2D renders a centred, square-pixel pinhole; allow rounding in the manifest.
PRINCIPAL_POINT_TOLERANCE_PX = 1.0
ASPECT_TOLERANCE = 1e-3
# The depth pass is an RTF_RGBA16F target (readback.py): half floats end at 65,504 cm.
DEPTH_CEILING_M = HALF_MAX_CM / CM_PER_M


@dataclass(frozen=True)
class EditorPlan:
    """The resolved clip, reduced to what the editor needs and checked against what it can do."""

    key: str
    level: str
    width: int
    height: int
    fps: float
    frames: int
    step_s: float  # simulated seconds per frame (1 / fps)
    warmup_frames: int
    temporal_samples: int  # Movie Render Queue anti-aliasing (cinematic path only)
    spatial_samples: int
    passes: tuple[str, ...]
    intrinsics: np.ndarray  # (3, 3)
    far_m: float
    poses: np.ndarray  # (T, 4, 4) OpenCV camera-to-world, metres
    actions: np.ndarray  # (T, 8) float32
    environment: ClipEnvironment

    @property
    def fov_deg(self) -> float:
        return math.degrees(2.0 * math.atan(self.width / (2.0 * float(self.intrinsics[0, 0]))))


def plan_for_editor(clip: ResolvedClip | Mapping[str, Any]) -> EditorPlan:
    """Check a ResolvedClip against what the Unreal backend renders; raises UserError (INVALID_ARGUMENT)."""
    clip = ResolvedClip.parse(clip)
    world = clip.world
    if "level" not in world:
        generator = world.get("generator", "?")
        raise UserError(
            f"manifest field 'world' uses generator {generator!r}, which only the procedural renderer builds; "
            "for renderer.backend unreal set world.level to a level of your project, e.g. /Game/Maps/CityPark"
        )
    output = clip.output
    width, height, frames = output.width, output.height, output.frames
    unsupported = [name for name in clip.passes if name not in SUPPORTED_PASSES]
    if unsupported:
        raise UserError(
            f"manifest field 'passes' asks for {', '.join(unsupported)}, which the Unreal backend does not capture yet; "
            f"use a subset of {', '.join(SUPPORTED_PASSES)}"
        )
    k = clip.camera.intrinsics
    fx, fy = k.fx * width / k.width, k.fy * height / k.height
    cx, cy = k.cx * width / k.width, k.cy * height / k.height
    if abs(fx - fy) > ASPECT_TOLERANCE * fx:
        raise UserError(
            f"manifest field 'camera.intrinsics' has fx={fx:g} != fy={fy:g}; Unreal's SceneCapture2D renders square "
            "pixels: set only fov_deg, or fx equal to fy"
        )
    for name, value, size in (("cx", cx, width), ("cy", cy, height)):
        centred = (size / 2.0, (size - 1) / 2.0)
        if min(abs(value - c) for c in centred) > PRINCIPAL_POINT_TOLERANCE_PX:
            raise UserError(
                f"manifest field 'camera.intrinsics.{name}' is {value:g} but Unreal renders a centred principal point; "
                f"remove {name} or set it to {size / 2:g}"
            )
    rig = clip.camera.rig
    if clip.camera.pose_source != "rollout" or clip.poses is None:
        raise UserError(
            f"camera.rig {rig!r} takes its poses from {clip.camera.pose_source} at render time, which the Unreal backend "
            "does not simulate; use rig first_person, orbit or fixed (poses from the action rollout)"
        )
    far_m = clip.camera.far_m
    if "depth" in clip.passes and far_m > DEPTH_CEILING_M:
        raise UserError(
            f"manifest field 'camera.far_m' is {far_m:g} m, beyond what the Unreal depth pass can hold "
            f"(half floats end at {DEPTH_CEILING_M:g} m); set camera.far_m <= {DEPTH_CEILING_M:g} or drop the depth pass"
        )
    return EditorPlan(
        key=clip.key,
        level=str(world["level"]),
        width=width,
        height=height,
        fps=output.fps,
        frames=frames,
        step_s=clip.simulation.step_s,
        warmup_frames=clip.simulation.warmup_frames,
        temporal_samples=output.temporal_samples,
        spatial_samples=output.spatial_samples,
        passes=clip.passes,
        intrinsics=np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]]),
        far_m=far_m,
        poses=clip.poses[:frames],
        actions=clip.actions[:frames],
        environment=clip.environment,
    )
