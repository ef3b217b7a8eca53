"""The resolved clip, typed: what every part reads of a `worldloom.resolved_clip/1` document.

The resolver (`contract.manifest.resolve`) writes the clip as a JSON document and hashes it; the
document is what travels (gRPC `resolved_clip_json`, Ray tasks, `worldloom manifest resolve`).
Every reader turns it into a `ResolvedClip` once, at its boundary, with `ResolvedClip.parse`:
each field is checked there and named on failure, pose arrays become arrays, the intrinsics a
typed K, and the fallbacks a hand-written or older clip needs are taken from one place (the
manifest schema's own defaults, `contract.defaults`). Renderers, the server, generate and the
captions then read attributes, never dict keys, so a default cannot drift between them.

A `ResolvedClip` is frozen and its arrays are read-only: a reader cannot change what another
reader of the same clip sees.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np
from pydantic import BaseModel

from contract.defaults import DEFAULT_CAMERA_HEIGHT_M, DEFAULT_FOV_DEG
from contract.errors import UserError
from contract.manifest.loader import short_repr
from contract.manifest.rollout import camera_to_world, rollout_poses
from contract.manifest.schema import (
    MAX_FPS,
    MAX_FRAMES,
    MAX_HEIGHT,
    MAX_WIDTH,
    RESOLVED_CLIP_SCHEMA,
    Camera,
    Motion,
    Output,
    Simulation,
    Sun,
    Weather,
)
from contract.sample import ACTION_DIM

#: Rigs whose poses are the action rollout (known before rendering); the vehicle's come from physics.
KINEMATIC_RIGS: tuple[str, ...] = ("first_person", "orbit", "fixed")
RIGS: tuple[str, ...] = (*KINEMATIC_RIGS, "vehicle")


def _default(model: type[BaseModel], name: str) -> Any:
    """A manifest field's default, read from the schema (the one owner of manifest defaults)."""
    return model.model_fields[name].get_default(call_default_factory=True)


class _Reader:
    """Reads fields of one document, naming the dotted path and the fix when one is wrong."""

    def __init__(self, document: Mapping[str, Any], source: str) -> None:
        self.document, self.source = document, source

    def fail(self, path: str, problem: str) -> UserError:
        return UserError(
            f"{self.source} field '{path}' {problem}; fix: resolve the manifest again with `worldloom manifest resolve`"
        )

    def section(self, path: str, *, required: bool = True) -> Mapping[str, Any]:
        node: Any = self.document
        for part in path.split("."):
            if not isinstance(node, Mapping) or part not in node or node[part] is None:
                if required:
                    raise self.fail(path, "is missing")
                return {}
            node = node[part]
        if not isinstance(node, Mapping):
            raise self.fail(path, f"is {_short(node)}, not an object")
        return node

    def number(
        self,
        section: Mapping[str, Any],
        path: str,
        default: Any = None,
        *,
        minimum: float | None = None,
        maximum: float | None = None,
        positive: bool = False,
        integer: bool = False,
    ) -> float:
        """A finite number (bounds inclusive; `positive`: strictly above zero), or `default` when absent."""
        value = section.get(path.rsplit(".", 1)[-1], default)
        if value is None:
            raise self.fail(path, "is missing")
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise self.fail(path, f"is {_short(value)}, not a finite number")
        if integer and value != int(value):
            raise self.fail(path, f"is {value!r}, not a whole number")
        if (
            (positive and value <= 0)
            or (minimum is not None and value < minimum)
            or (maximum is not None and value > maximum)
        ):
            low = "(0" if positive else "(-inf" if minimum is None else f"[{minimum:g}"
            high = "inf)" if maximum is None else f"{maximum:g}]"
            raise self.fail(path, f"is {value!r}; it must be a number in {low}, {high}")
        return int(value) if integer else float(value)

    def text(self, section: Mapping[str, Any], path: str, default: str | None = None) -> str:
        value = section.get(path.rsplit(".", 1)[-1], default)
        if not isinstance(value, str):
            raise self.fail(path, "is missing" if value is None else f"is {_short(value)}, not a string")
        return value

    def array(self, value: Any, path: str, shape: tuple[int, ...], dtype: type) -> np.ndarray:
        """`value` as a read-only array of `shape` (-1: any length), accepting flat rows (4x4 as 16)."""
        try:
            array: np.ndarray = np.asarray(value, dtype=dtype)
        except (TypeError, ValueError):
            raise self.fail(path, "is not an array of numbers") from None
        size = math.prod(d for d in shape if d != -1)
        if array.size == 0 or array.size % size or not np.isfinite(array).all():
            raise self.fail(path, f"has {array.size} values; expected a multiple of {size} finite numbers")
        array = array.reshape(shape)
        array.setflags(write=False)
        return array


