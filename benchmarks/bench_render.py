"""Render throughput in-process vs over gRPC: what the transport costs.

    .venv/bin/python benchmarks/bench_render.py [--manifest manifests/examples/quickstart.yaml]
        [--frames-small 48] [--frames-large 8] [--rounds 2]

For each resolution (320x180 and 1280x720, passes rgb + depth) it measures

1. in-process: `ProceduralBackend.open(clip)` + `frames(0, T)` in this process (the baseline);
2. over gRPC: a real `worldloom render-server` subprocess on loopback and `RenderClient.render_clip`
   (OpenSession + streamed, chunked, hashed, reassembled frames + CloseSession);

Both sides include the world build so that they do the same work. Two ratios are printed:

- wall-clock fps gRPC / in-process: what a user sees. On an idle machine it is <= 1; on a
  loaded machine it can exceed 1, because server and client are two processes that get two
  shares of the CPU (and overlap rendering with decoding) while the baseline gets one.
- CPU-normalised: frames per CPU-second, gRPC (server + client CPU) / in-process. This is the
  transport's real cost (encode, hash, chunk, send, receive, verify, copy) and is stable
  under load: 1.0 = free, 0.9 = the transport adds 11 % CPU per frame.

Rounds alternate in-process and gRPC and the best of each side counts, because the machine is
shared and its load changes during a run.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import psutil  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402


@dataclass
class Measurement:
    frames: int
    wall_s: float  # open + all frames
    cpu_s: float  # CPU seconds spent on it (server + client for gRPC)

    @property
    def fps(self) -> float:
        return self.frames / self.wall_s

    @property
    def frames_per_cpu_s(self) -> float:
        return self.frames / self.cpu_s


def resolved_clip(manifest_path: Path, width: int, height: int, frames: int) -> dict:
    """The manifest's first clip at another resolution and length, walking forward."""
    from contract.manifest import resolve_manifest

    data = yaml.safe_load(manifest_path.read_text())
    data["output"].update(width=width, height=height, frames=frames)
    data["passes"] = ["rgb", "depth"]
    # walk forward for the whole clip, so any length is valid whatever the example's script is
    data["scenes"][0]["motion"] = {"policy": "scripted", "actions": f"w-{frames}", "speed_mps": 1.4}
    return resolve_manifest(yaml.safe_dump(data, sort_keys=False)).clips[0]


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def bench_inprocess(clip: dict) -> Measurement:
    from unreal_bridge.procedural import ProceduralBackend

    backend = ProceduralBackend()
    frames = clip["output"]["frames"]
    backend.open(clip)  # warm-up: first-use costs off the clock, as in the long-running server
    for _frame in backend.frames(0, 2, passes=clip["passes"]):
        pass
    backend.close()
    me = psutil.Process()
    cpu0, begin = _cpu(me), time.perf_counter()
    backend.open(clip)
    for _frame in backend.frames(0, frames, passes=clip["passes"]):
        pass
    backend.close()
    return Measurement(frames, time.perf_counter() - begin, _cpu(me) - cpu0)


def bench_grpc(clip: dict, address: str, server_pid: int) -> Measurement:
    from unreal_bridge.client import RenderClient

    frames = clip["output"]["frames"]
    me, server = psutil.Process(), psutil.Process(server_pid)
    with RenderClient(address) as client:
        client.server_info()  # connect outside the timed region, as a long-running client would be
        cpu0, begin = _cpu(me) + _cpu(server), time.perf_counter()
        rendered = client.render_clip(clip)
        wall = time.perf_counter() - begin
        cpu = _cpu(me) + _cpu(server) - cpu0
    assert rendered.frame_count == frames
    return Measurement(frames, wall, cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", type=Path, default=REPO_ROOT / "manifests" / "examples" / "quickstart.yaml")
    parser.add_argument("--frames-small", type=int, default=48, help="frames at 320x180")
    parser.add_argument("--frames-large", type=int, default=8, help="frames at 1280x720")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds; the best of each side counts")
    args = parser.parse_args()

    from unreal_bridge.launch import ProceduralServer

    console = Console()
    load = os.getloadavg()[0]
    table = Table(title=f"render throughput: {args.manifest.name}, rgb+depth, {os.cpu_count()} cores, load {load:.1f}")
    for column in ("resolution", "frames", "in-proc fps", "gRPC fps", "wall ratio", "in-proc f/CPU-s", "gRPC f/CPU-s", "CPU ratio"):
        table.add_column(column, justify="right")
    with ProceduralServer() as server:
        for width, height, frames in ((320, 180, args.frames_small), (1280, 720, args.frames_large)):
            clip = resolved_clip(args.manifest, width, height, frames)
            local: list[Measurement] = []
            remote: list[Measurement] = []
            for round_index in range(args.rounds):  # alternate so load changes hit both sides alike
                with console.status(f"{width}x{height} round {round_index + 1}: in-process"):
                    local.append(bench_inprocess(clip))
                with console.status(f"{width}x{height} round {round_index + 1}: over gRPC at {server.address}"):
                    remote.append(bench_grpc(clip, server.address, server.pid))
            fps_local, fps_remote = max(m.fps for m in local), max(m.fps for m in remote)
            cpu_local = max(m.frames_per_cpu_s for m in local)
            cpu_remote = max(m.frames_per_cpu_s for m in remote)
            table.add_row(
                f"{width}x{height}", str(frames), f"{fps_local:.2f}", f"{fps_remote:.2f}", f"{fps_remote / fps_local:.2f}",
                f"{cpu_local:.2f}", f"{cpu_remote:.2f}", f"{cpu_remote / cpu_local:.3f}",
            )
            print(
                f"{width}x{height} x{frames}: in-process {fps_local:.2f} fps, gRPC {fps_remote:.2f} fps, "
                f"wall ratio {fps_remote / fps_local:.3f}; CPU-normalised ratio (transport cost) {cpu_remote / cpu_local:.3f}",
                flush=True,
            )
    console.print(table)
    print(f"load average during the run: {' '.join(f'{value:.1f}' for value in os.getloadavg())} (1/5/15 min)")


if __name__ == "__main__":
    main()
