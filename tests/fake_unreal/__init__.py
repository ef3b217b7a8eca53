"""A FAKE of the `unreal` Python module, for tests only. It is not Unreal Engine.

The real `unreal` module exists only inside the Unreal Editor, which cannot run here. This fake
implements the small API surface `unreal_bridge.unreal` uses, with the same names and call
shapes as UE 5.4+, and enforces the one rule that matters most for a server inside the editor:
**only the game thread may call into `unreal.*`**. Any function or method call on the fake
module or a fake engine object from another thread is recorded in `FakeEditor.violations` and
raises `FakeUnrealThreadError`; reading an attribute (a class, an enum member) is allowed, as in
the engine, where the game-thread check sits in the call path (issue 15's check of PyUtil.cpp /
PyWrapperObject.cpp).

Where the engine's behaviour shapes the bridge, the fake follows the engine, and each rule names
its source (issue 15 lists the differences an API check found; they are modelled here):

- render targets hold pixels in their format: RTF_RGBA8 bytes, RTF_RGBA16F half floats (scene
  depth of the sky overflows to +inf), RTF_R32F floats;
- `read_render_target_raw` reads only B8G8R8A8 and FloatRGBA targets and returns None otherwise;
  `normalize=True` rescales float targets (ReadRenderTargetHelper, KismetRenderingLibrary.cpp);
- `export_render_target` writes EXR (OpenEXR library, ZIP, half RGBA) for RTF_RGBA16F, PNG for
  RTF_RGBA8, and an empty file for anything else (UKismetRenderingLibrary::ExportRenderTarget);
  every read-back is logged in `FakeEditor.readbacks` with its cost class;
- a capture with `capture_every_frame` off drops its view state after each capture unless
  `always_persist_rendering_state` is set; a capture without history is under-exposed (eye
  adaptation has not run) unless the capture's post-process settings fix the exposure;
- ticks arrive at a realistic rate (120 Hz), at a few Hz when the editor is in the background and
  `throttle_cpu_when_not_foreground` is on (the default), not at all with
  `t.IdleWhenNotForeground 1`, and not during garbage collection or saves (`hitch()`);
- `register_slate_post_tick_callback` returns an opaque handle object;
- `attach_to_actor` honours its location and rotation rules (snap, keep relative, keep world);
- structs (`Vector`, `CameraFilmbackSettings`, `PostProcessSettings`, ...) are returned by
  `get_editor_property` as copies: editing one changes nothing until it is set back;
- Movie Render Queue letterboxes when the camera constrains its aspect ratio and the filmback's
  aspect differs from the output; only `render_warm_up_count` frames render before frame one;
  transform channels carry `channel_name`s;
- `SoftObjectPath` and `MovieSceneObjectBindingID` expose no invented fields;
- setting a scalar the Material Parameter Collection does not declare logs an error and does
  nothing; `create_render_target2d` returns None for an invalid world or size; spawning an actor
  dirties the level.

What it does not simulate: real rendering, lighting, physics, PIE, sequencer interpolation, the
exact pixels of letterbox bars or exposure curves.
"""
from __future__ import annotations

import copy
import hashlib
import math
import queue
import threading
import time
import types
from pathlib import Path
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

__all__ = ["FakeEditor", "FakeUnrealThreadError", "CaptureRecord", "fake_rgb", "fake_depth_cm", "SKY_DEPTH_CM",
           "UNADAPTED_GAIN"]

# Scene depth of the sky: a very large float (the far plane is at infinity with reversed Z). In a
# half-float target it overflows: numpy's IEEE conversion gives +inf; some GPUs clamp to 65504.
SKY_DEPTH_CM = 1.0e8
UNADAPTED_GAIN = 0.5  # a capture without view-state history: eye adaptation has not run yet
TICK_HZ = 120.0  # a focused (or unthrottled) editor's frame cap, order of magnitude
THROTTLED_TICK_HZ = 4.0  # "a few Hz" in the background with bThrottleCPUWhenNotForeground (issue 15)
GC_INTERVAL_S = 61.1  # gc.TimeBetweenPurgingPendingKillObjects default; the game thread stalls during GC


class FakeUnrealThreadError(RuntimeError):
    """Raised when `unreal.*` is touched from a thread other than the game thread."""


_EDITOR: "FakeEditor | None" = None


def _guard(what: str) -> None:
    editor = _EDITOR
    if editor is None:
        raise FakeUnrealThreadError(f"unreal.{what} used while no FakeEditor is running")
    editor._check_thread(what)


def _guarded_call(what: str, fn: Callable) -> Callable:
    def call(*args, **kwargs):
        _guard(what)
        return fn(*args, **kwargs)

    call.__name__ = getattr(fn, "__name__", what)
    return call


class _Guarded:
    """Base of fake engine objects: calling a public method is game-thread only; reading is not."""

    def __getattribute__(self, name: str) -> Any:
        value = object.__getattribute__(self, name)
        if not name.startswith("_") and isinstance(value, types.MethodType):
            return _guarded_call(f"{type(self).__name__}.{name}", value)
        return value

    # Reflection-style property access, as on real UObjects; structs come back as copies.
    def get_editor_property(self, name: str) -> Any:
        props = object.__getattribute__(self, "_props")
        if name not in props:
            raise Exception(f"Failed to find property '{name}' on '{type(self).__name__}'")
        value = props[name]
        return copy.deepcopy(value) if isinstance(value, _Struct) else value

    def set_editor_property(self, name: str, value: Any, notify_mode: Any = None) -> None:
        props = object.__getattribute__(self, "_props")
        if name not in props:
            raise Exception(f"Failed to find property '{name}' on '{type(self).__name__}'")
        props[name] = copy.deepcopy(value) if isinstance(value, _Struct) else value


class _Struct:
    """Marker: a UE struct (a value, copied on get/set_editor_property). Not thread-guarded."""

    def get_editor_property(self, name: str) -> Any:
        if not hasattr(self, name) or name.startswith("_"):
            raise Exception(f"Failed to find property '{name}' on '{type(self).__name__}'")
        return getattr(self, name)

    def set_editor_property(self, name: str, value: Any, notify_mode: Any = None) -> None:
        if not hasattr(self, name) or name.startswith("_"):
            raise Exception(f"Failed to find property '{name}' on '{type(self).__name__}'")
        setattr(self, name, value)


# ---------------------------------------------------------------------------------- values


@dataclass
class Vector(_Struct):
    x: float = 0.0
    y: float = 0.0
    z: float = 0.0


@dataclass
class Rotator(_Struct):
    """Same positional order as the real `unreal.Rotator(roll, pitch, yaw)`."""

    roll: float = 0.0
    pitch: float = 0.0
    yaw: float = 0.0


@dataclass
class LinearColor(_Struct):
    r: float = 0.0
    g: float = 0.0
    b: float = 0.0
    a: float = 1.0


@dataclass
class Color(_Struct):
    b: int = 0
    g: int = 0
    r: int = 0
    a: int = 255


class _Enum:
    def __init__(self, enum_name: str, member: str) -> None:
        self.enum_name, self.name = enum_name, member

    def __repr__(self) -> str:
        return f"{self.enum_name}.{self.name}"

    def __copy__(self) -> "_Enum":  # enum members are singletons, also inside copied structs
        return self

    def __deepcopy__(self, memo: dict) -> "_Enum":
        return self


