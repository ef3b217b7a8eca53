"""A FAKE of the `unreal` Python module, for tests only. It is not Unreal Engine.

The real `unreal` module exists only inside the Unreal Editor, which cannot run here. This fake
implements the small API surface `unreal_bridge.unreal` uses, with the same names and call
shapes as UE 5.3+, and enforces the one rule that matters most for a server inside the editor:
**only the game thread may touch `unreal.*`**. Any attribute read on the fake module, or any
public method call on a fake engine object, from another thread is recorded in
`FakeEditor.violations` and raises `FakeUnrealThreadError`.

What it simulates:
- a game thread that ticks every `tick_interval_s` and calls the callbacks registered with
  `register_slate_post_tick_callback(fn)` with `fn(delta_seconds)`;
- levels (asset paths), with `load_level` blocking the game thread for `load_delay_s`;
- actors with transforms, attachment (snap to parent) and components;
- SceneCapture2D components that "render" into render targets: deterministic pixels computed
  from the capture's world transform, field of view and environment (`fake_rgb`, `fake_depth`),
  so a test can tell which pose produced which pixels;
- a log of every capture (`FakeEditor.captures`) with the tick it happened in;
- Movie Render Queue as the bridge drives it: a Level Sequence with transform keys and a
  camera cut, one job, a PIE executor whose render advances over later ticks (one PNG per
  `movie_render_ticks_per_frame` ticks, pixels from the keyed transform) and then fires the
  finished (and errored) delegates on the game thread.

What it does not simulate: real rendering, lighting, physics, PIE, sequencer interpolation.
"""
from __future__ import annotations

import hashlib
import math
import queue
import threading
import time
import types
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

__all__ = ["FakeEditor", "FakeUnrealThreadError", "CaptureRecord", "fake_rgb", "fake_depth_cm", "SKY_DEPTH_CM"]

SKY_DEPTH_CM = 1.0e8  # what a real SCS_SCENE_DEPTH capture returns for the sky: a huge value, not inf


class FakeUnrealThreadError(RuntimeError):
    """Raised when `unreal.*` is touched from a thread other than the game thread."""


_EDITOR: "FakeEditor | None" = None


def _guard(what: str) -> None:
    editor = _EDITOR
    if editor is None:
        raise FakeUnrealThreadError(f"unreal.{what} used while no FakeEditor is running")
    editor._check_thread(what)


class _Guarded:
    """Base of fake engine objects: every public attribute is game-thread only."""

    def __getattribute__(self, name: str) -> Any:
        if not name.startswith("_"):
            _guard(f"{type(self).__name__}.{name}")
        return object.__getattribute__(self, name)

    # Reflection-style property access, as on real UObjects.
    def get_editor_property(self, name: str) -> Any:
        return object.__getattribute__(self, "_props")[name]

    def set_editor_property(self, name: str, value: Any, notify_mode: Any = None) -> None:
        props = object.__getattribute__(self, "_props")
        if name not in props:
            raise Exception(f"Failed to find property '{name}' on '{type(self).__name__}'")
        props[name] = value


# ---------------------------------------------------------------------------------- values


@dataclass
class Vector:
    x: float = 0.0
    y: float = 0.0
    z: float = 0.0


@dataclass
class Rotator:
    """Same positional order as the real `unreal.Rotator(roll, pitch, yaw)`."""

    roll: float = 0.0
    pitch: float = 0.0
    yaw: float = 0.0


@dataclass
class LinearColor:
    r: float = 0.0
    g: float = 0.0
    b: float = 0.0
    a: float = 1.0


@dataclass
class Color:
    b: int = 0
    g: int = 0
    r: int = 0
    a: int = 255


class _Enum:
    def __init__(self, enum_name: str, member: str) -> None:
        self.enum_name, self.name = enum_name, member

    def __repr__(self) -> str:
        return f"{self.enum_name}.{self.name}"


def _enum(enum_name: str, *members: str) -> type:
    return type(enum_name, (), {member: _Enum(enum_name, member) for member in members})


TextureRenderTargetFormat = _enum("TextureRenderTargetFormat", "RTF_RGBA8", "RTF_RGBA16F", "RTF_R32F")
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


# ---------------------------------------------------------------------------------- objects


class Object(_Guarded):
    def __init__(self, **props: Any) -> None:
        object.__setattr__(self, "_props", dict(props))


class TextureRenderTarget2D(Object):
    def __init__(self, width: int, height: int, fmt: _Enum) -> None:
        super().__init__(size_x=width, size_y=height, render_target_format=fmt)
        object.__setattr__(self, "_pixels", None)


