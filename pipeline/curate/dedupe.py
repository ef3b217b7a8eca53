"""Near-duplicate removal by CLIP embedding across the whole dataset.

Greedy and deterministic: clips are visited sharpest first (ties by key), so of a set of
copies (the same footage at different bitrates, re-uploads) the best-looking one survives.
A clip whose cosine similarity to any already-kept clip is >= `threshold` is a duplicate of
the most similar kept clip. Every clip gets `duplicate_similarity` (its highest cosine to a
kept clip visited before it), so the threshold can be changed later with `select`.

Cost is O(N x K) dot products in blocks, fine for the ~10^5 clips a workstation curates; past
that, cluster first (k-means, as Cosmos-Curate does) and dedupe inside clusters.

Threshold: 0.98 (Open-Sora) to 0.99 (Cosmos) for trained CLIP weights. Random-initialised
weights (tests, offline smoke runs) embed every image within ~0.01 of the others, so they
need a far tighter threshold (0.999); see docs/curate.md and tests/test_curate_dedupe.py.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DedupeItem:
    key: str
    embedding: np.ndarray   # (D,) L2-normalised
    sharpness: float


@dataclass(frozen=True)
class DedupeDecision:
    key: str
    duplicate_of: str | None     # None: kept
    similarity: float            # highest cosine to an earlier kept clip (0 if none)


def dedupe(items: list[DedupeItem], threshold: float) -> dict[str, DedupeDecision]:
    ordered = sorted(items, key=lambda item: (-item.sharpness, item.key))
    if not ordered:
        return {}
    dim = ordered[0].embedding.shape[0]
    kept = np.zeros((len(ordered), dim), np.float32)
    kept_keys: list[str] = []
    decisions: dict[str, DedupeDecision] = {}
    for item in ordered:
        vector = item.embedding.astype(np.float32)
        vector = vector / max(float(np.linalg.norm(vector)), 1e-12)
        if kept_keys:
            similarities = kept[: len(kept_keys)] @ vector
            best = int(np.argmax(similarities))
            best_similarity = float(similarities[best])
        else:
            best, best_similarity = -1, 0.0
        if best >= 0 and best_similarity >= threshold:
            decisions[item.key] = DedupeDecision(item.key, kept_keys[best], best_similarity)
        else:
            kept[len(kept_keys)] = vector
            kept_keys.append(item.key)
            decisions[item.key] = DedupeDecision(item.key, None, best_similarity)
    return decisions
