"""Loader throughput vs a raw decord loop over the same shards (same windows, same process).

    .venv/bin/python benchmarks/bench_loader.py [--data DATASET] [--windows 200]

Baseline: iterate the tars, open each mp4 with decord, decode the same window (frames/stride).
Loader:   training.data.make_loader (tar streaming, shuffle buffer, window plan, decode, alignment
          of poses/actions/intrinsics, collation), batch 4, no DataLoader processes.
Prints windows/s for both and the ratio loader / raw (aim: >= 0.9): best against best, and the
median of the ratios of back-to-back pairs (more robust when other jobs share the cores).
"""
from __future__ import annotations

import argparse
import io
import json
import sys
import tarfile
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import decord  # noqa: E402

from training.data import WindowSpec, make_loader, resolve_shards  # noqa: E402
from training.testing import write_pattern_shards  # noqa: E402


def raw_decord(shards: list[str], spec: WindowSpec, windows: int) -> float:
    done, started = 0, time.perf_counter()
    while done < windows:
        for shard in shards:
            with tarfile.open(shard) as tar:
                members: dict[str, dict[str, bytes]] = {}
                for member in tar:
                    key, _, extension = member.name.partition(".")
                    members.setdefault(key, {})[extension] = tar.extractfile(member).read()
            for sample in members.values():
                meta = json.loads(sample["json"])
                stride = max(1, round(float(meta["fps"]) / spec.fps))
                reader = decord.VideoReader(io.BytesIO(sample["mp4"]), num_threads=1)
                start = (len(reader) - (spec.frames - 1) * stride - 1) // 2
                reader.get_batch([start + k * stride for k in range(spec.frames)]).asnumpy()
                done += 1
                if done == windows:
                    break
            if done == windows:
                break
    return windows / (time.perf_counter() - started)


def loader_rate(data: str, spec: WindowSpec, windows: int, batch_size: int = 4) -> float:
    handle = make_loader([(data, 1.0)], spec, batch_size=batch_size, seed=0, rank=0, world_size=1,
                         shuffle_buffer=16, loader_workers=0)
    handle.next_batch()  # first batch fills the shuffle buffer: not steady state
    started = time.perf_counter()
    for _ in range(windows // batch_size):
        handle.next_batch()
    return (windows // batch_size) * batch_size / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=None, help="dataset folder (default: synthetic pattern shards, 128x128)")
    parser.add_argument("--windows", type=int, default=200)
    parser.add_argument("--frames", type=int, default=9)
    parser.add_argument("--fps", type=float, default=8)
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs; the best of each is reported")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        data = args.data or str(write_pattern_shards(Path(folder), num_shards=4, clips_per_shard=16, frames=48,
                                                     height=128, width=128, fps=8))
        shards = resolve_shards(data)
        first = json.loads(_first_json(shards[0]))
        spec = WindowSpec(args.frames, args.fps, int(first["height"]), int(first["width"]))  # no resize: same work
        raw_decord(shards, spec, 16)  # warm the page cache and decord
        raws, ourses = [], []
        for _ in range(args.repeats):  # interleaved: the machine is shared, load drifts
            raws.append(raw_decord(shards, spec, args.windows))
            ourses.append(loader_rate(data, spec, args.windows))
        raw, ours = max(raws), max(ourses)
        pair_ratios = sorted(o / r for o, r in zip(ourses, raws))
    print(f"window {spec.frames} frames @ {spec.fps:g} fps, {spec.height}x{spec.width}, {len(shards)} shards")
    print(f"raw decord loop : {raw:8.1f} windows/s  (best of {args.repeats}: {', '.join(f'{r:.0f}' for r in raws)})")
    print(f"training loader : {ours:8.1f} windows/s  (best of {args.repeats}: {', '.join(f'{r:.0f}' for r in ourses)})")
    print(f"ratio loader/raw: {ours / raw:.2f} best/best, {pair_ratios[len(pair_ratios) // 2]:.2f} median of "
          f"back-to-back pairs (aim >= 0.9)")


def _first_json(shard: str) -> bytes:
    with tarfile.open(shard) as tar:
        for member in tar:
            if member.name.endswith(".json"):
                return tar.extractfile(member).read()
    raise SystemExit(f"{shard}: no json member")


if __name__ == "__main__":
    main()
