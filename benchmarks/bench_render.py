"""Render throughput in-process vs over gRPC: what the transport costs.

    .venv/bin/python benchmarks/bench_render.py [--manifest manifests/examples/quickstart.yaml]
        [--frames-small 48] [--frames-large 12]

For each resolution (320x180 and 1280x720, passes rgb + depth) it measures

1. in-process: `ProceduralBackend.open(clip)` + `frames(0, T)` in this process (the baseline);
2. over gRPC: a real `worldloom render-server` subprocess on loopback and `RenderClient.render_clip`
   (OpenSession + streamed, chunked, hashed, reassembled frames + CloseSession);

and prints frames/s for both and the ratio grpc / in-process (1.0 = the transport is free).
Both sides include the world build so that they do the same work; the render-only rate
(frames after the first, timed by frame arrival) is printed too.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402


def resolved_clip(manifest_path: Path, width: int, height: int, frames: int) -> dict:
    """The manifest's first clip, at another resolution and length (at least its action string's length)."""
    from pipeline.manifest import resolve_manifest

    data = yaml.safe_load(manifest_path.read_text())
    data["output"].update(width=width, height=height, frames=frames)
    data["passes"] = ["rgb", "depth"]
    return resolve_manifest(yaml.safe_dump(data, sort_keys=False)).clips[0]


def bench_inprocess(clip: dict) -> tuple[float, float]:
    """(frames/s including world build, frames/s of frames after the first)."""
    from unreal_bridge.procedural import ProceduralBackend

    backend = ProceduralBackend()
    frames = clip["output"]["frames"]
    backend.open(clip)  # warm-up: first-use costs (shader-free TinyRenderer, pybullet data) off the clock
    for _frame in backend.frames(0, 2, passes=clip["passes"]):
        pass
    backend.close()
    begin = time.perf_counter()
    backend.open(clip)
    stamps = []
    for _frame in backend.frames(0, frames, passes=clip["passes"]):
        stamps.append(time.perf_counter())
    backend.close()
    return frames / (stamps[-1] - begin), (frames - 1) / (stamps[-1] - stamps[0])


def bench_grpc(clip: dict, address: str) -> tuple[float, float]:
    from unreal_bridge.client import RenderClient

    frames = clip["output"]["frames"]
    stamps: list[float] = []
    with RenderClient(address) as client:
        client.server_info()  # connect outside the timed region, as a long-running client would be
        begin = time.perf_counter()
        rendered = client.render_clip(clip, on_frame=lambda _index: stamps.append(time.perf_counter()))
    assert rendered.frame_count == frames
    return frames / (stamps[-1] - begin), (frames - 1) / (stamps[-1] - stamps[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", type=Path, default=REPO_ROOT / "manifests" / "examples" / "quickstart.yaml")
    parser.add_argument("--frames-small", type=int, default=48, help="frames at 320x180")
    parser.add_argument("--frames-large", type=int, default=16, help="frames at 1280x720")
    args = parser.parse_args()

    from unreal_bridge.launch import ProceduralServer

    console = Console()
    table = Table(title=f"render throughput, {args.manifest.name}, passes rgb+depth ({os.cpu_count()} cores)")
    for column in ("resolution", "frames", "in-process fps", "gRPC fps", "ratio gRPC/in-process", "render-only in-process", "render-only gRPC", "ratio render-only"):
        table.add_column(column, justify="right")
    with ProceduralServer() as server:
        for width, height, frames in ((320, 180, args.frames_small), (1280, 720, args.frames_large)):
            clip = resolved_clip(args.manifest, width, height, frames)
            with console.status(f"{width}x{height}: in-process"):
                local_total, local_render = bench_inprocess(clip)
            with console.status(f"{width}x{height}: over gRPC at {server.address}"):
                remote_total, remote_render = bench_grpc(clip, server.address)
            table.add_row(
                f"{width}x{height}", str(frames),
                f"{local_total:.1f}", f"{remote_total:.1f}", f"{remote_total / local_total:.2f}",
                f"{local_render:.1f}", f"{remote_render:.1f}", f"{remote_render / local_render:.2f}",
            )
            print(f"{width}x{height}: in-process {local_total:.2f} fps, gRPC {remote_total:.2f} fps, "
                  f"ratio {remote_total / local_total:.3f} (render-only ratio {remote_render / local_render:.3f})", flush=True)
    console.print(table)


if __name__ == "__main__":
    main()
