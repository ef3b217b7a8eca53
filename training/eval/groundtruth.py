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

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from contract.clip import ResolvedClip
from contract.errors import UserError
from contract.sample import ACTION_DIM, ACTIONS, INTRINSICS, JSON, MP4, POSES


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
    from contract.manifest import clip_sha256, format_action_string, rollout_poses

    typed = ResolvedClip.parse(clip)
    if not typed.kinematic:
        raise UserError(f"clip {typed.key}: camera.rig {typed.camera.rig!r} gets its poses from physics",
                        hint="evaluate on first_person, orbit or fixed rigs")
    actions = np.asarray(actions, dtype=np.float32)
    new = typed.to_json()
    new["output"]["frames"] = int(len(actions))
    rate = typed.output.fps if fps is None else float(fps)
    if fps is not None:
        new["output"]["fps"] = int(fps) if float(fps).is_integer() else float(fps)
        new.setdefault("simulation", {})["step"] = 1.0 / float(fps)
    new["actions"]["per_frame"] = [[float(v) for v in row] for row in actions]
    motion = new.get("motion") or {}
    if "actions" in motion:  # keep the written-out action string true to the new actions
        try:
            motion["actions"] = format_action_string(actions, look_deg_per_frame=typed.motion.look_deg_per_frame)
        except ValueError:  # look deltas with no action-string form (e.g. a full turn in a few frames)
            motion.pop("actions")
    target = typed.camera.orbit_target
    poses = rollout_poses(actions, typed.camera.start_pose, typed.motion.speed_mps, rate, rig=typed.camera.rig,
                          orbit_target=None if target is None else [float(v) for v in target],
                          sprint_multiplier=typed.motion.sprint_multiplier, jump_speed_mps=typed.motion.jump_speed_mps)
    new["poses"] = [[round(float(v), 9) + 0.0 for v in pose.reshape(16)] for pose in poses]
    new.pop("sha256", None)
    new["sha256"] = clip_sha256(new)
    return new


def continued_actions(clip: dict, frames: int) -> np.ndarray:
    """The clip's actions continued to `frames` by its own motion policy (the recorded prefix is kept)."""
    from contract.manifest import parse_action_string
    from contract.manifest.actions import random_walk_string, waypoint_actions
    from contract.manifest.rollout import RolloutParams

    typed = ResolvedClip.parse(clip)
    recorded = typed.actions[: typed.output.frames]
    if frames <= len(recorded):
        return np.array(recorded[:frames])
    motion, camera = typed.motion, typed.camera
    look = motion.look_deg_per_frame
    if motion.policy == "random_walk" and motion.random_walk is not None:
        walk = motion.random_walk
        text = random_walk_string(int(typed.seeds["motion"]), frames, {str(k): float(v) for k, v in walk["weights"].items()},
                                  (int(walk["segment_frames"][0]), int(walk["segment_frames"][1])), camera.rig)
        actions = parse_action_string(text, look_deg_per_frame=look, frames=frames)
    elif motion.policy == "waypoints" and motion.waypoints is not None:
        eye = camera.start_pose[:3, 3]
        params = RolloutParams(motion.speed_mps, typed.output.fps, motion.sprint_multiplier, motion.jump_speed_mps)
        actions = waypoint_actions([list(point) for point in motion.waypoints], (float(eye[0]), float(eye[1]), float(eye[2])),
                                   camera.start_yaw_deg, camera.start_pitch_deg, frames, params, look)
    else:  # scripted strings and static clips: idle after the recorded end
        actions = np.concatenate([recorded, np.zeros((frames - len(recorded), ACTION_DIM), np.float32)])
    if not np.allclose(actions[:len(recorded)], recorded, atol=1e-5):
        raise UserError(f"clip {typed.key}: its motion policy does not reproduce the recorded actions",
                        hint="the dataset was made by a different version of the resolver; evaluate within the stored length")
    return actions.astype(np.float32)


def extend_clip(clip: dict, frames: int) -> dict:
    """The resolved clip continued to `frames` frames."""
    return with_actions(clip, continued_actions(clip, frames))


def render(clip: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render a resolved clip in-process: (rgb (T,H,W,3) uint8, poses (T,4,4), K (3,3))."""
    from unreal_bridge.procedural import ProceduralBackend

    typed = ResolvedClip.parse(clip)
    backend = ProceduralBackend()
    try:
        backend.open(typed)
        rgb, poses, K = [], [], None
        for frame in backend.frames(0, typed.output.frames, passes=("rgb",)):
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
