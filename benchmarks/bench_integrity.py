"""What laziness buys and what integrity costs, each against a baseline in the same process.

    .venv/bin/python benchmarks/bench_integrity.py [--clips 2000] [--dataset DIR]

1. Time to the first clip task: `plan_manifests` + the first task of `iter_tasks` (lazy) vs
   resolving every clip of the same manifest up front (the old eager expansion), for a manifest of
   `--clips` clips; plus the lazy time for a manifest at the schema maximum (1 000 000 clips),
   where the eager way would take ~1 ms per clip.
2. Reading a dataset's samples with their member sha256 checked against the index vs reading the
   same samples without the check (the training loader's and verify's overhead). `--dataset`
   defaults to a small dataset written here with `ShardWriter` (random bytes, 64 samples of 1 MB).
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from itertools import islice
from pathlib import Path

import yaml

QUICKSTART = Path(__file__).resolve().parents[1] / "manifests" / "examples" / "quickstart.yaml"


def manifest_with(folder: Path, clips: int) -> Path:
    data = yaml.safe_load(QUICKSTART.read_text())
    per_scene = clips // len(data["scenes"])
    for scene in data["scenes"]:
        scene["clips"] = per_scene
    path = folder / f"bench_{clips}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def first_task_lazy(path: Path) -> float:
    from pipeline.generate.tasks import iter_tasks, plan_manifests

    started = time.perf_counter()
    next(iter(iter_tasks(plan_manifests([path]))))
    return time.perf_counter() - started


def first_task_eager(path: Path) -> float:
    from contract.manifest import resolve_manifest

    started = time.perf_counter()
    clips = sorted(resolve_manifest(path).clips, key=lambda clip: clip["key"])
    assert clips
    return time.perf_counter() - started


def sample_dataset(folder: Path, samples: int = 64, size: int = 1_000_000) -> Path:
    from pipeline.shards import DatasetLayout, ShardWriter, write_index

    layout = DatasetLayout(folder)
    writer = ShardWriter(layout, max_bytes=16_000_000)
    rows = []
    for index in range(samples):
        key = f"bench_{index:05d}"
        shard = writer.write(key, {"mp4": os.urandom(size), "json": b"{}"})
        rows.append({"key": key, "status": "kept", "shard": shard, "member_sha256": dict(writer.last_member_sha256)})
    writer.close()
    write_index(layout.index_path, rows)
    return folder


def read_all(dataset: Path, *, check: bool) -> tuple[float, int]:
    from pipeline.shards import DatasetLayout, decode_digests, read_index, read_tar_samples, sample_matches

    layout = DatasetLayout(dataset)
    digests = {}
    if check:
        index = read_index(layout.index_path)
        digests = {k: decode_digests(v) for k, v in zip(index["key"], index["member_sha256"])}
    started = time.perf_counter()
    count = 0
    for shard in layout.complete_shards():
        for key, members in read_tar_samples(shard):
            if check:
                assert sample_matches(members, digests.get(key)) is None
            count += 1
    return time.perf_counter() - started, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=2000)
    parser.add_argument("--dataset", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        first_task_lazy(manifest_with(folder, 4))  # imports and pydantic warm-up out of the timings
        small = manifest_with(folder, args.clips)
        eager = first_task_eager(small)
        lazy = first_task_lazy(small)
        million = first_task_lazy(manifest_with(folder, 1_000_000))
        print(f"first task, {args.clips} clips: eager {eager:.2f} s, lazy {lazy:.3f} s, ratio {eager / lazy:.0f}x")
        print(f"first task, 1000000 clips: lazy {million:.2f} s "
              f"(eager extrapolated: {eager / args.clips * 1_000_000:.0f} s)")
        dataset = args.dataset or sample_dataset(folder / "ds")
        read_all(dataset, check=False)  # page cache warm
        plain, count = min(read_all(dataset, check=False) for _ in range(3))
        checked, _ = min(read_all(dataset, check=True) for _ in range(3))
        print(f"reading {count} samples: plain {plain:.3f} s, with member sha256 checked {checked:.3f} s, "
              f"ratio {checked / plain:.2f}x")


if __name__ == "__main__":
    main()
