"""Manifest -> ResolvedClip dicts (schema `worldloom.resolved_clip/1`), each with its sha256.

A resolved clip is the unit of rendering: every random draw is written out (`randomized`,
`seeds`, the random walk as an action string), the per-frame actions are explicit and, for the
kinematic rigs, so are the camera poses. Any backend renders it without the manifest.
"""
from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from contract.defaults import DEFAULT_CAMERA_HEIGHT_M
from contract.errors import UserError
from contract.manifest.actions import parse_action_string, random_walk_string, static_actions, waypoint_actions
from contract.manifest.checks import check_scene
from contract.manifest.loader import format_loc, issue_from_pydantic, load_manifest
from contract.manifest.randomize import get_path, sample, set_path
from contract.manifest.rollout import OrbitState, RolloutParams, camera_to_world, rollout_poses
from contract.manifest.schema import (
    DEPTH_CONVENTION,
    POSE_CONVENTION,
    RESOLVED_CLIP_SCHEMA,
    Manifest,
    RandomWalk,
    Scene,
)
from contract.manifest.seeds import clip_seeds, field_seed, rng
from contract.sample import ACTION_KEYS

POSE_DECIMALS = 9  # nanometres: keeps hashes stable against last-bit libm differences


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


def _sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def clip_sha256(clip: dict) -> str:
    """sha256 of the clip's canonical JSON with its own `sha256` field left out."""
    return _sha256_text(canonical_json({key: value for key, value in clip.items() if key != "sha256"}))


def manifest_sha256(manifest: Manifest) -> str:
    """sha256 of the validated manifest with defaults filled in (comments and layout do not count)."""
    return _sha256_text(canonical_json(manifest.model_dump(mode="json")))


def clip_key(manifest_hash: str, scene: str, clip_index: int) -> str:
    return f"{manifest_hash[:12]}_{scene}_{clip_index:05d}"


@dataclass
class ResolvedManifest:
    """Every clip of a manifest, resolved. `sha256` covers the manifest hash and every clip hash."""

    manifest: Manifest
    manifest_sha256: str
    clips: list[dict] = field(default_factory=list)

    @property
    def sha256(self) -> str:
        return _sha256_text(canonical_json({"manifest_sha256": self.manifest_sha256, "clips": [clip["sha256"] for clip in self.clips]}))

    def to_json(self) -> dict:
        return {"manifest_name": self.manifest.name, "manifest_sha256": self.manifest_sha256, "sha256": self.sha256, "clips": self.clips}


# --------------------------------------------------------------------------- one clip


def _randomize(manifest: Manifest, scene: Scene, seeds: dict[str, int]) -> tuple[Scene, dict[str, Any]]:
    """Apply every declared distribution (manifest-wide, then the scene's own) in path order."""
    data = scene.model_dump(mode="python", exclude={"randomize"})
    merged = {**manifest.randomize, **scene.randomize}
    drawn: dict[str, Any] = {}
    for path in sorted(merged):
        subsystem = path.split(".")[0]
        value = sample(merged[path], rng(field_seed(seeds[subsystem], path)), get_path(data, path))
        set_path(data, path, value)
        drawn[path] = value
    data["randomize"] = scene.randomize
    try:
        randomized = Scene.model_validate(data)
    except ValidationError as error:
        issue = issue_from_pydantic(error.errors()[0], data)
        raise UserError(f"{manifest.source}: scene {scene.name}: randomised value makes {format_loc(issue.loc)} invalid ({issue.problem}); fix: narrow the distribution in randomize") from None
    issues = check_scene(manifest, randomized, ("scenes", manifest.scenes.index(scene)))
    if issues:
        raise UserError(f"{manifest.source}: scene {scene.name}: randomised values break {format_loc(issues[0].loc)} ({issues[0].problem}); fix: {issues[0].fix}")
    return randomized, drawn