def _short(value: object) -> str:
    return short_repr(value, limit=40)


def _frozen(value: Any) -> Any:
    """A deep read-only view of a JSON value: mappings become MappingProxyType, lists tuples."""
    if isinstance(value, Mapping):
        return MappingProxyType({key: _frozen(item) for key, item in value.items()})
    if isinstance(value, list | tuple):
        return tuple(_frozen(item) for item in value)
    return value


def plain(value: Any) -> Any:
    """A read-only JSON view (`ResolvedClip.document`, `.world`, ...) as plain dicts and lists."""
    if isinstance(value, Mapping):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, tuple):
        return [plain(item) for item in value]
    return value


# --------------------------------------------------------------------------- the sections


@dataclass(frozen=True)
class ClipOutput:
    """`output`: resolution, rate and length, and how the frames are encoded."""

    width: int
    height: int
    fps: float
    frames: int
    crf: int
    gop: int
    temporal_samples: int  # Movie Render Queue anti-aliasing (Unreal's cinematic path)
    spatial_samples: int


@dataclass(frozen=True)
class SimulationClock:
    """`simulation`: each frame is `step_s` simulated seconds in `substeps` physics steps, after
    `warmup_frames` zero-action frames that are simulated but not rendered."""

    step_s: float
    substeps: int
    warmup_frames: int


@dataclass(frozen=True)
class ClipIntrinsics:
    """Pinhole K in pixels of the stated resolution (`width` x `height`); (0, 0) is the top-left
    corner of the top-left pixel, so a centred principal point is (W/2, H/2)."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def matrix(self, width: int | None = None, height: int | None = None) -> np.ndarray:
        """(3, 3) float64 K, rescaled to `width` x `height` when the frames are rendered at another size."""
        sx = 1.0 if width is None else width / self.width
        sy = 1.0 if height is None else height / self.height
        return np.array([[self.fx * sx, 0.0, self.cx * sx], [0.0, self.fy * sy, self.cy * sy], [0.0, 0.0, 1.0]])

    @property
    def horizontal_fov_deg(self) -> float:
        return math.degrees(2.0 * math.atan(self.width / (2.0 * self.fx)))


@dataclass(frozen=True)
class ClipCamera:
    """`camera`: the rig, its start, the lens and the depth range."""

    rig: str  # one of RIGS
    start_position: np.ndarray  # (3,) the ground point the rig starts over, metres
    start_yaw_deg: float  # compass heading: 0 faces +Y, 90 faces +X
    start_pitch_deg: float  # positive looks up
    height_m: float  # eye height above start_position
    start_pose: np.ndarray  # (4, 4) camera-to-world of the start (pose[-1] of the rollout)
    intrinsics: ClipIntrinsics
    near_m: float
    far_m: float
    pose_source: str  # "rollout" (poses known from the actions) or "physics" (the vehicle)
    orbit_target: np.ndarray | None  # (3,) orbit rig only
    vehicle_model: str  # vehicle rig only


@dataclass(frozen=True)
class ClipMotion:
    """`motion`: the policy that produced the actions and the rollout's physical parameters."""

    policy: str
    speed_mps: float
    look_deg_per_frame: float
    sprint_multiplier: float
    jump_speed_mps: float
    action_text: str | None  # the action string (scripted, random walk)
    waypoints: tuple[tuple[float, float], ...] | None
    random_walk: Mapping[str, Any] | None