def _enum(enum_name: str, *members: str) -> type:
    return type(enum_name, (), {member: _Enum(enum_name, member) for member in members})


TextureRenderTargetFormat = _enum("TextureRenderTargetFormat", "RTF_RGBA8", "RTF_RGBA16F", "RTF_R32F")
AutoExposureMethod = _enum("AutoExposureMethod", "AEM_HISTOGRAM", "AEM_BASIC", "AEM_MANUAL")
SceneCaptureSource = _enum("SceneCaptureSource", "SCS_FINAL_COLOR_LDR", "SCS_SCENE_DEPTH", "SCS_SCENE_COLOR_HDR")
AttachmentRule = _enum("AttachmentRule", "KEEP_RELATIVE", "KEEP_WORLD", "SNAP_TO_TARGET")


# ---------------------------------------------------------------------------------- fake pixels


def _pose_key(location: Vector, rotation: Rotator, fov: float, environment: dict) -> bytes:
    text = (
        f"{location.x:.2f},{location.y:.2f},{location.z:.2f}|"
        f"{rotation.roll:.3f},{rotation.pitch:.3f},{rotation.yaw:.3f}|{fov:.4f}|"
        + ",".join(f"{k}={environment[k]:.4f}" for k in sorted(environment))
    )
    return hashlib.sha256(text.encode()).digest()


def fake_rgb(location: Vector, rotation: Rotator, fov: float, environment: dict, width: int, height: int) -> np.ndarray:
    """(H, W, 3) uint8 that changes with every centimetre, milli-degree, fov and environment value."""
    key = _pose_key(location, rotation, fov, environment)
    base = np.frombuffer(key[:3], dtype=np.uint8).astype(np.int64)
    ys, xs = np.mgrid[0:height, 0:width]
    rgb = np.stack([xs * 7 + base[0], ys * 5 + base[1], (xs + ys) * 3 + base[2]], axis=-1) % 256
    return rgb.astype(np.uint8)


def fake_depth_cm(location: Vector, rotation: Rotator, width: int, height: int) -> np.ndarray:
    """(H, W) float32 planar depth in centimetres; the top quarter is sky (SKY_DEPTH_CM)."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    depth = 500.0 + 10.0 * ys + 0.5 * xs + abs(location.z) + abs(rotation.yaw)
    depth[: max(1, height // 4)] = SKY_DEPTH_CM
    return depth.astype(np.float32)


def _axes(rotation: Rotator) -> np.ndarray:
    """FRotationMatrix: columns forward, right, up of a Rotator (own copy: the fake must not borrow coords.py)."""
    sr, cr = math.sin(math.radians(rotation.roll)), math.cos(math.radians(rotation.roll))
    sp, cp = math.sin(math.radians(rotation.pitch)), math.cos(math.radians(rotation.pitch))
    sy, cy = math.sin(math.radians(rotation.yaw)), math.cos(math.radians(rotation.yaw))
    return np.array([[cp * cy, sr * sp * cy - cr * sy, -(cr * sp * cy + sr * sy)],
                     [cp * sy, sr * sp * sy + cr * cy, cy * sr - cr * sp * sy],
                     [sp, -sr * cp, cr * cp]])


def _rotator(axes: np.ndarray) -> Rotator:
    forward, right, up = axes[:, 0], axes[:, 1], axes[:, 2]
    pitch = math.degrees(math.atan2(forward[2], math.hypot(forward[0], forward[1])))
    yaw = math.degrees(math.atan2(forward[1], forward[0]))
    level_right = _axes(Rotator(0.0, pitch, yaw))[:, 1]
    roll = math.degrees(math.atan2(float(up @ level_right), float(right @ level_right)))
    return Rotator(roll, pitch, yaw)


def _with_bars(pixels: np.ndarray, camera_aspect: float) -> np.ndarray:
    """Letterbox (or pillarbox) an output image to a camera of another aspect ratio: black bars."""
    height, width = pixels.shape[:2]
    out = np.zeros_like(pixels)
    if camera_aspect > width / height:  # wider camera: bars top and bottom
        inner = int(round(width / camera_aspect))
        top = (height - inner) // 2
        out[top:top + inner] = pixels[top:top + inner]
    else:
        inner = int(round(height * camera_aspect))
        left = (width - inner) // 2
        out[:, left:left + inner] = pixels[:, left:left + inner]
    return out


# ---------------------------------------------------------------------------------- objects


class Object(_Guarded):
    def __init__(self, **props: Any) -> None:
        object.__setattr__(self, "_props", dict(props))


class TextureRenderTarget2D(Object):
    """Pixels in the target's format: RGBA8 (H, W, 4) uint8 RGBA; RGBA16F (H, W, 4) float16; R32F (H, W) float32."""

    def __init__(self, width: int, height: int, fmt: _Enum) -> None:
        super().__init__(size_x=width, size_y=height, render_target_format=fmt)
        object.__setattr__(self, "_pixels", None)

    def _store(self, values: np.ndarray) -> None:
        """What the GPU writes for a capture: (H, W, 3) colour or (H, W) depth, converted to the format."""
        fmt = self._props["render_target_format"].name
        height, width = values.shape[:2]
        if fmt == "RTF_R32F":
            stored = (values if values.ndim == 2 else values[..., 0]).astype(np.float32)
        elif fmt == "RTF_RGBA16F":
            stored = np.zeros((height, width, 4), dtype=np.float16)
            with np.errstate(over="ignore"):  # beyond 65504 becomes +inf, as an IEEE conversion does
                if values.ndim == 2:
                    stored[..., 0] = values.astype(np.float16)
                else:
                    stored[..., :3] = (values.astype(np.float32) / 255.0).astype(np.float16)
            stored[..., 3] = 1.0
        else:  # RTF_RGBA8: colour bytes; scene captures may leave alpha at 0, so the reader must ignore it
            stored = np.zeros((height, width, 4), dtype=np.uint8)
            stored[..., :3] = values if values.ndim == 3 else np.clip(values, 0, 255).astype(np.uint8)[..., None]
        object.__setattr__(self, "_pixels", stored)


@dataclass
class CollectionScalarParameter(_Struct):
    parameter_name: str = "None"
    default_value: float = 0.0


class MaterialParameterCollection(Object):
    def __init__(self, path: str, scalars: tuple[str, ...] = ("Cloudiness", "Rain", "Wetness", "Fog")) -> None:
        super().__init__(scalar_parameters=[CollectionScalarParameter(name) for name in scalars])
        object.__setattr__(self, "_path", path)
        object.__setattr__(self, "_scalars", {})


class ActorComponent(Object):
    def __init__(self, owner: "Actor", **props: Any) -> None:
        super().__init__(**props)
        object.__setattr__(self, "_owner", owner)
        object.__setattr__(self, "_visible", True)

    def get_owner(self) -> "Actor":
        return self._owner

    def set_visibility(self, new_visibility: bool, propagate_to_children: bool = False) -> None:
        object.__setattr__(self, "_visible", bool(new_visibility))

    def get_world_location(self) -> Vector:
        location, _ = self._owner._world_transform()
        return Vector(location.x, location.y, location.z)

    def get_world_rotation(self) -> Rotator:
        _, rotation = self._owner._world_transform()
        return Rotator(rotation.roll, rotation.pitch, rotation.yaw)


