"""The scene-manifest schema (version 1), as pydantic models.

The models validate one YAML document strictly: unknown keys, wrong types, NaN and values out
of range are errors, because a typo that silently falls back to a default renders thousands of
wrong clips. Rules that span several fields (a scripted action string longer than the clip, a
Unreal level with the procedural backend, ...) live in `checks.py` so each error can point at
the exact field. The JSON Schema in `manifests/schema.json` is exported from `Manifest`.
"""
from __future__ import annotations

from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, PrivateAttr, Tag, field_validator
from pydantic_core import PydanticCustomError

from contract.defaults import (
    DEFAULT_FOV_DEG,
    DEFAULT_JUMP_SPEED_MPS,
    DEFAULT_LOOK_DEG_PER_FRAME,
    DEFAULT_SPEED_MPS,
    DEFAULT_SPRINT_MULTIPLIER,
    DEFAULT_SUN_AZIMUTH_DEG,
    DEFAULT_SUN_ELEVATION_DEG,
)

SCHEMA_VERSION = 1
RESOLVED_CLIP_SCHEMA = "worldloom.resolved_clip/1"
POSE_CONVENTION: Final = "opencv_camera_to_world"  # x right, y down, z forward; metres; Z-up world
DEPTH_CONVENTION = "planar_z_m"

SUBSYSTEMS: tuple[str, ...] = ("world", "camera", "motion", "environment", "render")
#: Sections of a scene a randomiser may target; the first path component picks the sub-seed.
RANDOMIZABLE_SECTIONS: tuple[str, ...] = ("world", "camera", "motion", "environment")
PASSES: tuple[str, ...] = ("rgb", "depth", "segmentation")
GENERATORS: tuple[str, ...] = ("city", "forest", "terrain", "physics_sandbox", "empty")
SCENE_NAME_PATTERN = r"^[a-z0-9_]+$"
UNREAL_LEVEL_PATTERN = r"^/Game/[A-Za-z0-9_/.\-]+$"
ENDPOINT_PATTERN = r"^[A-Za-z0-9.\-_\[\]:]+:[0-9]{1,5}$"

UnitFloat = Annotated[float, Field(ge=0.0, le=1.0)]

# Resource limits (docs/manifests.md, "Limits"): a manifest is untrusted input (the render server
# resolves what any client sends), so every count and size that drives allocation or work has a
# ceiling. Each is far above what a real dataset needs and low enough that one clip resolves in
# about a second and its resolved JSON fits one gRPC message.
MAX_FRAMES = 10_000             # frames per clip (5.5 min at 30 fps; ~1 MB resolved JSON, ~0.6 s to resolve)
MAX_FPS = 240
MAX_WIDTH, MAX_HEIGHT = 7680, 4320
MAX_CLIPS_PER_SCENE = 1_000_000
MAX_CLIPS_TOTAL = 1_000_000     # over all scenes (checks.py)
MAX_SCENES = 1_000
MAX_ACTION_STRING_CHARS = 100_000
MAX_WAYPOINTS = 10_000
MAX_RANDOMIZERS = 200           # entries in one randomize map
MAX_CHOICES = 1_000             # options in one choice distribution
MAX_TEXT_CHARS = 10_000         # free text (description)
MAX_HEIGHTMAP_CHARS = 1_400_000  # a name in the server's asset folders, or a base64 PNG data URI (~1 MiB)


