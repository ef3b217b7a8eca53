"""Ground truth for the eval: held-out clips from shards, and any action sequence rendered in-process.

Why a simulator: a trained world model can be asked what happens under actions nobody
recorded (turn on the spot, walk out and back, walk past the end of the stored clip). The
procedural backend renders frame i as a pure function of the resolved clip, so replacing a
clip's actions (and the poses they roll out to) and rendering it gives the true video of those
actions in the same world. `extend_clip` keeps a clip's recorded actions and continues its motion
policy past the stored end (a seeded random walk draws the same segments first, so the prefix
is unchanged; scripted strings pad with idle frames).
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from contract.errors import UserError
from contract.sample import ACTIONS, INTRINSICS, JSON, MP4, POSES

KINEMATIC_RIGS = ("first_person", "orbit", "fixed")


@dataclass
class HeldOutClip:
    """One held-out synthetic clip at its stored resolution and frame rate."""

    key: str
    caption: str
    frames: np.ndarray            # (T, H, W, 3) uint8, decoded from the shard's mp4
    actions: np.ndarray           # (T, 8) float32
    poses: np.ndarray             # (T, 4, 4) float64 camera-to-world
    intrinsics: np.ndarray        # (3, 3) at H x W
    fps: float
    resolved_clip: dict | None    # the ResolvedClip the clip was rendered from (None: cannot be re-rendered)


def load_held_out(data: str | Path, clips: int, *, fps: float | None = None, frames: int | None = None
                  ) -> list[HeldOutClip]:
    """The first `clips` synthetic clips with actions and poses, in shard (key) order.

    With the model's `fps` and the rollout's `frames`, only the source frames a rollout of that
    length covers are decoded (memory bounded by the horizon, not by the stored clip's length).
    UserError when the folder is not a dataset or no clip has actions (real footage).
    """
    from pipeline.encode import decode_mp4
    from pipeline.shards import iter_samples

    data = Path(data)
    if not data.is_dir():
        raise UserError(f"--data {data}: folder not found", hint="pass a dataset folder written by worldloom generate")
    if not (data / "shards").is_dir() or not list((data / "shards").glob("shard-*.tar")):
        raise UserError(f"--data {data}: not a worldloom dataset (no shards/shard-*.tar)",
                        hint="pass a dataset folder written by worldloom generate")
    found: list[HeldOutClip] = []
    seen = 0
    for sample in iter_samples(data):
        seen += 1
        meta = sample.get(JSON) or {}
        if ACTIONS not in sample or POSES not in sample or MP4 not in sample:
            continue
        clip_fps = float(meta.get("fps") or 0.0) or _probe_fps(sample[MP4])
        limit = None if fps is None or frames is None else (frames - 1) * max(1, round(clip_fps / fps)) + 1
        decoded = decode_mp4(sample[MP4], max_frames=limit)
        count = min(len(decoded), len(sample[ACTIONS]), len(sample[POSES]))
        K = np.asarray(sample.get(INTRINSICS, np.eye(3)), dtype=np.float64)
        found.append(HeldOutClip(
            key=sample["__key__"], caption=str(meta.get("caption", "")), frames=decoded[:count],
            actions=np.asarray(sample[ACTIONS][:count], dtype=np.float32),
            poses=np.asarray(sample[POSES][:count], dtype=np.float64),
            intrinsics=K[0] if K.ndim == 3 else K, fps=clip_fps,
            resolved_clip=meta.get("resolved_clip")))
        if len(found) >= clips:
            break
    if not found:
        raise UserError(f"--data {data}: none of its {seen} clips has actions.npy and poses.npy",
                        hint="evaluate on synthetic clips from worldloom generate (real footage has no actions)")
    return found


def _probe_fps(mp4: bytes) -> float:
    import io

    import av

    with av.open(io.BytesIO(mp4)) as container:
        return float(container.streams.video[0].average_rate or 0.0) or 8.0


# --------------------------------------------------------------------------- clips with new actions


def with_actions(clip: dict, actions: np.ndarray, *, fps: float | None = None) -> dict:
    """A copy of a resolved clip driven by `actions` (T, 8): frames, actions and poses replaced.

    With `fps`, the clip is rendered at that frame rate (one action per rendered frame).

    Only rigs whose poses are a kinematic rollout of the actions can be re-driven.
    """
    from contract.manifest import clip_sha256, rollout_poses

    rig = clip["camera"]["rig"]
    if rig not in KINEMATIC_RIGS:
        raise UserError(f"clip {clip.get('key')}: camera.rig {rig!r} gets its poses from physics",
                        hint="evaluate on first_person, orbit or fixed rigs")
    actions = np.asarray(actions, dtype=np.float32)
    new = copy.deepcopy(clip)
    new["output"]["frames"] = int(len(actions))
    if fps is not None:
        new["output"]["fps"] = int(fps) if float(fps).is_integer() else float(fps)
        new.setdefault("simulation", {})["step"] = 1.0 / float(fps)
    new["actions"]["per_frame"] = [[float(v) for v in row] for row in actions]
    motion = new.get("motion") or {}
    if "actions" in motion:  # keep the written-out action string true to the new actions
        from contract.manifest import format_action_string

        try:
            motion["actions"] = format_action_string(actions, look_deg_per_frame=float(motion.get("look_deg_per_frame", 3.0)))
        except ValueError:  # look deltas with no action-string form (e.g. a full turn in a few frames)
            motion.pop("actions")
    start = np.asarray(new["camera"]["start_camera_to_world"], dtype=np.float64).reshape(4, 4)
    poses = rollout_poses(actions, start, float(motion.get("speed_mps", 1.4)), float(new["output"]["fps"]), rig=rig,
                          orbit_target=new["camera"].get("orbit_target"),
                          sprint_multiplier=float(motion.get("sprint_multiplier", 2.0)),
                          jump_speed_mps=float(motion.get("jump_speed_mps", 3.5)))
    new["poses"] = [[round(float(v), 9) + 0.0 for v in pose.reshape(16)] for pose in poses]
    new.pop("sha256", None)
    new["sha256"] = clip_sha256(new)
    return new


def continued_actions(clip: dict, frames: int) -> np.ndarray:
    """The clip's actions continued to `frames` by its own motion policy (the recorded prefix is kept)."""
    from contract.manifest import parse_action_string
    from contract.manifest.actions import random_walk_string, waypoint_actions
    from contract.manifest.rollout import RolloutParams

    recorded = np.asarray(clip["actions"]["per_frame"], dtype=np.float32).reshape(-1, 8)
    if frames <= len(recorded):
        return recorded[:frames]
    motion = clip.get("motion") or {}
    look = float(motion.get("look_deg_per_frame", 3.0))
    policy = motion.get("policy")
    if policy == "random_walk":
        walk = motion["random_walk"]
        text = random_walk_string(int(clip["seeds"]["motion"]), frames, dict(walk["weights"]),
                                  (int(walk["segment_frames"][0]), int(walk["segment_frames"][1])), clip["camera"]["rig"])
        actions = parse_action_string(text, look_deg_per_frame=look, frames=frames)
    elif policy == "waypoints":
        eye = clip["camera"]["start_camera_to_world"]
        params = RolloutParams(float(motion.get("speed_mps", 1.4)), float(clip["output"]["fps"]),
                               float(motion.get("sprint_multiplier", 2.0)), float(motion.get("jump_speed_mps", 3.5)))
        actions = waypoint_actions(motion["waypoints"], (eye[3], eye[7], eye[11]), clip["camera"]["start"]["yaw_deg"],
                                   clip["camera"]["start"].get("pitch_deg", 0.0), frames, params, look)
    else:  # scripted strings and static clips: idle after the recorded end
        actions = np.concatenate([recorded, np.zeros((frames - len(recorded), 8), np.float32)])
    if not np.allclose(actions[:len(recorded)], recorded, atol=1e-5):
        raise UserError(f"clip {clip.get('key')}: its motion policy does not reproduce the recorded actions",
                        hint="the dataset was made by a different version of the resolver; evaluate within the stored length")
    return actions.astype(np.float32)


def extend_clip(clip: dict, frames: int) -> dict:
    """The resolved clip continued to `frames` frames."""
    return with_actions(clip, continued_actions(clip, frames))


def render(clip: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render a resolved clip in-process: (rgb (T,H,W,3) uint8, poses (T,4,4), K (3,3))."""
    from unreal_bridge.procedural import ProceduralBackend

    backend = ProceduralBackend()
    try:
        backend.open(clip)
        rgb, poses, K = [], [], None
        for frame in backend.frames(0, int(clip["output"]["frames"]), passes=("rgb",)):
            rgb.append(frame.passes["rgb"])
            poses.append(frame.camera_to_world)
            K = frame.intrinsics
    finally:
        backend.close()
    return np.stack(rgb), np.stack(poses), np.asarray(K)


def iter_renders(clips: list[dict]) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    for clip in clips:
        yield render(clip)


def clip_from_manifest_text(text: str, scene: str, clip_index: int = 0) -> dict:
    """Resolve one clip of a manifest given as YAML text (tests and the benchmark build clips this way)."""
    from contract.manifest import load_manifest, resolve_clip

    return resolve_clip(load_manifest(text, source_name="<eval>"), scene, clip_index)


def dumps(clip: dict) -> str:
    return json.dumps(clip, sort_keys=True)
