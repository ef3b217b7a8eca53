"""The shard loader on real tars with real H.264 clips: windows, alignment, splitting, mixing, resume."""
from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from contract.errors import UserError
from training.data import (
    ClipWindows,
    DataPosition,
    WindowSpec,
    align_actions,
    crop_resize_intrinsics,
    make_loader,
    resolve_shards,
    window_indices,
)
from training.testing import pattern_clip, write_pattern_shards

FRAMES, SIZE, FPS = 24, 32, 8


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_pattern_shards(tmp_path_factory.mktemp("pattern"), num_shards=2, clips_per_shard=4,
                                frames=FRAMES, height=SIZE, width=SIZE, fps=FPS)


@pytest.fixture(scope="module")
def other_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_pattern_shards(tmp_path_factory.mktemp("other"), num_shards=1, clips_per_shard=4,
                                frames=FRAMES, height=SIZE, width=SIZE, fps=FPS, prefix="other")


def loader(sources, spec=WindowSpec(5, 4, SIZE, SIZE), **kwargs):
    options = dict(batch_size=2, seed=0, rank=0, world_size=1, shuffle_buffer=4, loader_workers=0)
    options.update(kwargs)
    return make_loader([(str(s), w) for s, w in sources], spec, **options)


def test_window_frames_poses_and_actions_are_aligned(shards: Path) -> None:
    batch = loader([(shards, 1.0)]).next_batch()
    for row in range(2):
        index = int(batch["key"][row].rsplit("_", 1)[1])
        start = batch["window_start"][row]
        frames = [start + 2 * k for k in range(5)]  # 8 fps source -> 4 fps window: stride 2
        # poses carry the source frame index in their x translation
        assert batch["poses"][row, :, 0, 3].tolist() == frames
        # the decoded pixels are those source frames (H.264 is lossy: compare loosely)
        expected = pattern_clip(index, FRAMES, SIZE, SIZE)[frames].astype(np.float32)
        decoded = batch["video"][row].numpy().astype(np.float32)
        assert decoded.shape == (5, SIZE, SIZE, 3)
        assert np.abs(decoded - expected).mean() < 6
        # actions: forward pressed on odd frames -> every 2-frame span has it; yaw deltas add up
        yaw = batch["actions"][row, :, 6].tolist()
        assert yaw[1:] == [2.0] * 4 and yaw[0] == (1.0 if start == 0 else 2.0)
        assert batch["actions"][row, 1:, 0].tolist() == [1.0] * 4
        assert "square moving right" in batch["caption"][row]


def test_align_actions_and_window_indices_edges() -> None:
    actions = np.zeros((10, 8), np.float32)
    actions[3, 2] = 1  # left on frame 3 only
    actions[:, 7] = 0.5
    out = align_actions(actions, [0, 4, 8], stride=4)
    assert out[:, 2].tolist() == [0, 1, 0] and out[:, 7].tolist() == [0.5, 2.0, 2.0]
    assert window_indices(8, 8, 5, 4, random.Random(0)) == ([], 2)  # needs 9 source frames
    indices, stride = window_indices(9, 8, 5, 4, random.Random(0))
    assert indices == [0, 2, 4, 6, 8] and stride == 2


def test_intrinsics_follow_crop_and_resize() -> None:
    K = np.array([[40.0, 0, 32], [0, 40, 16], [0, 0, 1]])
    # 32x64 source -> centre crop 32x32 (16 px off the left) -> 16x16
    scaled = crop_resize_intrinsics(K, 32, 64, 16, 16)
    assert np.allclose(scaled, [[20, 0, 8], [0, 20, 8], [0, 0, 1]])


def test_resume_continues_exactly(shards: Path) -> None:
    straight = loader([(shards, 1.0)])
    keys = [(straight.next_batch()["key"]) for _ in range(6)]
    position = straight.position.to_dict()
    assert position["batches"] == 6
    first = loader([(shards, 1.0)])
    for _ in range(3):
        first.next_batch()
    resumed = loader([(shards, 1.0)], position=DataPosition.from_dict(first.position.to_dict()))
    assert [resumed.next_batch()["key"] for _ in range(3)] == keys[3:]


def test_resume_with_loader_processes(shards: Path) -> None:
    straight = loader([(shards, 1.0)], loader_workers=2)
    batches = [straight.next_batch() for _ in range(5)]
    resumed = loader([(shards, 1.0)], loader_workers=2, position=DataPosition(3, 2, 2, 1))
    after = [resumed.next_batch() for _ in range(2)]
    assert [b["key"] for b in after] == [b["key"] for b in batches[3:]]
    assert [b["window_start"] for b in after] == [b["window_start"] for b in batches[3:]]


@pytest.mark.parametrize("num_shards", [1, 2])
def test_ranks_read_disjoint_samples(tmp_path: Path, num_shards: int) -> None:
    """2 shards: split by shard (webdataset split_by_node); 1 shard: split sample by sample."""
    folder = write_pattern_shards(tmp_path, num_shards=num_shards, clips_per_shard=8 // num_shards, frames=10,
                                  height=SIZE, width=SIZE, fps=FPS)
    seen = []
    for rank in range(2):
        dataset = ClipWindows([(resolve_shards(str(folder)), 1.0)], WindowSpec(5, 8, SIZE, SIZE), seed=0, rank=rank,
                              world_size=2, shuffle_buffer=2)
        stream = dataset.samples()
        seen.append({next(stream)["key"] for _ in range(4)})
    assert not seen[0] & seen[1]
    assert len(seen[0] | seen[1]) == 8


def test_sources_are_mixed_by_weight(shards: Path, other_source: Path) -> None:
    dataset = ClipWindows([(resolve_shards(str(shards)), 0.8), (resolve_shards(str(other_source)), 0.2)],
                          WindowSpec(1, 8, SIZE, SIZE), seed=0, rank=0, world_size=1, shuffle_buffer=2)
    stream = dataset.samples()
    counts = Counter(next(stream)["source"] for _ in range(60))
    assert counts[1] > 0 and 0.65 < counts[0] / 60 < 0.95


def test_bad_data_paths_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no such file"):
        resolve_shards(str(tmp_path / "missing"))
    with pytest.raises(UserError, match="no .tar shards"):
        resolve_shards(str(tmp_path))
