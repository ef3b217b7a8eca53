"""What the Unreal bridge's own Python costs, measured on the FAKE editor (no Unreal here).

    .venv/bin/python benchmarks/bench_unreal_bridge.py [--frames 60] [--width 256] [--height 144]

Three numbers, each against a baseline run in the same process:

1. Game-thread marshalling: frames/s of `UnrealBackend.frames()` (gRPC-side generator, a task
   per render, one capture per tick of a fake editor ticking as fast as it can) versus calling
   the same scene capture directly in a loop on one thread. The ratio is the cost of the
   queue + tick design (mostly: one capture per tick waits for the next tick).
2. Read-back conversion: `read_render_target` returns one Python `Color` per pixel; converting
   that list to a (H, W, 3) uint8 array at 640x360 and 1280x720, versus `np.frombuffer` of the
   same bytes. This is a floor on the fast path's per-frame cost in a real editor.
3. The conformance suite against an in-process procedural server: seconds per full check.

Real-editor numbers (capture and GPU read-back) need an editor; see docs/unreal.md.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the fake `unreal` module lives with the tests

from fake_unreal import Color, FakeEditor  # noqa: E402

from unreal_bridge.unreal.backend import UnrealBackend  # noqa: E402
from unreal_bridge.unreal.game_thread import GameThreadExecutor  # noqa: E402
from unreal_bridge.unreal.plan import plan_clip  # noqa: E402
from unreal_bridge.unreal.scene import _rgb_from_colors  # noqa: E402


def probe_clip(frames: int, width: int, height: int) -> dict:
    from pipeline.manifest import load_manifest, resolve_clip

    manifest = f"""
version: 1
name: bench_unreal
seed: 1
renderer: {{backend: unreal}}
output: {{width: {width}, height: {height}, fps: 30, frames: {frames}}}
passes: [rgb, depth]
scenes:
  - name: courtyard
    world: {{level: /Game/Maps/Courtyard}}
    camera: {{rig: first_person, intrinsics: {{fov_deg: 70.0}}}}
    motion: {{policy: scripted, actions: "w-{frames}"}}
"""
    return resolve_clip(load_manifest(manifest), "courtyard", 0)


def bench_marshalling(frames: int, width: int, height: int) -> None:
    clip = probe_clip(frames, width, height)
    with FakeEditor(tick_interval_s=0.0, load_delay_s=0.0) as editor:
        executor = GameThreadExecutor()
        backend = editor.run_on_game_thread(lambda: (executor.install(editor.module), UnrealBackend(editor.module, executor))[1])
        backend.open(clip)
        started = time.perf_counter()
        count = sum(1 for _ in backend.frames(0, frames))
        bridged = time.perf_counter() - started

        plan = plan_clip(clip)

        def direct() -> float:  # the same work, no queue, no ticks: the floor
            t0 = time.perf_counter()
            for index in range(frames):
                backend._scene.move_camera(plan.poses[index])
                backend._scene.capture(plan.passes)
            return time.perf_counter() - t0

        baseline = editor.run_on_game_thread(direct, timeout=600)
        backend.close()
        ticks = editor.tick_count
    print(f"marshalling {width}x{height} rgb+depth, {count} frames: bridged {count / bridged:.1f} frames/s, "
          f"direct {frames / baseline:.1f} frames/s, ratio bridged/direct time = {bridged / baseline:.2f} ({ticks} ticks)")


def bench_readback() -> None:
    for width, height in ((640, 360), (1280, 720)):
        rng = np.random.default_rng(0)
        pixels = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
        colors = [Color(b=int(p[2]), g=int(p[1]), r=int(p[0]), a=255) for p in pixels.reshape(-1, 3)]
        raw = pixels.tobytes()
        started = time.perf_counter()
        converted = _rgb_from_colors(colors, width, height)
        seconds = time.perf_counter() - started
        assert np.array_equal(converted, pixels)
        started = time.perf_counter()
        for _ in range(100):
            np.frombuffer(raw, dtype=np.uint8).reshape(height, width, 3).copy()
        baseline = (time.perf_counter() - started) / 100
        print(f"read-back conversion {width}x{height}: {seconds * 1000:.0f} ms/frame from Array[Color], "
              f"{baseline * 1000:.2f} ms from bytes, ratio {seconds / baseline:.0f}x")


def bench_conformance() -> None:
    from unreal_bridge.conformance import run_conformance
    from unreal_bridge.procedural import ProceduralBackend
    from unreal_bridge.server import RenderServer, ServerConfig

    server = RenderServer(ServerConfig(port=0, heartbeat_interval_ms=100))
    server.start()
    server.attach_backend(ProceduralBackend())
    try:
        run_conformance(server.address, rules=["server_info"])  # warm the channel and imports
        started = time.perf_counter()
        report = run_conformance(server.address)
        seconds = time.perf_counter() - started
    finally:
        server.stop(grace=0.5)
    print(f"conformance suite vs in-process procedural server: {len(report.results)} rules in {seconds:.2f} s, "
          f"passed={report.passed}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--height", type=int, default=144)
    args = parser.parse_args()
    bench_marshalling(args.frames, args.width, args.height)
    bench_readback()
    bench_conformance()


if __name__ == "__main__":
    main()