class StrictModel(BaseModel):
    """Unknown keys, type coercion and NaN/inf are all errors in a manifest."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, validate_default=True)


def invalid(problem: str, fix: str) -> PydanticCustomError:
    """A validation error whose context carries the fix, so the loader can print both."""
    return PydanticCustomError("worldloom_invalid", "{problem}", {"problem": problem, "fix": fix})


# --------------------------------------------------------------------------- renderer, output


class Renderer(StrictModel):
    """Which render servers produce the frames."""

    backend: Literal["procedural", "unreal"] = "procedural"
    endpoints: list[Annotated[str, Field(pattern=ENDPOINT_PATTERN, max_length=300)]] = Field(
        default_factory=list, max_length=256,
        description="HOST:PORT of running render servers; empty = the pipeline starts procedural servers itself.",
    )


class Output(StrictModel):
    """Frame size, rate, clip length and codec settings shared by every clip."""

    width: int = Field(ge=16, le=MAX_WIDTH, description="pixels; even (H.264 4:2:0)")
    height: int = Field(ge=16, le=MAX_HEIGHT, description="pixels; even (H.264 4:2:0)")
    fps: int = Field(ge=1, le=MAX_FPS)
    frames: int = Field(ge=1, le=MAX_FRAMES, description="frames per clip")
    crf: int = Field(default=23, ge=0, le=51, description="H.264 constant rate factor")
    gop: int = Field(default=16, ge=1, le=1000, description="key-frame interval in frames")
    temporal_samples: int = Field(
        default=1, ge=1, le=64, description="anti-aliasing temporal samples; >1 perturbs simulation steps in Unreal MRQ"
    )
    spatial_samples: int = Field(default=1, ge=1, le=64, description="anti-aliasing spatial samples")

    @field_validator("width", "height")
    @classmethod
    def _even(cls, value: int) -> int:
        if value % 2:
            raise invalid(f"{value} is odd", f"use an even number such as {value + 1} (H.264 4:2:0 needs even sizes)")
        return value


class Simulation(StrictModel):
    """Fixed-step simulation: one step per rendered frame, split into physics substeps."""

    step: float | None = Field(
        default=None, gt=0.0, le=1.0, description="seconds of simulated time per frame; must be 1/fps (filled in when omitted)"
    )
    substeps: int = Field(default=4, ge=1, le=100, description="physics substeps per frame")
    warmup_frames: int = Field(default=0, ge=0, le=10_000, description="simulated, unrendered frames before frame 0 (zero actions)")


# --------------------------------------------------------------------------- worlds


class CityParams(StrictModel):
    blocks: int = Field(default=3, ge=1, le=20, description="city is blocks x blocks")
    block_size_m: float = Field(default=40.0, gt=5.0, le=500.0)
    building_height_m: list[float] = Field(default_factory=lambda: [8.0, 40.0], min_length=2, max_length=2, description="[min, max]")
    road_width_m: float = Field(default=10.0, ge=3.0, le=60.0)
    parked_vehicles: int = Field(default=8, ge=0, le=500)

    @field_validator("building_height_m")
    @classmethod
    def _ordered(cls, value: list[float]) -> list[float]:
        if not 0.0 < value[0] <= value[1]:
            raise invalid(f"{value} is not [min, max] with 0 < min <= max", "write [min_height, max_height], e.g. [8, 40]")
        return value


class ForestParams(StrictModel):
    tree_density: float = Field(default=0.04, ge=0.0, le=2.0, description="trees per square metre")
    area_m: float = Field(default=80.0, gt=1.0, le=2000.0, description="side of the square forest")
    terrain_roughness: UnitFloat = 0.2
    clearing_radius_m: float = Field(default=3.0, ge=0.0, le=100.0, description="no trees this close to the start")


class TerrainParams(StrictModel):
    heightmap: str | None = Field(
        default=None, max_length=MAX_HEIGHTMAP_CHARS,
        description="grayscale PNG: a path inside the render server's asset folders (e.g. heightmaps/wm_height_out.png), "
                    "or the PNG itself as data:image/png;base64,...; null = generated from the world seed",
    )
    size_m: float = Field(default=100.0, gt=1.0, le=10_000.0)
    height_scale_m: float = Field(default=8.0, ge=0.0, le=1000.0)
    roughness: UnitFloat = 0.5


class PhysicsSandboxParams(StrictModel):
    dominoes: int = Field(default=12, ge=0, le=500)
    stacks: int = Field(default=2, ge=0, le=50)
    stack_height: int = Field(default=4, ge=1, le=30)
    falling_objects: int = Field(default=4, ge=0, le=200)
    rolling_objects: int = Field(default=3, ge=0, le=200)


class EmptyParams(StrictModel):
    ground: bool = Field(default=True, description="a flat ground plane at z=0")


class CityWorld(StrictModel):
    generator: Literal["city"]
    params: CityParams = Field(default_factory=CityParams)


class ForestWorld(StrictModel):
    generator: Literal["forest"]
    params: ForestParams = Field(default_factory=ForestParams)


class TerrainWorld(StrictModel):
    generator: Literal["terrain"]
    params: TerrainParams = Field(default_factory=TerrainParams)


class PhysicsSandboxWorld(StrictModel):
    generator: Literal["physics_sandbox"]
    params: PhysicsSandboxParams = Field(default_factory=PhysicsSandboxParams)


class EmptyWorld(StrictModel):
    generator: Literal["empty"]
    params: EmptyParams = Field(default_factory=EmptyParams)


class UnrealLevelWorld(StrictModel):
    level: str = Field(pattern=UNREAL_LEVEL_PATTERN, description="Unreal level path, e.g. /Game/Maps/CityPark")


def _world_tag(value: Any) -> str | None:
    if isinstance(value, dict):
        if "level" in value and "generator" not in value:
            return "level"
        generator = value.get("generator")
        return generator if isinstance(generator, str) else None
    if isinstance(value, BaseModel):
        return getattr(value, "generator", "level")
    return None


#: Tags of the world union; the loader strips them from error paths.
WORLD_TAGS: tuple[str, ...] = (*GENERATORS, "level")

World = Annotated[
    Annotated[CityWorld, Tag("city")]
    | Annotated[ForestWorld, Tag("forest")]
    | Annotated[TerrainWorld, Tag("terrain")]
    | Annotated[PhysicsSandboxWorld, Tag("physics_sandbox")]
    | Annotated[EmptyWorld, Tag("empty")]
    | Annotated[UnrealLevelWorld, Tag("level")],
    Discriminator(
        _world_tag,
        custom_error_type="world_kind",
        custom_error_message="world needs `generator:` (city | forest | terrain | physics_sandbox | empty) or `level:` (an Unreal level path)",
    ),
]

# --------------------------------------------------------------------------- camera


class Intrinsics(StrictModel):
    """Either a horizontal field of view or explicit pinhole parameters in output pixels."""

    fov_deg: float | None = Field(default=None, gt=1.0, lt=179.0, description="horizontal field of view")
    fx: float | None = Field(default=None, gt=0.0)
    fy: float | None = Field(default=None, gt=0.0)
    cx: float | None = Field(default=None, description="principal point x in pixels from the left edge of the image (pixel i covers [i, i+1)); default W/2")
    cy: float | None = Field(default=None, description="principal point y in pixels from the top edge; default H/2")


class StartPose(StrictModel):
    position: list[float] = Field(
        default_factory=lambda: [0.0, 0.0, 0.0], min_length=3, max_length=3, description="rig base [x, y, z] in world metres"
    )
    yaw_deg: float = Field(default=0.0, ge=-3600.0, le=3600.0, description="compass heading: 0 faces +Y, 90 faces +X")
    pitch_deg: float = Field(default=0.0, ge=-89.0, le=89.0, description="positive looks up")


class Camera(StrictModel):
    """The camera rig. Poses are OpenCV camera-to-world (x right, y down, z forward), metres."""

    rig: Literal["first_person", "vehicle", "orbit", "fixed"]
    pose_convention: Literal["opencv_camera_to_world"] = POSE_CONVENTION
    start: StartPose = Field(default_factory=StartPose)
    height: float | None = Field(
        default=None, ge=0.0, le=1000.0, description="camera above the rig base; default 1.7 first_person, 1.6 vehicle, 0 otherwise"
    )
    intrinsics: Intrinsics = Field(default_factory=lambda: Intrinsics(fov_deg=DEFAULT_FOV_DEG))
    near_m: float = Field(default=0.05, gt=0.0, le=10.0)
    far_m: float = Field(default=500.0, gt=1.0, le=100_000.0, description="sky depth; depth never exceeds it")
    orbit_target: list[float] | None = Field(default=None, min_length=3, max_length=3, description="orbit rig: the point looked at")
    vehicle_model: str = Field(default="sedan", max_length=64, pattern=r"^[A-Za-z0-9_./\-]+$", description="vehicle rig: sedan (built from primitives, drives straight), racecar or husky (pybullet_data)")


# --------------------------------------------------------------------------- motion


class RandomWalk(StrictModel):
    """Seeded random walk: a sequence of behaviours, each held for a random number of frames."""

    segment_frames: list[int] = Field(default_factory=lambda: [6, 24], min_length=2, max_length=2, description="[min, max] frames")
    weights: dict[
        Literal["forward", "forward_left", "forward_right", "turn_left", "turn_right", "strafe_left", "strafe_right",
                "back", "idle", "sprint", "jump", "look_up", "look_down"],
        Annotated[float, Field(ge=0.0)],
    ] = Field(default_factory=lambda: {"forward": 4.0, "forward_left": 1.5, "forward_right": 1.5, "turn_left": 0.5, "turn_right": 0.5, "idle": 0.3})  # type: ignore[arg-type]  # mypy reads the literal as dict[str, float]; pydantic checks the keys

    @field_validator("segment_frames")
    @classmethod
    def _ordered(cls, value: list[int]) -> list[int]:
        if not 1 <= value[0] <= value[1]:
            raise invalid(f"{value} is not [min, max] with 1 <= min <= max", "write e.g. [6, 24]")
        return value

    @field_validator("weights")
    @classmethod
    def _some_weight(cls, value: dict[str, float]) -> dict[str, float]:
        if not value or sum(value.values()) <= 0.0:
            raise invalid("all behaviour weights are zero", "give at least one behaviour a positive weight, e.g. forward: 1")
        return value


class Motion(StrictModel):
    """How per-frame actions are produced: held still, scripted, a seeded random walk, or waypoints."""

    policy: Literal["static", "scripted", "random_walk", "waypoints"]
    actions: str | None = Field(default=None, max_length=MAX_ACTION_STRING_CHARS, description="scripted: e.g. 'w-80,a-20,jw-40' (see docs/manifests.md)")
    waypoints: list[Annotated[list[float], Field(min_length=2, max_length=2)]] | None = Field(
        default=None, max_length=MAX_WAYPOINTS, description="waypoints: [[x, y], ...] in world metres"
    )
    random_walk: RandomWalk | None = None
    speed_mps: float = Field(default=DEFAULT_SPEED_MPS, gt=0.0, le=100.0)
    look_deg_per_frame: float = Field(default=DEFAULT_LOOK_DEG_PER_FRAME, gt=0.0, le=90.0, description="yaw/pitch per frame while j/l/i/k are held")
    sprint_multiplier: float = Field(default=DEFAULT_SPRINT_MULTIPLIER, ge=1.0, le=10.0)
    jump_speed_mps: float = Field(default=DEFAULT_JUMP_SPEED_MPS, ge=0.0, le=50.0, description="initial upward speed of a jump")


# --------------------------------------------------------------------------- environment


class Sun(StrictModel):
    elevation_deg: float = Field(default=DEFAULT_SUN_ELEVATION_DEG, ge=-90.0, le=90.0, description="above the horizon; negative = night")
    azimuth_deg: float = Field(default=DEFAULT_SUN_AZIMUTH_DEG, ge=0.0, le=360.0, description="compass direction toward the sun: 0 = +Y, 90 = +X")


class Weather(StrictModel):
    cloudiness: UnitFloat = 0.0
    fog: UnitFloat = 0.0
    rain: UnitFloat = 0.0
    wetness: UnitFloat = 0.0


class Environment(StrictModel):
    sun: Sun = Field(default_factory=Sun)
    weather: Weather = Field(default_factory=Weather)
    ambient: UnitFloat | None = Field(default=None, description="extra ambient light; null = renderer default from the sun, 0 = none")


# --------------------------------------------------------------------------- randomisation


class NormalSpec(StrictModel):
    mean: float
    std: float = Field(ge=0.0)
    min: float | None = None
    max: float | None = None


class Distribution(StrictModel):
    """Exactly one of `uniform: [lo, hi]`, `choice: [...]` (+ optional `weights`), `normal: {mean, std, min, max}`."""

    uniform: list[float] | None = Field(default=None, min_length=2, max_length=2)
    choice: list[Any] | None = Field(default=None, min_length=1, max_length=MAX_CHOICES)
    weights: list[Annotated[float, Field(ge=0.0)]] | None = Field(default=None, max_length=MAX_CHOICES)
    normal: NormalSpec | None = None

    def kind(self) -> str:
        return next(name for name in ("uniform", "choice", "normal") if getattr(self, name) is not None)


RandomizeMap = Annotated[
    dict[Annotated[str, Field(pattern=r"^[a-z_]+(\.[A-Za-z0-9_]+)+$", max_length=200)], Distribution],
    Field(max_length=MAX_RANDOMIZERS),
]

# --------------------------------------------------------------------------- scene, manifest


class Scene(StrictModel):
    name: str = Field(pattern=SCENE_NAME_PATTERN, max_length=64, description="lower-case letters, digits, underscores (no dots)")
    clips: int = Field(default=1, ge=1, le=MAX_CLIPS_PER_SCENE, description="clips sampled from this scene")
    world: World
    camera: Camera
    motion: Motion
    environment: Environment = Field(default_factory=Environment)
    randomize: RandomizeMap = Field(default_factory=dict, description="field path (e.g. environment.weather.fog) -> distribution")


class Manifest(StrictModel):
    """A scene manifest: everything needed to render a set of clips, deterministically by seed."""

    version: Literal[1]
    name: str = Field(pattern=r"^[a-z0-9_\-]+$", max_length=64)
    description: str = Field(default="", max_length=MAX_TEXT_CHARS)
    seed: int = Field(ge=0, le=2**63 - 1, description="root seed; per scene/clip/subsystem sub-seeds derive from it")
    renderer: Renderer = Field(default_factory=Renderer)
    output: Output
    passes: list[Literal["rgb", "depth", "segmentation"]] = Field(default_factory=lambda: ["rgb", "depth"], min_length=1)  # type: ignore[arg-type]  # list[str] vs list[Literal]
    simulation: Simulation = Field(default_factory=Simulation)
    randomize: RandomizeMap = Field(default_factory=dict, description="applies to every scene; a scene's own entry wins")
    scenes: list[Scene] = Field(min_length=1, max_length=MAX_SCENES)

    #: where the manifest came from (file path or a name given by the caller), for error messages
    _source: str = PrivateAttr(default="<manifest>")

    @property
    def source(self) -> str:
        return self._source

    def scene(self, name: str) -> Scene:
        for scene in self.scenes:
            if scene.name == name:
                return scene
        raise KeyError(name)


def manifest_json_schema() -> dict[str, Any]:
    """The JSON Schema of a version-1 manifest, as committed in manifests/schema.json.

    It checks shapes, types and ranges (editors use it for completion); the cross-field rules in
    `checks.py` (e.g. an action string no longer than the clip) need `worldloom manifest validate`.
    """
    schema = Manifest.model_json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **schema,
        "title": "worldloom scene manifest, version 1",
    }