class DirectionalLightComponent(ActorComponent):
    def __init__(self, owner: "Actor") -> None:
        super().__init__(owner, intensity=10.0, atmosphere_sun_light=True)

    def set_intensity(self, new_intensity: float) -> None:
        self._props["intensity"] = float(new_intensity)


class SkyAtmosphereComponent(ActorComponent):
    pass


class ExponentialHeightFogComponent(ActorComponent):
    def __init__(self, owner: "Actor") -> None:
        super().__init__(owner, fog_density=0.02)

    def set_fog_density(self, value: float) -> None:
        self._props["fog_density"] = float(value)


class SkyLightComponent(ActorComponent):
    def __init__(self, owner: "Actor") -> None:
        super().__init__(owner)
        object.__setattr__(self, "_recaptures", 0)

    def recapture_sky(self) -> None:
        object.__setattr__(self, "_recaptures", self._recaptures + 1)


class VolumetricCloudComponent(ActorComponent):
    pass


@dataclass
class CameraFilmbackSettings(_Struct):
    """UE's default filmback is 16:9 (23.76 x 13.365 mm)."""

    sensor_width: float = 23.76
    sensor_height: float = 13.365

    @property
    def sensor_aspect_ratio(self) -> float:  # read-only in the engine, derived
        return self.sensor_width / self.sensor_height


@dataclass
class PostProcessSettings(_Struct):
    """The exposure part of FPostProcessSettings (the rest is not modelled)."""

    override_auto_exposure_method: bool = False
    auto_exposure_method: Any = AutoExposureMethod.AEM_HISTOGRAM
    override_auto_exposure_bias: bool = False
    auto_exposure_bias: float = 0.0
    override_auto_exposure_apply_physical_camera_exposure: bool = False
    auto_exposure_apply_physical_camera_exposure: bool = True

    def manual_exposure(self) -> bool:
        return self.override_auto_exposure_method and self.auto_exposure_method is AutoExposureMethod.AEM_MANUAL


class CineCameraComponent(ActorComponent):
    def __init__(self, owner: "Actor") -> None:
        super().__init__(owner, current_focal_length=35.0, filmback=CameraFilmbackSettings(), constrain_aspect_ratio=True)


class SceneCaptureComponent2D(ActorComponent):
    def __init__(self, owner: "Actor") -> None:
        super().__init__(
            owner,
            texture_target=None,
            capture_source=SceneCaptureSource.SCS_SCENE_COLOR_HDR,
            fov_angle=90.0,
            capture_every_frame=True,
            capture_on_movement=True,
            always_persist_rendering_state=False,
            post_process_settings=PostProcessSettings(),
        )
        object.__setattr__(self, "_history", 0)  # earlier captures whose view state this one can use

    def capture_scene(self) -> None:
        editor = _EDITOR
        target = self._props["texture_target"]
        if target is None:
            raise Exception("SceneCaptureComponent2D.capture_scene: no texture_target set")
        location, rotation = self._owner._world_transform()
        width, height = target._props["size_x"], target._props["size_y"]
        source = self._props["capture_source"]
        fov = float(self._props["fov_angle"])
        # Without bAlwaysPersistRenderingState a capture that is not every frame starts from a fresh
        # view state (USceneCaptureComponent docs: persisting "allows velocities for Motion Blur and
        # Temporal AA to be computed"); eye adaptation then starts from scratch too.
        history = self._history if self._props["always_persist_rendering_state"] else 0
        if source is SceneCaptureSource.SCS_SCENE_DEPTH:
            target._store(fake_depth_cm(location, rotation, width, height))
        else:
            rgb = fake_rgb(location, rotation, fov, editor._environment_state(), width, height)
            if history == 0 and not self._props["post_process_settings"].manual_exposure():
                rgb = (rgb * UNADAPTED_GAIN).astype(np.uint8)
            target._store(rgb)
        object.__setattr__(self, "_history", history + 1)
        editor.captures.append(
            CaptureRecord(
                tick=editor.tick_count,
                source=source.name,
                location=Vector(location.x, location.y, location.z),
                rotation=Rotator(rotation.roll, rotation.pitch, rotation.yaw),
                fov=fov,
                level=editor.current_level,
                history=history,
            )
        )


class Actor(Object):
    _component_classes: tuple[type, ...] = ()

    def __init__(self, location: Vector, rotation: Rotator) -> None:
        super().__init__()
        object.__setattr__(self, "_location", Vector(location.x, location.y, location.z))
        object.__setattr__(self, "_rotation", Rotator(rotation.roll, rotation.pitch, rotation.yaw))
        object.__setattr__(self, "_parent", None)
        object.__setattr__(self, "_label", type(self).__name__)
        object.__setattr__(self, "_components", [cls(self) for cls in self._component_classes])
        object.__setattr__(self, "_destroyed", False)

    def _world_transform(self) -> tuple[Vector, Rotator]:
        parent = object.__getattribute__(self, "_parent")
        if parent is None:
            return self._location, self._rotation
        parent_location, parent_rotation = parent._world_transform()
        relative_location, relative_rotation = self._location, self._rotation  # relative to the parent
        if (relative_location.x, relative_location.y, relative_location.z) == (0.0, 0.0, 0.0) and \
                (relative_rotation.roll, relative_rotation.pitch, relative_rotation.yaw) == (0.0, 0.0, 0.0):
            return parent_location, parent_rotation  # snapped: exactly the parent's transform
        parent_axes = _axes(parent_rotation)
        offset = parent_axes @ np.array([relative_location.x, relative_location.y, relative_location.z])
        location = Vector(parent_location.x + offset[0], parent_location.y + offset[1], parent_location.z + offset[2])
        return location, _rotator(parent_axes @ _axes(relative_rotation))

    def set_actor_location_and_rotation(self, new_location: Vector, new_rotation: Rotator, sweep: bool, teleport: bool):
        if object.__getattribute__(self, "_parent") is not None:
            raise Exception("fake: moving an attached actor is not modelled (the bridge moves the camera, not the captures)")
        object.__setattr__(self, "_location", Vector(new_location.x, new_location.y, new_location.z))
        object.__setattr__(self, "_rotation", Rotator(new_rotation.roll, new_rotation.pitch, new_rotation.yaw))
        return None

    def set_actor_rotation(self, new_rotation: Rotator, teleport_physics: bool) -> bool:
        object.__setattr__(self, "_rotation", Rotator(new_rotation.roll, new_rotation.pitch, new_rotation.yaw))
        return True

    def get_attach_parent_actor(self) -> "Actor | None":
        return self._parent

    def get_actor_location(self) -> Vector:
        location, _ = self._world_transform()
        return Vector(location.x, location.y, location.z)

    def get_actor_rotation(self) -> Rotator:
        _, rotation = self._world_transform()
        return Rotator(rotation.roll, rotation.pitch, rotation.yaw)

    def set_actor_label(self, new_actor_label: str, mark_dirty: bool = True) -> None:
        object.__setattr__(self, "_label", new_actor_label)

    def get_actor_label(self) -> str:
        return self._label

    def get_component_by_class(self, component_class: type) -> ActorComponent | None:
        for component in self._components:
            if isinstance(component, component_class):
                return component
        return None

    def attach_to_actor(self, parent_actor: "Actor", socket_name: str, location_rule, rotation_rule, scale_rule,
                        weld_simulated_bodies: bool) -> bool:
        """AActor::AttachToActor: each rule decides what the child's stored (now relative) transform is."""
        world_location, world_rotation = self._world_transform()
        parent_location, parent_rotation = parent_actor._world_transform()
        parent_axes = _axes(parent_rotation)
        if location_rule.name == "SNAP_TO_TARGET":
            location = Vector()
        elif location_rule.name == "KEEP_WORLD":
            local = parent_axes.T @ np.array([world_location.x - parent_location.x, world_location.y - parent_location.y,
                                              world_location.z - parent_location.z])
            location = Vector(*map(float, local))
        else:  # KEEP_RELATIVE: the current location becomes the offset from the parent
            location = Vector(self._location.x, self._location.y, self._location.z)
        if rotation_rule.name == "SNAP_TO_TARGET":
            rotation = Rotator()
        elif rotation_rule.name == "KEEP_WORLD":
            rotation = _rotator(parent_axes.T @ _axes(world_rotation))
        else:
            rotation = Rotator(self._rotation.roll, self._rotation.pitch, self._rotation.yaw)
        object.__setattr__(self, "_location", location)
        object.__setattr__(self, "_rotation", rotation)
        object.__setattr__(self, "_parent", parent_actor)
        return True