def _intrinsics(scene: Scene, width: int, height: int) -> dict[str, float]:
    """Pinhole K in output pixels. (0, 0) is the top-left corner of the top-left pixel (pixel (i, j)
    covers u in [i, i+1)), so a centred principal point is (W/2, H/2); the procedural renderer
    and docs/architecture.md use the same origin.

    fx from a horizontal FOV spans the full image width: fx = (W / 2) / tan(fov / 2).
    """
    given = scene.camera.intrinsics
    if given.fov_deg is not None:
        fx = (width / 2.0) / math.tan(math.radians(given.fov_deg) / 2.0)
        fy = fx
    else:
        fx = float(given.fx)  # type: ignore[arg-type]
        fy = float(given.fy if given.fy is not None else given.fx)  # type: ignore[arg-type]
    cx = float(given.cx) if given.cx is not None else width / 2.0
    cy = float(given.cy) if given.cy is not None else height / 2.0
    return {"fx": fx, "fy": fy, "cx": cx, "cy": cy, "width": width, "height": height}


def _camera(scene: Scene, manifest: Manifest) -> tuple[dict[str, Any], np.ndarray]:
    camera = scene.camera
    height = camera.height if camera.height is not None else DEFAULT_CAMERA_HEIGHT_M[camera.rig]
    base = [float(v) for v in camera.start.position]
    eye = [base[0], base[1], base[2] + height]
    yaw, pitch = float(camera.start.yaw_deg), float(camera.start.pitch_deg)
    if camera.rig == "orbit":
        orbit = OrbitState.from_position(camera.orbit_target, eye)  # type: ignore[arg-type]
        start = orbit.pose()
        yaw, pitch = orbit.azimuth_deg + 180.0, -orbit.elevation_deg
    else:
        start = camera_to_world(eye, yaw, pitch)
    resolved: dict[str, Any] = {
        "rig": camera.rig,
        "pose_convention": POSE_CONVENTION,
        "depth_convention": DEPTH_CONVENTION,
        "start": {"position": base, "yaw_deg": yaw, "pitch_deg": pitch},
        "height": float(height),
        "start_camera_to_world": _flat(start),
        "intrinsics": _intrinsics(scene, manifest.output.width, manifest.output.height),
        "near_m": camera.near_m,
        "far_m": camera.far_m,
        "pose_source": "physics" if camera.rig == "vehicle" else "rollout",
    }
    if camera.rig == "orbit":
        resolved["orbit_target"] = [float(v) for v in camera.orbit_target]  # type: ignore[union-attr]
    if camera.rig == "vehicle":
        resolved["vehicle_model"] = camera.vehicle_model
    return resolved, start


def _flat(pose: np.ndarray) -> list[float]:
    return [round(float(v), POSE_DECIMALS) + 0.0 for v in np.asarray(pose).reshape(16)]


def _motion(scene: Scene, manifest: Manifest, seeds: dict[str, int], camera: dict[str, Any]) -> tuple[dict[str, Any], np.ndarray]:
    motion, frames = scene.motion, manifest.output.frames
    resolved: dict[str, Any] = {
        "policy": motion.policy,
        "speed_mps": motion.speed_mps,
        "look_deg_per_frame": motion.look_deg_per_frame,
        "sprint_multiplier": motion.sprint_multiplier,
        "jump_speed_mps": motion.jump_speed_mps,
    }
    if motion.policy == "static":
        return resolved, static_actions(frames)
    if motion.policy == "scripted":
        resolved["actions"] = motion.actions
        return resolved, parse_action_string(motion.actions or "", look_deg_per_frame=motion.look_deg_per_frame, frames=frames)
    if motion.policy == "random_walk":
        walk = motion.random_walk or RandomWalk()
        text = random_walk_string(seeds["motion"], frames, {str(k): float(v) for k, v in walk.weights.items()}, (walk.segment_frames[0], walk.segment_frames[1]), scene.camera.rig)
        resolved["random_walk"] = walk.model_dump(mode="json")
        resolved["actions"] = text
        return resolved, parse_action_string(text, look_deg_per_frame=motion.look_deg_per_frame, frames=frames)
    waypoints = [[float(x), float(y)] for x, y in motion.waypoints or []]
    resolved["waypoints"] = waypoints
    eye = camera["start_camera_to_world"]
    params = RolloutParams(motion.speed_mps, manifest.output.fps, motion.sprint_multiplier, motion.jump_speed_mps)
    actions = waypoint_actions(waypoints, (eye[3], eye[7], eye[11]), camera["start"]["yaw_deg"], camera["start"]["pitch_deg"], frames, params, motion.look_deg_per_frame)
    return resolved, actions


