"""Shot-boundary accuracy and speed: worldloom's detectors against PySceneDetect.

    .venv/bin/python benchmarks/bench_shots.py [--folder ../shared/realfootage] [--threads 2] [--skip-real] [--skip-labelled]

Detectors: ours `content` (fast, hard cuts), `transnetv2` (learned, cuts + gradual
transitions) and `both` (their union; the curate default), and PySceneDetect's
ContentDetector and AdaptiveDetector at their defaults (OpenCV backend). PySceneDetect is not
a project dependency: it is installed into this venv if absent (`pip install --no-deps
scenedetect platformdirs` when OpenCV is already there, so no second OpenCV wheel lands).

1. Real footage (every video of --folder): each detector's boundaries and frames/s
   (decode included), precision/recall of our hard cuts (boundaries at most 4 frames long;
   a cut c of theirs matches our range [a, b) when a - 1 <= c <= b + 1) against each
   PySceneDetect detector's cuts, and the boundaries found by one side and not the other. Real footage has no
   ground truth: these are agreement numbers.
2. Labelled set (pipeline/curate/labelled.py): procedurally rendered shots joined by hard
   cuts, fades (black and white), cross-dissolves and wipes of known frame ranges, encoded
   with pipeline/encode.py; precision/recall of boundaries within 2 frames per detector, the
   missed kinds, and frames/s.

Timing: `transnetv2` and `both` share one pass (the content features are computed in every
pass for black/frozen detection), so they have one frames/s figure.
"""
from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pipeline.curate.config import ShotConfig
from pipeline.curate.labelled import build_labelled, match_boundaries, write_labelled
from pipeline.curate.probe import probe
from pipeline.curate.shots import analyze_file, combine_boundaries

LABELLED = [  # (seed, shot frames, layout)
    (0, 40, [("cut", 0), ("fade", 12), ("dissolve", 12), ("wipe", 10), ("fade_white", 12), ("cut", 0)]),
    (1, 48, [("dissolve", 20), ("cut", 0), ("fade", 24), ("dissolve", 6), ("cut", 0), ("wipe", 16)]),
    (2, 60, [("fade", 8), ("cut", 0), ("dissolve", 30), ("fade_white", 20), ("cut", 0), ("dissolve", 12)]),
]
OURS = ("content", "transnetv2", "both")
THEIRS = ("psd-content", "psd-adaptive")


def ensure_scenedetect() -> None:
    if importlib.util.find_spec("scenedetect") is not None:
        return
    packages = ["scenedetect", "platformdirs"]
    extra = ["--no-deps"] if importlib.util.find_spec("cv2") is not None else []
    print(f"installing {' '.join(packages)} into {sys.prefix} (benchmark only)")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", *extra, *packages], check=True)


def run_ours(path: str, width: int, height: int) -> dict[str, tuple[float, int, list[tuple[int, int]]]]:
    """detector -> (seconds, frames, boundary ranges)."""
    started = time.perf_counter()
    content = analyze_file(path, width, height, ShotConfig(detector="content"))
    content_s = time.perf_counter() - started
    started = time.perf_counter()
    learned = analyze_file(path, width, height, ShotConfig(detector="both"))
    learned_s = time.perf_counter() - started
    return {
        "content": (content_s, content.frame_count, content.transitions),
        "transnetv2": (learned_s, learned.frame_count, combine_boundaries(learned, ShotConfig(detector="transnetv2"))),
        "both": (learned_s, learned.frame_count, learned.transitions),
    }


def run_theirs(path: str) -> dict[str, tuple[float, int, list[tuple[int, int]]]]:
    from scenedetect import AdaptiveDetector, ContentDetector, detect, open_video

    frames = open_video(path).duration.frame_num
    out = {}
    for name, make in (("psd-content", ContentDetector), ("psd-adaptive", AdaptiveDetector)):
        started = time.perf_counter()
        scenes = detect(path, make())
        seconds = time.perf_counter() - started
        cuts = [start.frame_num for start, _ in scenes[1:]]
        out[name] = (seconds, frames, [(c, c) for c in cuts])
    return out


def hard_cuts(ranges: list[tuple[int, int]], longest: int = 4) -> list[tuple[int, int]]:
    """Boundaries at most `longest` frames long: the hard cuts (TransNetV2 flags the last frame
    of the old shot, and its many-hot head may widen a cut by a frame or two)."""
    return [(start, end) for start, end in ranges if end - start <= longest]


def agreement(predicted: list[tuple[int, int]], reference: list[int], tolerance: int = 1) -> tuple[float, float]:
    """Precision and recall of `predicted` cut ranges against `reference` cut frames (first frame
    of the new shot), one-to-one: a range [a, b) matches c when a - tolerance <= c <= b + tolerance."""
    used: set[int] = set()
    hits = 0
    for cut in reference:
        for j, (start, end) in enumerate(predicted):
            if j not in used and start - tolerance <= cut <= end + tolerance:
                used.add(j)
                hits += 1
                break
    precision = hits / len(predicted) if predicted else 1.0
    recall = hits / len(reference) if reference else 1.0
    return precision, recall


