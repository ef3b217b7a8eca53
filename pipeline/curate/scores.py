"""Model scores for real footage, on top of `pipeline.quality`'s pixel scores.

Pixel scores (black, frozen, exposure, sharpness, and the one motion score `pixel_motion`) come
from `pipeline.quality` with the config's `thresholds:` (the model generate uses), so curated
and generated clips are scored identically. Added here:

* `aesthetic`: a LAION-style MLP head (local .safetensors file) on the L2-normalised CLIP embedding,
  1-10 scale; absent (null) without a head file.
* `clip_text_similarity`: cosine between the clip embedding and the caption's text
  embedding, only for captions that are not placeholders.

Curate's former `motion` score (frames 1/4 s apart, x 10) is gone (issue 10): it measured what
`pixel_motion` measures on another scale.
"""
from __future__ import annotations

import numpy as np


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

        from contract.errors import UserError
        from model.weights_file import WeightsFileError, load_state_dict

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
                f"{path}: aesthetic head takes {self.layers[0][0].shape[1]}-d embeddings "
                f"but the CLIP model gives {expected_dim}",
                hint="use the head trained for models.clip_model",
            )

    def score(self, embedding: np.ndarray) -> float:
        x = embedding.astype(np.float32) / max(float(np.linalg.norm(embedding)), 1e-12)
        for weight, bias in self.layers:
            x = weight @ x + (bias if bias is not None else 0.0)
        return float(x.reshape(-1)[0])
