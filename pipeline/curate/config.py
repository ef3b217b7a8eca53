"""Curation settings, loaded from an optional YAML file (`--config curate.yaml`).

Every setting lives here so that a run is described by one file; the defaults follow the
numbers in docs/curate.md (and the field guide) so a user can compare with other pipelines.
The quality thresholds are the `thresholds:` section, the same model as generate's
(`pipeline.quality.ThresholdsConfig`): the same score has the same name in both configs.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import click
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from contract.errors import UserError
from pipeline.quality import ThresholdsConfig


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InputConfig(_Strict):
    """What an input must be to be curated at all. A 1x1 video would otherwise be scaled up to
    a 256-px clip of one colour."""

    min_side_px: int = Field(64, ge=1, le=4096)       # smaller width or height: a `too_small` reject


class ShotConfig(_Strict):
    """Shot boundaries (see shots.py, transnet.py). `detector`: `content` (fast, hard cuts only),
    `transnetv2` (learned: cuts, fades, dissolves) or `both` (the union); the default and why
    are in docs/curate.md."""

    detector: Literal["transnetv2", "content", "both"] = "content"     # measured: docs/curate.md
    gradual: bool = True                                    # content detector: dissolves and fades too (gradual.py)
    gradual_lengths: list[int] = Field(default_factory=lambda: [4, 8, 12, 16, 24, 32], min_length=0, max_length=12)
    gradual_min_change: float = Field(0.25, gt=0, le=1)     # histogram distance between the two shots' frames
    gradual_max_residual: float = Field(0.30, gt=0, le=1)   # frames must be explained by the mix
    blank_contrast: float = Field(3.0, ge=0, le=255)        # luma std (0..255) below which a frame is flat
    fade_max_s: float = Field(2.0, gt=0)                    # longest fade ramp on each side of a flat frame
    transnet_threshold: float = Field(0.4, gt=0, lt=1)      # single-frame head; Cosmos/NeMo 0.4, the paper 0.5
    transnet_extend_threshold: float = Field(0.3, gt=0, lt=1)  # many-hot head: grows a transition over the whole fade
    transnet_device: Literal["auto", "cpu", "cuda"] = "auto"
    transnet_batch_windows: int = Field(8, ge=1, le=256)    # 100-frame windows per forward pass
    transnet_placement: Literal["auto", "task", "actor"] = "auto"  # auto: actors when Ray has GPUs, else in the task
    transnet_num_gpus: float = Field(1.0, ge=0, le=8)       # per TransNetV2 actor
    analysis_width: int = Field(64, ge=16, le=512)
    min_score: float = Field(0.30, gt=0, le=1)        # absolute floor of the combined difference
    ratio: float = Field(3.0, gt=1)                   # score / local mean needed for a cut
    window: int = Field(6, ge=2)                      # frames each side for the local mean
    min_scene_s: float = Field(0.4, ge=0)             # cuts closer than this keep the stronger one
    flash_frames: int = Field(4, ge=0, le=32)         # a spike undone within this many frames is a flash


class PlanConfig(_Strict):
    """Clip planning: length bounds and the trim kept away from each cut."""

    min_clip_s: float = Field(0.5, gt=0)
    max_clip_s: float = Field(10.0, gt=0)
    trim_s: float = Field(0.2, ge=0)                  # Cosmos uses 0.5 s for a model-based detector
    margin_frames: int = Field(2, ge=0)               # and at least this many frames from any boundary
    exclude_black: bool = True                        # black frames belong to no clip
    exclude_frozen_s: float | None = Field(1.0, gt=0)  # repeated frames held this long belong to no clip (None: keep)

    @model_validator(mode="after")
    def _ordered(self) -> PlanConfig:
        if self.max_clip_s < self.min_clip_s:
            raise ValueError("max_clip_s must be >= min_clip_s")
        return self


class OutputConfig(_Strict):
    """Target of the frame-accurate transcode.

    fps None keeps the source's average rate. With only one of width/height the display aspect
    (after rotation) is kept; with both, the frame is scaled to cover and centre-cropped.
    """

    fps: float | None = Field(None, gt=0, le=240)
    width: int | None = Field(None, ge=16, le=4096)
    height: int | None = Field(256, ge=16, le=4096)
    crf: int = Field(23, ge=0, le=51)
    gop: int = Field(16, ge=1)


class ScoreConfig(_Strict):
    """How the model scores sample a clip. What counts as black or frozen, and the gates, are
    the `thresholds:` section (pipeline.quality.ThresholdsConfig, the same model as generate's)."""

    frames_sampled: int = Field(4, ge=1, le=64)       # frames per clip for CLIP scores


#: Keys of the old `scores:` section -> the `thresholds:` keys they now are (the same meaning:
#: `scores.black_luma` set both the frame's mean-luma and the pixel's luma threshold).
LEGACY_SCORE_KEYS: dict[str, tuple[str, ...]] = {
    "black_luma": ("black_luma", "black_pixel_luma"),
    "black_fraction": ("black_pixel_share",),
    "frozen_noise": ("frozen_diff",),
}


class ModelConfig(_Strict):
    """Local model files only; nothing is downloaded."""

    clip_model: str = "ViT-B-32"
    clip_weights: str | None = None                   # .safetensors (or local-dir:); None: random init
    aesthetic_head: str | None = None                 # LAION-style MLP state dict (.safetensors)
    coca_model: str = "coca_ViT-B-32"
    coca_weights: str | None = None


RANDOM_INIT_DEDUPE_THRESHOLD = 0.999


class DedupeConfig(_Strict):
    """threshold None picks 0.98 (Open-Sora; Cosmos uses 0.99) for trained CLIP weights and
    0.999 for random-initialised ones, whose embeddings all lie within ~0.01 of each other."""

    enabled: bool = True
    threshold: float | None = Field(None, gt=0, le=1)

    def effective_threshold(self, trained_weights: bool) -> float:
        if self.threshold is not None:
            return self.threshold
        return 0.98 if trained_weights else RANDOM_INIT_DEDUPE_THRESHOLD


class FilterConfig(_Strict):
    """Quality rejection at curate time. Off by default: every score lands in the index and
    `worldloom select` chooses later; turn on to apply pipeline.quality's rules now."""

    reject_low_quality: bool = False


class RunConfig(_Strict):
    max_retries: int = Field(2, ge=0)
    num_cpus_per_task: float = Field(1.0, gt=0)
    seed: int = 0                                     # random-init seed of CLIP when no weights
    single_pass_budget_mb: int = Field(512, ge=0)      # keep output frames of files up to this size: one decode
    shard_max_bytes: int = Field(500_000_000, ge=1_000_000)
    shard_max_samples: int | None = Field(None, ge=1)


class CurateConfig(_Strict):
    inputs: InputConfig = InputConfig()
    shots: ShotConfig = ShotConfig()
    plan: PlanConfig = PlanConfig()
    output: OutputConfig = OutputConfig()
    scores: ScoreConfig = ScoreConfig()
    thresholds: ThresholdsConfig = ThresholdsConfig()   # gates for filters.reject_low_quality, black/frozen rules
    models: ModelConfig = ModelConfig()
    dedupe: DedupeConfig = DedupeConfig()
    filters: FilterConfig = FilterConfig()
    run: RunConfig = RunConfig()


def load_curate_config(path: str | Path | None) -> CurateConfig:
    """Read a curate YAML; a mistake becomes one UserError line naming the field."""
    if path is None:
        return CurateConfig()
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: config file not found", hint="pass an existing --config YAML or omit it")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise UserError(f"{path}: not valid YAML ({error})", hint="fix the YAML syntax") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: top level must be a mapping", hint="see docs/curate.md for the keys")
    data = migrate_legacy_keys(data, str(path))
    try:
        return CurateConfig.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise UserError(f"{path}: field {field}: {first['msg']}",
                        hint="see docs/curate.md for allowed values") from None


