"""A labelled set for shot-boundary detection: rendered shots joined by known transitions.

Why: real footage with hand-labelled fades and dissolves cannot ship with the project, and a
detector's accuracy has to be measured, not assumed. The procedural renderer
(unreal_bridge/procedural, in-process) gives shots that look like camera footage (a street
walk, a forest walk, textured, lit, moving camera); they are joined here by transitions
whose frame ranges are known exactly, and encoded with pipeline/encode.py like any clip.

Transitions (`Boundary.kind`), each a half-open range `[start, end)` of frames that belong to
no shot (a hard cut has `start == end`: the first frame of the new shot):

* `cut`       the next shot starts at once;
* `fade`      the shot fades to black, the next fades in from black (half the length each);
* `fade_white` the same through white (a fade "to any colour");
* `dissolve`  cross-dissolve: both shots blended with a linear weight;
* `wipe`      the next shot slides in from the left edge behind a moving vertical border.

`match_boundaries` scores detected ranges against these within a frame tolerance; the tests
and benchmarks/bench_shots.py both use it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

KINDS = ("cut", "fade", "fade_white", "dissolve", "wipe")
QUICKSTART = Path(__file__).resolve().parents[2] / "manifests" / "examples" / "quickstart.yaml"


@dataclass(frozen=True)
class Boundary:
    kind: str
    start: int     # first frame that belongs to no shot (for a cut: the new shot's first frame)
    end: int       # first frame of the next shot


@dataclass
class LabelledVideo:
    frames: np.ndarray            # (N, H, W, 3) uint8
    fps: float
    boundaries: list[Boundary]

    def shots(self) -> list[tuple[int, int]]:
        """The frame ranges that belong to a shot: everything between transitions."""
        edges = [0]
        for boundary in self.boundaries:
            edges += [boundary.start, boundary.end]
        edges.append(len(self.frames))
        return [(a, b) for a, b in zip(edges[0::2], edges[1::2], strict=False) if b > a]


def render_shots(count: int, frames: int, width: int, height: int, seed: int = 0) -> list[np.ndarray]:
    """`count` distinct rendered shots, alternating the quickstart manifest's street and
    forest scenes (consecutive shots never come from the same world)."""
    import yaml

    from contract.manifest import resolve_manifest
    from unreal_bridge.procedural import ProceduralBackend

    data = yaml.safe_load(QUICKSTART.read_text())
    data["seed"] = int(seed)
    data["output"].update(width=width, height=height, frames=frames)
    data["passes"] = ["rgb"]
    per_scene = (count + 1) // 2
    for scene in data["scenes"]:
        scene["clips"] = per_scene
        if scene["motion"].get("policy") == "scripted":   # keep walking for the whole shot: no frozen tail
            scene["motion"]["actions"] = f"w-{frames // 2},lw-{frames - frames // 2}"
    clips = resolve_manifest(yaml.safe_dump(data)).clips
    by_scene: dict[str, list[dict]] = {}
    for clip in clips:
        by_scene.setdefault(clip["scene"], []).append(clip)
    scenes = list(by_scene.values())
    order = [scenes[i % len(scenes)][i // len(scenes)] for i in range(count)]
    shots = []
    for clip in order:
        backend = ProceduralBackend()
        try:
            backend.open(clip)
            shots.append(np.stack([f.passes["rgb"] for f in backend.frames(0, frames, passes=("rgb",))]))
        finally:
            backend.close()
    return shots


def _join(first: np.ndarray, second: np.ndarray, kind: str, length: int) -> np.ndarray:
    """The transition frames between the end of `first` and the start of `second`."""
    a = first.astype(np.float32)
    b = second.astype(np.float32)
    if kind == "dissolve":
        alpha = np.linspace(0.0, 1.0, length + 2)[1:-1, None, None, None]
        mixed = a[-length:] * (1 - alpha) + b[:length] * alpha
    elif kind in ("fade", "fade_white"):
        target = 0.0 if kind == "fade" else 255.0
        half = length // 2
        out = np.linspace(0.0, 1.0, half + 1)[1:, None, None, None]          # towards the colour
        into = np.linspace(1.0, 0.0, length - half + 1)[:-1, None, None, None]  # away from it
        mixed = np.concatenate([a[-half:] * (1 - out) + target * out,
                                b[:length - half] * (1 - into) + target * into])
    elif kind == "wipe":
        width = a.shape[2]
        mixed = a[-length:].copy()
        for k in range(length):
            border = int(round(width * (k + 1) / (length + 1)))
            mixed[k, :, :border] = b[k, :, :border]
    else:
        raise ValueError(f"unknown transition kind {kind!r}")
    return np.clip(np.rint(mixed), 0, 255).astype(np.uint8)


def build_labelled(layout: list[tuple[str, int]], shot_frames: int = 40, width: int = 128, height: int = 72,
                   fps: float = 24.0, seed: int = 0) -> LabelledVideo:
    """Shots of `shot_frames` frames joined by `layout` = [(kind, length), ...] (length is
    ignored for a cut). The transition frames replace the end of one shot and the start of
    the next, the way an editor overlaps them."""
    shots = render_shots(len(layout) + 1, shot_frames, width, height, seed)
    parts: list[np.ndarray] = []
    boundaries: list[Boundary] = []
    position = 0
    head = 0                                  # frames of the current shot already consumed
    for index, (kind, length) in enumerate(layout):
        current, following = shots[index], shots[index + 1]
        if kind == "cut":
            body = current[head:]
            parts.append(body)
            position += len(body)
            boundaries.append(Boundary("cut", position, position))
            head = 0
            continue
        body = current[head:len(current) - length]
        parts.append(body)
        position += len(body)
        joined = _join(current, following, kind, length)
        parts.append(joined)
        # a dissolve/wipe overlaps both shots for `length` frames; a fade spends half on each
        consumed = length if kind in ("dissolve", "wipe") else length - length // 2
        boundaries.append(Boundary(kind, position, position + len(joined)))
        position += len(joined)
        head = consumed
    parts.append(shots[-1][head:])
    return LabelledVideo(np.concatenate(parts), float(fps), boundaries)


DEFAULT_LAYOUT: list[tuple[str, int]] = [("cut", 0), ("fade", 12), ("dissolve", 12), ("wipe", 10),
                                         ("fade_white", 12), ("cut", 0)]


def write_labelled(path: Path, video: LabelledVideo, crf: int = 20) -> Path:
    """H.264 through the project's one encoder (pipeline/encode.py)."""
    from pipeline.encode import EncodeSettings, encode_mp4

    path = Path(path)
    path.write_bytes(encode_mp4(video.frames, video.fps, EncodeSettings(crf=crf, gop=12)))
    return path


