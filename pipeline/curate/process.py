"""The per-input recipe: one video file in, its curated clips (or a reject) out.

probe -> shots (pass one: content features, and TransNetV2 fed from the same decode) ->
boundaries + black/frozen stretches -> plan -> transcode (pass two) -> encode -> scores ->
caption -> embedding. Pure function of (file bytes, config), so a retry or a resume gives the same
clips, keys and bytes. Run by run.py inside Ray tasks; also usable directly.
"""
from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import av
import numpy as np

from pipeline.curate.captions import CocaCaptioner, caption_for
from pipeline.curate.config import CurateConfig
from pipeline.curate.inputs import is_remote
from pipeline.curate.plan import plan_shot_clips
from pipeline.curate.probe import probe
from pipeline.curate.scores import AestheticHead
from pipeline.curate.shots import analyze_file, black_stretches, frozen_stretches, merge_ranges
from pipeline.curate.transcode import FrameCache, TranscodedClip, output_geometry, transcode_clips
from pipeline.curate.transnet import WindowPredictor
from pipeline.encode import EncodeSettings, encode_mp4
from pipeline.quality import pixel_scores


@dataclass
class CuratedClip:
    key: str
    clip_index: int
    start_frame: int
    end_frame: int
    start_s: float
    end_s: float
    frames: int
    width: int
    height: int
    fps: float
    mp4: bytes
    scores: dict[str, float]
    caption: str
    caption_source: str
    embedding: list[float]
    black_stretches: list[tuple[int, int]]


@dataclass
class InputResult:
    uri: str
    sha256: str = ""
    scene: str = ""
    reason: str | None = None       # reject reason (see probe.REJECT_REASONS), None when usable
    detail: str = ""
    probe: dict[str, Any] = field(default_factory=dict)
    frames_decoded: int = 0
    duration_s: float = 0.0
    cuts: list[int] = field(default_factory=list)           # first frame of each shot after a boundary
    transitions: list[tuple[int, int]] = field(default_factory=list)  # boundaries [start, end); a hard cut is [c, c)
    black_stretches: list[tuple[int, int]] = field(default_factory=list)
    frozen_stretches: list[tuple[int, int]] = field(default_factory=list)
    detector: str = ""
    clips: list[CuratedClip] = field(default_factory=list)
    seconds: float = 0.0


def scene_name(uri: str) -> str:
    """Key-safe name from the file name: [a-z0-9_]+, at most 40 characters."""
    stem = uri.rstrip("/").rsplit("/", 1)[-1]
    stem = stem.rsplit(".", 1)[0] if "." in stem else stem
    name = re.sub(r"[^a-z0-9]+", "_", stem.lower()).strip("_")[:40].strip("_")
    return name or "video"


def file_sha256(uri: str) -> str:
    digest = hashlib.sha256()
    if is_remote(uri):
        import fsspec

        opener = fsspec.open(uri, "rb")
    else:
        opener = open(uri[len("file://"):] if uri.startswith("file://") else uri, "rb")
    with opener as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Models:
    """Optional models, loaded once per worker process (see `models_for`)."""

    def __init__(self, config: CurateConfig, with_clip: bool) -> None:
        self.embedder = None
        self.aesthetic = None
        self.captioner = None
        if with_clip:
            from pipeline.embed import ClipEmbedder, EmbedSettings

            self.embedder = ClipEmbedder(EmbedSettings(
                model=config.models.clip_model, weights=config.models.clip_weights,
                frames=config.scores.frames_sampled, seed=config.run.seed,
            ), field="models.clip_weights")
            if config.models.aesthetic_head:
                import open_clip

                width = (open_clip.get_model_config(config.models.clip_model) or {}).get("embed_dim")
                self.aesthetic = AestheticHead(config.models.aesthetic_head, expected_dim=width)
        if config.models.coca_weights:
            self.captioner = CocaCaptioner(config.models.coca_model, config.models.coca_weights)

    def describe(self) -> dict[str, Any]:
        return {
            "clip": self.embedder.describe() if self.embedder else None,
            "aesthetic_head": bool(self.aesthetic),
            "coca": bool(self.captioner),
        }


@lru_cache(maxsize=2)
def _cached_models(models_json: str, frames_sampled: int, seed: int, with_clip: bool) -> Models:
    from pipeline.curate.config import ModelConfig, RunConfig, ScoreConfig

    config = CurateConfig(models=ModelConfig.model_validate_json(models_json),
                          scores=ScoreConfig(frames_sampled=frames_sampled), run=RunConfig(seed=seed))
    return Models(config, with_clip)


def models_for(config: CurateConfig, with_clip: bool = True) -> Models:
    """Models for this worker process, keyed only by what changes them (a new threshold or
    output size does not rebuild CLIP)."""
    return _cached_models(config.models.model_dump_json(), config.scores.frames_sampled, config.run.seed, with_clip)


def encode_settings(config: CurateConfig) -> EncodeSettings:
    """The H.264 settings of every curated clip (also what its record says they were)."""
    return EncodeSettings(crf=config.output.crf, gop=config.output.gop)


def excluded_stretches(result: InputResult, config: CurateConfig) -> list[tuple[int, int]]:
    """Frame ranges that belong to no clip besides transitions: black and frozen stretches."""
    ranges = list(result.black_stretches) if config.plan.exclude_black else []
    if config.plan.exclude_frozen_s is not None:
        ranges += result.frozen_stretches
    return merge_ranges(ranges, gap=0)


