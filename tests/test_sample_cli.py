"""`worldloom sample` input handling: frame-count rule, camera paths, action strings, one-line errors."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from contract.errors import UserError
from training.sample import actions_and_path, frames_for, load_camera


def test_frames_follow_the_causal_vae_rule() -> None:
    assert frames_for(9 / 8, 8, 4) == 9            # exact
    assert frames_for(2, 8, 4) == 17               # 16 requested -> 1 + 4*4
    assert frames_for(0.1, 8, 4) == 5              # at least one latent step after the first frame


def test_camera_path_file(tmp_path: Path) -> None:
    path = tmp_path / "camera.json"
    poses = np.tile(np.eye(4), (6, 1, 1))
    path.write_text(json.dumps({"camera_to_world": poses.tolist(), "intrinsics": np.eye(3).tolist()}))
    c2w, K = load_camera(path, 5)
    assert c2w.shape == (5, 4, 4) and K.shape == (3, 3)
    path.write_text(json.dumps(poses.tolist()))  # a bare list works too
    assert load_camera(path, 5)[1] is None
    with pytest.raises(UserError, match="has 6 poses, the rollout needs 9"):
        load_camera(path, 9)
    path.write_text(json.dumps({"camera_to_world": [[1, 2, 3]]}))
    with pytest.raises(UserError, match="camera_to_world"):
        load_camera(path, 1)
    path.write_text("{not json")
    with pytest.raises(UserError, match="not valid JSON"):
        load_camera(path, 1)


def test_actions_drive_a_first_person_camera_path() -> None:
    actions, poses = actions_and_path("w-4,l-2", 9, 8.0)
    assert actions.shape == (9, 8) and poses.shape == (9, 4, 4)
    assert actions[:4, 0].tolist() == [1, 1, 1, 1] and not actions[6:].any()  # padded with idle frames
    forward = poses[3, :3, 3] - poses[0, :3, 3]
    assert np.linalg.norm(forward) == pytest.approx(3 * 1.4 / 8, rel=1e-3)  # 1.4 m/s at 8 fps
    notes: list[str] = []
    cut, _ = actions_and_path("w-20", 9, 8.0, notes)  # longer than the rollout: cut to it, with a note
    assert cut.shape == (9, 8) and cut[:, 0].all() and "first 9" in notes[0]


def test_cli_errors_are_one_line_exit_2(tmp_path: Path) -> None:
    worldloom = Path(sys.executable).parent / "worldloom"
    completed = subprocess.run([str(worldloom), "sample", str(tmp_path), "--prompt", "x", "--seconds", "1",
                                "--out", str(tmp_path / "v.mp4")], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 2
    assert completed.stderr.strip().count("\n") == 0 and "not a worldloom checkpoint" in completed.stderr
    assert "Traceback" not in completed.stderr
    assert not (tmp_path / "v.mp4").exists()
