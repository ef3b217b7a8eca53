"""Key/value cache for chunk-by-chunk rollouts: an attention sink plus a rolling window.

Keys and values are stored per committed chunk, per layer, after RoPE. The first committed chunk
is the *sink* and is kept forever (it anchors the scene, and image-to-video keeps the
conditioning image there); after it, only the last `window_chunks` chunks are kept. Memory
therefore stays constant however long the rollout: (1 + window_chunks) chunks of K/V per layer.

Time positions are *cache-relative*, not absolute: the sink sits at positions 0.., each kept
chunk right after the one before it, and the next chunk right after the last kept one. When a
chunk is evicted, the keys of the chunks after it are rotated back by its frame count (RoPE
rotations compose: R(p - n) = R(-n) R(p)), so the largest position ever used is
sink + window + one chunk, whatever the rollout length. A model trained on windows of that many
latent frames therefore never sees a time position it was not trained on (the sampler sizes the
window from the training clip; model/sampler.py). Without eviction (`window_chunks=None`)
positions equal absolute latent indices, so cached inference equals a full forward pass.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from model.rope import apply_rope, rope_angles


@dataclass
class KVCache:
    depth: int
    window_chunks: int | None = 4
    # per layer: list of (k, v) per committed chunk; k, v: (B, heads, n_tokens, head_dim)
    _chunks: list[list[tuple[torch.Tensor, torch.Tensor]]] = field(default_factory=list)
    # latent frames of each kept chunk (same for every layer once a chunk is fully committed)
    _frames: list[int] = field(default_factory=list)
    committed_chunks: int = 0
    # set by the model before a committing forward: frames of the chunk being committed
    pending_frames: int | None = None
    _rope: tuple[int, float] | None = None  # (head_dim, theta) to re-rotate keys on eviction

    def __post_init__(self) -> None:
        self._chunks = [[] for _ in range(self.depth)]
        self._frames = []

    def set_rope(self, head_dim: int, theta: float) -> None:
        self._rope = (head_dim, theta)

    def next_position(self) -> int:
        """Time position of the next chunk's first latent frame: right after the kept frames."""
        return sum(self._frames)

    def frame_positions(self) -> list[int]:
        """Time positions of the cached latent frames (sink first), as the keys carry them."""
        return list(range(self.next_position()))

    def context(self, layer: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Concatenated (k, v) of the sink and the window for `layer`, or None when empty."""
        chunks = self._chunks[layer]
        if not chunks:
            return None
        if len(chunks) == 1:
            return chunks[0]
        return torch.cat([k for k, _ in chunks], dim=2), torch.cat([v for _, v in chunks], dim=2)

    def commit(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> None:
        """Store one chunk's K/V for `layer` and evict the oldest non-sink chunk beyond the window
        (re-rotating the keys after it, so positions stay contiguous)."""
        chunks = self._chunks[layer]
        chunks.append((k.detach(), v.detach()))
        frames = self._frame_list_for(layer)
        if self.window_chunks is not None and len(chunks) > 1 + self.window_chunks:
            evicted = frames[1]
            del chunks[1]  # chunks[0] is the sink
            for i in range(1, len(chunks)):
                chunks[i] = (self._shift_time(chunks[i][0], -evicted), chunks[i][1])
            if layer == self.depth - 1:
                del self._frames[1]
        if layer == self.depth - 1:
            self.committed_chunks += 1
            self.pending_frames = None

    def _frame_list_for(self, layer: int) -> list[int]:
        """Frame counts of `layer`'s chunks (the new one included); recorded once, at layer 0."""
        if layer == 0:
            if self.pending_frames is None:
                raise RuntimeError("KVCache.commit: the model must set pending_frames before committing")
            self._frames.append(self.pending_frames)
        return self._frames

    def _shift_time(self, k: torch.Tensor, delta: int) -> torch.Tensor:
        """Rotate keys (B, heads, n, dh) by `delta` time positions (spatial positions unchanged)."""
        if self._rope is None:
            raise RuntimeError("KVCache: set_rope must be called before keys can be re-positioned")
        head_dim, theta = self._rope
        offset = torch.tensor([[delta, 0, 0]], device=k.device)
        cos, sin = rope_angles(offset, head_dim, theta)  # (1, dh/2): broadcast over the tokens
        return apply_rope(k, cos, sin)

    def cached_tokens(self) -> int:
        chunks = self._chunks[0]
        return sum(k.shape[2] for k, _ in chunks)

    def nbytes(self) -> int:
        return sum(k.numel() * k.element_size() + v.numel() * v.element_size()
                   for layer in self._chunks for k, v in layer)
