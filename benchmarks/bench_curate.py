"""Curate speed: shot detection against PySceneDetect, and video-seconds curated per second.

    .venv/bin/python benchmarks/bench_curate.py [--folder ../shared/realfootage] [--repeat 3] [--cpus 2]

1. Shot detection frames/s on each real file: worldloom's content detector (PyAV decode, 64-px
   analysis frames, HSV histogram + edge change, adaptive threshold, plus the gradual-transition
   mix fits of gradual.py; accuracy and TransNetV2: bench_shots.py) against PySceneDetect's
   ContentDetector (default threshold 27, OpenCV backend, its automatic downscale) on the
   same file in the same process; prints the ratio (ours / theirs) and both cut lists.
   PySceneDetect is not a project dependency: `pip install scenedetect` into the venv first,
   or this part is skipped with a message. A bare PyAV decode of the same file is printed as
   the floor both detectors pay.
2. End-to-end `run_curate` on the folder with Ray limited to `--cpus` CPUs (default config:
   256-px-high output, CLIP ViT-B-32 random init, dedupe): video-seconds of input per wall
   second, with and without the one-off start-up (Ray workers, torch import, model build),
   measured by running the same inputs twice into fresh folders with the workers kept warm.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from pipeline.curate.probe import probe
from pipeline.curate.shots import analyze_file
from pipeline.curate.video import iter_frames

VIDEOS = ["counter.mp4", "fades.mp4", "delayed_start.mp4", "issue-134-rotate.mp4", "issue-236-split-copy.mkv"]


def _best(function, repeat: int) -> tuple[float, object]:
    best, value = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        value = function()
        best = min(best, time.perf_counter() - started)
    return best, value


def bench_shots(folder: Path, repeat: int) -> None:
    try:
        from scenedetect import ContentDetector, detect
    except ImportError:
        detect = None
        print("PySceneDetect is not installed (`.venv/bin/pip install scenedetect`): ratio not measured")
    print(f"{'file':28} {'frames':>6} {'decode f/s':>10} {'ours f/s':>9} {'pyscenedetect f/s':>17} {'ratio':>6}  cuts (ours | theirs)")
    total_ours = total_theirs = total_frames = 0.0
    for name in VIDEOS:
        path = folder / name
        found = probe(str(path))
        decode_s, count = _best(lambda: sum(1 for _ in iter_frames(str(path))), repeat)
        ours_s, analysis = _best(lambda: analyze_file(str(path), found.width, found.height), repeat)
        line = f"{name:28} {count:6d} {count / decode_s:10.0f} {count / ours_s:9.0f}"
        if detect is not None:
            theirs_s, scenes = _best(lambda: detect(str(path), ContentDetector()), repeat)
            their_cuts = [start.frame_num for start, _ in scenes[1:]]
            line += f" {count / theirs_s:17.0f} {theirs_s / ours_s:6.2f}  {analysis.cuts} | {their_cuts}"
            total_theirs += theirs_s
        total_ours += ours_s
        total_frames += count
        print(line)
    if detect is not None:
        print(f"{'all files':28} {int(total_frames):6d} {'':10} {total_frames / total_ours:9.0f} "
              f"{total_frames / total_theirs:17.0f} {total_theirs / total_ours:6.2f}")


def bench_curate(folder: Path, cpus: int) -> None:
    import ray

    from pipeline.curate.config import CurateConfig
    from pipeline.curate.run import run_curate

    ray.init(address="local", num_cpus=cpus, include_dashboard=False, log_to_driver=False, configure_logging=False)
    inputs = [str(folder / name) for name in VIDEOS]
    scratch = Path(tempfile.mkdtemp(prefix="bench_curate_"))
    try:
        for label in ("cold (incl. Ray workers, torch import, CLIP build)", "warm (workers reused)"):
            started = time.perf_counter()
            summary = run_curate(inputs, scratch / label.split()[0], CurateConfig(), show_progress=False)
            wall = time.perf_counter() - started
            print(f"curate {label}: {summary.video_seconds:.1f} video-s in {wall:.1f} s = "
                  f"{summary.video_seconds / wall:.2f} video-s per wall-s ({summary.clips} clips, {summary.kept} kept)")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        ray.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folder", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "realfootage")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--skip-curate", action="store_true")
    args = parser.parse_args()
    if not args.folder.is_dir():
        raise SystemExit(f"{args.folder} is absent: pass --folder with the real footage")
    bench_shots(args.folder, args.repeat)
    if not args.skip_curate:
        bench_curate(args.folder, args.cpus)


if __name__ == "__main__":
    main()