@dataclass
class MatchResult:
    true_positives: int
    false_positives: int
    false_negatives: int
    missed: list[Boundary]
    spurious: list[tuple[int, int]]

    @property
    def precision(self) -> float:
        found = self.true_positives + self.false_positives
        return self.true_positives / found if found else 1.0

    @property
    def recall(self) -> float:
        truth = self.true_positives + self.false_negatives
        return self.true_positives / truth if truth else 1.0


def match_boundaries(truth: list[Boundary], found: list[tuple[int, int]], tolerance: int = 2) -> MatchResult:
    """One-to-one matching: a detected range `[a, b)` matches a true transition `[s, e)` when
    the two ranges, each widened by `tolerance` frames, overlap; for a cut, whose range is
    empty, the detected range must start or end within `tolerance` of the cut frame."""
    used: set[int] = set()
    missed: list[Boundary] = []
    for boundary in truth:
        low, high = boundary.start - tolerance, boundary.end + tolerance
        match = None
        for j, (a, b) in enumerate(found):
            if j in used:
                continue
            if boundary.start == boundary.end:
                hit = abs(a - boundary.start) <= tolerance or abs(b - boundary.start) <= tolerance
            else:
                hit = a <= high and b >= low
            if hit:
                match = j
                break
        if match is None:
            missed.append(boundary)
        else:
            used.add(match)
    spurious = [r for j, r in enumerate(found) if j not in used]
    return MatchResult(len(truth) - len(missed), len(spurious), len(missed), missed, spurious)
