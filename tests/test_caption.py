"""Captions are grounded in the resolved clip: world, time of day, weather, rig and the actual motion."""
from __future__ import annotations

import copy

import numpy as np
import pytest

from pipeline.caption import caption_clip, segment_phases, time_of_day, weather_words
from contract.manifest import camera_to_world, load_manifest, resolve_clip

BASE = {
    "version": 1, "name": "captions", "seed": 3,
    "output": {"width": 64, "height": 36, "fps": 10, "frames": 40},
    "scenes": [{
        "name": "s", "world": {"generator": "forest"},
        "camera": {"rig": "first_person", "start": {"position": [0, 0, 0], "yaw_deg": 0}},
        "motion": {"policy": "scripted", "actions": "w-20,j-20", "look_deg_per_frame": 3},
        "environment": {"sun": {"elevation_deg": 3, "azimuth_deg": 270}, "weather": {"fog": 0.6}},
    }],
}


def clip_for(**changes) -> dict:
    manifest = copy.deepcopy(BASE)
    scene = manifest["scenes"][0]
    for dotted, value in changes.items():
        node = scene
        *parents, last = dotted.split("__")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return resolve_clip(load_manifest(manifest), "s", 0)


def test_the_issue_example() -> None:
    assert caption_clip(clip_for()) == "first-person walk through a foggy forest at dusk, moving forward, then turning left"


def test_motion_is_read_from_the_rollout_in_order() -> None:
    text = caption_clip(clip_for(motion__actions="l-10,w-20,a-10"))
    assert text.endswith("turning right, then moving forward, then sidestepping left")
    assert caption_clip(clip_for(motion__actions="rw-20,n-20")).endswith("running forward, then standing still")
    assert "jumping" in caption_clip(clip_for(motion__actions="xw-20,w-20"))
    assert caption_clip(clip_for(motion__actions="i-10,w-30")).endswith("looking up, then moving forward")


def test_short_flickers_are_merged() -> None:
    text = caption_clip(clip_for(motion__actions="w-18,l-1,w-21"))  # a 1-frame turn is not a phase
    assert text.endswith("at dusk, moving forward")
    assert segment_phases(["a"] * 10 + ["b"] + ["a"] * 10, min_frames=3) == [("a", 21)]
    assert segment_phases(["a"] * 5 + ["b"] * 5 + ["c"] * 5, min_frames=3) == [("a", 5), ("b", 5), ("c", 5)]
    many = [label for label in "abcdefgh" for _ in range(5)]
    assert len(segment_phases(many, min_frames=2, max_phases=4)) == 4


@pytest.mark.parametrize("elevation, azimuth, expected", [(-30, 90, "night"), (-6.5, 270, "night"), (2, 90, "dawn"), (2, 270, "dusk"), (30, 200, "day"), (70, 180, "midday")])
def test_time_of_day_from_the_sun(elevation: float, azimuth: float, expected: str) -> None:
    assert time_of_day(elevation, azimuth) == expected


def test_environment_words_come_from_the_clip() -> None:
    night = caption_clip(clip_for(environment={"sun": {"elevation_deg": -40, "azimuth_deg": 0}, "weather": {"rain": 0.8, "cloudiness": 0.9}}))
    assert night.startswith("first-person walk through a rainy forest at night")
    day = caption_clip(clip_for(environment={"sun": {"elevation_deg": 40, "azimuth_deg": 100}}))
    assert day.startswith("first-person walk through a sunny forest during the day")
    assert weather_words({"cloudiness": 0.7, "wetness": 0.9}, "day") == ["wet", "overcast"]


def test_worlds_and_rigs() -> None:
    city = caption_clip(clip_for(world={"generator": "city"}))
    assert city.startswith("first-person walk through foggy city streets at dusk")
    sandbox = clip_for(world={"generator": "physics_sandbox", "params": {"dominoes": 5, "stacks": 0, "falling_objects": 0, "rolling_objects": 2}},
                       camera={"rig": "orbit", "orbit_target": [0, 0, 0.5], "start": {"position": [0, -6, 2]}}, motion={"policy": "scripted", "actions": "d-40"})
    assert caption_clip(sandbox) == "camera orbiting a foggy physics sandbox with dominoes and rolling balls at dusk, circling right"
    fixed = clip_for(camera={"rig": "fixed", "start": {"position": [0, 0, 2]}}, motion={"policy": "static"})
    assert caption_clip(fixed) == "fixed camera watching a foggy forest at dusk"


def test_vehicle_uses_the_rendered_poses_when_given() -> None:
    clip = clip_for(world={"generator": "city"}, camera={"rig": "vehicle", "start": {"position": [0, -40, 0]}}, motion={"policy": "scripted", "actions": "w-40", "speed_mps": 8})
    assert clip["poses"] is None
    assert caption_clip(clip).endswith("at dusk, driving forward")  # no poses yet: the driver's inputs
    # Physics reported a straight run then a right turn (heading +Y -> +X) then a stop.
    poses, position, yaw = [], np.array([0.0, -40.0, 1.6]), 0.0
    for t in range(40):
        if t >= 15 and t < 30:
            yaw += 6.0
        speed = 0.0 if t >= 30 else 0.8
        heading = np.radians(yaw)
        position = position + speed * np.array([np.sin(heading), np.cos(heading), 0.0])
        poses.append(camera_to_world(position, yaw, 0.0))
    text = caption_clip(clip, np.stack(poses))
    assert text == "car driving through foggy city streets at dusk, moving forward, then turning right, then stopped"
    # the generate pipeline passes the rendered poses and applied actions by keyword
    actions = np.asarray(clip["actions"]["per_frame"], dtype=np.float32)
    assert caption_clip(clip, poses=np.stack(poses), actions=actions) == text


def test_captions_are_deterministic() -> None:
    clip = clip_for(motion={"policy": "random_walk"})
    again = clip_for(motion={"policy": "random_walk"})
    assert caption_clip(clip) == caption_clip(again)
    assert caption_clip(clip) == caption_clip(clip, np.asarray(clip["poses"]).reshape(-1, 4, 4))  # explicit poses = the rollout
