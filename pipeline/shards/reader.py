"""Read a dataset's samples back without WebDataset (used by inspect, verify and tests)."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pipeline.shards.layout import DatasetLayout
from pipeline.shards.members import decode_member
from pipeline.shards.writer import read_tar_samples


def iter_samples(dataset: Path | str, *, decode: bool = True, keys: set[str] | None = None) -> Iterator[dict[str, Any]]:
    """Yield `{"__key__", "__shard__", <extension>: value}` for every sample in shard order.

    With `decode`, `.json` becomes a dict, `.npy` an array, `.npz` a dict of arrays; `mp4`
    stays bytes (decode it with `pipeline.encode.decode_mp4`). Every key is a checked plain
    name; a damaged shard raises `DamagedShard` (a one-line user error naming it).
    """
    layout = DatasetLayout(Path(dataset))
    for shard in layout.complete_shards():
        for key, members in read_tar_samples(shard, keys=keys):
            sample: dict[str, Any] = {"__key__": key, "__shard__": f"shards/{shard.name}"}
            for extension, data in members.items():
                sample[extension] = decode_member(extension, data) if decode else data
            yield sample
