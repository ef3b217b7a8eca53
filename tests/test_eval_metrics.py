"""Eval metrics: PSNR/SSIM (against closed forms and a direct reference), per-second curves,
camera-following errors, and the ground-truth helpers (continued clips, re-driven clips)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from training.eval import camera as cam
from training.eval import groundtruth as gt
from training.eval import metrics

CLIP_MANIFEST = """
version: 1
name: evalmetrics
seed: 5
renderer: {backend: procedural, endpoints: []}
output: {width: 64, height: 48, fps: 8, frames: 10, crf: 18, gop: 8}
passes: [rgb]
scenes:
  - name: walk
    clips: 1
    world: {generator: city, params: {blocks: 2, block_size_m: 30, building_height_m: [6, 20], road_width_m: 10, parked_vehicles: 0}}
    camera: {rig: first_person, start: {position: [0, -20, 0], yaw_deg: 0}, intrinsics: {fov_deg: 70}}
    motion: {policy: random_walk, random_walk: {segment_frames: [2, 4]}}
"""


@pytest.fixture(scope="module")
def clip() -> dict:
    return gt.clip_from_manifest_text(CLIP_MANIFEST, "walk")


@pytest.fixture(scope="module")
def rendered(clip):
    return gt.render(clip)


def test_ground_truth_against_itself_is_psnr_inf_and_ssim_one(rendered) -> None:
    rgb = rendered[0]
    assert metrics.psnr(rgb, rgb) == math.inf
    assert metrics.per_frame(metrics.ssim, rgb, rgb).tolist() == [1.0] * len(rgb)
    assert metrics.by_second(metrics.per_frame(metrics.psnr, rgb, rgb), 8.0) == [math.inf, math.inf]


def test_psnr_closed_form() -> None:
    a = np.zeros((8, 8, 3), np.uint8)
    b = np.full((8, 8, 3), 10, np.uint8)
    assert metrics.psnr(a, b) == pytest.approx(10 * math.log10(255 ** 2 / 100))


def test_ssim_of_constant_images_matches_the_formula() -> None:
    # zero variance: SSIM = (2 mu_a mu_b + C1) / (mu_a^2 + mu_b^2 + C1)
    a = np.full((32, 32), 100, np.uint8)
    b = np.full((32, 32), 140, np.uint8)
    c1 = (0.01 * 255) ** 2
    assert metrics.ssim(a, b) == pytest.approx((2 * 100 * 140 + c1) / (100 ** 2 + 140 ** 2 + c1), rel=1e-9)


def _reference_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Written from the paper: a full 2-D Gaussian window at every valid position (no separability)."""
    x = np.arange(11) - 5
    g = np.exp(-(x ** 2) / (2 * 1.5 ** 2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    values = []
    for i in range(a.shape[0] - 10):
        for j in range(a.shape[1] - 10):
            pa, pb = a[i:i + 11, j:j + 11], b[i:i + 11, j:j + 11]
            ma, mb = (w * pa).sum(), (w * pb).sum()
            va = (w * (pa - ma) ** 2).sum() * 121 / 120
            vb = (w * (pb - mb) ** 2).sum() * 121 / 120
            cov = (w * (pa - ma) * (pb - mb)).sum() * 121 / 120
            values.append(((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma ** 2 + mb ** 2 + c1) * (va + vb + c2)))
    return float(np.mean(values))


def test_ssim_equals_a_direct_reference_and_falls_with_noise(rendered) -> None:
    frame = rendered[0][0]
    rng = np.random.default_rng(0)
    noisy = np.clip(frame.astype(np.int16) + rng.integers(-20, 21, frame.shape), 0, 255).astype(np.uint8)
    noisier = np.clip(frame.astype(np.int16) + rng.integers(-60, 61, frame.shape), 0, 255).astype(np.uint8)
    luma = np.array([0.299, 0.587, 0.114])
    assert metrics.ssim(frame, noisy) == pytest.approx(_reference_ssim(frame @ luma, noisy @ luma), rel=1e-9)
    assert 1.0 > metrics.ssim(frame, noisy) > metrics.ssim(frame, noisier)
    assert metrics.ssim(frame, noisy) == pytest.approx(metrics.ssim(noisy, frame))  # symmetric
    with pytest.raises(ValueError, match="shapes differ"):
        metrics.ssim(frame, frame[:-1])


def test_by_second_groups_frames_after_the_given_one() -> None:
    values = np.array([100.0, 1, 2, 3, 4, 5, 6, 7, 8])  # frame 0 is the given image: left out
    assert metrics.by_second(values, 4.0) == [2.5, 6.5]
    assert metrics.finite_mean(np.array([np.inf, 2.0, 4.0])) == 3.0
    assert math.isnan(metrics.finite_mean(np.array([])))


def _motions_from(c2w: np.ndarray) -> list[cam.RelativeMotion]:
    rotations, translations = cam.relative_poses(c2w)
    out = []
    for index, (R, t) in enumerate(zip(rotations, translations)):
        norm = np.linalg.norm(t)
        out.append(cam.RelativeMotion(index + 1, R, t / norm if norm > 1e-9 else None, 100, 100, "general"))
    return out


def test_camera_errors_are_zero_for_the_commanded_motion_and_the_turn_for_a_frozen_camera() -> None:
    from contract.manifest import camera_to_world, parse_action_string, rollout_poses

    actions = parse_action_string("lw-8", frames=9)
    path = rollout_poses(actions, camera_to_world([0, 0, 1.6], 0, 0), 1.4, 8)
    perfect = metrics.camera_errors(_motions_from(path), path)
    assert np.allclose(perfect["rotation_deg"], 0, atol=1e-6) and np.allclose(perfect["cammc"], 0, atol=1e-6)
    assert np.nanmax(perfect["translation_deg"]) < 1e-3
    frozen = [cam.RelativeMotion(t, np.eye(3), None, 100, 100, "rotation") for t in range(1, 9)]
    errors = metrics.camera_errors(frozen, path)
    turned = [cam.rotation_angle_deg(np.linalg.inv(path[0])[:3, :3] @ path[t][:3, :3]) for t in range(9)]
    assert np.allclose(errors["rotation_deg"], turned)       # a camera that never turns scores the whole turn
    assert errors["rotation_deg"][-1] == pytest.approx(21.0, abs=1e-6)  # 7 more frames of 3 degrees after frame 0
    assert np.all(np.isnan(errors["translation_deg"]))      # no translation estimated: not scored
    assert metrics.yaw_total(_motions_from(path)) == pytest.approx(21.0, abs=1e-6)


def test_continued_clip_keeps_the_recorded_actions_and_renders(clip) -> None:
    extended = gt.extend_clip(clip, 20)
    recorded = np.asarray(clip["actions"]["per_frame"], np.float32)
    longer = np.asarray(extended["actions"]["per_frame"], np.float32)
    assert longer.shape == (20, 8) and np.array_equal(longer[:10], recorded)
    assert np.allclose(np.asarray(extended["poses"]).reshape(-1, 4, 4)[:10],
                       np.asarray(clip["poses"]).reshape(-1, 4, 4), atol=1e-9)
    assert extended["sha256"] != clip["sha256"] and extended["output"]["frames"] == 20
    rgb, poses, K = gt.render(extended)
    assert rgb.shape == (20, 48, 64, 3) and poses.shape == (20, 4, 4)


def test_re_driven_clip_follows_new_actions(clip) -> None:
    from contract.manifest.rollout import YAW

    actions = np.zeros((9, 8), np.float32)
    actions[1:, YAW] = 45.0  # a full turn over 8 frames
    turned = gt.with_actions(clip, actions, fps=8)
    poses = np.asarray(turned["poses"]).reshape(-1, 4, 4)
    assert cam.rotation_angle_deg(poses[0][:3, :3].T @ poses[-1][:3, :3]) == pytest.approx(0.0, abs=1e-6)
    assert "actions" not in turned["motion"]  # 45-degree look deltas have no action-string form


def _eval_clip(actions: np.ndarray, start_yaw: float):
    from contract.manifest import camera_to_world
    from training.eval.rollout import EvalClip, path_for

    poses = path_for(actions, camera_to_world([1.0, 2.0, 1.6], start_yaw, 0.0), 1.4, 8.0)
    return EvalClip(key=f"clip{start_yaw}", caption="", frames=np.zeros((len(actions), 8, 8, 3), np.uint8),
                    actions=actions, poses=poses, intrinsics=np.eye(3), stride=1, source="shard",
                    resolved_clip=None, look_deg=3.0, speed_mps=1.4)


def test_controls_and_commands() -> None:
    from contract.manifest import parse_action_string
    from contract.manifest.rollout import BACK, FORWARD, YAW
    from training.eval.rollout import command_actions, path_for
    from training.eval.run import _shuffled, revisit_actions

    one = _eval_clip(parse_action_string("lw-5,s-4", frames=9), 30.0)
    two = _eval_clip(parse_action_string("jw-9", frames=9), -80.0)
    actions, poses = _shuffled(one, two, 8.0)
    assert np.array_equal(actions, two.actions) and np.allclose(poses[0], one.poses[0])  # re-anchored at the start
    relative = lambda p: np.linalg.inv(p[0])[None] @ p  # noqa: E731
    assert np.allclose(relative(poses), relative(two.poses))                          # same motion as the other clip
    mirrored, _ = _shuffled(one, one, 8.0)                                            # one clip: mirrored actions
    assert np.array_equal(mirrored[:, YAW], -one.actions[:, YAW])
    assert np.array_equal(mirrored[:, FORWARD], one.actions[:, BACK])

    left = command_actions("turn_left", 9, 5.0)
    assert not left[0].any() and np.all(left[1:, YAW] == -5.0)
    assert np.all(command_actions("back", 9, 5.0)[1:, BACK] == 1.0) and not command_actions("none", 9, 5.0).any()
    for kind in ("turn", "out_and_back"):  # both return to the start pose at the last frame
        path = path_for(revisit_actions(kind, 17), one.poses[0], 1.4, 8.0)
        assert np.allclose(path[-1], path[0], atol=1e-9) and not np.allclose(path[8], path[0], atol=1e-3)