@dataclass(frozen=True)
class ClipEnvironment:
    """`environment`: sun angles (elevation above the horizon, compass azimuth towards the sun)
    and weather scalars in [0, 1]; `ambient` None means the renderer derives it from the sun."""

    sun_elevation_deg: float
    sun_azimuth_deg: float
    cloudiness: float
    fog: float
    rain: float
    wetness: float
    ambient: float | None

    @property
    def sun_direction(self) -> np.ndarray:
        """(3,) unit vector from the scene towards the sun (world, Z up; azimuth 0 = +Y, 90 = +X)."""
        e, a = math.radians(self.sun_elevation_deg), math.radians(self.sun_azimuth_deg)
        return np.array([math.sin(a) * math.cos(e), math.cos(a) * math.cos(e), math.sin(e)])


# --------------------------------------------------------------------------- the clip


@dataclass(frozen=True)
class ResolvedClip:
    """One resolved clip, parsed once. `document` is the JSON the resolver wrote (what is hashed,
    sent and stored); every other attribute is read from it by `parse`."""

    document: Mapping[str, Any]
    key: str
    sha256: str
    manifest_name: str
    manifest_sha256: str
    scene: str
    clip_index: int
    seeds: Mapping[str, int]
    output: ClipOutput
    passes: tuple[str, ...]
    simulation: SimulationClock
    world: Mapping[str, Any]  # the generator and its parameters (or an Unreal level), read-only
    camera: ClipCamera
    motion: ClipMotion
    environment: ClipEnvironment
    actions: np.ndarray  # (T, 8) float32, the action layout of contract.sample
    poses: np.ndarray | None  # (T, 4, 4) float64 camera-to-world; None for the vehicle (physics)
    randomized: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        """The document as plain JSON values (dicts and lists), e.g. to send or hash it."""
        return plain(self.document)

    @property
    def kinematic(self) -> bool:
        """True when the poses are known before rendering (first_person, orbit, fixed)."""
        return self.camera.rig in KINEMATIC_RIGS

    @classmethod
    def parse(cls, clip: ResolvedClip | Mapping[str, Any], *, source: str = "resolved clip") -> ResolvedClip:
        """The typed clip of a document (a `ResolvedClip` is returned as it is).

        Raises `UserError` naming the field, e.g. "resolved clip field 'output.fps' is 'x', not a
        finite number; fix: ...". `source` names the document in that message.
        """
        if isinstance(clip, ResolvedClip):
            return clip
        if not isinstance(clip, Mapping):
            raise UserError(
                f"{source} must be a JSON object (schema {RESOLVED_CLIP_SCHEMA}), not {type(clip).__name__}"
            )
        return _parse(clip, _Reader(clip, source))


