"""The camera estimator of `worldloom eval` on videos with known motion rendered by the procedural backend.

Acceptance (issue 16): at 320x180, yaw within 1 degree per second of motion and its sign always right;
pitch the same; a forward walk is seen as forward translation (image expansion) without turning.
The renders are the real PyBullet backend; the CLI test goes through real H.264.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from training.eval import camera as cam
from training.eval import groundtruth as gt

FPS = 8
MANIFEST = """
version: 1
name: evalcam
seed: 3
renderer: {backend: procedural, endpoints: []}
output: {width: 320, height: 180, fps: 8, frames: 16, crf: 18, gop: 8}
passes: [rgb]
scenes:
  - name: street
    clips: 1
    world: {generator: city, params: {blocks: 2, block_size_m: 30, building_height_m: [6, 20], road_width_m: 10, parked_vehicles: 2}}
    camera: {rig: first_person, start: {position: [0, -20, 0], yaw_deg: 0, pitch_deg: 0}, intrinsics: {fov_deg: 70}}
    motion: {policy: scripted, actions: "ACTIONS", speed_mps: 1.4}
    environment: {sun: {elevation_deg: 40, azimuth_deg: 135}}
"""


def render(actions: str):
    return gt.render(gt.clip_from_manifest_text(MANIFEST.replace("ACTIONS", actions), "street"))


@pytest.fixture(scope="module")
def videos() -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    return {name: render(actions) for name, actions in
            {"yaw_right": "l-15", "yaw_left": "j-15", "pitch": "i-8,k-7", "forward": "w-15"}.items()}


def truth_angles(c2w: np.ndarray) -> np.ndarray:
    rotations, _ = cam.relative_poses(c2w)
    return np.array([cam.yaw_pitch_roll(R) for R in rotations])


def test_angle_decomposition_round_trips() -> None:
    for yaw, pitch, roll in ((10.0, 0.0, 0.0), (-3.0, 4.0, 0.5), (0.0, -20.0, -2.0), (170.0, 5.0, 1.0)):
        R = cam.rotation_from_angles(yaw, pitch, roll)
        assert np.allclose(R @ R.T, np.eye(3)) and np.linalg.det(R) == pytest.approx(1.0)
        assert cam.yaw_pitch_roll(R) == pytest.approx((yaw, pitch, roll), abs=1e-9)
    # positive yaw turns right: the new forward axis leans to +x (right) in the old camera's axes
    assert cam.rotation_from_angles(5, 0, 0)[0, 2] > 0
    # positive pitch looks up: the new forward axis leans to -y (up, since y points down)
    assert cam.rotation_from_angles(0, 5, 0)[1, 2] < 0


@pytest.mark.parametrize("name", ["yaw_right", "yaw_left"])
def test_yaw_within_one_degree_per_second_and_sign_always_right(videos, name: str) -> None:
    rgb, c2w, K = videos[name]
    truth = truth_angles(c2w)
    motions = cam.estimate_video(rgb, K)
    assert all(m.ok for m in motions)
    estimated = np.array([m.angles() for m in motions])
    turning = np.abs(truth[:, 0]) > 0.5
    assert turning.sum() >= 12
    assert np.all(np.sign(estimated[turning, 0]) == np.sign(truth[turning, 0]))  # every turning frame
    seconds = turning.sum() / FPS
    assert abs(estimated[:, 0].sum() - truth[:, 0].sum()) <= 1.0 * seconds
    assert np.all(np.abs(estimated[:, 1]) < 0.5)      # no pitch invented
    assert abs(truth[:, 0].sum()) == pytest.approx(14 * 3.0)  # the render did turn 3 degrees a frame


def test_pitch_within_one_degree_per_second_and_sign_always_right(videos) -> None:
    rgb, c2w, K = videos["pitch"]
    truth = truth_angles(c2w)
    estimated = np.array([m.angles() for m in cam.estimate_video(rgb, K)])
    moving = np.abs(truth[:, 1]) > 0.5
    assert moving.sum() >= 12 and (truth[moving, 1] > 0).any() and (truth[moving, 1] < 0).any()
    assert np.all(np.sign(estimated[moving, 1]) == np.sign(truth[moving, 1]))
    assert np.all(np.abs(estimated[moving, 1] - truth[moving, 1]) <= 1.0 / FPS)  # per frame, 1 deg/s budget
    assert np.all(np.abs(estimated[:, 0]) < 0.5)


def test_forward_walk_is_forward_translation_without_turning(videos) -> None:
    rgb, c2w, K = videos["forward"]
    motions = cam.estimate_video(rgb, K)
    estimated = np.array([m.angles() for m in motions])
    assert abs(estimated[:, 0].sum()) <= 1.0 * 15 / FPS
    directions = [m.translation_dir for m in motions if m.translation_dir is not None]
    assert len(directions) >= 4                                   # parallax found on several steps
    assert all(d[2] > 0.9 for d in directions)                    # forward along the optical axis
    divergence = np.array([m.divergence for m in motions])
    assert np.nanmean(divergence) > 0 and np.mean(divergence[np.isfinite(divergence)] > 0) >= 0.8


def test_backward_walk_contracts() -> None:
    rgb, _, K = render("s-15")
    motions = cam.estimate_video(rgb, K)
    assert all(d[2] < -0.9 for d in (m.translation_dir for m in motions) if d is not None)
    assert np.nanmean([m.divergence for m in motions]) < 0


def test_texture_free_frames_fail_cleanly() -> None:
    flat = np.full((4, 90, 160, 3), 128, np.uint8)
    motions = cam.estimate_video(flat, cam.intrinsics_from_fov(160, 90, 70))
    assert [m.model for m in motions] == ["failed"] * 3
    assert all(math.isnan(v) for v in motions[0].angles())


# --------------------------------------------------------------------------- CLI


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    from pipeline.cli import main

    try:
        main(args)
        code = 0
    except SystemExit as exit_info:
        code = int(exit_info.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_eval_camera_cli_prints_json_lines(videos, tmp_path: Path, capsys) -> None:
    from pipeline.encode import EncodeSettings, encode_mp4

    rgb, c2w, K = videos["yaw_right"]
    video = tmp_path / "turn.mp4"
    video.write_bytes(encode_mp4(rgb, FPS, EncodeSettings(crf=18, gop=8)))
    code, out, err = run_cli(["eval", "camera", str(video), "--fov", "70"], capsys)
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["frame"] for line in lines] == list(range(1, 16))
    truth = truth_angles(c2w)
    assert all(line["yaw_deg"] > 0 for line, t in zip(lines, truth[:, 0]) if t > 0.5)
    assert abs(sum(line["yaw_deg"] for line in lines) - truth[:, 0].sum()) <= 15 / FPS  # through H.264
    assert set(lines[0]) >= {"yaw_deg", "pitch_deg", "roll_deg", "translation_dir", "model", "tracks"}

    intrinsics = tmp_path / "K.json"
    intrinsics.write_text(json.dumps({"intrinsics": K.tolist()}))
    code, out_k, _ = run_cli(["eval", "camera", str(video), "--intrinsics", str(intrinsics)], capsys)
    assert code == 0 and len(out_k.splitlines()) == 15


@pytest.mark.parametrize("args, message", [
    (["--fov", "70"], "file not found"),
    ([], "exactly one of --fov"),
    (["--fov", "500"], "--fov 500"),
])
def test_eval_camera_cli_errors_are_one_line(tmp_path: Path, capsys, args: list[str], message: str) -> None:
    target = tmp_path / ("missing.mp4" if message == "file not found" else "x.mp4")
    if message != "file not found":
        target.write_bytes(b"\0" * 64)
    code, _, err = run_cli(["eval", "camera", str(target), *args], capsys)
    assert code == 2 and message in err and err.strip().count("\n") == 0 and "Traceback" not in err


def test_eval_camera_cli_refuses_a_non_video(tmp_path: Path, capsys) -> None:
    bogus = tmp_path / "notes.mp4"
    bogus.write_text("not a video at all")
    code, _, err = run_cli(["eval", "camera", str(bogus), "--fov", "70"], capsys)
    assert code == 2 and "not a readable video" in err and err.strip().count("\n") == 0
    bad_k = tmp_path / "K.json"
    bad_k.write_text('{"intrinsics": [[1, 2], [3, 4]]}')
    code, _, err = run_cli(["eval", "camera", str(bogus), "--intrinsics", str(bad_k)], capsys)
    assert code == 2 and "3x3" in err and err.strip().count("\n") == 0

