"""CLIP image and text embeddings through open_clip, offline.

The model name and a local weights path come from the config; nothing is ever downloaded.
Without a weights path the model is random-initialised from a fixed seed (tests, smoke runs):
the embeddings are then deterministic but carry no meaning, and `describe()` says so, so the
dataset's provenance records it. Inference is single-threaded and in float32, so the same
frames give bit-identical embeddings on every run.

Weights are a `.safetensors` open_clip checkpoint (or `local-dir:<folder>` holding one), read by
`model.weights_file` and loaded into a model open_clip built without `pretrained`, so open_clip
never gets a path it could `torch.load` (unpickle). A pickle checkpoint is refused with the
one-line conversion command.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from contract.errors import UserError


@dataclass(frozen=True)
class EmbedSettings:
    model: str = "ViT-B-32"
    weights: str | None = None     # local .safetensors file (or "local-dir:<folder>"); None = random init
    frames: int = 4                # evenly spaced frames embedded per clip
    seed: int = 0                  # random init seed when no weights are given
    threads: int = 1


LOCAL_DIR = "local-dir:"


def check_clip_weights(weights: str | None, *, field: str) -> None:
    """Fail before any work when a configured open_clip checkpoint is missing or not safetensors.
    Reads only the file's header."""
    from model.weights_file import WeightsFileError, check_safetensors, find_in_folder

    if not weights:
        return
    try:
        check_safetensors(find_in_folder(weights.removeprefix(LOCAL_DIR)) if weights.startswith(LOCAL_DIR) else weights)
    except WeightsFileError as error:
        raise UserError(f"{field}: {error.message}", hint=error.hint) from None


def load_clip_weights(model, weights: str, *, field: str, model_name: str) -> None:
    """Load a safetensors open_clip checkpoint (file, or `local-dir:<folder>`) into `model`.

    Applies open_clip's own state-dict fix-ups (third-party key layouts, old text layout, scalar
    logit_scale, positional-embedding resizing), which work on tensors and never read a file."""
    import torch
    from open_clip.factory import convert_state_dict, resize_pos_embed, resize_text_pos_embed
    from open_clip.model import convert_to_custom_text_state_dict

    from model.weights_file import WeightsFileError, find_in_folder, load_state_dict

    try:
        path = find_in_folder(weights.removeprefix(LOCAL_DIR)) if weights.startswith(LOCAL_DIR) else Path(weights)
        state = load_state_dict(path)
    except WeightsFileError as error:
        raise UserError(f"{field}: {error.message}", hint=error.hint) from None
    try:
        state = convert_state_dict(model, state)
        if "positional_embedding" in state and not hasattr(model, "positional_embedding"):
            state = convert_to_custom_text_state_dict(state)
        for key in ("logit_scale", "logit_bias"):
            own = getattr(model, key, None)
            if key in state and own is not None and state[key].ndim != own.ndim:
                state[key] = state[key].reshape(own.shape)
        if "logit_bias" not in state and getattr(model, "logit_bias", None) is not None and "logit_scale" in state:
            state["logit_bias"] = torch.zeros_like(state["logit_scale"])
        resize_pos_embed(state, model)
        resize_text_pos_embed(state, model)
        model.load_state_dict(state, strict=True)
    except (RuntimeError, KeyError, ValueError, AssertionError) as error:  # open_clip's resize asserts widths
        first = " ".join(str(error).split())[:300]
        raise UserError(f"{field}: {path} does not fit open_clip model {model_name!r} ({first})",
                        hint="use the checkpoint trained for this model, or set the model name it was trained with") from None


class ClipEmbedder:
    """Embeds frames and captions; L2-normalised float32 vectors of the model's width."""

    def __init__(self, settings: EmbedSettings = EmbedSettings(), *, config_name: str = "config",
                 field: str = "clip.weights") -> None:
        import open_clip
        import torch

        self.settings = settings
        torch.set_num_threads(settings.threads)
        if settings.weights:
            local = settings.weights.removeprefix(LOCAL_DIR)
            if not Path(local).exists():
                raise UserError(
                    f"{config_name}: {field} {settings.weights!r} does not exist",
                    hint="point it at a local .safetensors open_clip checkpoint, or remove it for random init",
                )
        if settings.model not in open_clip.list_models():
            raise UserError(f"{config_name}: clip.model {settings.model!r} is not an open_clip model",
                            hint="run `python -c 'import open_clip; print(open_clip.list_models())'`")
        torch.manual_seed(settings.seed)
        # Built without `pretrained`: open_clip would torch.load (unpickle) a non-safetensors file.
        self.model = open_clip.create_model(settings.model).eval()
        if settings.weights:
            load_clip_weights(self.model, settings.weights, field=f"{config_name}: {field}", model_name=settings.model)
        self.tokenizer = open_clip.get_tokenizer(settings.model)
        cfg = getattr(self.model.visual, "preprocess_cfg", {}) or {}
        size = self.model.visual.image_size
        self.image_size = (size, size) if isinstance(size, int) else tuple(size)
        self.mean = torch.tensor(cfg.get("mean", (0.48145466, 0.4578275, 0.40821073))).view(1, 3, 1, 1)
        self.std = torch.tensor(cfg.get("std", (0.26862954, 0.26130258, 0.27577711))).view(1, 3, 1, 1)

    def describe(self) -> dict[str, object]:
        return {"name": self.settings.model, "weights": self.settings.weights or f"random-init(seed={self.settings.seed})",
                "frames": self.settings.frames}

    def embed_frames(self, frames: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) uint8 -> (N, D) float32, L2-normalised."""
        import torch
        import torch.nn.functional as F

        with torch.no_grad():
            x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 255.0
            x = F.interpolate(x, size=self.image_size, mode="bilinear", align_corners=False, antialias=True)
            x = (x - self.mean) / self.std
            features = self.model.encode_image(x)
            features = F.normalize(features, dim=-1)
        return features.numpy().astype(np.float32)

    def embed_clip(self, frames: np.ndarray) -> np.ndarray:
        """One vector per clip: mean of `settings.frames` evenly spaced frame embeddings, re-normalised."""
        picks = np.unique(np.linspace(0, len(frames) - 1, min(self.settings.frames, len(frames))).round().astype(int))
        mean = self.embed_frames(frames[picks]).mean(axis=0)
        return (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(np.float32)

    def embed_text(self, texts: list[str]) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        with torch.no_grad():
            features = self.model.encode_text(self.tokenizer(texts))
            return F.normalize(features, dim=-1).numpy().astype(np.float32)

    def text_similarity(self, clip_embedding: np.ndarray, caption: str) -> float:
        """Cosine between the clip's image embedding and its caption (LAION keeps >= 0.28 with ViT-B/32)."""
        return float(np.dot(self.embed_text([caption])[0], clip_embedding))