def process_input(uri: str, config: CurateConfig, *, with_clip: bool = True,
                  transnet: WindowPredictor | None = None) -> InputResult:
    """Curate one input. Bad input becomes `result.reason`; only bugs raise.

    `transnet` runs TransNetV2 windows elsewhere (run.py passes a Ray actor on a GPU);
    by default the network runs in this process when the detector needs it."""
    started = time.perf_counter()
    result = InputResult(uri=uri, scene=scene_name(uri))
    found = probe(uri)
    result.probe = found.as_dict()
    if not found.ok:
        result.reason, result.detail = found.reason, found.detail
        result.seconds = time.perf_counter() - started
        return result
    if min(found.width, found.height) < config.inputs.min_side_px:
        result.reason = "too_small"
        result.detail = (f"{found.width}x{found.height} pixels is below inputs.min_side_px={config.inputs.min_side_px} "
                         "(it would be scaled up to a clip of a few colours)")
        result.seconds = time.perf_counter() - started
        return result
    result.sha256 = file_sha256(uri)
    geometry = output_geometry(found.width, found.height, found.rotation_deg, config.output)
    cache = FrameCache(geometry, config.run.single_pass_budget_mb * 1_000_000)
    try:
        analysis = analyze_file(uri, found.width, found.height, config.shots, on_frame=cache, transnet=transnet)
    except av.error.FFmpegError as error:      # corrupt data past the first frame: bad input, not a bug
        result.reason, result.detail = "decode_error", f"first pass: {error}"
        result.seconds = time.perf_counter() - started
        return result
    result.frames_decoded = analysis.frame_count
    if analysis.frame_count == 0:
        result.reason, result.detail = "no_decodable_frames", "no frame decoded"
        return result
    ends = analysis.times[-1] + (float(np.median(np.diff(analysis.times))) if analysis.frame_count > 1 else 0.04)
    result.duration_s = float(ends - analysis.times[0])
    result.detector = analysis.detector
    result.transitions = list(analysis.transitions)
    result.cuts = [end for _, end in analysis.transitions]
    thresholds = config.thresholds
    result.black_stretches = black_stretches(analysis, thresholds.black_pixel_luma, thresholds.black_pixel_share)
    if config.plan.exclude_frozen_s is not None:
        result.frozen_stretches = frozen_stretches(analysis, thresholds.frozen_diff, config.plan.exclude_frozen_s)
    plans = plan_shot_clips(analysis.times, analysis.transitions, config.plan, excluded_stretches(result, config))
    if not plans:
        cache.frames = None
        result.reason = "too_short"
        excluded = sum(b - a for a, b in merge_ranges(result.transitions + excluded_stretches(result, config), gap=0))
        result.detail = (f"no shot of at least plan.min_clip_s={config.plan.min_clip_s} s "
                         f"(file is {result.duration_s:.2f} s; "
                         f"{excluded} of {analysis.frame_count} frames are transitions, black or frozen)")
        result.seconds = time.perf_counter() - started
        return result
    fps = config.output.fps or found.fps or 25.0
    models = models_for(config, with_clip) if with_clip or config.models.coca_weights else None
    settings = encode_settings(config)
    try:
        for clip_index, clip in enumerate(transcode_clips(uri, analysis.times, plans, geometry, fps, cache)):
            result.clips.append(_curate_clip(result, clip_index, clip, models, settings, config))
    except av.error.FFmpegError as error:     # the file broke between the two passes
        result.reason, result.detail, result.clips = "decode_error", f"second pass: {error}", []
    result.seconds = time.perf_counter() - started
    return result


def _curate_clip(result: InputResult, clip_index: int, clip: TranscodedClip, models: Models | None,
                 settings: EncodeSettings, config: CurateConfig) -> CuratedClip:
    """Scores, caption, embedding and H.264 bytes of one transcoded clip."""
    frames, plan, fps = clip.frames, clip.plan, clip.fps
    scores = pixel_scores(frames, config.thresholds.to_thresholds())
    caption = caption_for(result.uri, frames, models.captioner if models else None)
    embedding: list[float] = []
    if models is not None and models.embedder is not None:
        vector = models.embedder.embed_clip(frames)
        embedding = vector.tolist()
        if models.aesthetic is not None:
            scores["aesthetic"] = models.aesthetic.score(vector)
        if not caption.is_placeholder:
            scores["clip_text_similarity"] = models.embedder.text_similarity(vector, caption.text)
    overlapping = [(a, b) for a, b in result.black_stretches if a < plan.end and b > plan.start]
    scores["black_stretch_frames"] = float(sum(min(b, plan.end) - max(a, plan.start) for a, b in overlapping))
    return CuratedClip(
        key=f"{result.sha256[:12]}_{result.scene}_{clip_index:05d}",
        clip_index=clip_index,
        start_frame=plan.start, end_frame=plan.end, start_s=plan.start_s, end_s=plan.end_s,
        frames=int(frames.shape[0]), width=int(frames.shape[2]), height=int(frames.shape[1]), fps=float(fps),
        mp4=encode_mp4(frames, fps, settings),
        scores=scores, caption=caption.text, caption_source=caption.source,
        embedding=embedding, black_stretches=overlapping,
    )


def source_params(result: InputResult, clip: CuratedClip) -> str:
    """The `params_json` of a real clip: where exactly it came from."""
    return json.dumps({
        "uri": result.uri, "sha256": result.sha256,
        "start_frame": clip.start_frame, "end_frame": clip.end_frame,
        "start_s": round(clip.start_s, 6), "end_s": round(clip.end_s, 6),
        "rotation_deg": result.probe.get("rotation_deg", 0),
        "source_size": [result.probe.get("width", 0), result.probe.get("height", 0)],
        "source_fps": result.probe.get("fps", 0.0), "codec": result.probe.get("codec", ""),
    }, sort_keys=True, separators=(",", ":"))