def one_sided(ours: list[tuple[int, int]], theirs: list[int], tolerance: int = 1) -> tuple[list, list]:
    """Our boundaries that contain no cut of theirs, and their cuts inside none of ours (within `tolerance`)."""
    only_ours = [r for r in ours if not any(r[0] - tolerance <= c <= r[1] + tolerance for c in theirs)]
    only_theirs = [c for c in theirs if not any(a - tolerance <= c <= b + tolerance for a, b in ours)]
    return only_ours, only_theirs


def _fmt(ranges: list[tuple[int, int]]) -> str:
    text = ", ".join(str(b) if a == b or b - a == 1 else f"{a}-{b}" for a, b in ranges)
    return f"[{text}]"


def bench_real(folder: Path) -> None:
    print("\n## Real footage (no ground truth: agreement with PySceneDetect, hard cuts within 1 frame)\n")
    print("| file | frames | detector | f/s | boundaries | P/R vs psd-content | P/R vs psd-adaptive | only ours / only psd-content |")
    print("| --- | ---: | --- | ---: | --- | --- | --- | --- |")
    for path in sorted(p for p in folder.iterdir() if p.suffix.lower() in {".mp4", ".mkv", ".mov", ".webm", ".avi"}):
        found = probe(str(path))
        if not found.ok:
            continue
        results = {**run_ours(str(path), found.width, found.height), **run_theirs(str(path))}
        references = {name: [end for _, end in results[name][2]] for name in THEIRS}
        for name in (*OURS, *THEIRS):
            seconds, frames, ranges = results[name]
            row = f"| {path.name} | {frames} | {name} | {frames / seconds:.0f} | {_fmt(ranges)} |"
            if name in OURS:
                for reference in THEIRS:
                    precision, recall = agreement(hard_cuts(ranges), references[reference])
                    row += f" {precision:.2f} / {recall:.2f} |"
                only_ours, only_theirs = one_sided(ranges, references["psd-content"])
                row += f" {_fmt(only_ours)} / {only_theirs} |"
            else:
                row += " | | |"
            print(row, flush=True)


def bench_labelled() -> None:
    print("\n## Labelled set (rendered shots, known transitions; a boundary counts when found within 2 frames)\n")
    print("| video | frames | truth | detector | f/s | precision | recall | missed |")
    print("| --- | ---: | --- | --- | ---: | ---: | ---: | --- |")
    totals: dict[str, list[int]] = {}
    with tempfile.TemporaryDirectory(prefix="bench_shots_") as scratch:
        for seed, shot_frames, layout in LABELLED:
            video = build_labelled(layout, shot_frames=shot_frames, seed=seed)
            path = str(write_labelled(Path(scratch) / f"labelled_{seed}.mp4", video))
            height, width = video.frames.shape[1:3]
            results = {**run_ours(path, width, height), **run_theirs(path)}
            truth = ", ".join(f"{b.kind} {b.start}" + (f"-{b.end}" if b.end > b.start else "") for b in video.boundaries)
            for name in (*OURS, *THEIRS):
                seconds, frames, ranges = results[name]
                match = match_boundaries(video.boundaries, ranges, tolerance=2)
                missed = ", ".join(b.kind for b in match.missed) or "-"
                counts = totals.setdefault(name, [0, 0, 0, 0, 0])
                counts[0] += match.true_positives
                counts[1] += match.false_positives
                counts[2] += match.false_negatives
                counts[3] += frames
                counts[4] += int(seconds * 1e6)
                print(f"| labelled_{seed} | {frames} | {truth} | {name} | {frames / seconds:.0f} | {match.precision:.2f} | "
                      f"{match.recall:.2f} | {missed} |", flush=True)
                truth = ""
    print("\n| detector (all labelled videos) | precision | recall | f/s |")
    print("| --- | ---: | ---: | ---: |")
    for name, (tp, fp, fn, frames, micros) in totals.items():
        precision = tp / (tp + fp) if tp + fp else 1.0
        recall = tp / (tp + fn) if tp + fn else 1.0
        print(f"| {name} | {precision:.2f} | {recall:.2f} | {frames / (micros / 1e6):.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folder", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "realfootage")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads for TransNetV2")
    parser.add_argument("--skip-real", action="store_true")
    parser.add_argument("--skip-labelled", action="store_true")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    ensure_scenedetect()
    device = "cuda" if torch.cuda.is_available() else f"cpu ({args.threads} threads)"
    print(f"TransNetV2 on {device}; frames/s include decoding")
    if not args.skip_real:
        if not args.folder.is_dir():
            raise SystemExit(f"{args.folder} is absent: pass --folder with the real footage, or --skip-real")
        bench_real(args.folder)
    if not args.skip_labelled:
        bench_labelled()


if __name__ == "__main__":
    main()