class DirectionalLight(Actor):
    _component_classes = (DirectionalLightComponent,)


class SkyAtmosphere(Actor):
    _component_classes = (SkyAtmosphereComponent,)


class ExponentialHeightFog(Actor):
    _component_classes = (ExponentialHeightFogComponent,)


class SkyLight(Actor):
    _component_classes = (SkyLightComponent,)


class VolumetricCloud(Actor):
    _component_classes = (VolumetricCloudComponent,)


class CineCameraActor(Actor):
    _component_classes = (CineCameraComponent,)

    def get_cine_camera_component(self) -> CineCameraComponent:
        return self._components[0]


class SceneCapture2D(Actor):
    _component_classes = (SceneCaptureComponent2D,)

    def __init__(self, location: Vector, rotation: Rotator) -> None:
        super().__init__(location, rotation)
        self._props["capture_component2d"] = self._components[0]


class World(Object):
    def get_path_name(self) -> str:
        level = _EDITOR.current_level or "/Temp/Untitled_1"
        return f"{level}.{level.rsplit('/', 1)[-1]}"


# ---------------------------------------------------------------------------------- subsystems and libraries


class LevelEditorSubsystem(Object):
    def load_level(self, asset_path: str) -> bool:
        editor = _EDITOR
        if asset_path not in editor.levels:
            return False  # the real editor logs an error and returns False
        time.sleep(editor.load_delay_s)  # loading blocks the game thread, as in the editor
        editor.level_loads.append(asset_path)
        editor._load(asset_path)
        return True

    def get_current_level(self) -> Object:
        return Object(path=_EDITOR.current_level)


class EditorActorSubsystem(Object):
    def spawn_actor_from_class(self, actor_class: type, location: Vector, rotation: Rotator = None, transient: bool = False):
        actor = actor_class(location, rotation or Rotator())
        _EDITOR.actors.append(actor)
        _EDITOR.dirty_levels.add(_EDITOR.current_level)  # spawning modifies the level (even a transient actor)
        return actor

    def get_all_level_actors(self) -> list[Actor]:
        return [actor for actor in _EDITOR.actors if not object.__getattribute__(actor, "_destroyed")]

    def destroy_actor(self, actor_to_destroy: Actor) -> bool:
        object.__setattr__(actor_to_destroy, "_destroyed", True)
        _EDITOR.actors.remove(actor_to_destroy)
        return True


class UnrealEditorSubsystem(Object):
    def get_editor_world(self) -> World:
        return _EDITOR.world


def _static(fn: Callable) -> classmethod:
    """A library classmethod that is game-thread only."""

    def wrapper(cls, *args, **kwargs):
        _guard(f"{cls.__name__}.{fn.__name__}")
        return fn(cls, *args, **kwargs)

    wrapper.__name__ = fn.__name__
    return classmethod(wrapper)


class EditorAssetLibrary:
    @_static
    def does_asset_exist(cls, asset_path: str) -> bool:
        return asset_path in _EDITOR.levels or asset_path in _EDITOR.assets

    @_static
    def delete_asset(cls, asset_path_to_delete: str) -> bool:
        return _EDITOR.assets.pop(asset_path_to_delete, None) is not None


class SystemLibrary:
    @_static
    def get_engine_version(cls) -> str:
        return _EDITOR.engine_version

    @_static
    def execute_console_command(cls, world_context_object, command: str, specific_player=None) -> None:
        name, _, value = str(command).strip().partition(" ")
        _EDITOR.cvars[name] = value.strip()


class EditorPerformanceSettings(Object):
    """UEditorPerformanceSettings; only the background throttle is modelled (default on, as in the engine)."""

    def __init__(self) -> None:
        super().__init__(throttle_cpu_when_not_foreground=True)


class EditorPythonScripting:
    @_static
    def set_keep_python_script_alive(cls, keep_alive: bool) -> None:
        _EDITOR.keep_python_script_alive = bool(keep_alive)

    @_static
    def get_keep_python_script_alive(cls) -> bool:
        return _EDITOR.keep_python_script_alive


def _format(target: TextureRenderTarget2D) -> str:
    return object.__getattribute__(target, "_props")["render_target_format"].name


