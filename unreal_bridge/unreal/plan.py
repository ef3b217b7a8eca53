"""What the Unreal backend needs from a ResolvedClip, checked before the editor is touched.

Plain Python (no `unreal` import): it runs on the gRPC thread, so a clip the editor cannot
render is refused with a one-line INVALID_ARGUMENT naming the field and the fix, before a level
is loaded.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from contract.defaults import DEFAULT_SUN_AZIMUTH_DEG, DEFAULT_SUN_ELEVATION_DEG
from contract.errors import UserError
from unreal_bridge.unreal.readback import CM_PER_M, HALF_MAX_CM

SUPPORTED_PASSES = ("rgb", "depth")
# A SceneCapture2D renders a centred, square-pixel pinhole; allow rounding in the manifest.
PRINCIPAL_POINT_TOLERANCE_PX = 1.0
ASPECT_TOLERANCE = 1e-3
# The depth pass is an RTF_RGBA16F target (readback.py): half floats end at 65,504 cm.
DEPTH_CEILING_M = HALF_MAX_CM / CM_PER_M


@dataclass(frozen=True)
class Environment:
    sun_elevation_deg: float
    sun_azimuth_deg: float  # compass: 0 = +Y (north), 90 = +X (east), towards the sun
    cloudiness: float
    fog: float
    rain: float
    wetness: float


@dataclass(frozen=True)
class ClipPlan:
    """The resolved clip, reduced to what the editor needs, with the arrays parsed once."""

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
    environment: Environment

    @property
    def fov_deg(self) -> float:
        return math.degrees(2.0 * math.atan(self.width / (2.0 * float(self.intrinsics[0, 0]))))


def _field(clip: dict, path: str):
    node = clip
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            raise UserError(f"resolved clip field '{path}' is missing; re-resolve the manifest with `worldloom manifest resolve`")
        node = node[part]
    return node


def plan_clip(clip: dict) -> ClipPlan:
    """Validate a ResolvedClip for the Unreal backend; raises UserError (INVALID_ARGUMENT)."""
    world = _field(clip, "world")
    if "level" not in world:
        generator = world.get("generator", "?")
        raise UserError(
            f"manifest field 'world' uses generator {generator!r}, which only the procedural renderer builds; "
            "for renderer.backend unreal set world.level to a level of your project, e.g. /Game/Maps/CityPark"
        )
    level = str(world["level"])
    output = _field(clip, "output")
    width, height, frames = int(output["width"]), int(output["height"]), int(output["frames"])
    fps = float(output["fps"])
    passes = tuple(clip.get("passes") or ("rgb",))
    unsupported = [name for name in passes if name not in SUPPORTED_PASSES]
    if unsupported:
        raise UserError(
            f"manifest field 'passes' asks for {', '.join(unsupported)}, which the Unreal backend does not capture yet; "
            f"use a subset of {', '.join(SUPPORTED_PASSES)}"
        )
    k = _field(clip, "camera.intrinsics")
    fx, fy, cx, cy = (float(k[name]) for name in ("fx", "fy", "cx", "cy"))
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
    rig = _field(clip, "camera.rig")
    pose_source = (clip.get("camera") or {}).get("pose_source", "rollout")
    if pose_source != "rollout":
        raise UserError(
            f"camera.rig {rig!r} takes its poses from {pose_source} at render time, which the Unreal backend does not "
            "simulate; use rig first_person, orbit or fixed (poses from the action rollout)"
        )
    poses = np.asarray(clip.get("poses") or [], dtype=np.float64)
    if poses.shape != (frames, 16):
        raise UserError(
            f"camera.rig {rig!r} needs one pose per frame in the resolved clip (got {poses.shape[0] if poses.ndim else 0} "
            f"for {frames} frames); the Unreal backend drives the camera from the pose rollout: use rig "
            "first_person, orbit or fixed"
        )
    actions = np.asarray(_field(clip, "actions.per_frame"), dtype=np.float32)
    if actions.shape[0] != frames:
        raise UserError(f"resolved clip field 'actions.per_frame' has {actions.shape[0]} rows for {frames} frames; re-resolve the manifest")
    far_m = float((clip.get("camera") or {}).get("far_m", 500.0))
    if "depth" in passes and far_m > DEPTH_CEILING_M:
        raise UserError(
            f"manifest field 'camera.far_m' is {far_m:g} m, beyond what the Unreal depth pass can hold "
            f"(half floats end at {DEPTH_CEILING_M:g} m); set camera.far_m <= {DEPTH_CEILING_M:g} or drop the depth pass"
        )
    simulation = clip.get("simulation") or {}
    step = float(simulation.get("step") or 1.0 / fps)
    env = clip.get("environment") or {}
    sun, weather = env.get("sun") or {}, env.get("weather") or {}
    environment = Environment(
        sun_elevation_deg=float(sun.get("elevation_deg", DEFAULT_SUN_ELEVATION_DEG)),
        sun_azimuth_deg=float(sun.get("azimuth_deg", DEFAULT_SUN_AZIMUTH_DEG)),
        cloudiness=float(weather.get("cloudiness", 0.0)),
        fog=float(weather.get("fog", 0.0)),
        rain=float(weather.get("rain", 0.0)),
        wetness=float(weather.get("wetness", 0.0)),
    )
    return ClipPlan(
        key=str(clip.get("key", "")),
        level=level,
        width=width,
        height=height,
        fps=fps,
        frames=frames,
        step_s=step,
        warmup_frames=int(simulation.get("warmup_frames", 0) or 0),
        temporal_samples=int(output.get("temporal_samples", 1) or 1),
        spatial_samples=int(output.get("spatial_samples", 1) or 1),
        passes=passes,
        intrinsics=np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]]),
        far_m=far_m,
        poses=poses.reshape(frames, 4, 4),
        actions=actions,
        environment=environment,
    )
