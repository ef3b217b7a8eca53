"""Per-frame actions: the action-string language and the motion policies that produce (T, 8) arrays.

Layout (docs/architecture.md): `[forward, back, left, right, jump, sprint, yaw_deg, pitch_deg]`,
multi-hot keys then look deltas in degrees per frame (positive yaw turns right, positive pitch
looks up). `action[t]` is applied to reach frame t.

Action strings are comma-separated segments `KEYS-FRAMES`: the keys are held together for
FRAMES frames. Keys:

    w forward   s back   a left   d right         (move)
    j yaw left  l yaw right  i look up  k look down  (look_deg_per_frame degrees per frame)
    x jump      r sprint (hold with a move key: `rw-20`)
    n nothing   (idle: `n-10`)

So `w-80,a-20,jw-40` walks forward 80 frames, steps left 20, then walks forward while turning
left for 40. A string shorter than the clip is padded with idle frames.
"""
from __future__ import annotations

import math
import re

import numpy as np

from contract.defaults import DEFAULT_LOOK_DEG_PER_FRAME
from contract.manifest.rollout import (
    BACK,
    FORWARD,
    JUMP,
    LEFT,
    PITCH,
    RIGHT,
    SPRINT,
    YAW,
    RolloutParams,
    WalkerState,
    walker_step,
)
from contract.manifest.schema import MAX_ACTION_STRING_CHARS, MAX_FRAMES
from contract.sample import ACTION_DIM, ACTION_KEYS

ACTION_LETTERS = "wsadjlikxrn"
_SEGMENT = re.compile(r"^([a-zA-Z]+)-([0-9]+)$")
_KEY_SLOT = {"w": FORWARD, "s": BACK, "a": LEFT, "d": RIGHT, "x": JUMP, "r": SPRINT}
_LOOK = {"j": (YAW, -1.0), "l": (YAW, 1.0), "i": (PITCH, 1.0), "k": (PITCH, -1.0)}

#: Random-walk behaviours as key groups, per rig. A vehicle steers with a/d; j/l/i/k look around its mount.
BEHAVIOUR_KEYS: dict[str, dict[str, str]] = {
    "walker": {
        "forward": "w", "forward_left": "jw", "forward_right": "lw", "turn_left": "j", "turn_right": "l",
        "strafe_left": "a", "strafe_right": "d", "back": "s", "idle": "n", "sprint": "rw", "jump": "wx",
        "look_up": "i", "look_down": "k",
    },
    "vehicle": {
        "forward": "w", "forward_left": "aw", "forward_right": "dw", "turn_left": "aw", "turn_right": "dw",
        "strafe_left": "aw", "strafe_right": "dw", "back": "s", "idle": "n", "sprint": "rw", "jump": "w",
        "look_up": "i", "look_down": "k",
    },
}


class ActionStringError(ValueError):
    """A malformed action string; the message says which segment and how to fix it."""


def parse_action_string(text: str, *, look_deg_per_frame: float = DEFAULT_LOOK_DEG_PER_FRAME, frames: int | None = None) -> np.ndarray:
    """(T, 8) float32 actions from e.g. `"w-80,a-20,jw-40"`.

    With `frames`, a shorter string is padded with idle frames and a longer one is an error.
    The length is checked segment by segment *before* anything is allocated, so `w-1000000000000`
    is a one-line error, not a MemoryError (the ceiling is `frames`, else MAX_FRAMES).
    """
    if not isinstance(text, str) or not text.strip():
        raise ActionStringError("the action string is empty; write segments like 'w-40,jw-10'")
    if len(text) > MAX_ACTION_STRING_CHARS:
        raise ActionStringError(f"the action string has {len(text)} characters, more than {MAX_ACTION_STRING_CHARS}; merge segments (w-40 instead of w-1,w-1,...)")
    limit = frames if frames is not None else MAX_FRAMES
    total = 0
    rows: list[tuple[np.ndarray, int]] = []
    for position, raw in enumerate(text.split(",")):
        segment = raw.strip()
        match = _SEGMENT.match(segment)
        if match is None:
            raise ActionStringError(
                f"segment {position + 1} {segment!r} is not KEYS-FRAMES; write e.g. 'w-40' (keys {ACTION_LETTERS}, then '-', then a frame count)"
            )
        keys, count_text = match.group(1), match.group(2)
        if len(count_text) > 12:  # never parse a 4000-digit number
            raise ActionStringError(f"segment {position + 1} {segment[:40]!r} holds for a {len(count_text)}-digit number of frames; a clip has at most {limit} frames")
        unknown = sorted({letter for letter in keys if letter not in ACTION_LETTERS})
        if unknown:
            raise ActionStringError(
                f"segment {position + 1} {segment!r} uses unknown key(s) {''.join(unknown)!r}; keys are lower-case "
                "w s a d (move) j l (yaw) i k (pitch) x (jump) r (sprint) n (idle)"
            )
        if len(set(keys)) != len(keys):
            raise ActionStringError(f"segment {position + 1} {segment!r} repeats a key; write each key once")
        if "n" in keys and len(keys) > 1:
            raise ActionStringError(f"segment {position + 1} {segment!r} combines 'n' (idle) with other keys; use 'n' alone")
        count = int(count_text)
        if count < 1:
            raise ActionStringError(f"segment {position + 1} {segment!r} holds for 0 frames; use a count >= 1")
        total += count
        row = np.zeros(8, dtype=np.float32)
        for letter in keys:
            if letter in _KEY_SLOT:
                row[_KEY_SLOT[letter]] = 1.0
            elif letter in _LOOK:
                slot, sign = _LOOK[letter]
                row[slot] += sign * look_deg_per_frame
        rows.append((row, count))
    # Only now, with the length known, is anything frame-sized allocated.
    if frames is not None and total > frames:
        raise ActionStringError(f"the action string lasts {total} frames but the clip has {frames}; shorten it or raise output.frames")
    if total > limit:
        raise ActionStringError(f"the action string lasts {total} frames, more than a clip may have ({MAX_FRAMES}); shorten it")
    actions = np.zeros((frames if frames is not None else total, ACTION_DIM), dtype=np.float32)  # the tail stays idle
    at = 0
    for row, count in rows:
        actions[at : at + count] = row
        at += count
    return actions


