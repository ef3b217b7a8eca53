"""The sample record: member names and the action layout, defined once (docs/shard-schema.md).

A sample in a shard is a set of tar members that share a key (`<key>.<member>`); WebDataset
readers see them as `sample[member]`. Every writer (generate, curate, `training.encode_latents`) and
every reader (the training loader, eval, inspect) names members through these constants.

The action vector (docs/architecture.md, "Conventions"): per frame a float32 vector of
`ACTION_DIM = 8` channels, `ACTION_KEYS` in this order: six multi-hot keys (`KEY_CHANNELS`:
0 or 1), then two look deltas in degrees per frame (`LOOK_CHANNELS`; positive yaw turns right,
positive pitch looks up). `action[t]` is applied to reach frame t.
"""
from __future__ import annotations

# ---------------------------------------------------------------------------- member names
MP4 = "mp4"                     # H.264 video, yuv420p (pipeline/encode.py)
JSON = "json"                   # the sample's metadata document
POSES = "poses.npy"             # (T, 4, 4) float64 camera-to-world, OpenCV axes, metres
INTRINSICS = "intrinsics.npy"   # (3, 3) float64 pinhole K in pixels of the output resolution
ACTIONS = "actions.npy"         # (T, 8) float32, the action layout below
DEPTH = "depth.npz"             # planar z, metres, float16 (key "depth")
SEGMENTATION = "seg.npz"        # int32 instance ids, 0 = sky/background (key "segmentation")
CLIP_EMBEDDING = "clip.npy"     # open_clip image embedding, float32
LATENTS = "latents.npy"         # latents datasets (`worldloom encode`): VAE latents, float16

#: Members a real (curated) clip does not have: no camera or actions were recorded.
ABSENT_IN_REAL_CLIPS: tuple[str, ...] = (POSES, INTRINSICS, ACTIONS, DEPTH, SEGMENTATION)

# ---------------------------------------------------------------------------- action layout
ACTION_KEYS: tuple[str, ...] = ("forward", "back", "left", "right", "jump", "sprint", "yaw_deg", "pitch_deg")
ACTION_DIM = len(ACTION_KEYS)   # 8
KEY_CHANNELS = slice(0, 6)      # forward, back, left, right, jump, sprint: multi-hot, 0 or 1
LOOK_CHANNELS = slice(6, 8)     # yaw_deg, pitch_deg: deltas in degrees per frame
FORWARD, BACK, LEFT, RIGHT, JUMP, SPRINT, YAW, PITCH = range(ACTION_DIM)

#: Units of the sample's arrays and scores, written into every generated sample's JSON member.
UNITS: dict[str, str] = {
    "poses": "camera-to-world 4x4, OpenCV axes (x right, y down, z forward), world Z-up, metres",
    "intrinsics": "pinhole K in pixels of the output resolution",
    "depth": "planar z along camera +z, metres, float16, sky = far plane",
    "segmentation": "int32 instance ids, 0 = sky/background",
    "actions": "[forward, back, left, right, jump, sprint, yaw_deg, pitch_deg]: multi-hot keys, then degrees per frame",
    "camera_speed_mps": "metres per second",
    "camera_rotation_dps": "degrees per second",
}
