"""Rules that span several fields, each reported at the exact field that has to change.

Pydantic checks one field at a time; these checks run on a validated `Manifest` (and again on
every randomised scene) and return `Issue`s with a location, the problem and the fix.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from contract.manifest.actions import ActionStringError, parse_action_string
from contract.manifest.randomize import extreme_values, get_path, is_integer_target, is_numeric_target, set_path
from contract.manifest.schema import MAX_CLIPS_TOTAL, RANDOMIZABLE_SECTIONS, Distribution, Manifest, Scene

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Issue:
    loc: Loc
    problem: str
    fix: str


def check_manifest(manifest: Manifest) -> list[Issue]:
    issues: list[Issue] = []
    seen: dict[str, int] = {}
    for index, scene in enumerate(manifest.scenes):
        if scene.name in seen:
            issues.append(Issue(("scenes", index, "name"), f"scene name {scene.name!r} is also used by scenes[{seen[scene.name]}]", "give every scene a unique name"))
        seen.setdefault(scene.name, index)
    total = sum(scene.clips for scene in manifest.scenes)
    if total > MAX_CLIPS_TOTAL:
        issues.append(Issue(("scenes",), f"the scenes ask for {total} clips in all, more than the limit of {MAX_CLIPS_TOTAL}",
                            "split the dataset into several manifests (each renders and resumes on its own)"))
    if len(set(manifest.passes)) != len(manifest.passes):
        issues.append(Issue(("passes",), f"{manifest.passes} lists a pass twice", "list each of rgb, depth, segmentation at most once"))
    if "rgb" not in manifest.passes:
        issues.append(Issue(("passes",), f"{manifest.passes} has no rgb pass", "add rgb (the video itself) to passes"))
    step = manifest.simulation.step
    if step is not None and not math.isclose(step, 1.0 / manifest.output.fps, rel_tol=1e-9):
        issues.append(Issue(("simulation", "step"), f"step {step} s differs from 1/output.fps = {1.0 / manifest.output.fps:.6g} s",
                            "remove simulation.step (it is derived from fps) or make it 1/fps so video time equals simulated time"))
    for path, distribution in manifest.randomize.items():
        issues += check_distribution(("randomize", path), distribution)
    for index, scene in enumerate(manifest.scenes):
        scene_issues = check_scene(manifest, scene, ("scenes", index))
        issues += scene_issues
        if scene_issues:
            continue  # randomiser checks re-validate the scene and would repeat the same problem
        merged = {**manifest.randomize, **scene.randomize}
        for path, distribution in merged.items():
            where: Loc = ("scenes", index, "randomize", path) if path in scene.randomize else ("randomize", path)
            issues += check_randomizer_target(manifest, scene, ("scenes", index), where, path, distribution)
    return issues


def check_distribution(where: Loc, distribution: Distribution) -> list[Issue]:
    given = [name for name in ("uniform", "choice", "normal") if getattr(distribution, name) is not None]
    if len(given) != 1:
        return [Issue(where, f"gives {' and '.join(given) or 'no distribution'}", "give exactly one of uniform: [lo, hi], choice: [...], normal: {mean, std}")]
    if distribution.uniform is not None and distribution.uniform[0] > distribution.uniform[1]:
        return [Issue((*where, "uniform"), f"{distribution.uniform} has lo > hi", "write uniform: [lo, hi] with lo <= hi")]
    if distribution.weights is not None:
        if distribution.choice is None:
            return [Issue((*where, "weights"), "weights without choice", "remove weights or add choice: [...]")]
        if len(distribution.weights) != len(distribution.choice) or sum(distribution.weights) <= 0:
            return [Issue((*where, "weights"), f"{len(distribution.weights)} weights for {len(distribution.choice)} choices (or all zero)",
                          "give one non-negative weight per choice, at least one positive")]
    spec = distribution.normal
    if spec is not None and spec.min is not None and spec.max is not None and spec.min > spec.max:
        return [Issue((*where, "normal"), f"min {spec.min} > max {spec.max}", "make normal.min <= normal.max")]
    return []


def check_randomizer_target(manifest: Manifest, scene: Scene, scene_loc: Loc, where: Loc, path: str, distribution: Distribution) -> list[Issue]:
    """The path exists in this scene, fits the distribution's kind, and every edge value validates."""
    problems = check_distribution(where, distribution)
    if problems:
        return problems
    section = path.split(".")[0]
    if section not in RANDOMIZABLE_SECTIONS:
        return [Issue(where, f"path {path!r} is outside {', '.join(RANDOMIZABLE_SECTIONS)}", "start the path with world., camera., motion. or environment.")]
    data = scene.model_dump(mode="python", exclude={"randomize"})
    try:
        current = get_path(data, path)
    except KeyError as missing:
        return [Issue(where, f"scene {scene.name!r} has no field {missing.args[0]!r}", "use a path that exists in the scene, e.g. environment.weather.fog or world.params.<name>")]
    kind = distribution.kind()
    if kind in ("uniform", "normal") and not is_numeric_target(current):
        return [Issue(where, f"{kind} needs a numeric field but {path} holds {current!r}", "use choice: [...] for non-numeric fields")]
    if kind == "uniform" and is_integer_target(current) and any(float(v) != int(v) for v in distribution.uniform or []):
        return [Issue((*where, "uniform"), f"{path} is an integer but bounds {distribution.uniform} are not whole", "use whole-number bounds, e.g. [2, 6]")]
    for inside, value in extreme_values(distribution, current):
        candidate = scene.model_dump(mode="python", exclude={"randomize"})
        set_path(candidate, path, value)
        try:
            randomized = Scene.model_validate(candidate)
        except ValidationError as error:
            first = error.errors()[0]
            return [Issue((*where, *inside), f"value {value!r} for {path} is invalid: {first['msg']}", f"keep the {kind} within the field's allowed range")]
        nested = check_scene(manifest, randomized, scene_loc)
        if nested:
            return [Issue((*where, *inside), f"value {value!r} for {path} breaks a rule: {nested[0].problem}", nested[0].fix)]
    return []


