"""Per-clip work after rendering: encode, score, caption, assemble the sample.

Plain functions on numpy arrays so they can be tested without Ray; `stages.py` wraps them in
actors. The render stage hands over a `RenderedPayload`; `process_clip` returns the shard
members (except `json` and `clip.npy`, which need the embedding), the scores and the caption.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from contract.clip import ResolvedClip
from contract.record import Renderer, SampleRecord, SyntheticOrigin
from contract.sample import ACTIONS, DEPTH, INTRINSICS, MP4, POSES, SEGMENTATION
from pipeline.encode import EncodeSettings, encode_mp4
from pipeline.quality import DEFAULT_THRESHOLDS, QualityThresholds, clip_scores
from pipeline.shards import encode_npy, encode_npz


@dataclass
class RenderedPayload:
    """What a render stage returns for one clip (arrays as received from the server)."""

    key: str
    resolved_clip: dict[str, Any]
    resolved_sha256: str
    rgb: np.ndarray                   # (T, H, W, 3) uint8
    camera_to_world: np.ndarray       # (T, 4, 4) float64
    intrinsics: np.ndarray            # (3, 3) float64
    actions: np.ndarray               # (T, 8) float32
    depth: np.ndarray | None = None   # (T, H, W) float32 metres
    segmentation: np.ndarray | None = None  # (T, H, W) int32
    renderer: dict[str, str] = field(default_factory=dict)  # backend, engine_version, protocol_version
    render_seconds: float = 0.0


@dataclass
class ProcessedClip:
    key: str
    members: dict[str, bytes]
    scores: dict[str, float]
    caption: str
    record: SampleRecord              # the JSON member and index row, less the driver's embedding
    thumbnail: np.ndarray             # (h, w, 3) uint8, middle frame, for contact sheets
    frames: int


def encode_settings_for(clip: ResolvedClip | Mapping[str, Any], crf: int | None, gop: int | None,
                        preset: str) -> EncodeSettings:
    """The manifest's `output.crf` / `output.gop` unless the generate config overrides them."""
    output = ResolvedClip.parse(clip).output
    return EncodeSettings(crf=output.crf if crf is None else int(crf), gop=output.gop if gop is None else int(gop),
                          preset=preset)


def caption_for(clip: ResolvedClip, payload: RenderedPayload) -> str:
    """Grounded caption (manifest area's `caption_clip`): the resolved clip plus the poses and
    actions the renderer actually reported."""
    from pipeline.caption import caption_clip

    return str(caption_clip(clip, actions=payload.actions, poses=payload.camera_to_world))


def process_clip(payload: RenderedPayload, settings: EncodeSettings,
                 thresholds: QualityThresholds = DEFAULT_THRESHOLDS, clip: ResolvedClip | None = None) -> ProcessedClip:
    """`clip` is `payload.resolved_clip` parsed (the process stage parses it once for both steps)."""
    if clip is None:
        clip = ResolvedClip.parse(payload.resolved_clip, source=f"resolved clip of {payload.key}")
    fps = clip.output.fps
    rgb = payload.rgb
    frames, height, width = int(rgb.shape[0]), int(rgb.shape[1]), int(rgb.shape[2])
    members: dict[str, bytes] = {
        MP4: encode_mp4(rgb, fps, settings),
        POSES: encode_npy(payload.camera_to_world.astype(np.float64)),
        INTRINSICS: encode_npy(payload.intrinsics.astype(np.float64)),
        ACTIONS: encode_npy(payload.actions.astype(np.float32)),
    }
    if payload.depth is not None:
        far = np.finfo(np.float16).max
        members[DEPTH] = encode_npz(depth=np.clip(payload.depth, 0.0, far).astype(np.float16))
    if payload.segmentation is not None:
        members[SEGMENTATION] = encode_npz(segmentation=payload.segmentation.astype(np.int32))
    scores = clip_scores(rgb, payload.camera_to_world, fps, thresholds)
    caption = caption_for(clip, payload)
    renderer = payload.renderer
    record = SampleRecord(
        key=payload.key,
        origin=SyntheticOrigin(resolved_clip=payload.resolved_clip),
        domain=renderer.get("backend", "unknown"),
        caption=caption,
        manifest_name=clip.manifest_name,
        manifest_sha256=clip.manifest_sha256,
        resolved_sha256=payload.resolved_sha256,
        scene=clip.scene,
        clip_index=clip.clip_index,
        seeds=dict(clip.seeds),
        fps=fps, width=width, height=height, frames=frames,
        renderer=Renderer(backend=renderer.get("backend", ""), engine_version=renderer.get("engine_version", ""),
                          protocol_version=renderer.get("protocol_version", "")),
        encode=settings.describe(),
        scores=scores,
    )
    middle = rgb[frames // 2]
    step = max(1, max(height, width) // 128)
    return ProcessedClip(
        key=payload.key, members=members, scores=scores, caption=caption, record=record,
        thumbnail=np.ascontiguousarray(middle[::step, ::step]), frames=frames,
    )


def middle_frames(rgb: np.ndarray, count: int) -> np.ndarray:
    picks = np.unique(np.linspace(0, len(rgb) - 1, min(count, len(rgb))).round().astype(int))
    return rgb[picks]
