"""Near-duplicate removal: the threshold is checked against truly different clips with the
same random-initialised CLIP model the pipeline uses when no weights are given."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_curate_helpers import segment_frames, small_config  # noqa: E402

from pipeline.curate.config import RANDOM_INIT_DEDUPE_THRESHOLD, DedupeConfig
from pipeline.curate.dedupe import DedupeItem, dedupe
from pipeline.encode import EncodeSettings, decode_mp4, encode_mp4


@pytest.fixture(scope="module")
def embedder():
    from pipeline.embed import ClipEmbedder, EmbedSettings

    return ClipEmbedder(EmbedSettings(frames=small_config().scores.frames_sampled, seed=0))  # as the pipeline tests


def _real_clips(folder: Path) -> list[np.ndarray]:
    from pipeline.curate.video import iter_frames

    clips = []
    for name, picks in [("issue-134-rotate.mp4", range(100, 200, 10)), ("issue-236-split-copy.mkv", range(20, 48, 3)),
                        ("fades.mp4", range(20, 70, 5))]:
        frames = [d.frame.to_ndarray(format="rgb24", width=160, height=96) for d in iter_frames(str(folder / name)) if d.index in picks]
        clips.append(np.stack(frames))
    return clips


def test_threshold_separates_bitrate_copies_from_different_clips(embedder, realfootage):
    different = [segment_frames(seed, 12) for seed in range(2)] + _real_clips(realfootage)
    vectors = np.stack([embedder.embed_clip(c) for c in different])
    similarity = vectors @ vectors.T
    np.fill_diagonal(similarity, -1.0)
    worst_different = float(similarity.max())
    copies = []
    for clip in different[1:4]:      # one procedural, two real
        low = decode_mp4(encode_mp4(clip, 24.0, EncodeSettings(crf=36)))
        high = decode_mp4(encode_mp4(clip, 24.0, EncodeSettings(crf=18)))
        copies.append(float(embedder.embed_clip(low) @ embedder.embed_clip(high)))
    worst_copy = min(copies)
    threshold = DedupeConfig().effective_threshold(trained_weights=False)
    assert threshold == RANDOM_INIT_DEDUPE_THRESHOLD
    assert worst_different < threshold <= worst_copy, (worst_different, threshold, worst_copy)
    # and the default for trained weights would be far too loose for random ones: say so in docs
    assert DedupeConfig().effective_threshold(trained_weights=True) == 0.98


def test_greedy_dedupe_keeps_the_sharpest_copy_and_is_order_free():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(3, 16)).astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    near = base[0] + 0.001 * rng.normal(size=16).astype(np.float32)
    items = [DedupeItem("a_low", near / np.linalg.norm(near), sharpness=10.0),
             DedupeItem("a_high", base[0], sharpness=50.0),
             DedupeItem("b", base[1], sharpness=5.0), DedupeItem("c", base[2], sharpness=1.0)]
    decisions = dedupe(items, threshold=0.999)
    assert decisions["a_low"].duplicate_of == "a_high" and decisions["a_low"].similarity > 0.999
    assert all(decisions[k].duplicate_of is None for k in ("a_high", "b", "c"))
    assert dedupe(list(reversed(items)), threshold=0.999) == decisions
