"""End-to-end generate throughput and pipeline efficiency on this machine.

For each resolution: a serial baseline in this process (one procedural server, render ->
encode/score/caption -> CLIP embed, one clip after the other, no Ray) and the Ray pipeline
(`run_generate`, local Ray, procedural servers started by generate). Prints clips/min for
both, their ratio, and the pipeline's efficiency = sum of stage busy time / (streaming wall
time x cores), with busy time measured as CPU seconds (render servers included) and, for
comparison, as wall seconds inside stage calls (which over-counts when cores are oversubscribed).
Stage start-up (Ray, servers, model) is reported separately.

    .venv/bin/python benchmarks/bench_generate.py [--clips 8] [--frames 16] [--workers 2]
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def bench_manifest(directory: Path, width: int, height: int, clips: int, frames: int) -> Path:
    manifest = yaml.safe_load((REPO / "manifests/examples/quickstart.yaml").read_text())
    manifest["name"] = f"bench_{width}x{height}"
    manifest["output"].update({"width": width, "height": height, "frames": frames})
    for scene in manifest["scenes"]:
        scene["clips"] = clips // len(manifest["scenes"])
    path = directory / f"bench_{width}x{height}.yaml"
    path.write_text(yaml.safe_dump(manifest, sort_keys=False))
    return path


def serial_baseline(manifest: Path, clip_model: str) -> tuple[float, int]:
    """Clips per minute of the same work done one stage after the other in one process."""
    from pipeline.embed import ClipEmbedder, EmbedSettings
    from pipeline.generate.process import RenderedPayload, encode_settings_for, middle_frames, process_clip
    from pipeline.generate.tasks import expand_manifests
    from unreal_bridge.client import RenderClient
    from unreal_bridge.launch import ProceduralServer

    tasks, _ = expand_manifests([manifest])
    embedder = ClipEmbedder(EmbedSettings(model=clip_model, frames=4))
    with ProceduralServer() as server:
        client = RenderClient(server.address)
        started = time.perf_counter()
        for task in tasks:
            rendered = client.render_clip(task.clip)
            payload = RenderedPayload(key=task.key, resolved_clip=rendered.resolved_clip,
                                      resolved_sha256=rendered.resolved_sha256, rgb=rendered.rgb,
                                      camera_to_world=rendered.camera_to_world, intrinsics=rendered.intrinsics,
                                      actions=rendered.actions, depth=rendered.depth,
                                      segmentation=rendered.segmentation)
            processed = process_clip(payload, encode_settings_for(task.clip, None, None, "veryfast"))
            vector = embedder.embed_clip(middle_frames(rendered.rgb, 4))
            embedder.text_similarity(vector, processed.caption)
        elapsed = time.perf_counter() - started
    return len(tasks) / elapsed * 60.0, len(tasks)


def pipeline_run(manifest: Path, out: Path, workers: int | None, clip_model: str):
    from pipeline.generate import load_generate_config, run_generate

    config = load_generate_config(None, {"out": str(out), "workers": workers, "overwrite": True, "progress": False,
                                "clip": {"model": clip_model, "frames": 4}, "mlflow": {"enabled": False}})
    return run_generate([manifest], config)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--workers", type=int, default=None, help="procedural servers (default: generate's default)")
    parser.add_argument("--clip-model", default="ViT-B-32")
    parser.add_argument("--sizes", default="256x144,640x360")
    args = parser.parse_args()
    print(f"cores: {os.cpu_count()}  clips: {args.clips}  frames: {args.frames}  clip model: {args.clip_model} (random init)")
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes.split(","):
            width, height = (int(v) for v in size.split("x"))
            manifest = bench_manifest(Path(tmp), width, height, args.clips, args.frames)
            baseline, count = serial_baseline(manifest, args.clip_model)
            result = pipeline_run(manifest, Path(tmp) / f"out_{size}", args.workers, args.clip_model)
            streaming = result.counts.rendered / result.stream_seconds * 60.0
            end_to_end = result.counts.rendered / result.wall_seconds * 60.0
            busy = ", ".join(f"{k} {v:.1f}s" for k, v in result.stage_busy_seconds.items())
            cpu = ", ".join(f"{k} {v:.1f}s" for k, v in result.stage_cpu_seconds.items())
            print(f"{size}: serial baseline {baseline:.1f} clips/min | pipeline streaming {streaming:.1f} clips/min "
                  f"(ratio {streaming / baseline:.2f}x) | end-to-end incl. start-up {end_to_end:.1f} clips/min "
                  f"(start-up {result.startup_seconds:.1f}s) | efficiency (CPU) {result.efficiency:.2f}, (wall busy) "
                  f"{result.busy_efficiency:.2f} on {result.cores:g} cores | cpu: {cpu} | wall busy: {busy} | "
                  f"stream wall {result.stream_seconds:.1f}s | kept {result.counts.kept}/{count}")
            load = os.getloadavg()[0]
            print(f"  load average during the run: {load:.1f} (other processes on this machine)")


if __name__ == "__main__":
    main()
