"""What the Unreal bridge's own Python costs, measured on the FAKE editor (no Unreal here).

    .venv/bin/python benchmarks/bench_unreal_bridge.py [--frames 60] [--width 256] [--height 144]

Three numbers, each against a baseline run in the same process:

1. Game-thread marshalling: frames/s of `UnrealBackend.frames()` (gRPC-side generator, a task
   per render, one capture per tick of a fake editor ticking as fast as it can) versus calling
   the same scene capture directly in a loop on one thread. The ratio is the cost of the
   queue + tick design (mostly: one capture per tick waits for the next tick).
2. Read-back: the bridge exports each render target once per frame (PNG for RGB, half-float
   EXR for depth) and decodes the file with numpy/PIL (unreal_bridge/unreal/readback.py). Timed
   here at 640x360 and 1280x720: the Python decode the bridge runs in the editor, the encode the
   engine runs (PIL PNG and OpenEXR ZIP as stand-ins for FImageUtils' encoders, not the engine's
   own), against the old path, converting `read_render_target`'s one `Color` per pixel to numpy.
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

from fake_unreal import Color, FakeEditor, fake_depth_cm, Rotator, Vector  # noqa: E402

from unreal_bridge.unreal.backend import UnrealBackend  # noqa: E402
from unreal_bridge.unreal.game_thread import GameThreadExecutor  # noqa: E402
from unreal_bridge.unreal.plan import plan_for_editor  # noqa: E402
from unreal_bridge.unreal.readback import depth_m_from_half_cm, read_exr, read_png_rgb  # noqa: E402


def probe_clip(frames: int, width: int, height: int) -> dict:
    from contract.manifest import load_manifest, resolve_clip

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

        plan = plan_for_editor(clip)

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


def _timed(fn, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def bench_readback() -> None:
    import tempfile

    import OpenEXR
    from PIL import Image

    folder = Path(tempfile.mkdtemp(prefix="bench_unreal_readback_"))
    for width, height in ((640, 360), (1280, 720)):
        rng = np.random.default_rng(0)
        pixels = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
        colors = [Color(b=int(p[2]), g=int(p[1]), r=int(p[0]), a=255) for p in pixels.reshape(-1, 3)]

        def from_colors():  # the old path's conversion (the engine also had to build the structs)
            flat = np.fromiter((channel for c in colors for channel in (c.r, c.g, c.b)), dtype=np.uint8, count=width * height * 3)
            return flat.reshape(height, width, 3)

        old = _timed(from_colors, repeat=1)
        rgba = np.dstack([pixels, np.zeros((height, width, 1), np.uint8)])
        png = folder / "rgb.png"
        encode_png = _timed(lambda: Image.fromarray(rgba, mode="RGBA").save(png))
        decode_png = _timed(lambda: read_png_rgb(png, width, height))
        assert np.array_equal(read_png_rgb(png, width, height), pixels)
        depth = fake_depth_cm(Vector(), Rotator(), width, height)
        with np.errstate(over="ignore"):
            half = depth.astype(np.float16)
        exr = folder / "depth.exr"
        planes = {"R": half, "G": np.zeros_like(half), "B": np.zeros_like(half), "A": np.ones_like(half)}
        encode_exr = _timed(lambda: OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage},
                                                 planes).write(str(exr)))
        decode_exr = _timed(lambda: depth_m_from_half_cm(read_exr(exr)["R"], 500.0))
        new_total = decode_png + decode_exr
        print(f"read-back {width}x{height}: decode in the editor rgb PNG {decode_png * 1000:.0f} ms + depth EXR "
              f"{decode_exr * 1000:.0f} ms (encode stand-ins: PNG {encode_png * 1000:.0f} ms, EXR {encode_exr * 1000:.0f} ms); "
              f"old Array[Color] -> numpy {old * 1000:.0f} ms for rgb alone; ratio old/new decode {old / new_total:.1f}x")


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