def migrate_legacy_keys(data: dict[str, Any], name: str) -> dict[str, Any]:
    """Accept a config written before issue 10: `scores.black_luma`, `scores.black_fraction` and
    `scores.frozen_noise` become their `thresholds:` keys, with one warning line each.

    Why an alias and not an error: the meaning did not change, only the name (the old
    `scores.black_fraction` was the share of dark *pixels*, not the `black_fraction` score), so a
    working config keeps working and says what to write instead. Both spellings at once is an error.
    """
    scores = data.get("scores")
    if not isinstance(scores, dict) or not set(scores) & set(LEGACY_SCORE_KEYS):
        return data
    data = {**data, "scores": dict(scores)}
    thresholds = data.get("thresholds")
    thresholds = dict(thresholds) if isinstance(thresholds, dict) else {}
    for old, new_keys in LEGACY_SCORE_KEYS.items():
        if old not in data["scores"]:
            continue
        value = data["scores"].pop(old)
        clash = [key for key in new_keys if key in thresholds]
        if clash:
            raise UserError(f"{name}: scores.{old} and thresholds.{clash[0]} are the same setting",
                            hint=f"keep thresholds.{clash[0]} only (scores.{old} is its old name)")
        for key in new_keys:
            thresholds[key] = value
        click.secho(f"warning: {name}: scores.{old} is deprecated, write "
                    f"{' and '.join('thresholds.' + key for key in new_keys)} instead", fg="yellow", err=True)
    data["thresholds"] = thresholds
    return data
