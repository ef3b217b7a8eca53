"""Captions for real clips, from the best source available.

1. CoCa through open_clip, when local CoCa weights (.safetensors) are configured (needs `transformers` for
   `generate()`; absent here, so this path is only exercised where it is installed).
2. A sidecar next to the video: `NAME.txt` (whole text) or `NAME.json` with a `caption`
   (or `text`) string; `NAME.mp4.txt` / `NAME.mp4.json` are accepted too.
3. Otherwise a placeholder, flagged as such (`caption_source = "placeholder"`) so training can
   filter it and CLIP text similarity is not computed for it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.curate.inputs import is_remote

PLACEHOLDER = "real video footage"


@dataclass(frozen=True)
class Caption:
    text: str
    source: str     # "coca" | "sidecar" | "placeholder"

    @property
    def is_placeholder(self) -> bool:
        return self.source == "placeholder"


def _sidecar_candidates(uri: str) -> list[str]:
    if "." in uri.rsplit("/", 1)[-1]:
        stem = uri.rsplit(".", 1)[0]
    else:
        stem = uri
    return [f"{stem}.txt", f"{stem}.json", f"{uri}.txt", f"{uri}.json"]


def _read_text(uri: str) -> str | None:
    try:
        if is_remote(uri):
            import fsspec

            with fsspec.open(uri, "rt", encoding="utf-8") as handle:
                return handle.read()
        path = Path(uri)
        return path.read_text(encoding="utf-8") if path.is_file() else None
    except (OSError, UnicodeDecodeError, FileNotFoundError):
        return None


def sidecar_caption(uri: str) -> Caption | None:
    for candidate in _sidecar_candidates(uri):
        text = _read_text(candidate)
        if text is None:
            continue
        if candidate.endswith(".json"):
            try:
                document = json.loads(text)
            except json.JSONDecodeError:
                continue
            value = document.get("caption") or document.get("text") if isinstance(document, dict) else None
            if isinstance(value, str) and value.strip():
                return Caption(" ".join(value.split()), "sidecar")
        elif text.strip():
            return Caption(" ".join(text.split()), "sidecar")
    return None


class CocaCaptioner:
    """open_clip CoCa from local .safetensors weights; captions the middle frame of a clip."""

    def __init__(self, model_name: str, weights: str) -> None:
        import open_clip
        import torch

        from pipeline.embed import load_clip_weights

        torch.set_num_threads(1)
        # Built without `pretrained` (open_clip would torch.load a pickle file), then the
        # safetensors weights are loaded by worldloom: nothing unpickles the user's file.
        self.model, _, self.preprocess = open_clip.create_model_and_transforms(model_name)
        load_clip_weights(self.model, weights, field="config models.coca_weights", model_name=model_name)
        self.model.eval()

    def caption(self, frames: np.ndarray) -> Caption:
        import open_clip
        import torch
        from PIL import Image

        middle = Image.fromarray(frames[len(frames) // 2])
        with torch.no_grad():
            tokens = self.model.generate(self.preprocess(middle).unsqueeze(0))
        text = open_clip.decode(tokens[0]).split("<end_of_text>")[0].replace("<start_of_text>", "")
        return Caption(" ".join(text.split()) or PLACEHOLDER, "coca")


def caption_for(uri: str, frames: np.ndarray, captioner: CocaCaptioner | None) -> Caption:
    if captioner is not None:
        return captioner.caption(frames)
    return sidecar_caption(uri) or Caption(PLACEHOLDER, "placeholder")