def _parse(document: Mapping[str, Any], read: _Reader) -> ResolvedClip:
    if document.get("schema") != RESOLVED_CLIP_SCHEMA:
        raise read.fail("schema", f"is {_short(document.get('schema'))}, not {RESOLVED_CLIP_SCHEMA!r}")
    output = _output(read)
    passes = document.get("passes")
    if not isinstance(passes, list | tuple) or not passes or not all(isinstance(name, str) for name in passes):
        raise read.fail("passes", f"is {_short(passes)}; it must be a non-empty list such as [rgb, depth]")
    seeds = read.section("seeds")
    for name, value in seeds.items():
        if isinstance(value, bool) or not isinstance(value, int):
            raise read.fail(f"seeds.{name}", f"is {_short(value)}, not an integer")
    sim = read.section("simulation", required=False)
    simulation = SimulationClock(
        step_s=read.number(sim, "simulation.step", 1.0 / output.fps, positive=True),
        substeps=int(
            read.number(
                sim, "simulation.substeps", _default(Simulation, "substeps"), positive=True, maximum=100, integer=True
            )
        ),
        warmup_frames=int(
            read.number(
                sim,
                "simulation.warmup_frames",
                _default(Simulation, "warmup_frames"),
                minimum=0,
                maximum=10_000,
                integer=True,
            )
        ),
    )
    camera = _camera(read, output)
    motion = _motion(read)
    actions = read.array(read.section("actions").get("per_frame"), "actions.per_frame", (-1, ACTION_DIM), np.float32)
    if len(actions) < output.frames:
        raise read.fail("actions.per_frame", f"has {len(actions)} rows for {output.frames} frames")
    poses = None
    if document.get("poses") is not None:
        poses = read.array(document["poses"], "poses", (-1, 4, 4), np.float64)
        if len(poses) < output.frames:
            raise read.fail("poses", f"has {len(poses)} poses for {output.frames} frames")
    elif camera.rig in KINEMATIC_RIGS:  # a clip without its rollout: roll the actions out here, once
        poses = rollout_poses(
            actions,
            camera.start_pose,
            motion.speed_mps,
            output.fps,
            rig=camera.rig,
            orbit_target=None if camera.orbit_target is None else [float(v) for v in camera.orbit_target],
            sprint_multiplier=motion.sprint_multiplier,
            jump_speed_mps=motion.jump_speed_mps,
        )
        poses.setflags(write=False)
    return ResolvedClip(
        document=_frozen(document),
        key=read.text(document, "key"),
        sha256=str(document.get("sha256") or ""),
        manifest_name=str(document.get("manifest_name") or ""),
        manifest_sha256=str(document.get("manifest_sha256") or ""),
        scene=str(document.get("scene") or ""),
        clip_index=int(read.number(document, "clip_index", 0, minimum=0, integer=True)),
        seeds=MappingProxyType(dict(seeds)),
        output=output,
        passes=tuple(passes),
        simulation=simulation,
        world=_frozen(read.section("world")),
        camera=camera,
        motion=motion,
        environment=_environment(read),
        actions=actions,
        poses=poses,
        randomized=_frozen(read.section("randomized", required=False)),
    )


def _output(read: _Reader) -> ClipOutput:
    section = read.section("output")
    number = read.number
    return ClipOutput(
        width=int(number(section, "output.width", positive=True, maximum=MAX_WIDTH, integer=True)),
        height=int(number(section, "output.height", positive=True, maximum=MAX_HEIGHT, integer=True)),
        fps=number(section, "output.fps", positive=True, maximum=MAX_FPS),
        frames=int(number(section, "output.frames", positive=True, maximum=MAX_FRAMES, integer=True)),
        crf=int(number(section, "output.crf", _default(Output, "crf"), minimum=0, maximum=51, integer=True)),
        gop=int(number(section, "output.gop", _default(Output, "gop"), positive=True, maximum=1000, integer=True)),
        temporal_samples=int(
            number(
                section,
                "output.temporal_samples",
                _default(Output, "temporal_samples"),
                positive=True,
                maximum=64,
                integer=True,
            )
        ),
        spatial_samples=int(
            number(
                section,
                "output.spatial_samples",
                _default(Output, "spatial_samples"),
                positive=True,
                maximum=64,
                integer=True,
            )
        ),
    )


def _intrinsics(read: _Reader, section: Mapping[str, Any], output: ClipOutput) -> ClipIntrinsics:
    width = int(read.number(section, "camera.intrinsics.width", output.width, positive=True, integer=True))
    height = int(read.number(section, "camera.intrinsics.height", output.height, positive=True, integer=True))
    if section.get("fx") is None:  # an unresolved lens: the FOV (or the manifest default), centred
        fov = read.number(section, "camera.intrinsics.fov_deg", DEFAULT_FOV_DEG, minimum=1.0, maximum=179.0)
        fx = (width / 2.0) / math.tan(math.radians(fov) / 2.0)
        return ClipIntrinsics(fx, fx, width / 2.0, height / 2.0, width, height)
    fx = read.number(section, "camera.intrinsics.fx", positive=True)
    return ClipIntrinsics(
        fx=fx,
        fy=read.number(section, "camera.intrinsics.fy", fx, positive=True),
        cx=read.number(section, "camera.intrinsics.cx", width / 2.0),
        cy=read.number(section, "camera.intrinsics.cy", height / 2.0),
        width=width,
        height=height,
    )