class RenderingLibrary:
    """UKismetRenderingLibrary: create, read and export render targets as the engine does (5.4 source)."""

    @_static
    def create_render_target2d(cls, world_context_object, width=256, height=256,
                               format=TextureRenderTargetFormat.RTF_RGBA16F, clear_color=None,
                               auto_generate_mip_maps=False, support_ua_vs=False) -> TextureRenderTarget2D | None:
        # CreateRenderTarget2D returns nullptr unless Width > 0, Height > 0 and the context has a world.
        if not isinstance(world_context_object, World) or width <= 0 or height <= 0:
            _EDITOR.log.append(("error", f"CreateRenderTarget2D: invalid world or size {width}x{height}"))
            return None
        return TextureRenderTarget2D(width, height, format)

    @_static
    def read_render_target(cls, world_context_object, texture_render_target, normalize=True):
        """Array[Color] or None. Per pixel: the slow path (Epic: "Incredibly inefficient and slow")."""
        pixels = object.__getattribute__(texture_render_target, "_pixels")
        fmt = _format(texture_render_target)
        if world_context_object is None or pixels is None or fmt not in ("RTF_RGBA8", "RTF_RGBA16F"):
            return None  # ReadRenderTargetHelper: only PF_B8G8R8A8 and PF_FloatRGBA
        _EDITOR.readbacks.append(("read_render_target", fmt, pixels.shape[0] * pixels.shape[1]))
        if fmt == "RTF_RGBA16F":  # FLinearColor::ToFColor(true): clamp, sRGB-encode
            linear = np.clip(pixels[..., :3].astype(np.float32), 0.0, 1.0)
            srgb = np.where(linear <= 0.0031308, linear * 12.92, 1.055 * np.power(linear, 1 / 2.4) - 0.055)
            rgb = (srgb * 255.0 + 0.5).astype(np.uint8)
        else:
            rgb = pixels[..., :3]
        return [Color(b=int(p[2]), g=int(p[1]), r=int(p[0]), a=255) for p in rgb.reshape(-1, 3)]

    @_static
    def read_render_target_raw(cls, world_context_object, texture_render_target, normalize=True):
        """Array[LinearColor] or None; B8G8R8A8 comes back as 0..255 floats, FloatRGBA as stored."""
        pixels = object.__getattribute__(texture_render_target, "_pixels")
        fmt = _format(texture_render_target)
        if world_context_object is None or pixels is None or fmt not in ("RTF_RGBA8", "RTF_RGBA16F"):
            return None  # an RTF_R32F target (PF_R32_FLOAT) is not read: the helper returns PF_Unknown
        _EDITOR.readbacks.append(("read_render_target_raw", fmt, pixels.shape[0] * pixels.shape[1]))
        values = pixels.reshape(-1, 4).astype(np.float64)
        if fmt == "RTF_RGBA16F" and normalize:
            # bNormalize=True reads with RCM_UNorm instead of RCM_MinMax: values are rescaled, not as
            # stored (issue 15). Modelled as min/max over the colour channels of the image.
            finite = values[..., :3][np.isfinite(values[..., :3])]
            low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
            values[..., :3] = np.clip((values[..., :3] - low) / max(high - low, 1e-12), 0.0, 1.0)
        return [LinearColor(r=float(v[0]), g=float(v[1]), b=float(v[2]), a=float(v[3])) for v in values]

    @_static
    def export_render_target(cls, world_context_object, texture_render_target, file_path: str, file_name: str) -> None:
        """ExportRenderTarget: EXR (HDR for a .hdr name) for RTF_RGBA16f, PNG otherwise; the file is
        created before encoding, so a format the PNG encoder rejects leaves an empty file."""
        if texture_render_target is None or not file_name:
            _EDITOR.log.append(("warning", "ExportRenderTarget: TextureRenderTarget and FileName must be non-empty"))
            return
        path = Path(file_path) / file_name
        pixels = object.__getattribute__(texture_render_target, "_pixels")
        fmt = _format(texture_render_target)
        _EDITOR.readbacks.append(("export_render_target", fmt, 0 if pixels is None else pixels.shape[0] * pixels.shape[1]))
        if pixels is None:
            pixels = np.zeros((texture_render_target._props["size_y"], texture_render_target._props["size_x"], 4),
                              dtype=np.float16 if fmt == "RTF_RGBA16F" else np.uint8)
        path.parent.mkdir(parents=True, exist_ok=True)
        if fmt == "RTF_RGBA16F" and path.suffix.lower() != ".hdr":
            import OpenEXR  # the reference EXR library; FExrImageWrapper writes ZIP-compressed half RGBA

            channels = {name: np.ascontiguousarray(pixels[..., i]) for i, name in enumerate("RGBA")}
            OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}, channels).write(str(path))
        elif fmt == "RTF_RGBA8":
            from PIL import Image

            Image.fromarray(pixels, mode="RGBA").save(path)
        else:
            path.write_bytes(b"")  # CreateFileWriter succeeded, the encoder did not: an empty file


class MaterialLibrary:
    @_static
    def set_scalar_parameter_value(cls, world_context_object, collection, parameter_name, parameter_value) -> None:
        declared = {p.parameter_name for p in object.__getattribute__(collection, "_props")["scalar_parameters"]}
        if str(parameter_name) not in declared:  # the engine logs an error and leaves the collection alone
            _EDITOR.log.append(("error", f"SetScalarParameterValue: invalid parameter {parameter_name!r} in {collection._path}"))
            return
        object.__getattribute__(collection, "_scalars")[str(parameter_name)] = float(parameter_value)


# ---------------------------------------------------------------------------------- sequencer and Movie Render Queue


@dataclass
class FrameRate(_Struct):
    numerator: int = 30
    denominator: int = 1


@dataclass
class FrameNumber(_Struct):
    value: int = 0


@dataclass
class IntPoint(_Struct):
    x: int = 0
    y: int = 0


class SoftObjectPath(_Struct):
    """FSoftObjectPath from a path string. Its reflected fields (asset_path, sub_path_string) are not
    modelled and nothing here invents others: the string comes back through export_text()."""

    def __init__(self, path_string: str = "") -> None:
        self._path = str(path_string)

    def export_text(self) -> str:
        return self._path

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SoftObjectPath) and other._path == self._path


@dataclass
class DirectoryPath(_Struct):
    path: str = ""  # FDirectoryPath::Path is a real field


class MovieSceneObjectBindingID(_Struct):
    """Opaque to Python scripts: made by get_binding_id / get_portable_binding_id, compared, passed on."""

    def __init__(self) -> None:
        self._guid: int | None = None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MovieSceneObjectBindingID) and other._guid == self._guid


class MovieSceneScriptingDoubleChannel(Object):
    def __init__(self, channel_name: str = "None") -> None:
        super().__init__(channel_name=channel_name)
        object.__setattr__(self, "_keys", {})

    def add_key(self, time: FrameNumber, new_value: float, sub_frame: float = 0.0, time_unit=None, interpolation=None):
        self._keys[int(time.value)] = float(new_value)


class MovieSceneSection(Object):
    def __init__(self) -> None:
        super().__init__()
        object.__setattr__(self, "_range", None)

    def set_range(self, start_frame: int, end_frame: int) -> None:
        object.__setattr__(self, "_range", (int(start_frame), int(end_frame)))


class MovieScene3DTransformSection(MovieSceneSection):
    def __init__(self) -> None:
        super().__init__()
        names = [f"{group}.{axis}" for group in ("Location", "Rotation", "Scale") for axis in "XYZ"]
        # The engine lists them in this order today; the bridge must not rely on it (it looks them up
        # by channel_name), so a test can reorder them through FakeEditor.transform_channel_order.
        order = _EDITOR.transform_channel_order if _EDITOR is not None and _EDITOR.transform_channel_order else names
        object.__setattr__(self, "_channels", [MovieSceneScriptingDoubleChannel(name) for name in order])

    def get_all_channels(self) -> list:
        return list(self._channels)


class MovieSceneCameraCutSection(MovieSceneSection):
    def __init__(self) -> None:
        super().__init__()
        object.__setattr__(self, "_binding", None)

    def set_camera_binding_id(self, camera_binding_id: MovieSceneObjectBindingID) -> None:
        object.__setattr__(self, "_binding", camera_binding_id)


class MovieSceneTrack(Object):
    _section_class: type = MovieSceneSection

    def __init__(self) -> None:
        super().__init__()
        object.__setattr__(self, "_sections", [])

    def add_section(self):
        section = self._section_class()
        self._sections.append(section)
        return section


class MovieScene3DTransformTrack(MovieSceneTrack):
    _section_class = MovieScene3DTransformSection


class MovieSceneCameraCutTrack(MovieSceneTrack):
    _section_class = MovieSceneCameraCutSection


class SequencerBindingProxy(Object):
    def __init__(self, actor: "Actor", guid: int) -> None:
        super().__init__()
        object.__setattr__(self, "_actor", actor)
        object.__setattr__(self, "_guid", guid)
        object.__setattr__(self, "_tracks", [])

    def add_track(self, track_type: type):
        track = track_type()
        self._tracks.append(track)
        return track


