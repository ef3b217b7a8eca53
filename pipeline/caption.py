"""Captions grounded in a resolved clip: what the world is, when, in what weather, seen from which
rig, and how the camera actually moved.

Nothing is invented: the world, sun and weather come from the resolved clip, and the motion is
read from the camera poses (the clip's rollout, or the poses the renderer reported, which is the
only truth for vehicles) and the action keys (sprint, jump). The pose sequence is labelled frame
by frame, short flickers are merged into their neighbours, and the remaining phases are joined
with "then". Pure numpy, no randomness: the same clip always gets the same caption.

Example: "first-person walk through a foggy forest at dusk, moving forward, then turning left".
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any

import numpy as np

from contract.clip import ResolvedClip
from contract.sample import ACTION_DIM, BACK, FORWARD, JUMP, LEFT, RIGHT, SPRINT

MOVE_MPS = 0.25  # slower than this counts as standing still
TURN_DEG_PER_S = 8.0  # slower heading changes are drift (waypoint corrections), not a turn
LOOK_DEG_PER_S = 8.0
MAX_PHASES = 4

RIG_PHRASES = {
    "first_person": "first-person walk through",
    "vehicle": "car driving through",
    "orbit": "camera orbiting",
    "fixed": "fixed camera watching",
}


# --------------------------------------------------------------------------- scene words


def time_of_day(sun_elevation_deg: float, sun_azimuth_deg: float) -> str:
    """night below -6 deg (civil twilight), dawn/dusk up to 10 deg (east/west sky), else day."""
    if sun_elevation_deg < -6.0:
        return "night"
    if sun_elevation_deg < 10.0:
        return "dawn" if 0.0 < sun_azimuth_deg % 360.0 < 180.0 else "dusk"  # compass: east is 90
    return "midday" if sun_elevation_deg >= 60.0 else "day"


_TIME_PHRASES = {"night": "at night", "dawn": "at dawn", "dusk": "at dusk", "day": "during the day", "midday": "at midday"}


def weather_words(weather: Mapping[str, float], period: str) -> list[str]:
    words: list[str] = []
    if float(weather.get("fog", 0.0)) >= 0.3:
        words.append("foggy")
    if float(weather.get("rain", 0.0)) >= 0.3:
        words.append("rainy")
    elif float(weather.get("wetness", 0.0)) >= 0.5:
        words.append("wet")
    if float(weather.get("cloudiness", 0.0)) >= 0.6 and "rainy" not in words:
        words.append("overcast")
    if not words and period in ("day", "midday") and float(weather.get("cloudiness", 0.0)) < 0.2:
        words.append("sunny")
    return words[:2]


def world_noun(world: Mapping[str, Any]) -> str:
    """The world as a noun phrase without an article (the weather adjectives go in front)."""
    if "level" in world and "generator" not in world:
        return f"{PurePosixPath(str(world['level'])).name} level"
    generator, params = world.get("generator"), world.get("params") or {}
    if generator == "city":
        return "city streets"
    if generator == "forest":
        return "dense forest" if float(params.get("tree_density", 0.04)) >= 0.08 else "forest"
    if generator == "terrain":
        return "hilly terrain" if float(params.get("height_scale_m", 8.0)) >= 4.0 else "open plain"
    if generator == "physics_sandbox":
        things = [name for key, name in (("dominoes", "dominoes"), ("stacks", "block stacks"), ("falling_objects", "falling objects"),
                                         ("rolling_objects", "rolling balls")) if int(params.get(key, 1)) > 0]
        return "physics sandbox" + (f" with {_join_and(things)}" if things else "")
    if generator == "empty":
        return "empty plain" if params.get("ground", True) else "empty void"
    return "scene"


def _join_and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


MASS_OR_PLURAL = ("city streets", "hilly terrain")


def _with_article(adjectives: list[str], noun_phrase: str) -> str:
    phrase = " ".join([*adjectives, noun_phrase])
    if noun_phrase.startswith(MASS_OR_PLURAL):
        return phrase  # plural / mass nouns take no article
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


# --------------------------------------------------------------------------- motion


def _headings(poses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    forward = poses[:, :3, 2]
    yaw = np.degrees(np.arctan2(forward[:, 0], forward[:, 1]))
    pitch = np.degrees(np.arcsin(np.clip(forward[:, 2], -1.0, 1.0)))
    return yaw, pitch


def frame_labels(poses: np.ndarray, start: np.ndarray, fps: float, rig: str, actions: np.ndarray | None) -> list[str]:
    """One label per frame from the pose change that reached it (and the sprint/jump keys)."""
    chain = np.concatenate([start[None], poses], axis=0)
    yaw, pitch = _headings(chain)
    yaw_rate = ((np.diff(yaw) + 180.0) % 360.0 - 180.0) * fps
    pitch_rate = np.diff(pitch) * fps
    delta = np.diff(chain[:, :3, 3], axis=0)
    heading = np.radians(yaw[:-1])
    along = (delta[:, 0] * np.sin(heading) + delta[:, 1] * np.cos(heading)) * fps
    across = (delta[:, 0] * np.cos(heading) - delta[:, 1] * np.sin(heading)) * fps
    labels: list[str] = []
    for t in range(len(poses)):
        keys = actions[t] if actions is not None and t < len(actions) else np.zeros(8, np.float32)
        moving = math.hypot(along[t], across[t]) >= MOVE_MPS
        if rig == "orbit":
            if moving and abs(across[t]) >= abs(along[t]):
                labels.append("circling right" if across[t] > 0 else "circling left")
            elif moving:
                labels.append("moving closer" if along[t] > 0 else "pulling back")
            else:
                labels.append("holding still")
            continue
        if rig == "first_person" and (keys[JUMP] > 0.5 or delta[t, 2] * fps > 0.5):
            labels.append("jumping")
        elif abs(yaw_rate[t]) >= TURN_DEG_PER_S:
            labels.append("turning right" if yaw_rate[t] > 0 else "turning left")
        elif moving and abs(along[t]) >= abs(across[t]):
            if along[t] > 0:
                fast = keys[SPRINT] > 0.5
                labels.append(("speeding forward" if rig == "vehicle" else "running forward") if fast else "moving forward")
            else:
                labels.append("reversing" if rig == "vehicle" else "walking backward")
        elif moving:
            labels.append("sidestepping right" if across[t] > 0 else "sidestepping left")
        elif abs(pitch_rate[t]) >= LOOK_DEG_PER_S:
            labels.append("looking up" if pitch_rate[t] > 0 else "looking down")
        else:
            labels.append("stopped" if rig == "vehicle" else "standing still")
    return labels


def vehicle_input_label(keys: np.ndarray) -> str:
    """A vehicle frame described by its keys: steering, throttle (boosted with sprint), brake."""
    throttle = keys[FORWARD] > 0.5 and keys[BACK] < 0.5
    steer = float(keys[RIGHT]) - float(keys[LEFT])
    if steer and (throttle or keys[BACK] > 0.5):
        return "steering right" if steer > 0 else "steering left"
    if throttle:
        return "accelerating hard" if keys[SPRINT] > 0.5 else "driving forward"
    if keys[BACK] > 0.5:
        return "braking"
    return "coasting"


def segment_phases(labels: list[str], min_frames: int, max_phases: int = MAX_PHASES) -> list[tuple[str, int]]:
    """Run-length phases; runs shorter than `min_frames` (and the shortest beyond `max_phases`) merge into a neighbour."""
    runs: list[list] = []
    for label in labels:
        if runs and runs[-1][0] == label:
            runs[-1][1] += 1
        else:
            runs.append([label, 1])

    def merge_at(index: int) -> None:
        left = runs[index - 1] if index > 0 else None
        right = runs[index + 1] if index + 1 < len(runs) else None
        target = left if right is None or (left is not None and left[1] >= right[1]) else right
        target[1] += runs[index][1]
        del runs[index]
        collapsed: list[list] = []
        for run in runs:
            if collapsed and collapsed[-1][0] == run[0]:
                collapsed[-1][1] += run[1]
            else:
                collapsed.append(run)
        runs[:] = collapsed

    while len(runs) > 1:
        shortest = min(range(len(runs)), key=lambda i: (runs[i][1], i))
        if runs[shortest][1] >= min_frames and len(runs) <= max_phases:
            break
        merge_at(shortest)
    return [(label, count) for label, count in runs]


def describe_motion(clip: ResolvedClip | Mapping[str, Any], camera_to_world: np.ndarray | None = None,
                    actions: np.ndarray | None = None) -> str:
    """Phases of the camera's motion joined by "then", e.g. "moving forward, then turning left"."""
    clip = ResolvedClip.parse(clip)
    rig = clip.camera.rig
    if rig == "fixed":
        return ""
    poses = camera_to_world if camera_to_world is not None else clip.poses
    actions = clip.actions if actions is None else np.asarray(actions, dtype=np.float32).reshape(-1, ACTION_DIM)
    if poses is None:
        if len(actions) == 0:
            return ""
        # No rendered poses yet (a vehicle): describe the driver's inputs (what physics will be asked to do).
        labels = [vehicle_input_label(row) for row in actions]
        return ", then ".join(label for label, _ in segment_phases(labels, min_frames=max(2, len(labels) // 8)))
    poses = np.asarray(poses, dtype=np.float64).reshape(-1, 4, 4)
    if len(poses) == 0:
        return ""
    labels = frame_labels(poses, clip.camera.start_pose, clip.output.fps, rig, actions)
    phases = segment_phases(labels, min_frames=max(2, len(labels) // 8))
    return ", then ".join(label for label, _ in phases)


# --------------------------------------------------------------------------- caption


def caption_clip(
    clip: ResolvedClip | Mapping[str, Any],
    camera_to_world: np.ndarray | None = None,
    *,
    actions: np.ndarray | None = None,
    poses: np.ndarray | None = None,
) -> str:
    """A one-sentence caption grounded in the resolved clip and its actual camera motion.

    `camera_to_world` (T, 4, 4), when given, are the poses the renderer reported; otherwise the
    clip's own rollout is used (vehicles then fall back to describing their scripted keys).
    `poses` is accepted as another name for `camera_to_world`, and `actions` (T, 8), the actions
    the renderer applied, replaces the clip's own (they are equal for a faithful renderer).
    """
    clip = ResolvedClip.parse(clip)
    if camera_to_world is None:
        camera_to_world = poses
    environment = clip.environment
    period = time_of_day(environment.sun_elevation_deg, environment.sun_azimuth_deg)
    weather = {"fog": environment.fog, "rain": environment.rain, "wetness": environment.wetness, "cloudiness": environment.cloudiness}
    adjectives = weather_words(weather, period)
    world = _with_article(adjectives, world_noun(clip.world))
    text = f"{RIG_PHRASES.get(clip.camera.rig, 'camera in')} {world} {_TIME_PHRASES[period]}"
    motion = describe_motion(clip, camera_to_world, actions)
    return f"{text}, {motion}" if motion else text
