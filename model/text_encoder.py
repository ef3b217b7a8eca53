"""Frozen open_clip text tower: captions -> per-token embeddings for cross-attention.

Only the text transformer is built (no vision tower). `TextConfig.model_name` is an open_clip
model config name (e.g. "ViT-B-32"), whose `text_cfg` sets the sizes, or "custom" for the small
explicit sizes used by the tiny config. `TextConfig.weights_path` is a local open_clip/CLIP
checkpoint in safetensors format (never a pickle: see `model.weights_file`); its text keys are
loaded. Without a path the tower is randomly initialised (tests, meta-device counting): nothing
is ever downloaded.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch
from torch import nn

from model.configs import TextConfig
from model.errors import ModelError

_TEXT_PREFIXES = ("token_embedding.", "positional_embedding", "transformer.", "ln_final.", "text_projection")


def _text_cfg(config: TextConfig):
    from open_clip.model import CLIPTextCfg

    if config.model_name == "custom":
        return CLIPTextCfg(context_length=config.context_length, vocab_size=config.vocab_size,
                           width=config.width, heads=config.heads, layers=config.layers), config.width
    import open_clip

    model_cfg = open_clip.get_model_config(config.model_name)
    if model_cfg is None:
        raise ModelError(f"text.model_name={config.model_name!r} is not an open_clip model config; "
                        f"use one of open_clip.list_models() or 'custom'")
    text = dict(model_cfg["text_cfg"])
    text["context_length"] = min(text.get("context_length", 77), config.context_length)
    return CLIPTextCfg(**text), model_cfg["embed_dim"]


@lru_cache(maxsize=4)
def _tokenizer(context_length: int):
    """open_clip's BPE tokenizer (vocabulary ships with the package); building it takes seconds,
    so one per process."""
    from open_clip.tokenizer import SimpleTokenizer

    return SimpleTokenizer(context_length=context_length)


class TextEncoder(nn.Module):
    """Frozen text tower. `encode(captions)` -> (tokens (B, L, width), mask (B, L) bool)."""

    def __init__(self, config: TextConfig) -> None:
        super().__init__()
        from open_clip.model import _build_text_tower

        text_cfg, embed_dim = _text_cfg(config)
        text_cfg.output_tokens = True
        self.config = config
        self.context_length = text_cfg.context_length
        self.width = text_cfg.width
        self.tower = _build_text_tower(embed_dim, text_cfg)
        if config.weights_path is not None:
            self.load_weights(Path(config.weights_path))
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> TextEncoder:
        return super().train(False)  # frozen: dropout etc. stay off

    def load_weights(self, path: Path) -> None:
        """The text keys of a local open_clip checkpoint in safetensors format (never unpickled)."""
        from model.weights_file import WeightsFileError, load_state_dict

        try:
            state = load_state_dict(path)
        except WeightsFileError as error:
            raise ModelError(f"text.weights_path={error.message}", hint=error.hint) from None
        text_state = {key: value for key, value in state.items() if key.startswith(_TEXT_PREFIXES)}
        missing, _ = self.tower.load_state_dict(text_state, strict=False)
        missing = [key for key in missing if key != "attn_mask"]
        if missing:
            raise ModelError(f"text.weights_path={path}: missing text keys {missing[:3]}...; "
                            f"the checkpoint does not match text.model_name={self.config.model_name!r}")

    def tokenize(self, captions: list[str]) -> torch.Tensor:
        return _tokenizer(self.context_length)(captions, context_length=self.context_length)

    @torch.no_grad()
    def encode(self, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        device = self.tower.token_embedding.weight.device
        tokens = self.tokenize(list(captions)).to(device)
        _, embeddings = self.tower(tokens)
        return embeddings.float(), tokens != 0