class LevelSequence(Object):
    def __init__(self, path: str) -> None:
        super().__init__()
        for name, value in (("_path", path), ("_rate", None), ("_start", None), ("_end", None), ("_bindings", []), ("_tracks", [])):
            object.__setattr__(self, name, value)

    def get_path_name(self) -> str:
        return f"{self._path}.{self._path.rsplit('/', 1)[-1]}"

    def set_display_rate(self, display_rate: FrameRate) -> None:
        object.__setattr__(self, "_rate", display_rate)

    def set_playback_start(self, start_frame: int) -> None:
        object.__setattr__(self, "_start", int(start_frame))

    def set_playback_end(self, end_frame: int) -> None:
        object.__setattr__(self, "_end", int(end_frame))

    def add_possessable(self, object_to_possess: "Actor") -> SequencerBindingProxy:
        binding = SequencerBindingProxy(object_to_possess, len(self._bindings) + 1)
        self._bindings.append(binding)
        return binding

    def add_track(self, track_type: type):
        track = track_type()
        self._tracks.append(track)
        return track

    def get_binding_id(self, binding: SequencerBindingProxy) -> MovieSceneObjectBindingID:
        binding_id = MovieSceneObjectBindingID()
        binding_id._guid = binding._guid
        return binding_id


class LevelSequenceFactoryNew(Object):
    pass


class AssetTools(Object):
    def create_asset(self, asset_name: str, package_path: str, asset_class: type, factory: Object):
        path = f"{package_path}/{asset_name}"
        asset = asset_class(path)
        _EDITOR.assets[path] = asset
        return asset


class AssetToolsHelpers:
    @_static
    def get_asset_tools(cls) -> AssetTools:
        return AssetTools()


class _Delegate(Object):
    def __init__(self) -> None:
        super().__init__()
        object.__setattr__(self, "_callables", [])

    def add_callable_unique(self, callable_: Callable) -> None:
        if callable_ not in self._callables:
            self._callables.append(callable_)


class MoviePipelinePIEExecutor(Object):
    def __init__(self) -> None:
        super().__init__(on_executor_finished_delegate=None, on_executor_errored_delegate=None)
        object.__setattr__(self, "on_executor_finished_delegate", _Delegate())
        object.__setattr__(self, "on_executor_errored_delegate", _Delegate())


class MoviePipelineSetting(Object):
    _defaults: dict = {}

    def __init__(self) -> None:
        super().__init__(**self._defaults)


class MoviePipelineOutputSetting(MoviePipelineSetting):
    _defaults = {"output_directory": None, "file_name_format": "{sequence_name}.{frame_number}", "zero_pad_frame_numbers": 4,
                 "output_resolution": IntPoint(1920, 1080)}


class MoviePipelineAntiAliasingSetting(MoviePipelineSetting):
    # Defaults are not modelled (the bridge sets every count it relies on).
    _defaults = {"temporal_sample_count": 1, "spatial_sample_count": 1, "engine_warm_up_count": 0, "render_warm_up_count": 0}


class MoviePipelineDeferredPassBase(MoviePipelineSetting):
    pass


class MoviePipelineImageSequenceOutput_PNG(MoviePipelineSetting):
    pass


class MoviePipelinePrimaryConfig(Object):
    def __init__(self) -> None:
        super().__init__()
        object.__setattr__(self, "_settings", {})

    def find_or_add_setting_by_class(self, setting_class: type):
        return self._settings.setdefault(setting_class, setting_class())


class MoviePipelineExecutorJob(Object):
    def __init__(self) -> None:
        super().__init__(sequence=None, map=None)
        object.__setattr__(self, "_config", MoviePipelinePrimaryConfig())

    def get_configuration(self) -> MoviePipelinePrimaryConfig:
        return self._config


class MoviePipelineQueue(Object):
    def __init__(self) -> None:
        super().__init__()
        object.__setattr__(self, "_jobs", [])

    def delete_all_jobs(self) -> None:
        self._jobs.clear()

    def allocate_new_job(self, job_type: type) -> MoviePipelineExecutorJob:
        job = job_type()
        self._jobs.append(job)
        return job

    def get_jobs(self) -> list:
        return list(self._jobs)


class MoviePipelineQueueSubsystem(Object):
    def __init__(self) -> None:
        super().__init__()
        object.__setattr__(self, "_queue", MoviePipelineQueue())

    def get_queue(self) -> MoviePipelineQueue:
        return self._queue

    def render_queue_with_executor_instance(self, executor: MoviePipelinePIEExecutor) -> None:
        """Asynchronous, like the real one: frames are written over later ticks, then the delegate fires."""
        _EDITOR._start_movie_render(list(self._queue._jobs), executor)


_SUBSYSTEMS = (LevelEditorSubsystem, EditorActorSubsystem, UnrealEditorSubsystem, MoviePipelineQueueSubsystem)


# ---------------------------------------------------------------------------------- the editor


@dataclass
class CaptureRecord:
    tick: int
    source: str  # "SCS_FINAL_COLOR_LDR" | "SCS_SCENE_DEPTH"
    location: Vector
    rotation: Rotator
    fov: float
    level: str | None
    history: int = 0  # earlier captures of this component whose view state this capture used


@dataclass
class _ScriptCall:
    fn: Callable[[], Any]
    future: Future = field(default_factory=Future)


class _SlateHandle:
    """What register_slate_post_tick_callback returns: an opaque handle, only good for unregistering."""

    __slots__ = ()


class _GuardedModule(types.ModuleType):
    """The fake `unreal` module. Reading attributes is free; its functions check the thread themselves."""