class MaterialParameterCollection(Object):
    def __init__(self, path: str) -> None:
        super().__init__()
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


class CameraFilmbackSettings:
    def __init__(self, sensor_width: float = 23.76, sensor_height: float = 13.365) -> None:
        self.sensor_width, self.sensor_height = sensor_width, sensor_height


class CineCameraComponent(ActorComponent):
    def __init__(self, owner: "Actor") -> None:
        super().__init__(owner, current_focal_length=35.0, filmback=CameraFilmbackSettings())


class SceneCaptureComponent2D(ActorComponent):
    def __init__(self, owner: "Actor") -> None:
        super().__init__(
            owner,
            texture_target=None,
            capture_source=SceneCaptureSource.SCS_SCENE_COLOR_HDR,
            fov_angle=90.0,
            capture_every_frame=True,
            capture_on_movement=True,
        )

    def capture_scene(self) -> None:
        editor = _EDITOR
        target = self._props["texture_target"]
        if target is None:
            raise Exception("SceneCaptureComponent2D.capture_scene: no texture_target set")
        location, rotation = self._owner._world_transform()
        width, height = target._props["size_x"], target._props["size_y"]
        source = self._props["capture_source"]
        fov = float(self._props["fov_angle"])
        if source is SceneCaptureSource.SCS_SCENE_DEPTH:
            pixels = fake_depth_cm(location, rotation, width, height)
        else:
            pixels = fake_rgb(location, rotation, fov, editor._environment_state(), width, height)
        object.__setattr__(target, "_pixels", pixels)
        editor.captures.append(
            CaptureRecord(
                tick=editor.tick_count,
                source=source.name,
                location=Vector(location.x, location.y, location.z),
                rotation=Rotator(rotation.roll, rotation.pitch, rotation.yaw),
                fov=fov,
                level=editor.current_level,
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
        if parent is not None:  # SNAP_TO_TARGET with no relative offset: the parent's transform
            return parent._world_transform()
        return self._location, self._rotation

    def set_actor_location_and_rotation(self, new_location: Vector, new_rotation: Rotator, sweep: bool, teleport: bool):
        object.__setattr__(self, "_location", Vector(new_location.x, new_location.y, new_location.z))
        object.__setattr__(self, "_rotation", Rotator(new_rotation.roll, new_rotation.pitch, new_rotation.yaw))
        return None

    def set_actor_rotation(self, new_rotation: Rotator, teleport_physics: bool) -> bool:
        object.__setattr__(self, "_rotation", Rotator(new_rotation.roll, new_rotation.pitch, new_rotation.yaw))
        return True

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


class EditorPythonScripting:
    @_static
    def set_keep_python_script_alive(cls, keep_alive: bool) -> None:
        _EDITOR.keep_python_script_alive = bool(keep_alive)

    @_static
    def get_keep_python_script_alive(cls) -> bool:
        return _EDITOR.keep_python_script_alive


class RenderingLibrary:
    @_static
    def create_render_target2d(cls, world_context_object, width=256, height=256,
                               format=TextureRenderTargetFormat.RTF_RGBA16F, clear_color=None,
                               auto_generate_mip_maps=False, support_ua_vs=False) -> TextureRenderTarget2D:
        return TextureRenderTarget2D(width, height, format)

    @_static
    def read_render_target(cls, world_context_object, texture_render_target, normalize=True):
        pixels = object.__getattribute__(texture_render_target, "_pixels")
        if pixels is None:
            return None
        flat = pixels.reshape(-1, 3)
        return [Color(b=int(p[2]), g=int(p[1]), r=int(p[0]), a=255) for p in flat]

    @_static
    def read_render_target_raw(cls, world_context_object, texture_render_target, normalize=True):
        pixels = object.__getattribute__(texture_render_target, "_pixels")
        if pixels is None:
            return None
        return [LinearColor(r=float(v), g=0.0, b=0.0, a=1.0) for v in pixels.reshape(-1)]


class MaterialLibrary:
    @_static
    def set_scalar_parameter_value(cls, world_context_object, collection, parameter_name, parameter_value) -> None:
        object.__getattribute__(collection, "_scalars")[str(parameter_name)] = float(parameter_value)


# ---------------------------------------------------------------------------------- sequencer and Movie Render Queue


@dataclass
class FrameRate:
    numerator: int = 30
    denominator: int = 1


@dataclass
class FrameNumber:
    value: int = 0


@dataclass
class IntPoint:
    x: int = 0
    y: int = 0


@dataclass
class SoftObjectPath:
    path: str = ""


@dataclass
class DirectoryPath:
    path: str = ""


@dataclass
class MovieSceneObjectBindingID:
    guid: int = 0


class MovieSceneScriptingDoubleChannel(Object):
    def __init__(self) -> None:
        super().__init__()
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
        object.__setattr__(self, "_channels", [MovieSceneScriptingDoubleChannel() for _ in range(9)])

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
        return MovieSceneObjectBindingID(guid=binding._guid)


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
    _defaults = {"temporal_sample_count": 1, "spatial_sample_count": 1, "engine_warm_up_count": 32}


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


@dataclass
class _ScriptCall:
    fn: Callable[[], Any]
    future: Future = field(default_factory=Future)


class _GuardedModule(types.ModuleType):
    """The fake `unreal` module: every public attribute read is game-thread only."""

    def __getattribute__(self, name: str) -> Any:
        if not name.startswith("_"):
            _guard(name)
        return super().__getattribute__(name)


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
        tick_interval_s: float = 0.002,
        engine_version: str = "5.4.4-fake+++UE5+Release-5.4",
        assets: tuple[str, ...] = ("/Game/Worldloom/MPC_Weather",),
    ) -> None:
        # Each level lists the environment actor classes it contains.
        default_env = [DirectionalLight, SkyAtmosphere, ExponentialHeightFog, SkyLight, VolumetricCloud]
        self.levels = levels if levels is not None else {"/Game/Maps/Courtyard": default_env, "/Game/Maps/Empty": []}
        self.load_delay_s = load_delay_s
        self.tick_interval_s = tick_interval_s
        self.engine_version = engine_version
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
        self.callbacks: dict[int, Callable[[float], None]] = {}
        self.callback_errors: list[BaseException] = []
        self.movie_render_ticks_per_frame = 2
        self.movie_render_fails: str | None = None  # set to an error text to make the next MRQ render fail
        self.movie_renders: list[dict] = []  # one entry per finished MRQ render (settings, frames, ticks)
        self._movie_render: dict | None = None
        self._next_handle = 1
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
        last = time.monotonic()
        while self._running.is_set():
            while True:
                try:
                    call = self._scripts.get_nowait()
                except queue.Empty:
                    break
                try:
                    call.future.set_result(call.fn())
                except BaseException as error:  # noqa: BLE001 - handed to the caller
                    call.future.set_exception(error)
            if not self._paused.is_set():
                now = time.monotonic()
                delta, last = now - last, now
                self.tick_count += 1
                if self._movie_render is not None:
                    self._advance_movie_render()
                for callback in list(self.callbacks.values()):
                    try:
                        callback(delta)
                    except BaseException as error:  # noqa: BLE001 - the editor logs and goes on
                        self.callback_errors.append(error)
            time.sleep(self.tick_interval_s)

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
        sequence = self.assets[job._props["sequence"].path.rsplit(".", 1)[0]]
        config = job._config._settings
        output = config[MoviePipelineOutputSetting]._props
        binding = sequence._bindings[0]
        channels = binding._tracks[0]._sections[0]._channels
        cut = sequence._tracks[0]._sections[0]
        self._movie_render = {
            "executor": executor, "sequence": sequence, "output": output, "channels": channels, "camera": binding._actor,
            "frames": list(range(sequence._start, sequence._end)), "next": 0, "started_tick": self.tick_count,
            "settings": {cls.__name__: dict(setting._props) for cls, setting in config.items()},
            "camera_cut_bound": cut._binding is not None and cut._binding.guid == binding._guid,
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
            values = [channel._keys[index] for channel in render["channels"][:6]]
            location, rotation = Vector(*values[:3]), Rotator(*values[3:])
            cine = render["camera"]._components[0]._props
            fov = math.degrees(2.0 * math.atan(cine["filmback"].sensor_width / (2.0 * cine["current_focal_length"])))
            size = render["output"]["output_resolution"]
            pixels = fake_rgb(location, rotation, round(fov, 6), self._environment_state(), size.x, size.y)
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

    def _register(self, callback: Callable[[float], None]) -> int:
        handle = self._next_handle
        self._next_handle += 1
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

        def unregister_slate_post_tick_callback(handle: int) -> None:
            _guard("unregister_slate_post_tick_callback")
            editor.callbacks.pop(handle, None)

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
                   load_asset, log, log_warning, log_error):
            setattr(module, fn.__name__, fn)
        return module
