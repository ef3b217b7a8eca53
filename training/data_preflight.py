"""Before any worker starts: how many clips give a window, in total and per rank (from the indexes).

Why: a rank whose share holds no clip long enough for the window would skip forever while the
other ranks wait for it in DDP; the trainer runs `window_preflight` on the driver and refuses
such a run in one line.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from training.data_discovery import index_file, resolve_shards
from training.data_errors import DataStarved
from training.data_readers import reader_shards
from training.data_windows import WindowSpec, window_fits


@dataclass
class DataPreflight:
    """How many clips can give a window, in total and per rank (from the datasets' indexes)."""

    clips: int = 0
    usable: int = 0
    per_rank: list[int] = field(default_factory=list)       # usable clips each rank reads in the first epoch
    unchecked: list[str] = field(default_factory=list)      # sources without an index (not counted)
    upscaled: int = 0                                       # usable clips smaller than the window's resolution

    def summary(self, spec: WindowSpec) -> str:
        text = (f"data: {self.usable} of {self.clips} clips are long enough for a window of {spec.frames} frames at "
                f"{spec.fps:g} fps; per rank {self.per_rank}")
        if self.upscaled:
            text += f"; {self.upscaled} are smaller than {spec.width}x{spec.height} and will be upscaled"
        if self.unchecked:
            text += f"; not checked (no index.parquet): {', '.join(self.unchecked)}"
        return text


def tar_keys(url: str) -> list[str]:
    """Sample keys of a tar in order, from its headers (no member is read)."""
    import tarfile

    keys: list[str] = []
    try:
        with tarfile.open(url, mode="r:") as archive:
            for member in archive:
                key = member.name.split(".", 1)[0]
                if member.isfile() and (not keys or keys[-1] != key):
                    keys.append(key)
    except (tarfile.TarError, OSError, EOFError):
        pass  # damaged: the loader skips it; counted as no usable clips here
    return keys


def window_preflight(sources: list[tuple[str, float]], spec: WindowSpec, *, world_size: int, loader_workers: int,
                     seed: int) -> DataPreflight:
    """Count the clips that fit the window, in total and per rank, before any worker starts.

    Uses each source's index.parquet (frames, fps, width, height of kept clips) and the same
    shard/sample split as the loader, for the first epoch. Raises `DataStarved` (one line) when
    a rank would get no usable clip from any source: it would otherwise skip forever while the
    other ranks wait for it in DDP.
    """
    import pyarrow.parquet as pq

    report = DataPreflight(per_rank=[0] * world_size)
    num_workers = max(1, loader_workers)
    reader_usable = {(rank, worker): 0 for rank in range(world_size) for worker in range(num_workers)}
    for number, (path, _) in enumerate(sources):
        shards = resolve_shards(path)
        first = shards[0].removeprefix("file://") if shards else ""
        index = index_file(first) if shards and "://" not in first else None
        if index is None:
            report.unchecked.append(path)
            for reader in reader_usable:
                reader_usable[reader] += 1  # unknown: never refuse on a source we cannot see
            continue
        table = pq.read_table(index, columns=["key", "status", "shard", "frames", "fps", "width", "height"]).to_pydict()
        fits: dict[str, bool] = {}
        by_shard: dict[str, list[str]] = {}
        for key, status, shard, frames, fps, width, height in zip(*(table[c] for c in (
                "key", "status", "shard", "frames", "fps", "width", "height")), strict=True):
            if status != "kept":
                continue
            ok = window_fits(int(frames), float(fps), spec)
            fits[key] = ok
            by_shard.setdefault(os.path.basename(shard), []).append(key)
            report.clips += 1
            if ok:
                report.usable += 1
                report.upscaled += int(width < spec.width or height < spec.height)
        for rank in range(world_size):
            for worker in range(num_workers):
                urls, offset = reader_shards(shards, number, seed, 0, rank, world_size, worker, num_workers)
                if offset is None:
                    count = sum(fits.get(key, False) for url in urls for key in by_shard.get(os.path.basename(url), []))
                else:
                    stream = [key for url in urls for key in tar_keys(url.removeprefix("file://"))]
                    count = sum(fits.get(key, False) for key in stream[offset::world_size * num_workers])
                reader_usable[(rank, worker)] += count
                report.per_rank[rank] += count
    starved = sorted(reader for reader, count in reader_usable.items() if count == 0)
    if starved:
        rank, worker = starved[0]
        where = f"rank {rank}" + (f" (loader worker {worker})" if loader_workers > 1 else "")
        raise DataStarved(
            f"{', '.join(p for p, _ in sources)}: {where} would get no clip long enough for a window of {spec.frames} "
            f"frames at {spec.fps:g} fps ({report.usable} of {report.clips} clips fit; per rank {report.per_rank})",
            hint="lower data.frames or data.fps, use fewer workers (--num-workers), or add longer clips")
    return report