def format_action_string(actions: np.ndarray, *, look_deg_per_frame: float = DEFAULT_LOOK_DEG_PER_FRAME) -> str:
    """The inverse of `parse_action_string` for actions made of whole keys and ±look deltas."""
    actions = np.asarray(actions, dtype=np.float32)
    tokens: list[str] = []
    for row in actions:
        keys = ""
        for letter, slot in (("w", FORWARD), ("s", BACK), ("a", LEFT), ("d", RIGHT), ("x", JUMP), ("r", SPRINT)):
            if row[slot] not in (0.0, 1.0):
                raise ValueError(f"key slot {ACTION_KEYS[slot]} holds {row[slot]}, not 0 or 1")
            keys += letter if row[slot] == 1.0 else ""
        for slot, (negative, positive) in ((YAW, ("j", "l")), (PITCH, ("k", "i"))):
            value = float(row[slot])
            if value == 0.0:
                continue
            if not math.isclose(abs(value), look_deg_per_frame, rel_tol=1e-6):
                raise ValueError(f"{ACTION_KEYS[slot]} = {value} is not ±{look_deg_per_frame}; it has no action-string form")
            keys += positive if value > 0 else negative
        tokens.append(keys or "n")
    segments: list[tuple[str, int]] = []
    for token in tokens:
        if segments and segments[-1][0] == token:
            segments[-1] = (token, segments[-1][1] + 1)
        else:
            segments.append((token, 1))
    return ",".join(f"{keys}-{count}" for keys, count in segments)


def random_walk_string(seed: int, frames: int, weights: dict[str, float], segment_frames: tuple[int, int], rig: str) -> str:
    """A seeded random walk, written out as an action string so the resolved clip records every draw.

    Behaviours are drawn in sorted-name order with the given weights, each held for a uniform
    number of frames in `segment_frames` (inclusive); the last one is cut to fit the clip.
    """
    table = BEHAVIOUR_KEYS["vehicle" if rig == "vehicle" else "walker"]
    names = sorted(name for name, weight in weights.items() if weight > 0)
    probabilities = np.array([weights[name] for name in names], dtype=np.float64)
    probabilities /= probabilities.sum()
    generator = np.random.default_rng(seed)
    segments: list[tuple[str, int]] = []
    total = 0
    while total < frames:
        name = names[int(generator.choice(len(names), p=probabilities))]
        length = int(generator.integers(segment_frames[0], segment_frames[1] + 1))
        length = min(length, frames - total)
        keys = table[name]
        if segments and segments[-1][0] == keys:
            segments[-1] = (keys, segments[-1][1] + length)
        else:
            segments.append((keys, length))
        total += length
    return ",".join(f"{keys}-{count}" for keys, count in segments)


def _wrap_deg(angle: float) -> float:
    return (angle + 180.0) % 360.0 - 180.0


def waypoint_actions(
    waypoints: list[list[float]],
    start_position: tuple[float, float, float],
    start_yaw_deg: float,
    start_pitch_deg: float,
    frames: int,
    params: RolloutParams,
    look_deg_per_frame: float,
) -> np.ndarray:
    """(T, 8) actions that walk a first-person rig through `waypoints` in order, then stand still.

    A closed-loop controller run on the same `walker_step` the rollout uses: each frame it turns
    toward the next waypoint by at most `look_deg_per_frame` and walks forward only when the
    remaining heading error is under 30 degrees. A waypoint counts as reached within
    max(one step, 0.3 m). The yaw deltas are float32, exactly what the rollout reads back.
    """
    arrive = max(params.speed_mps * params.dt, 0.3)
    state = WalkerState((float(start_position[0]), float(start_position[1]), float(start_position[2])), start_yaw_deg, start_pitch_deg, ground_z=float(start_position[2]))
    actions = np.zeros((frames, ACTION_DIM), dtype=np.float32)
    target = 0
    for index in range(frames):
        while target < len(waypoints) and math.hypot(waypoints[target][0] - state.position[0], waypoints[target][1] - state.position[1]) <= arrive:
            target += 1
        if target < len(waypoints):
            dx = waypoints[target][0] - state.position[0]
            dy = waypoints[target][1] - state.position[1]
            error = _wrap_deg(math.degrees(math.atan2(dx, dy)) - state.yaw_deg)
            turn = max(-look_deg_per_frame, min(look_deg_per_frame, error))
            actions[index, YAW] = np.float32(turn)
            actions[index, FORWARD] = 1.0 if abs(error - float(actions[index, YAW])) <= 30.0 else 0.0
        state = walker_step(state, actions[index], params)
    return actions


def static_actions(frames: int) -> np.ndarray:
    return np.zeros((frames, ACTION_DIM), dtype=np.float32)


__all__ = [
    "ACTION_LETTERS", "ActionStringError", "BEHAVIOUR_KEYS", "format_action_string", "parse_action_string",
    "random_walk_string", "static_actions", "waypoint_actions", "BACK", "LEFT", "RIGHT", "JUMP", "SPRINT", "PITCH",
]