def _camera(read: _Reader, output: ClipOutput) -> ClipCamera:
    section = read.section("camera")
    rig = read.text(section, "camera.rig")
    if rig not in RIGS:
        raise UserError(f"{read.source} field 'camera.rig' is {rig!r}; fix: use one of {', '.join(RIGS)}")
    start = read.section("camera.start", required=False)
    position = read.array(start.get("position", [0.0, 0.0, 0.0]), "camera.start.position", (3,), np.float64)
    yaw = read.number(start, "camera.start.yaw_deg", 0.0)
    pitch = read.number(start, "camera.start.pitch_deg", 0.0)
    height = read.number(section, "camera.height", DEFAULT_CAMERA_HEIGHT_M[rig], minimum=-1e6, maximum=1e6)
    if section.get("start_camera_to_world") is not None:
        start_pose = read.array(section["start_camera_to_world"], "camera.start_camera_to_world", (4, 4), np.float64)
    else:
        start_pose = camera_to_world(position + np.array([0.0, 0.0, height]), yaw, pitch)
        start_pose.setflags(write=False)
    target = section.get("orbit_target")
    if rig == "orbit" and target is None:
        raise read.fail("camera.orbit_target", "is missing (the orbit rig circles it)")
    return ClipCamera(
        rig=rig,
        start_position=position,
        start_yaw_deg=yaw,
        start_pitch_deg=pitch,
        height_m=height,
        start_pose=start_pose,
        intrinsics=_intrinsics(read, read.section("camera.intrinsics", required=False), output),
        near_m=read.number(section, "camera.near_m", _default(Camera, "near_m"), positive=True),
        far_m=read.number(section, "camera.far_m", _default(Camera, "far_m"), positive=True),
        pose_source=read.text(section, "camera.pose_source", "physics" if rig == "vehicle" else "rollout"),
        orbit_target=None if target is None else read.array(target, "camera.orbit_target", (3,), np.float64),
        vehicle_model=read.text(section, "camera.vehicle_model", _default(Camera, "vehicle_model")),
    )


def _motion(read: _Reader) -> ClipMotion:
    section = read.section("motion", required=False)
    waypoints = section.get("waypoints")
    walk = section.get("random_walk")
    return ClipMotion(
        policy=read.text(section, "motion.policy", "scripted"),
        speed_mps=read.number(section, "motion.speed_mps", _default(Motion, "speed_mps"), positive=True),
        look_deg_per_frame=read.number(
            section, "motion.look_deg_per_frame", _default(Motion, "look_deg_per_frame"), positive=True
        ),
        sprint_multiplier=read.number(
            section, "motion.sprint_multiplier", _default(Motion, "sprint_multiplier"), positive=True
        ),
        jump_speed_mps=read.number(section, "motion.jump_speed_mps", _default(Motion, "jump_speed_mps"), minimum=0.0),
        action_text=None if section.get("actions") is None else read.text(section, "motion.actions"),
        waypoints=None
        if waypoints is None
        else tuple((float(x), float(y)) for x, y in read.array(waypoints, "motion.waypoints", (-1, 2), np.float64)),
        random_walk=None if walk is None else _frozen(read.section("motion.random_walk")),
    )


def _environment(read: _Reader) -> ClipEnvironment:
    sun = read.section("environment.sun", required=False)
    weather = read.section("environment.weather", required=False)
    section = read.section("environment", required=False)

    def unit(name: str) -> float:
        return read.number(weather, f"environment.weather.{name}", _default(Weather, name), minimum=0.0, maximum=1.0)

    ambient = section.get("ambient")
    return ClipEnvironment(
        sun_elevation_deg=read.number(
            sun, "environment.sun.elevation_deg", _default(Sun, "elevation_deg"), minimum=-90.0, maximum=90.0
        ),
        sun_azimuth_deg=read.number(
            sun, "environment.sun.azimuth_deg", _default(Sun, "azimuth_deg"), minimum=0.0, maximum=360.0
        ),
        cloudiness=unit("cloudiness"),
        fog=unit("fog"),
        rain=unit("rain"),
        wetness=unit("wetness"),
        ambient=None if ambient is None else read.number(section, "environment.ambient", minimum=0.0, maximum=1.0),
    )
