"""Scene manifests: schema, loading with line-numbered errors, sub-seeds, randomisation,
resolution to ResolvedClip dicts with sha256, action strings and motion policies, and the
action -> camera pose rollout. See docs/manifests.md."""
from contract.manifest.actions import ActionStringError, format_action_string, parse_action_string
from contract.manifest.loader import load_manifest
from contract.manifest.resolve import (
    ResolvedManifest,
    canonical_json,
    clip_key,
    clip_sha256,
    iter_clips,
    manifest_sha256,
    resolve_clip,
    resolve_manifest,
)
from contract.manifest.rollout import camera_to_world, rollout_poses, yaw_pitch_from_pose
from contract.manifest.schema import RESOLVED_CLIP_SCHEMA, Manifest
from contract.manifest.seeds import clip_seeds, derive_seed
from contract.sample import (
    ACTION_KEYS,  # owned by contract.sample; here for `from contract.manifest import ACTION_KEYS`
)

__all__ = [
    "ACTION_KEYS", "ActionStringError", "Manifest", "RESOLVED_CLIP_SCHEMA", "ResolvedManifest", "camera_to_world",
    "canonical_json", "clip_key", "clip_seeds", "clip_sha256", "derive_seed", "format_action_string",
    "iter_clips", "load_manifest", "manifest_sha256", "parse_action_string", "resolve_clip", "resolve_manifest",
    "rollout_poses", "yaw_pitch_from_pose",
]
