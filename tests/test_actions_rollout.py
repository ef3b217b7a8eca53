"""Action strings, motion policies and the action -> pose rollout (OpenCV camera-to-world, Z-up world)."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contract.manifest import (
    ActionStringError, camera_to_world, format_action_string, parse_action_string, rollout_poses, yaw_pitch_from_pose,
)
from contract.manifest.actions import random_walk_string, waypoint_actions
from contract.manifest.rollout import RolloutParams

FPS, SPEED = 10.0, 2.0
START = camera_to_world([1.0, 2.0, 1.7], yaw_deg=0.0, pitch_deg=0.0)


def test_action_string_layout() -> None:
    actions = parse_action_string("w-3,a-2,jw-4,rdx-1,ik-1,n-2", look_deg_per_frame=5.0)
    assert actions.dtype == np.float32 and actions.shape == (13, 8)
    np.testing.assert_array_equal(actions[0], [1, 0, 0, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(actions[3], [0, 0, 1, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(actions[5], [1, 0, 0, 0, 0, 0, -5, 0])
    np.testing.assert_array_equal(actions[9], [0, 0, 0, 1, 1, 1, 0, 0])
    np.testing.assert_array_equal(actions[10], [0, 0, 0, 0, 0, 0, 0, 0])  # i and k cancel
    assert not actions[11:].any()
    np.testing.assert_array_equal(parse_action_string("l-1,i-1,k-1", look_deg_per_frame=2.0)[:, 6:], [[2, 0], [0, 2], [0, -2]])


def test_action_string_padding_and_length_limit() -> None:
    assert parse_action_string("w-3", frames=5)[3:].sum() == 0 and len(parse_action_string("w-3", frames=5)) == 5
    with pytest.raises(ActionStringError, match="lasts 6 frames but the clip has 5"):
        parse_action_string("w-6", frames=5)


@pytest.mark.parametrize("text, match", [("", "empty"), ("w", "not KEYS-FRAMES"), ("w-0", "0 frames"), ("q-3", "unknown key"), ("W-3", "unknown key"),
                                         ("ww-3", "repeats"), ("nw-2", "combines 'n'"), ("w-3,,a-2", "segment 2")])
def test_bad_action_strings(text: str, match: str) -> None:
    with pytest.raises(ActionStringError, match=match):
        parse_action_string(text)


SEGMENT = st.tuples(st.sets(st.sampled_from("wsadjlikxr"), max_size=4), st.integers(1, 6))


@settings(max_examples=80, deadline=None, derandomize=True)
@given(st.lists(SEGMENT, min_size=1, max_size=8), st.sampled_from([1.0, 2.5, 3.0]))
def test_action_string_round_trip(segments: list, look: float) -> None:
    text = ",".join(("".join(sorted(keys)) or "n") + f"-{count}" for keys, count in segments)
    actions = parse_action_string(text, look_deg_per_frame=look)
    again = parse_action_string(format_action_string(actions, look_deg_per_frame=look), look_deg_per_frame=look)
    np.testing.assert_array_equal(actions, again)


# --------------------------------------------------------------------------- first person


def test_camera_to_world_axes_follow_opencv_and_compass_yaw() -> None:
    pose = camera_to_world([0, 0, 0], 0.0, 0.0)
    np.testing.assert_allclose(pose[:3, 0], [1, 0, 0], atol=1e-12)  # right = +X
    np.testing.assert_allclose(pose[:3, 1], [0, 0, -1], atol=1e-12)  # down = -Z (world Z up)
    np.testing.assert_allclose(pose[:3, 2], [0, 1, 0], atol=1e-12)  # forward = +Y at yaw 0
    np.testing.assert_allclose(camera_to_world([0, 0, 0], 90.0, 0.0)[:3, 2], [1, 0, 0], atol=1e-12)
    assert np.linalg.det(pose[:3, :3]) == pytest.approx(1.0)
    up = camera_to_world([0, 0, 0], 30.0, 20.0)
    assert up[2, 2] > 0 and np.linalg.det(up[:3, :3]) == pytest.approx(1.0)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.floats(-179, 179), st.floats(-85, 85))
def test_yaw_pitch_round_trip(yaw: float, pitch: float) -> None:
    got = yaw_pitch_from_pose(camera_to_world([0, 0, 0], yaw, pitch))
    assert got[0] == pytest.approx(yaw, abs=1e-9) and got[1] == pytest.approx(pitch, abs=1e-9)


@pytest.mark.parametrize("yaw", [0.0, 37.0, -120.0])
def test_holding_w_moves_along_the_camera_plus_z(yaw: float) -> None:
    start = camera_to_world([1.0, 2.0, 1.7], yaw, 0.0)
    poses = rollout_poses(parse_action_string("w-12"), start, SPEED, FPS)
    previous = start
    for pose in poses:
        step = pose[:3, 3] - previous[:3, 3]
        np.testing.assert_allclose(step, SPEED / FPS * previous[:3, 2], atol=1e-12)
        np.testing.assert_allclose(step, SPEED / FPS * pose[:3, 2], atol=1e-12)
        previous = pose


def test_strafe_back_and_sprint() -> None:
    d = rollout_poses(parse_action_string("d-1"), START, SPEED, FPS)[0]
    np.testing.assert_allclose(d[:3, 3] - START[:3, 3], SPEED / FPS * START[:3, 0], atol=1e-12)  # d moves along +X
    s = rollout_poses(parse_action_string("s-1"), START, SPEED, FPS)[0]
    np.testing.assert_allclose(s[:3, 3] - START[:3, 3], -SPEED / FPS * START[:3, 2], atol=1e-12)
    sprint = rollout_poses(parse_action_string("rw-1"), START, SPEED, FPS, sprint_multiplier=3.0)[0]
    assert np.linalg.norm(sprint[:3, 3] - START[:3, 3]) == pytest.approx(3.0 * SPEED / FPS)
    diagonal = rollout_poses(parse_action_string("wd-1"), START, SPEED, FPS)[0]
    assert np.linalg.norm(diagonal[:3, 3] - START[:3, 3]) == pytest.approx(SPEED / FPS)  # not faster on diagonals


def test_yaw_right_turns_toward_plus_x_and_pitch_up_looks_up() -> None:
    poses = rollout_poses(parse_action_string("l-30", look_deg_per_frame=3.0), START, SPEED, FPS)
    np.testing.assert_allclose(poses[-1][:3, 2], [1, 0, 0], atol=1e-9)  # 90 degrees right of +Y is +X
    np.testing.assert_allclose(poses[:, :3, 3], np.broadcast_to(START[:3, 3], (30, 3)))  # turning in place
    left = rollout_poses(parse_action_string("j-30", look_deg_per_frame=3.0), START, SPEED, FPS)
    np.testing.assert_allclose(left[-1][:3, 2], [-1, 0, 0], atol=1e-9)
    up = rollout_poses(parse_action_string("i-10", look_deg_per_frame=3.0), START, SPEED, FPS)
    assert yaw_pitch_from_pose(up[-1])[1] == pytest.approx(30.0)
    clamp = rollout_poses(parse_action_string("i-40", look_deg_per_frame=3.0), START, SPEED, FPS)
    assert yaw_pitch_from_pose(clamp[-1])[1] == pytest.approx(89.0)


def test_walking_while_looking_up_stays_on_the_ground_plane() -> None:
    start = camera_to_world([0.0, 0.0, 1.7], 0.0, 30.0)
    poses = rollout_poses(parse_action_string("w-5"), start, SPEED, FPS)
    np.testing.assert_allclose(poses[:, 2, 3], 1.7)
    np.testing.assert_allclose(poses[-1][:2, 3], [0.0, 5 * SPEED / FPS], atol=1e-12)


def test_turn_and_walk_round_trip_returns_home() -> None:
    """Walk 10, turn 180, walk 10: back at the start, facing the other way."""
    poses = rollout_poses(parse_action_string("w-10,l-60,w-10", look_deg_per_frame=3.0), START, SPEED, FPS)
    np.testing.assert_allclose(poses[-1][:3, 3], START[:3, 3], atol=1e-9)
    np.testing.assert_allclose(poses[-1][:3, 2], -START[:3, 2], atol=1e-9)


def test_jump_is_ballistic_and_lands_on_the_ground() -> None:
    poses = rollout_poses(parse_action_string("x-1,n-19"), START, SPEED, FPS, jump_speed_mps=4.0)
    heights = poses[:, 2, 3] - START[2, 3]
    dt = 1.0 / FPS
    expected_first = 4.0 * dt - 0.5 * 9.81 * dt**2
    assert heights[0] == pytest.approx(expected_first)
    assert heights.max() <= 4.0**2 / (2 * 9.81) + 1e-9 and heights.max() > 0.6
    assert np.all(heights >= 0.0) and heights[-1] == 0.0
    np.testing.assert_allclose(poses[:, :2, 3], np.broadcast_to(START[:2, 3], (20, 2)))


# --------------------------------------------------------------------------- orbit, fixed


def test_orbit_keeps_looking_at_the_target() -> None:
    target = np.array([0.0, 0.0, 0.5])
    start = camera_to_world([0.0, -6.0, 2.5], 0.0, 0.0)
    poses = rollout_poses(parse_action_string("d-20,l-10,i-5,w-10", look_deg_per_frame=2.0), start, 1.0, FPS, rig="orbit", orbit_target=target)
    for pose in poses:
        to_target = target - pose[:3, 3]
        np.testing.assert_allclose(pose[:3, 2], to_target / np.linalg.norm(to_target), atol=1e-9)
        assert abs(pose[2, 0]) < 1e-12  # no roll: camera x stays horizontal
    radius = np.linalg.norm(start[:3, 3] - target)
    assert np.linalg.norm(poses[29][:3, 3] - target) == pytest.approx(radius)  # d/l/i keep the radius
    assert np.linalg.norm(poses[-1][:3, 3] - target) == pytest.approx(radius - 10 * 1.0 / FPS)  # w moves closer
    first = poses[0][:3, 3] - start[:3, 3]
    assert first @ start[:3, 0] > 0  # d moves toward the camera's +X


def test_orbit_look_deltas_change_heading_and_pitch_exactly() -> None:
    target = [0.0, 0.0, 0.0]
    start = camera_to_world([0.0, -5.0, 0.0], 0.0, 0.0)
    poses = rollout_poses(parse_action_string("l-1,i-1", look_deg_per_frame=10.0), start, 1.0, FPS, rig="orbit", orbit_target=target)
    assert yaw_pitch_from_pose(poses[0]) == pytest.approx((10.0, 0.0))
    assert yaw_pitch_from_pose(poses[1]) == pytest.approx((10.0, 10.0))


def test_fixed_rig_never_moves() -> None:
    poses = rollout_poses(parse_action_string("w-5,l-5"), START, SPEED, FPS, rig="fixed")
    assert np.all(poses == START)


def test_vehicle_has_no_kinematic_rollout() -> None:
    with pytest.raises(ValueError, match="physics"):
        rollout_poses(np.zeros((3, 8), np.float32), START, SPEED, FPS, rig="vehicle")


# --------------------------------------------------------------------------- policies


def test_random_walk_is_deterministic_and_fills_the_clip() -> None:
    weights = {"forward": 3.0, "turn_left": 1.0, "sprint": 1.0}
    first = random_walk_string(123, 50, weights, (3, 9), "first_person")
    assert first == random_walk_string(123, 50, dict(reversed(list(weights.items()))), (3, 9), "first_person")  # key order does not matter
    assert first != random_walk_string(124, 50, weights, (3, 9), "first_person")
    assert len(parse_action_string(first)) == 50
    assert set(first.replace(",", "").split("-")[0]) <= set("wjr")
    vehicle = random_walk_string(5, 40, {"forward_left": 1.0}, (5, 5), "vehicle")
    assert vehicle == "aw-40"  # vehicles steer with a/d


def test_waypoints_are_reached_in_order() -> None:
    params = RolloutParams(speed_mps=1.5, fps=10.0)
    waypoints = [[0.0, 5.0], [5.0, 5.0], [5.0, -2.0]]
    actions = waypoint_actions(waypoints, (0.0, 0.0, 1.7), 90.0, 0.0, 200, params, look_deg_per_frame=6.0)
    poses = rollout_poses(actions, camera_to_world([0.0, 0.0, 1.7], 90.0, 0.0), 1.5, 10.0)
    visits = [int(np.argmin(np.hypot(poses[:, 0, 3] - x, poses[:, 1, 3] - y))) for x, y in waypoints]
    for (x, y), index in zip(waypoints, visits):
        assert math.hypot(poses[index, 0, 3] - x, poses[index, 1, 3] - y) < 0.4
    assert visits == sorted(visits)
    assert not actions[-5:].any()  # stands still after the last waypoint
    assert np.abs(actions[:, 6]).max() <= 6.0 + 1e-6