def check_scene(manifest: Manifest, scene: Scene, at: Loc) -> list[Issue]:
    issues: list[Issue] = []
    world, camera, motion = scene.world, scene.camera, scene.motion
    if hasattr(world, "level") and manifest.renderer.backend != "unreal":
        issues.append(Issue((*at, "world", "level"), "an Unreal level needs the unreal backend",
                            "set renderer.backend: unreal, or use world.generator: city|forest|terrain|physics_sandbox|empty"))
    intrinsics = camera.intrinsics
    if (intrinsics.fov_deg is None) == (intrinsics.fx is None):
        issues.append(Issue((*at, "camera", "intrinsics"), "give either fov_deg or fx (with optional fy, cx, cy), not both or neither",
                            "write intrinsics: {fov_deg: 70} or intrinsics: {fx: 120, fy: 120, cx: 80, cy: 45}"))
    if intrinsics.fov_deg is not None and intrinsics.fy is not None:
        issues.append(Issue((*at, "camera", "intrinsics", "fy"), "fy given with fov_deg", "remove fy or replace fov_deg with fx"))
    if camera.rig == "orbit" and camera.orbit_target is None:
        issues.append(Issue((*at, "camera", "orbit_target"), "the orbit rig needs a target", "add camera.orbit_target: [x, y, z]"))
    if camera.rig != "orbit" and camera.orbit_target is not None:
        issues.append(Issue((*at, "camera", "orbit_target"), f"orbit_target is only used by the orbit rig, not {camera.rig}", "remove orbit_target or set rig: orbit"))
    if camera.rig == "orbit" and camera.orbit_target is not None:
        height = camera.height if camera.height is not None else 0.0
        position = [camera.start.position[0], camera.start.position[1], camera.start.position[2] + height]
        if math.dist(position, camera.orbit_target) < 1e-6:
            issues.append(Issue((*at, "camera", "start", "position"), "the orbit camera starts at its target", "move start.position away from orbit_target"))
    if camera.rig == "fixed" and motion.policy != "static":
        issues.append(Issue((*at, "motion", "policy"), f"a fixed camera cannot follow a {motion.policy} policy", "use motion.policy: static or another rig"))
    if motion.policy == "waypoints" and camera.rig != "first_person":
        issues.append(Issue((*at, "motion", "policy"), f"waypoints need the first_person rig, not {camera.rig} (vehicle poses come from physics)",
                            "use policy scripted or random_walk, or rig: first_person"))
    issues += _check_policy_fields(manifest, scene, at)
    return issues


def _check_policy_fields(manifest: Manifest, scene: Scene, at: Loc) -> list[Issue]:
    motion = scene.motion
    issues: list[Issue] = []
    stray = {"actions": "scripted", "waypoints": "waypoints", "random_walk": "random_walk"}
    for field, policy in stray.items():
        if getattr(motion, field) is not None and motion.policy != policy:
            issues.append(Issue((*at, "motion", field), f"{field} is only used by policy {policy}, not {motion.policy}", f"remove motion.{field} or set policy: {policy}"))
    if motion.policy == "scripted":
        if motion.actions is None:
            issues.append(Issue((*at, "motion", "actions"), "policy scripted needs an action string", "add motion.actions: 'w-40,jw-10' (see docs/manifests.md)"))
        else:
            try:
                parse_action_string(motion.actions, look_deg_per_frame=motion.look_deg_per_frame, frames=manifest.output.frames)
            except ActionStringError as error:
                problem, _, fix = str(error).partition("; ")
                issues.append(Issue((*at, "motion", "actions"), problem, fix or "see docs/manifests.md, 'Action strings'"))
    if motion.policy == "waypoints" and not motion.waypoints:
        issues.append(Issue((*at, "motion", "waypoints"), "policy waypoints needs at least one waypoint", "add motion.waypoints: [[x, y], ...]"))
    return issues


def scene_data_for(scene: Scene) -> dict[str, Any]:
    return scene.model_dump(mode="python", exclude={"randomize"})
