"""The level, the camera rig and the SceneCapture2D fast path. Game thread only.

Everything here calls `unreal.*` and so runs only inside tasks of `GameThreadExecutor`.

The rig: one CineCameraActor (what a user sees in the editor and what the cinematic path
renders) with one SceneCapture2D per pass attached to it (snapped, no offset). Each frame:
move the camera, `capture_scene()` every pass, read the render targets back, and read the
capture component's world transform and field of view, all in the same tick, so the pose sent
with the pixels is the pose that produced them.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from pipeline.errors import UserError
from unreal_bridge.unreal.coords import fx_from_fov, opencv_c2w_to_unreal, unreal_to_opencv_c2w
from unreal_bridge.unreal.environment import apply_environment
from unreal_bridge.unreal.plan import ClipPlan

CAMERA_LABEL = "worldloom_camera"
CM_PER_M = 100.0


class LevelNotFound(UserError):
    """The manifest names a level the project does not have (maps to INVALID_ARGUMENT)."""


def _rgb_from_colors(colors: Any, width: int, height: int) -> np.ndarray:
    """Array[Color] (8-bit sRGB BGRA, row-major from the top-left) -> (H, W, 3) uint8 RGB."""
    flat = np.fromiter((channel for c in colors for channel in (c.r, c.g, c.b)), dtype=np.uint8, count=width * height * 3)
    return flat.reshape(height, width, 3)


def _depth_from_linear(samples: Any, width: int, height: int, far_m: float) -> np.ndarray:
    """Array[LinearColor] of SCS_SCENE_DEPTH (planar z in cm, in .r) -> (H, W) float32 metres, sky = far."""
    depth_cm = np.fromiter((s.r for s in samples), dtype=np.float64, count=width * height)
    depth = depth_cm.reshape(height, width) / CM_PER_M
    depth[~np.isfinite(depth)] = far_m
    return np.minimum(depth, far_m).astype(np.float32)


class UnrealScene:
    """One loaded level with a worldloom camera rig in it."""

    def __init__(self, unreal: Any) -> None:
        self.unreal = unreal
        self.plan: ClipPlan | None = None
        self.camera: Any = None
        self.captures: dict[str, tuple[Any, Any]] = {}  # pass -> (SceneCaptureComponent2D, render target)
        self.missing_environment: list[str] = []

    # -- open / close ---------------------------------------------------------------------

    def load(self, plan: ClipPlan) -> None:
        unreal = self.unreal
        if not unreal.EditorAssetLibrary.does_asset_exist(plan.level):
            raise LevelNotFound(
                f"manifest field 'world.level' is {plan.level!r}, which this Unreal project does not contain; "
                "use the level's asset path as shown in the Content Browser, e.g. /Game/Maps/CityPark"
            )
        # Clips of one level follow each other; reloading costs seconds to minutes and would
        # discard nothing we need (the bridge sets the environment and rig on every open).
        if self.current_level() != plan.level:
            if not unreal.get_editor_subsystem(unreal.LevelEditorSubsystem).load_level(plan.level):
                raise LevelNotFound(f"manifest field 'world.level': the editor could not load {plan.level!r}; open it once in the editor to see why")
        self.plan = plan
        self.missing_environment = apply_environment(unreal, plan.environment)
        self._spawn_rig(plan)

    def current_level(self) -> str:
        """Asset path of the editor world's level ("/Game/Maps/X" from "/Game/Maps/X.X")."""
        world = self.unreal.get_editor_subsystem(self.unreal.UnrealEditorSubsystem).get_editor_world()
        return str(world.get_path_name()).split(".", 1)[0] if world is not None else ""

    def _spawn_rig(self, plan: ClipPlan) -> None:
        unreal = self.unreal
        actors = unreal.get_editor_subsystem(unreal.EditorActorSubsystem)
        world = unreal.get_editor_subsystem(unreal.UnrealEditorSubsystem).get_editor_world()
        self.camera = actors.spawn_actor_from_class(unreal.CineCameraActor, unreal.Vector(0.0, 0.0, 0.0), unreal.Rotator(0.0, 0.0, 0.0))
        self.camera.set_actor_label(CAMERA_LABEL)
        cine = self.camera.get_cine_camera_component()
        sensor_width_mm = float(cine.get_editor_property("filmback").sensor_width)
        # Same field of view as the captures: focal = fx * sensor_width / image_width.
        cine.set_editor_property("current_focal_length", float(plan.intrinsics[0, 0]) * sensor_width_mm / plan.width)
        snap = unreal.AttachmentRule.SNAP_TO_TARGET
        for name in plan.passes:
            actor = actors.spawn_actor_from_class(unreal.SceneCapture2D, unreal.Vector(0.0, 0.0, 0.0), unreal.Rotator(0.0, 0.0, 0.0))
            actor.set_actor_label(f"{CAMERA_LABEL}_{name}")
            actor.attach_to_actor(self.camera, "", snap, snap, snap, False)
            component = actor.get_editor_property("capture_component2d")
            if name == "depth":
                target_format, source = unreal.TextureRenderTargetFormat.RTF_R32F, unreal.SceneCaptureSource.SCS_SCENE_DEPTH
            else:
                target_format, source = unreal.TextureRenderTargetFormat.RTF_RGBA8, unreal.SceneCaptureSource.SCS_FINAL_COLOR_LDR
            target = unreal.RenderingLibrary.create_render_target2d(
                world, plan.width, plan.height, target_format, unreal.LinearColor(0.0, 0.0, 0.0, 1.0), False
            )
            component.set_editor_property("texture_target", target)
            component.set_editor_property("capture_source", source)
            component.set_editor_property("fov_angle", plan.fov_deg)
            # We decide when to capture: exactly once per simulated step.
            component.set_editor_property("capture_every_frame", False)
            component.set_editor_property("capture_on_movement", False)
            self.captures[name] = (component, target)

    def destroy(self) -> None:
        unreal = self.unreal
        actors = unreal.get_editor_subsystem(unreal.EditorActorSubsystem)
        for component, _ in self.captures.values():
            actors.destroy_actor(component.get_owner())
        if self.camera is not None:
            actors.destroy_actor(self.camera)
        self.captures.clear()
        self.camera = None
        self.plan = None

    # -- per tick -------------------------------------------------------------------------

    def move_camera(self, camera_to_world: np.ndarray) -> None:
        unreal = self.unreal
        location, (roll, pitch, yaw) = opencv_c2w_to_unreal(camera_to_world)
        self.camera.set_actor_location_and_rotation(unreal.Vector(*location), unreal.Rotator(roll, pitch, yaw), False, True)

    def capture(self, passes: tuple[str, ...], *, read_back: bool = True):
        """Render every pass now; return (pixels per pass, camera-to-world, K) read in this tick."""
        unreal, plan = self.unreal, self.plan
        for name in passes:
            self.captures[name][0].capture_scene()
        if not read_back:
            return None
        world = unreal.get_editor_subsystem(unreal.UnrealEditorSubsystem).get_editor_world()
        pixels: dict[str, np.ndarray] = {}
        for name in passes:
            component, target = self.captures[name]
            if name == "depth":
                samples = unreal.RenderingLibrary.read_render_target_raw(world, target, False)
                if samples is None:
                    raise RuntimeError("reading the depth render target failed")
                pixels[name] = _depth_from_linear(samples, plan.width, plan.height, plan.far_m)
            else:
                colors = unreal.RenderingLibrary.read_render_target(world, target, True)
                if colors is None:
                    raise RuntimeError("reading the colour render target failed")
                pixels[name] = _rgb_from_colors(colors, plan.width, plan.height)
        # The camera state that produced these pixels: read from the capture itself, same tick.
        component = self.captures[passes[0]][0]
        location, rotation = component.get_world_location(), component.get_world_rotation()
        c2w = unreal_to_opencv_c2w((location.x, location.y, location.z), (rotation.roll, rotation.pitch, rotation.yaw))
        k = plan.intrinsics.copy()
        k[0, 0] = k[1, 1] = fx_from_fov(float(component.get_editor_property("fov_angle")), plan.width)
        return pixels, c2w, k