def resolve_clip(manifest: Manifest | str | Path, scene: str, clip_index: int) -> dict:
    """One ResolvedClip (see docs/architecture.md) for `scene` and `clip_index`, with its sha256."""
    manifest = load_manifest(manifest)
    try:
        scene_model = manifest.scene(scene)
    except KeyError:
        raise UserError(f"{manifest.source}: scenes: no scene named {scene!r}; fix: use one of {[s.name for s in manifest.scenes]}") from None
    if not 0 <= clip_index < scene_model.clips:
        raise UserError(f"{manifest.source}: scenes: clip index {clip_index} is outside scene {scene!r} (clips: {scene_model.clips}); fix: use 0..{scene_model.clips - 1}")
    return _resolve(manifest, manifest_sha256(manifest), scene_model, clip_index)


def _resolve(manifest: Manifest, manifest_hash: str, scene_model: Scene, clip_index: int) -> dict:
    seeds = clip_seeds(manifest.seed, scene_model.name, clip_index)
    scene, randomized = _randomize(manifest, scene_model, seeds)
    output = manifest.output
    camera, start = _camera(scene, manifest)
    motion, actions = _motion(scene, manifest, seeds, camera)
    if scene.camera.rig == "vehicle":
        poses = None
    else:
        rolled = rollout_poses(
            actions, start, motion["speed_mps"], output.fps, rig=scene.camera.rig, orbit_target=camera.get("orbit_target"),
            sprint_multiplier=motion["sprint_multiplier"], jump_speed_mps=motion["jump_speed_mps"],
        )
        poses = [_flat(pose) for pose in rolled]
    world = scene.world.model_dump(mode="json")
    clip: dict[str, Any] = {
        "schema": RESOLVED_CLIP_SCHEMA,
        "manifest_name": manifest.name,
        "manifest_sha256": manifest_hash,
        "key": clip_key(manifest_hash, scene.name, clip_index),
        "scene": scene.name,
        "clip_index": clip_index,
        "seeds": seeds,
        "output": output.model_dump(mode="json"),
        "passes": list(manifest.passes),
        "simulation": {"step": 1.0 / output.fps, "substeps": manifest.simulation.substeps, "warmup_frames": manifest.simulation.warmup_frames},
        "world": world,
        "camera": camera,
        "motion": motion,
        "environment": scene.environment.model_dump(mode="json"),
        "actions": {"keys": list(ACTION_KEYS), "per_frame": [[float(v) for v in row] for row in actions]},
        "poses": poses,
        "randomized": randomized,
    }
    clip["sha256"] = clip_sha256(clip)
    return clip


def iter_clips(manifest: Manifest) -> Iterator[dict]:
    """Every clip in manifest order (scene by scene, clip index ascending), resolved lazily."""
    manifest_hash = manifest_sha256(manifest)
    for scene in manifest.scenes:
        for clip_index in range(scene.clips):
            yield _resolve(manifest, manifest_hash, scene, clip_index)


def resolve_manifest(manifest_or_path: Manifest | str | Path) -> ResolvedManifest:
    """Resolve every clip of a manifest (a Manifest, a file path or YAML text)."""
    manifest = load_manifest(manifest_or_path)
    return ResolvedManifest(manifest=manifest, manifest_sha256=manifest_sha256(manifest), clips=list(iter_clips(manifest)))
