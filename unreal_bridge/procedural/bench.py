"""In-process throughput of the procedural backend, against raw TinyRenderer calls as baseline.

    python -m unreal_bridge.procedural.bench [MANIFEST ...] [--frames N] [--sizes 320x180,1280x720]

For each manifest (first clip) and size it prints frames/s of `ProceduralBackend.frames(...,
passes=("rgb", "depth"))` (the default, no shadow map), of the same with the shadow map on, and of
bare `getCameraImage` calls on the same scene and camera (the floor any TinyRenderer backend
pays); backend/bare is the share of time spent in TinyRenderer, the rest is physics and numpy
post-processing.
"""
from __future__ import annotations

import argparse
import copy
import time

import pybullet as p

from contract.manifest import resolve_manifest
from unreal_bridge.procedural.backend import ProceduralBackend
from unreal_bridge.procedural.camera import view_matrix
from unreal_bridge.procedural.simulation import ClipSimulation


def rescaled(clip: dict, width: int, height: int) -> dict:
    """The same clip at another output size, intrinsics scaled with it."""
    out = copy.deepcopy(clip)
    sx, sy = width / out["output"]["width"], height / out["output"]["height"]
    out["output"].update(width=width, height=height)
    intr = out["camera"]["intrinsics"]
    intr.update(width=width, height=height, fx=intr["fx"] * sx, cx=intr["cx"] * sx, fy=intr["fy"] * sy, cy=intr["cy"] * sy)
    return out


def backend_fps(clip: dict, frames: int, shadows: bool) -> float:
    backend = ProceduralBackend(shadows=shadows)
    backend.open(clip)
    try:
        started = time.perf_counter()
        count = sum(1 for _ in backend.frames(0, frames, passes=("rgb", "depth")))
        return count / (time.perf_counter() - started)
    finally:
        backend.close()


def bare_fps(clip: dict, frames: int) -> float:
    """getCameraImage only, same scene, lights and first camera pose."""
    sim = ClipSimulation(clip)
    try:
        frame = sim.advance()
        pose = sim.camera_pose(frame)
        kwargs = sim.renderer.lighting.camera_image_kwargs()
        started = time.perf_counter()
        for _ in range(frames):
            p.getCameraImage(sim.width, sim.height, viewMatrix=view_matrix(pose), projectionMatrix=sim.renderer._projection,
                             renderer=p.ER_TINY_RENDERER, physicsClientId=sim.client, **kwargs)
        return frames / (time.perf_counter() - started)
    finally:
        sim.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("manifests", nargs="*", default=["manifests/examples/city_drive.yaml"])
    parser.add_argument("--frames", type=int, default=12, help="frames per measurement at the smallest size")
    parser.add_argument("--sizes", default="320x180,1280x720")
    args = parser.parse_args()
    sizes = [tuple(int(v) for v in size.split("x")) for size in args.sizes.split(",")]
    for path in args.manifests:
        clip = resolve_manifest(path).clips[0]
        for width, height in sizes:
            scaled = rescaled(clip, width, height)
            n = max(2, min(scaled["output"]["frames"], int(args.frames * (320 * 180) / (width * height)) or 2))
            full = backend_fps(scaled, n, shadows=False)
            shadowed = backend_fps(scaled, n, shadows=True)
            bare = bare_fps(scaled, n)
            print(f"{path} {width}x{height} ({n} frames): backend {full:.2f} frames/s, with shadow map {shadowed:.2f} frames/s, "
                  f"bare getCameraImage {bare:.2f} frames/s; backend/bare = {full / bare:.2f}")


if __name__ == "__main__":
    main()
