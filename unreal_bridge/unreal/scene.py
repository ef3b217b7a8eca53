"""The level, the camera rig and the SceneCapture2D fast path. Game thread only.

Everything here calls `unreal.*` and so runs only inside tasks of `GameThreadExecutor`.

The rig: one CineCameraActor (what a user sees in the editor and what the cinematic path
renders) with one SceneCapture2D per pass attached to it (snapped, no offset). Each frame:
move the camera, `capture_scene()` every pass, export each render target once and decode it
(readback.py), and read the capture component's world transform and field of view, all in the
same tick, so the pose sent with the pixels is the pose that produced them.

View state: a capture with `capture_every_frame` off drops its view state after every capture
unless `always_persist_rendering_state` is set (USceneCaptureComponent::bAlwaysPersistRenderingState,
"This allows velocities for Motion Blur and Temporal AA to be computed", API reference 5.3-5.5),
so without it temporal AA, eye adaptation and Lumen never accumulate history and the warm-up
captures do nothing. The rig sets it. Exposure: optionally fixed through the capture's
post-process settings (manual exposure, EV100 bias), so frames do not depend on how long eye
adaptation has run.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from contract.errors import UserError
from unreal_bridge.unreal.coords import fx_from_fov, opencv_pose_to_unreal, unreal_to_opencv_pose
from unreal_bridge.unreal.environment import apply_environment
from unreal_bridge.unreal.plan import EditorPlan
from unreal_bridge.unreal.readback import depth_m_from_half_cm, read_exr, read_png_rgb

CAMERA_LABEL = "worldloom_camera"
# One exported file per pass, overwritten every frame (a pass is one GPU read + one encode).
EXPORT_FILES = {"rgb": "rgb.png", "depth": "depth.exr"}


class LevelNotFound(UserError):
    """The manifest names a level the project does not have (maps to INVALID_ARGUMENT)."""


class UnrealScene:
    """One loaded level with a worldloom camera rig in it."""

    def __init__(self, unreal: Any, export_dir: Path, *, exposure_ev100: float | None = None) -> None:
        self.unreal = unreal
        self.export_dir = Path(export_dir)  # where render targets are exported each frame
        self.exposure_ev100 = exposure_ev100  # None: the level's auto exposure (needs warm-up frames)
        self.plan: EditorPlan | None = None
        self.camera: Any = None
        self.captures: dict[str, tuple[Any, Any]] = {}  # pass -> (SceneCaptureComponent2D, render target)
        self.missing_environment: list[str] = []

    # -- open / close ---------------------------------------------------------------------

    def load(self, plan: EditorPlan) -> None:
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

    def _spawn_rig(self, plan: EditorPlan) -> None:
        unreal = self.unreal
        actors = unreal.get_editor_subsystem(unreal.EditorActorSubsystem)
        world = unreal.get_editor_subsystem(unreal.UnrealEditorSubsystem).get_editor_world()
        self.camera = actors.spawn_actor_from_class(unreal.CineCameraActor, unreal.Vector(0.0, 0.0, 0.0), unreal.Rotator(0.0, 0.0, 0.0))
        self.camera.set_actor_label(CAMERA_LABEL)
        cine = self.camera.get_cine_camera_component()
        # Structs come back as copies: edit the copy, then set it (UE Python struct semantics).
        # Filmback with the output's aspect ratio: CineCameraComponent constrains the aspect ratio
        # (bConstrainAspectRatio) and defaults to a 16:9 filmback, so any other output would be
        # letterboxed in Movie Render Queue and stop lining up with the captures.
        filmback = cine.get_editor_property("filmback")
        sensor_width_mm = float(filmback.sensor_width)
        filmback.sensor_height = sensor_width_mm * plan.height / plan.width
        cine.set_editor_property("filmback", filmback)
        # Same field of view as the captures: focal = fx * sensor_width / image_width.
        cine.set_editor_property("current_focal_length", float(plan.intrinsics[0, 0]) * sensor_width_mm / plan.width)
        snap = unreal.AttachmentRule.SNAP_TO_TARGET
        for name in plan.passes:
            actor = actors.spawn_actor_from_class(unreal.SceneCapture2D, unreal.Vector(0.0, 0.0, 0.0), unreal.Rotator(0.0, 0.0, 0.0))
            actor.set_actor_label(f"{CAMERA_LABEL}_{name}")
            actor.attach_to_actor(self.camera, "", snap, snap, snap, False)
            component = actor.get_editor_property("capture_component2d")
            if name == "depth":
                # read/export of R32F is unsupported; RGBA16F keeps depth (cm) in R, finite up to 655.04 m.
                target_format, source = unreal.TextureRenderTargetFormat.RTF_RGBA16F, unreal.SceneCaptureSource.SCS_SCENE_DEPTH
            else:
                target_format, source = unreal.TextureRenderTargetFormat.RTF_RGBA8, unreal.SceneCaptureSource.SCS_FINAL_COLOR_LDR
            target = unreal.RenderingLibrary.create_render_target2d(
                world, plan.width, plan.height, target_format, unreal.LinearColor(0.0, 0.0, 0.0, 1.0), False
            )
            if target is None:  # the engine returns None (and logs) for an invalid world or size
                raise RuntimeError(f"creating the {name} render target ({plan.width}x{plan.height}) failed; see the editor's Output Log")
            component.set_editor_property("texture_target", target)
            component.set_editor_property("capture_source", source)
            component.set_editor_property("fov_angle", plan.fov_deg)
            # We decide when to capture: exactly once per simulated step ...
            component.set_editor_property("capture_every_frame", False)
            component.set_editor_property("capture_on_movement", False)
            # ... and keep the view state between those captures (TAA, eye adaptation, Lumen history).
            component.set_editor_property("always_persist_rendering_state", True)
            if self.exposure_ev100 is not None and name == "rgb":
                self._fix_exposure(component, self.exposure_ev100)
            self.captures[name] = (component, target)
        self.export_dir.mkdir(parents=True, exist_ok=True)

    def _fix_exposure(self, component: Any, ev100: float) -> None:
        """Manual exposure on the capture's post-process settings (FPostProcessSettings, UE 5.x)."""
        unreal = self.unreal
        settings = component.get_editor_property("post_process_settings")
        settings.set_editor_property("override_auto_exposure_method", True)
        settings.set_editor_property("auto_exposure_method", unreal.AutoExposureMethod.AEM_MANUAL)
        # Manual exposure from the bias alone, not from the cine camera's ISO/shutter/aperture.
        settings.set_editor_property("override_auto_exposure_apply_physical_camera_exposure", True)
        settings.set_editor_property("auto_exposure_apply_physical_camera_exposure", False)
        settings.set_editor_property("override_auto_exposure_bias", True)
        settings.set_editor_property("auto_exposure_bias", float(ev100))
        component.set_editor_property("post_process_settings", settings)

    def destroy(self) -> None:
        unreal = self.unreal
        actors = unreal.get_editor_subsystem(unreal.EditorActorSubsystem)
        for component, _ in self.captures.values():
            actors.destroy_actor(component.get_owner())
        if self.camera is not None:
            actors.destroy_actor(self.camera)
        self.captures.clear()
        for file_name in EXPORT_FILES.values():
            (self.export_dir / file_name).unlink(missing_ok=True)
        self.camera = None
        self.plan = None

    # -- per tick -------------------------------------------------------------------------

    def move_camera(self, camera_to_world: np.ndarray) -> None:
        unreal = self.unreal
        location, (roll, pitch, yaw) = opencv_pose_to_unreal(camera_to_world)
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
            _, target = self.captures[name]
            path = self.export_dir / EXPORT_FILES[name]
            path.unlink(missing_ok=True)  # a failed export must not hand back the previous frame
            # One GPU read-back and one encode per pass (PNG for RGBA8, EXR for RGBA16F).
            unreal.RenderingLibrary.export_render_target(world, target, str(self.export_dir), path.name)
            if not path.is_file() or path.stat().st_size == 0:  # the engine leaves an empty file when encoding fails
                raise RuntimeError(f"exporting the {name} render target to {path} failed; see the editor's Output Log")
            if name == "depth":
                depth_cm = read_exr(path)["R"]  # SCS_SCENE_DEPTH: planar z in cm, in the red channel
                if depth_cm.shape != (plan.height, plan.width):
                    raise RuntimeError(f"exported {path.name} is {depth_cm.shape[1]}x{depth_cm.shape[0]}, not {plan.width}x{plan.height}")
                pixels[name] = depth_m_from_half_cm(depth_cm, plan.far_m)
            else:
                pixels[name] = read_png_rgb(path, plan.width, plan.height)
        # The camera state that produced these pixels: read from the capture itself, same tick.
        component = self.captures[passes[0]][0]
        location, rotation = component.get_world_location(), component.get_world_rotation()
        pose = unreal_to_opencv_pose((location.x, location.y, location.z), (rotation.roll, rotation.pitch, rotation.yaw))
        k = plan.intrinsics.copy()
        k[0, 0] = k[1, 1] = fx_from_fov(float(component.get_editor_property("fov_angle")), plan.width)
        return pixels, pose, k
