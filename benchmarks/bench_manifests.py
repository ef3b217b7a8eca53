"""How fast manifests resolve, against the bare action -> pose rollout in the same process.

    .venv/bin/python benchmarks/bench_manifests.py [--clips 100] [--manifest manifests/examples/forest_walk.yaml]

Prints resolved clips per second and the ratio (full resolve time) / (bare rollout time for the
same clips): the cost of validation, randomisation, random walks/waypoints, JSON rounding and
hashing on top of the unavoidable rollout. The generate pipeline resolves every clip up front,
so this bounds how large a manifest can be expanded interactively.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import yaml

from contract.clip import ResolvedClip
from contract.manifest import load_manifest, resolve_manifest, rollout_poses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--manifest", default="manifests/examples/forest_walk.yaml")
    parser.add_argument("--clips", type=int, default=100, help="clips per scene")
    args = parser.parse_args()

    data = yaml.safe_load(Path(args.manifest).read_text())
    for scene in data["scenes"]:
        scene["clips"] = args.clips
    manifest = load_manifest(data, source_name=args.manifest)

    started = time.perf_counter()
    resolved = resolve_manifest(manifest)
    resolve_s = time.perf_counter() - started

    kinematic = [clip for clip in resolved.clips if clip["poses"] is not None]
    typed = [ResolvedClip.parse(clip) for clip in kinematic]
    inputs = [(clip.actions, clip.camera.start_pose, document) for clip, document in zip(typed, kinematic, strict=True)]
    started = time.perf_counter()
    for actions, start, clip in inputs:
        rollout_poses(actions, start, clip["motion"]["speed_mps"], clip["output"]["fps"], rig=clip["camera"]["rig"],
                      orbit_target=clip["camera"].get("orbit_target"), sprint_multiplier=clip["motion"]["sprint_multiplier"])
    rollout_s = (time.perf_counter() - started) * len(resolved.clips) / max(1, len(kinematic))

    frames = manifest.output.frames
    print(f"manifest {args.manifest}: {len(resolved.clips)} clips x {frames} frames")
    print(f"resolve: {resolve_s:.3f} s = {len(resolved.clips) / resolve_s:.1f} clips/s ({resolve_s / len(resolved.clips) * 1e3:.2f} ms/clip)")
    print(f"baseline bare rollout: {rollout_s:.3f} s ({rollout_s / len(resolved.clips) * 1e3:.2f} ms/clip)")
    print(f"ratio resolve / rollout: {resolve_s / rollout_s:.2f}x")


if __name__ == "__main__":
    main()
