"""Clip scores for real footage.

Pixel scores (black, frozen, exposure, sharpness, pixel motion) come from `pipeline.quality`
so curated and generated clips are scored identically. Added here:

* `motion`: mean absolute luma difference between frames 1/4 s apart (up to 16 pairs), on a 0-1 scale and
  multiplied by 10 so that typical handheld footage lands near 0.1-1 (a static shot ~0.01).
  Frame-rate independent, unlike consecutive-frame differences.
* `aesthetic`: a LAION-style MLP head (local .safetensors file) on the L2-normalised CLIP embedding,
  1-10 scale; absent (null) without a head file.
* `clip_text_similarity`: cosine between the clip embedding and the caption's text
  embedding, only for captions that are not placeholders.
"""
from __future__ import annotations

import numpy as np

from pipeline.curate.config import ScoreConfig
from pipeline.quality import QualityThresholds, luma, pixel_scores

MOTION_GAP_S = 0.25
MOTION_SCALE = 10.0


def thresholds_from(config: ScoreConfig) -> QualityThresholds:
    return QualityThresholds(
        black_luma=config.black_luma,
        black_pixel_luma=config.black_luma,
        black_pixel_share=config.black_fraction,
        frozen_diff=config.frozen_noise,
    )


def motion_score(frames: np.ndarray, fps: float, pairs: int = 16) -> float:
    """Mean absolute luma difference between frames MOTION_GAP_S apart, x MOTION_SCALE.

    Uses at most `pairs` evenly spaced frame pairs: the mean converges quickly and the clip
    is not converted to luma a second time.
    """
    if len(frames) < 2:
        return 0.0
    gap = min(max(1, int(round(MOTION_GAP_S * fps))), len(frames) - 1)
    starts = np.unique(np.linspace(0, len(frames) - 1 - gap, min(pairs, len(frames) - gap)).round().astype(int))
    difference = np.abs(luma(frames[starts + gap]) - luma(frames[starts]))
    return float(difference.mean() * MOTION_SCALE)


def clip_pixel_scores(frames: np.ndarray, fps: float, config: ScoreConfig) -> dict[str, float]:
    scores = pixel_scores(frames, thresholds_from(config))
    scores["motion"] = motion_score(frames, fps)
    return scores


def sample_frames(frames: np.ndarray, count: int) -> np.ndarray:
    """`count` evenly spaced frames (fewer if the clip is shorter)."""
    picks = np.unique(np.linspace(0, len(frames) - 1, min(count, len(frames))).round().astype(int))
    return frames[picks]


class AestheticHead:
    """A LAION improved-aesthetic-predictor style head: a stack of linear layers (no
    activations) on the L2-normalised CLIP image embedding, giving a 1-10 score.

    Loads a state dict from a .safetensors file (never a pickle: `model.weights_file`) whose
    keys are `<prefix>.<n>.weight/bias` (e.g. `layers.0.weight`, `layers.2.weight`, ..., as the
    LAION file has); the layers are applied in order of n.
    """

    def __init__(self, path: str, *, expected_dim: int | None = None) -> None:
        import re

        from model.weights_file import WeightsFileError, load_state_dict
        from contract.errors import UserError

        try:
            state = load_state_dict(path)
        except WeightsFileError as error:
            raise UserError(f"config models.aesthetic_head: {error.message}", hint=error.hint) from None
        layers: dict[int, dict[str, np.ndarray]] = {}
        for name, tensor in state.items():
            match = re.search(r"(\d+)\.(weight|bias)$", name)
            if match:
                layers.setdefault(int(match.group(1)), {})[match.group(2)] = tensor.detach().float().numpy()
        self.layers = [(layers[n]["weight"], layers[n].get("bias")) for n in sorted(layers)]
        if not self.layers or any(w.ndim != 2 for w, _ in self.layers):
            raise UserError(f"{path}: no linear layers found", hint="expected keys like layers.0.weight")
        if expected_dim is not None and self.layers[0][0].shape[1] != expected_dim:
            raise UserError(
                f"{path}: aesthetic head takes {self.layers[0][0].shape[1]}-d embeddings but the CLIP model gives {expected_dim}",
                hint="use the head trained for models.clip_model",
            )

    def score(self, embedding: np.ndarray) -> float:
        x = embedding.astype(np.float32) / max(float(np.linalg.norm(embedding)), 1e-12)
        for weight, bias in self.layers:
            x = weight @ x + (bias if bias is not None else 0.0)
        return float(x.reshape(-1)[0])