class FakeEditor:
    """A fake Unreal Editor process: a game thread, levels, actors and the fake `unreal` module.

    Use as a context manager. `run_on_game_thread(fn)` runs `fn` on the game thread, the way
    `-ExecutePythonScript` runs a start-up script there.
    """

    def __init__(
        self,
        levels: dict[str, list[type]] | None = None,
        *,
        load_delay_s: float = 0.05,
        tick_interval_s: float = 1.0 / TICK_HZ,
        engine_version: str = "5.4.4-fake+++UE5+Release-5.4",
        assets: tuple[str, ...] = ("/Game/Worldloom/MPC_Weather",),
        foreground: bool = False,
        gc_interval_s: float = GC_INTERVAL_S,
        gc_pause_s: float = 0.05,
    ) -> None:
        # Each level lists the environment actor classes it contains.
        default_env = [DirectionalLight, SkyAtmosphere, ExponentialHeightFog, SkyLight, VolumetricCloud]
        self.levels = levels if levels is not None else {"/Game/Maps/Courtyard": default_env, "/Game/Maps/Empty": []}
        self.load_delay_s = load_delay_s
        self.tick_interval_s = tick_interval_s
        self.foreground = foreground  # a headless (-RenderOffScreen) editor is never the foreground window
        self.gc_interval_s, self.gc_pause_s = gc_interval_s, gc_pause_s
        self.engine_version = engine_version
        self.performance_settings = EditorPerformanceSettings()
        self.cvars: dict[str, str] = {"t.IdleWhenNotForeground": "0"}
        self.readbacks: list[tuple[str, str, int]] = []  # (call, target format, pixels) per read-back
        self.dirty_levels: set[str | None] = set()
        self.hitches: list[tuple[str, float]] = []  # (reason, seconds) the game thread stalled without ticking
        self.transform_channel_order: list[str] | None = None
        self.assets = {path: MaterialParameterCollection(path) for path in assets}
        self.module = self._build_module()
        self.world = World()
        self.current_level: str | None = None
        self.level_loads: list[str] = []
        self.actors: list[Actor] = []
        self.captures: list[CaptureRecord] = []
        self.violations: list[str] = []
        self.tick_count = 0
        self.keep_python_script_alive = False
        self.callbacks: dict[_SlateHandle, Callable[[float], None]] = {}
        self.callback_errors: list[BaseException] = []
        self.movie_render_ticks_per_frame = 2
        self.movie_render_fails: str | None = None  # set to an error text to make the next MRQ render fail
        self.movie_renders: list[dict] = []  # one entry per finished MRQ render (settings, frames, ticks)
        self._movie_render: dict | None = None
        self._hitch_requests: queue.SimpleQueue[tuple[str, float]] = queue.SimpleQueue()
        self._scripts: queue.Queue[_ScriptCall] = queue.Queue()
        self._running = threading.Event()
        self._paused = threading.Event()
        self._thread: threading.Thread | None = None
        self.game_thread_ident: int | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def __enter__(self) -> "FakeEditor":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> "FakeEditor":
        global _EDITOR
        if _EDITOR is not None:
            raise RuntimeError("another FakeEditor is running; stop it first")
        _EDITOR = self
        self._running.set()
        self._thread = threading.Thread(target=self._game_loop, name="FakeUnrealGameThread", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        global _EDITOR
        self._running.clear()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        if _EDITOR is self:
            _EDITOR = None

    def pause_ticks(self) -> None:
        """Simulate a hung editor: the game thread stops ticking (script calls still run)."""
        self._paused.set()

    def resume_ticks(self) -> None:
        self._paused.clear()

    def hitch(self, seconds: float, reason: str = "garbage collection") -> None:
        """The game thread stalls for `seconds` without ticking (a GC pass, a save, a shader compile)."""
        self._hitch_requests.put((reason, seconds))

    def tick_hz(self) -> float:
        """How often the editor ticks now: throttled or idle in the background unless told not to."""
        if self.foreground:
            return 1.0 / self.tick_interval_s if self.tick_interval_s > 0 else math.inf
        if self.cvars.get("t.IdleWhenNotForeground", "0") not in ("0", ""):
            return 0.0
        if self.performance_settings._props["throttle_cpu_when_not_foreground"]:
            return THROTTLED_TICK_HZ
        return 1.0 / self.tick_interval_s if self.tick_interval_s > 0 else math.inf

    def run_on_game_thread(self, fn: Callable[[], Any], timeout: float = 10.0) -> Any:
        call = _ScriptCall(fn)
        self._scripts.put(call)
        return call.future.result(timeout=timeout)

    # -- state helpers (test-side; not part of the fake API) ------------------------------------

    def actors_of(self, actor_class: type) -> list[Actor]:
        return [actor for actor in self.actors if isinstance(actor, actor_class)]

    def component_props(self, component: Object) -> dict:
        return object.__getattribute__(component, "_props")

    def mpc_scalars(self, path: str = "/Game/Worldloom/MPC_Weather") -> dict:
        return object.__getattribute__(self.assets[path], "_scalars")

    # -- internals ------------------------------------------------------------------------------

    def _check_thread(self, what: str) -> None:
        if threading.get_ident() != self.game_thread_ident:
            message = f"unreal.{what} called from thread {threading.current_thread().name!r}, not the game thread"
            self.violations.append(message)
            raise FakeUnrealThreadError(message)

    def _game_loop(self) -> None:
        self.game_thread_ident = threading.get_ident()
        last = next_tick = next_gc = time.monotonic()
        next_gc += self.gc_interval_s
        while self._running.is_set():
            while True:  # script calls (-ExecutePythonScript, console) run whether or not the editor ticks
                try:
                    call = self._scripts.get_nowait()
                except queue.Empty:
                    break
                try:
                    call.future.set_result(call.fn())
                except BaseException as error:  # noqa: BLE001 - handed to the caller
                    call.future.set_exception(error)
            now = time.monotonic()
            stalls = []
            while True:
                try:
                    stalls.append(self._hitch_requests.get_nowait())
                except queue.Empty:
                    break
            if now >= next_gc:
                stalls.append(("garbage collection", self.gc_pause_s))
                next_gc = now + self.gc_interval_s
            for reason, seconds in stalls:  # the game thread is busy: no tick callbacks meanwhile
                time.sleep(seconds)
                self.hitches.append((reason, seconds))
            hz = self.tick_hz()
            now = time.monotonic()
            if not self._paused.is_set() and hz > 0 and now >= next_tick:
                delta, last = now - last, now
                next_tick = now + (1.0 / hz if math.isfinite(hz) else 0.0)
                self.tick_count += 1
                if self._movie_render is not None:
                    self._advance_movie_render()
                for callback in list(self.callbacks.values()):
                    try:
                        callback(delta)
                    except BaseException as error:  # noqa: BLE001 - the editor logs and goes on
                        self.callback_errors.append(error)
            wait = max(0.0, min(next_tick - time.monotonic(), 0.002)) if hz > 0 else 0.002
            time.sleep(wait)

    def _load(self, path: str) -> None:
        self.current_level = path
        self.actors = [cls(Vector(), Rotator()) for cls in self.levels[path]]

    def _environment_state(self) -> dict:
        state: dict[str, float] = {}
        for actor in self.actors:
            if isinstance(actor, DirectionalLight):
                rotation = object.__getattribute__(actor, "_rotation")
                state["sun_pitch"], state["sun_yaw"] = rotation.pitch, rotation.yaw
            if isinstance(actor, ExponentialHeightFog):
                state["fog"] = object.__getattribute__(actor, "_components")[0]._props["fog_density"]
        return state

    def _start_movie_render(self, jobs: list, executor: "MoviePipelinePIEExecutor") -> None:
        if self._movie_render is not None:
            raise Exception("a Movie Render Queue render is already running")
        job = jobs[0]
        sequence = self.assets[job._props["sequence"].export_text().rsplit(".", 1)[0]]
        config = job._config._settings
        output = config[MoviePipelineOutputSetting]._props
        binding = sequence._bindings[0]
        channels = binding._tracks[0]._sections[0]._channels
        cut = sequence._tracks[0]._sections[0]
        self._movie_render = {
            "executor": executor, "sequence": sequence, "output": output, "channels": channels, "camera": binding._actor,
            "frames": list(range(sequence._start, sequence._end)), "next": 0, "started_tick": self.tick_count,
            "settings": {cls.__name__: dict(setting._props) for cls, setting in config.items()},
            "camera_cut_bound": cut._binding is not None and cut._binding._guid == binding._guid,
        }

    def _advance_movie_render(self) -> None:
        """One tick of the fake MRQ render (runs on the game thread, like the real PIE executor)."""
        from PIL import Image

        render = self._movie_render
        if (self.tick_count - render["started_tick"]) % self.movie_render_ticks_per_frame:
            return
        executor = render["executor"]
        failure = self.movie_render_fails or (None if render["camera_cut_bound"] else "no camera cut bound to the camera")
        if failure is None and render["next"] < len(render["frames"]):
            index = render["frames"][render["next"]]
            by_name = {channel._props["channel_name"]: channel for channel in render["channels"]}
            values = [by_name[name]._keys[index] for name in ("Location.X", "Location.Y", "Location.Z",
                                                              "Rotation.X", "Rotation.Y", "Rotation.Z")]
            location, rotation = Vector(*values[:3]), Rotator(*values[3:])
            cine = render["camera"]._components[0]._props
            filmback = cine["filmback"]
            fov = math.degrees(2.0 * math.atan(filmback.sensor_width / (2.0 * cine["current_focal_length"])))
            size = render["output"]["output_resolution"]
            pixels = fake_rgb(location, rotation, round(fov, 6), self._environment_state(), size.x, size.y)
            # CineCameraComponent with bConstrainAspectRatio renders its filmback's aspect ratio and
            # MRQ letterboxes it into an output of another aspect (16:9 filmback by default).
            if cine["constrain_aspect_ratio"] and abs(filmback.sensor_aspect_ratio - size.x / size.y) > 1e-3:
                pixels = _with_bars(pixels, filmback.sensor_aspect_ratio)
            # Only render warm-up frames build TAA/exposure history (EngineWarmUpCount submits nothing
            # to the GPU): the first frame of a shot without them is under-exposed.
            anti_aliasing = render["settings"].get("MoviePipelineAntiAliasingSetting", {})
            if render["next"] == 0 and not anti_aliasing.get("render_warm_up_count", 0):
                pixels = (pixels * UNADAPTED_GAIN).astype(np.uint8)
            name = render["output"]["file_name_format"].replace("{frame_number}", f"{index:0{render['output']['zero_pad_frame_numbers']}d}")
            Image.fromarray(pixels).save(f"{render['output']['output_directory'].path}/{name}.png")
            render["next"] += 1
            return
        self._movie_render = None
        if failure is not None:
            for callback in executor.on_executor_errored_delegate._callables:
                callback(executor, None, True, failure)
        self.movie_renders.append({"settings": render["settings"], "frames": render["frames"], "ticks": self.tick_count - render["started_tick"]})
        for callback in executor.on_executor_finished_delegate._callables:
            callback(executor, failure is None)

    def _register(self, callback: Callable[[float], None]) -> "_SlateHandle":
        handle = _SlateHandle()
        self.callbacks[handle] = callback
        return handle

    def _build_module(self) -> types.ModuleType:
        editor = self
        module = _GuardedModule("unreal", "FAKE unreal module (tests/fake_unreal); not Unreal Engine")
        names = {
            "Vector": Vector, "Rotator": Rotator, "LinearColor": LinearColor, "Color": Color,
            "TextureRenderTargetFormat": TextureRenderTargetFormat, "SceneCaptureSource": SceneCaptureSource,
            "AttachmentRule": AttachmentRule, "Object": Object, "Actor": Actor, "World": World,
            "TextureRenderTarget2D": TextureRenderTarget2D, "MaterialParameterCollection": MaterialParameterCollection,
            "DirectionalLight": DirectionalLight, "DirectionalLightComponent": DirectionalLightComponent,
            "SkyAtmosphere": SkyAtmosphere, "SkyAtmosphereComponent": SkyAtmosphereComponent,
            "ExponentialHeightFog": ExponentialHeightFog, "ExponentialHeightFogComponent": ExponentialHeightFogComponent,
            "SkyLight": SkyLight, "SkyLightComponent": SkyLightComponent,
            "VolumetricCloud": VolumetricCloud, "VolumetricCloudComponent": VolumetricCloudComponent,
            "CineCameraActor": CineCameraActor, "CineCameraComponent": CineCameraComponent,
            "CameraFilmbackSettings": CameraFilmbackSettings,
            "SceneCapture2D": SceneCapture2D, "SceneCaptureComponent2D": SceneCaptureComponent2D,
            "LevelEditorSubsystem": LevelEditorSubsystem, "EditorActorSubsystem": EditorActorSubsystem,
            "UnrealEditorSubsystem": UnrealEditorSubsystem, "EditorAssetLibrary": EditorAssetLibrary,
            "SystemLibrary": SystemLibrary, "EditorPythonScripting": EditorPythonScripting,
            "RenderingLibrary": RenderingLibrary, "MaterialLibrary": MaterialLibrary,
            "FrameRate": FrameRate, "FrameNumber": FrameNumber, "IntPoint": IntPoint, "SoftObjectPath": SoftObjectPath,
            "DirectoryPath": DirectoryPath, "MovieSceneObjectBindingID": MovieSceneObjectBindingID,
            "LevelSequence": LevelSequence, "LevelSequenceFactoryNew": LevelSequenceFactoryNew,
            "AssetToolsHelpers": AssetToolsHelpers, "MovieScene3DTransformTrack": MovieScene3DTransformTrack,
            "MovieSceneCameraCutTrack": MovieSceneCameraCutTrack, "MoviePipelineQueueSubsystem": MoviePipelineQueueSubsystem,
            "MoviePipelineExecutorJob": MoviePipelineExecutorJob, "MoviePipelinePIEExecutor": MoviePipelinePIEExecutor,
            "MoviePipelineOutputSetting": MoviePipelineOutputSetting,
            "MoviePipelineAntiAliasingSetting": MoviePipelineAntiAliasingSetting,
            "MoviePipelineDeferredPassBase": MoviePipelineDeferredPassBase,
            "MoviePipelineImageSequenceOutput_PNG": MoviePipelineImageSequenceOutput_PNG,
            "AutoExposureMethod": AutoExposureMethod, "PostProcessSettings": PostProcessSettings,
            "CollectionScalarParameter": CollectionScalarParameter, "EditorPerformanceSettings": EditorPerformanceSettings,
        }
        for name, value in names.items():
            setattr(module, name, value)
        subsystems = {cls: cls() for cls in _SUBSYSTEMS}

        def get_editor_subsystem(cls: type) -> Object:
            _guard("get_editor_subsystem")
            return subsystems[cls]

        def register_slate_post_tick_callback(callback: Callable[[float], None]) -> int:
            _guard("register_slate_post_tick_callback")
            return editor._register(callback)

        def unregister_slate_post_tick_callback(handle: _SlateHandle) -> None:
            _guard("unregister_slate_post_tick_callback")
            editor.callbacks.pop(handle, None)

        def get_default_object(cls: type) -> Object:
            _guard("get_default_object")
            if cls is not EditorPerformanceSettings:
                raise Exception(f"fake: get_default_object({cls.__name__}) is not modelled")
            return editor.performance_settings

        def load_asset(name: str) -> Object | None:
            _guard("load_asset")
            return editor.assets.get(name)

        def log(message: str) -> None:
            _guard("log")
            editor_log.append(("log", str(message)))

        def log_warning(message: str) -> None:
            _guard("log_warning")
            editor_log.append(("warning", str(message)))

        def log_error(message: str) -> None:
            _guard("log_error")
            editor_log.append(("error", str(message)))

        editor_log: list[tuple[str, str]] = []
        self.log = editor_log
        for fn in (get_editor_subsystem, register_slate_post_tick_callback, unregister_slate_post_tick_callback,
                   get_default_object, load_asset, log, log_warning, log_error):
            setattr(module, fn.__name__, fn)
        return module
