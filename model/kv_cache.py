"""Key/value cache for chunk-by-chunk rollouts: an attention sink plus a rolling window.

Keys and values are stored per committed chunk, per layer, after RoPE (positions are absolute,
so cached keys never need re-rotation). The first committed chunk is the *sink* and is kept
forever (it anchors the scene, and image-to-video keeps the conditioning image there); after it,
only the last `window_chunks` chunks are kept. Memory therefore stays constant however long the
rollout: (1 + window_chunks) chunks of K/V per layer.

`window_chunks=None` keeps everything (used to check that cached inference equals a full
chunk-causal forward pass).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class KVCache:
    depth: int
    window_chunks: int | None = 4
    # per layer: list of (k, v) per committed chunk; k, v: (B, heads, n_tokens, head_dim)
    _chunks: list[list[tuple[torch.Tensor, torch.Tensor]]] = field(default_factory=list)
    committed_chunks: int = 0

    def __post_init__(self) -> None:
        self._chunks = [[] for _ in range(self.depth)]

    def context(self, layer: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Concatenated (k, v) of the sink and the window for `layer`, or None when empty."""
        chunks = self._chunks[layer]
        if not chunks:
            return None
        if len(chunks) == 1:
            return chunks[0]
        return torch.cat([k for k, _ in chunks], dim=2), torch.cat([v for _, v in chunks], dim=2)

    def commit(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> None:
        """Store one chunk's K/V for `layer` and evict the oldest non-sink chunk beyond the window."""
        chunks = self._chunks[layer]
        chunks.append((k.detach(), v.detach()))
        if self.window_chunks is not None and len(chunks) > 1 + self.window_chunks:
            del chunks[1]  # chunks[0] is the sink
        if layer == self.depth - 1:
            self.committed_chunks += 1

    def cached_tokens(self) -> int:
        chunks = self._chunks[0]
        return sum(k.shape[2] for k, _ in chunks)

    def nbytes(self) -> int:
        return sum(k.numel() * k.element_size() + v.numel() * v.element_size()
                   for layer in self._chunks for k, v in layer)
