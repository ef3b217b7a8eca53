"""Content-based shot (cut) detection on downscaled frames.

Per frame we keep a colour histogram (HSV: 16 hue, 8 saturation, 16 value bins) and an edge
map of the luma. The difference between consecutive frames is the mean of

* the histogram distance (half the L1 distance, in [0, 1]), and
* the edge change ratio (fraction of edge pixels that have no edge within 1 px in the other
  frame, the larger of entering and leaving edges, in [0, 1]), discounted when either frame
  has low contrast (the dark end of a fade), where edges appear and vanish with noise.

A cut is a frame whose difference is both above an absolute floor (`min_score`) and `ratio`
times larger than the mean difference of its neighbours (`window` frames each side, the frame
itself excluded). Gradual transitions (fades, dissolves) spread their change over many frames,
so every one of those frames looks like its neighbours and none passes the ratio test; a hard
cut is a single spike. A spike after which the picture returns, within `flash_frames`
frames, to what it was just before the spike (a photo flash, a glitch, a one-frame insert) is
not a cut. Cuts closer than `min_scene_s` (measured in presentation time, so a variable frame
rate does not change it) keep only the strongest.

That detector sees hard cuts only. Gradual transitions (fades to and from any colour,
dissolves) are found by TransNetV2 (transnet.py), fed from the same decode with 48x27
frames; `shots.detector` picks `content`, `transnetv2` or `both` (the union). Whatever the
detector, a boundary is a frame range `[start, end)` that belongs to no shot (a hard cut is
`[c, c)`), and `ShotAnalysis.transitions` holds them. Per frame the decode also records the
still difference (mean absolute luma change from the previous frame, 0..1), so frozen
stretches can be cut out of clips like black ones (plan.py).
"""
from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipeline.curate.config import ShotConfig
from pipeline.curate.gradual import GradualDetector, fade_ranges
from pipeline.curate.transnet import INPUT_HEIGHT, INPUT_WIDTH, TransNetPredictions, TransNetStream, WindowPredictor

HUE_BINS, SATURATION_BINS, VALUE_BINS = 16, 8, 16
EDGE_FLOOR = 12.0        # minimum luma gradient (0..255 scale) that counts as an edge
EDGE_PERCENTILE = 85.0   # otherwise the top 15% gradients are edges (adapts to contrast)
FULL_EDGE_CONTRAST = 16.0  # luma std (0..255) from which edge evidence counts fully
MIN_EDGE_PIXELS = 0.002  # fewer edge pixels than this fraction: the frame has "no edges"


@dataclass
class FrameFeatures:
    histogram: np.ndarray   # (40,) float32, each of the three parts sums to 1
    edges: np.ndarray       # (h, w) bool
    edges_dilated: np.ndarray
    luma_mean: float        # 0..1
    contrast: float         # luma standard deviation, 0..255 scale
    dark_fraction: np.ndarray  # (256,) cumulative luma distribution, for black detection


def rgb_to_hsv(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """uint8 RGB (h, w, 3) -> hue in [0, 1), saturation and value in [0, 1]."""
    image = rgb.astype(np.float32) / 255.0
    red, green, blue = image[..., 0], image[..., 1], image[..., 2]
    value = image.max(axis=-1)
    minimum = image.min(axis=-1)
    chroma = value - minimum
    saturation = np.where(value > 0, chroma / np.maximum(value, 1e-6), 0.0)
    safe = np.maximum(chroma, 1e-6)
    hue = np.where(
        value == red, ((green - blue) / safe) % 6.0,
        np.where(value == green, (blue - red) / safe + 2.0, (red - green) / safe + 4.0),
    ) / 6.0
    hue = np.where(chroma > 0, hue, 0.0)
    return hue, saturation, value


def luma_of(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma on the 0..255 scale, float32."""
    image = rgb.astype(np.float32)
    return 0.299 * image[..., 0] + 0.587 * image[..., 1] + 0.114 * image[..., 2]


def _dilate(mask: np.ndarray) -> np.ndarray:
    """3x3 binary dilation, separable: rows then columns."""
    rows = mask.copy()
    rows[:, 1:] |= mask[:, :-1]
    rows[:, :-1] |= mask[:, 1:]
    out = rows.copy()
    out[1:, :] |= rows[:-1, :]
    out[:-1, :] |= rows[1:, :]
    return out


def _hsv_bin_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """HSV bin of every 5-bit-per-channel RGB colour (32768 entries), so a frame's histogram
    is three table look-ups and bincounts instead of a per-pixel HSV conversion."""
    levels = (np.arange(32, dtype=np.uint16) * 8 + 4).astype(np.uint8)
    grid = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), axis=-1).reshape(1, -1, 3)
    hue, saturation, value = rgb_to_hsv(grid)
    return (np.minimum((hue * HUE_BINS).astype(np.int32), HUE_BINS - 1).ravel(),
            np.minimum((saturation * SATURATION_BINS).astype(np.int32), SATURATION_BINS - 1).ravel(),
            np.minimum((value * VALUE_BINS).astype(np.int32), VALUE_BINS - 1).ravel())


_HUE_OF, _SATURATION_OF, _VALUE_OF = _hsv_bin_tables()


def colour_histogram(rgb: np.ndarray) -> np.ndarray:
    """(40,) float32: hue, saturation and value histograms, each summing to 1."""
    quantised = (rgb >> 3).astype(np.int32)
    index = ((quantised[..., 0] << 10) | (quantised[..., 1] << 5) | quantised[..., 2]).ravel()
    return np.concatenate([
        np.bincount(_HUE_OF[index], minlength=HUE_BINS),
        np.bincount(_SATURATION_OF[index], minlength=SATURATION_BINS),
        np.bincount(_VALUE_OF[index], minlength=VALUE_BINS),
    ]).astype(np.float32) / float(index.size)


def frame_features(rgb: np.ndarray) -> FrameFeatures:
    histogram = colour_histogram(rgb)
    luma = luma_of(rgb)
    gradient = np.zeros_like(luma)
    gradient[:, :-1] += np.abs(np.diff(luma, axis=1))
    gradient[:-1, :] += np.abs(np.diff(luma, axis=0))
    flat = gradient.ravel()
    rank = int(EDGE_PERCENTILE / 100.0 * (flat.size - 1))
    threshold = max(EDGE_FLOOR, float(np.partition(flat, rank)[rank]))
    edges = gradient > threshold
    if edges.mean() < MIN_EDGE_PIXELS:
        edges = np.zeros_like(edges)
    # cumulative luma distribution: dark[v] = share of pixels with 8-bit luma < v + 1
    dark = (np.cumsum(np.bincount(luma.astype(np.uint8).ravel(), minlength=256)) / float(luma.size)).astype(np.float32)
    return FrameFeatures(histogram, edges, _dilate(edges), float(luma.mean()) / 255.0, float(luma.std()), dark)


def frame_difference(previous: FrameFeatures, current: FrameFeatures) -> float:
    """Combined difference in [0, 1] between consecutive frames."""
    histogram_distance = float(np.abs(previous.histogram - current.histogram).sum()) / 6.0
    previous_count = int(previous.edges.sum())
    current_count = int(current.edges.sum())
    if previous_count == 0 and current_count == 0:
        edge_change = 0.0
    elif previous_count == 0 or current_count == 0:
        edge_change = 1.0
    else:
        leaving = float((previous.edges & ~current.edges_dilated).sum()) / previous_count
        entering = float((current.edges & ~previous.edges_dilated).sum()) / current_count
        edge_change = max(leaving, entering)
    # Edges of a low-contrast frame (the dark end of a fade) come and go with noise and the
    # edge threshold, so their evidence is discounted; the histogram still sees a real cut.
    edge_weight = min(1.0, min(previous.contrast, current.contrast) / FULL_EDGE_CONTRAST)
    return 0.5 * histogram_distance + 0.5 * edge_weight * edge_change


@dataclass
class ShotAnalysis:
    """Everything pass one learns about a file; later stages never re-derive it."""

    times: np.ndarray                  # (N,) seconds from the first frame
    scores: np.ndarray                 # (N,) difference to the previous frame (0 for frame 0)
    luma: np.ndarray                   # (N,) mean luma in [0, 1]
    dark: np.ndarray                   # (N, 256) share of pixels with 8-bit luma <= v
    still: np.ndarray | None = None    # (N,) mean |luma change| from the previous frame, 0..1 (frame 0: 1)
    cuts: list[int] = field(default_factory=list)   # hard cuts of the content detector (first frame of the new shot)
    gradual: list[tuple[int, int]] = field(default_factory=list)   # dissolves and fades of the content detector
    transnet: TransNetPredictions | None = None     # per-frame TransNetV2 probabilities, when it ran
    transitions: list[tuple[int, int]] = field(default_factory=list)  # boundaries [start, end), all detectors
    detector: str = "content"

    @property
    def frame_count(self) -> int:
        return int(self.times.shape[0])

    def black_frames(self, black_luma: float, black_fraction: float) -> np.ndarray:
        """(N,) bool, ffmpeg blackdetect semantics: >= pic_th of pixels darker than pix_th."""
        level = int(np.ceil(black_luma * 255.0)) - 1          # luma < black_luma*255
        if level < 0:
            return np.zeros(self.frame_count, bool)
        return self.dark[:, min(level, 255)] >= black_fraction

    def frozen_frames(self, noise: float) -> np.ndarray:
        """(N,) bool: the frame repeats the previous one (ffmpeg freezedetect's noise level)."""
        if self.still is None:
            return np.zeros(self.frame_count, bool)
        return self.still < noise

    def shots(self) -> list[tuple[int, int]]:
        """Frame ranges between boundaries (transition frames belong to none)."""
        edges = [0]
        for start, end in self.transitions:
            edges += [start, end]
        edges.append(self.frame_count)
        return [(a, b) for a, b in zip(edges[0::2], edges[1::2], strict=False) if b > a]


class ShotDetector:
    """Streaming: feed downscaled RGB frames in presentation order, then call `finish()`."""

    def __init__(self, config: ShotConfig | None = None) -> None:
        self.config = config or ShotConfig()
        self._previous: FrameFeatures | None = None
        self._recent: deque[FrameFeatures] = deque(maxlen=self.config.flash_frames + 1)
        self._back: list[np.ndarray] = []
        self._times: list[float] = []
        self._scores: list[float] = []
        self._luma: list[float] = []
        self._dark: list[np.ndarray] = []
        self._still: list[float] = []
        self._contrast: list[float] = []
        self._previous_luma: np.ndarray | None = None
        lengths = self.config.gradual_lengths if self.config.gradual and self.config.detector != "transnetv2" else []
        self._gradual = GradualDetector(lengths, self.config.gradual_min_change, self.config.gradual_max_residual)

    def push(self, rgb: np.ndarray, time: float) -> None:
        features = frame_features(rgb)
        luma = luma_of(rgb)
        self._still.append(1.0 if self._previous_luma is None else float(np.abs(luma - self._previous_luma).mean()) / 255.0)
        self._previous_luma = luma
        self._contrast.append(features.contrast)
        self._gradual.push(rgb, features.histogram)
        self._scores.append(0.0 if self._previous is None else frame_difference(self._previous, features))
        self._times.append(time)
        self._luma.append(features.luma_mean)
        self._dark.append(features.dark_fraction)
        # back[j - 2] = difference to the frame j before this one, j = 2 .. flash_frames + 1
        older = list(self._recent)[:-1]
        back = np.full(self.config.flash_frames, np.inf, np.float32)
        for j, earlier in enumerate(reversed(older), start=2):
            back[j - 2] = frame_difference(earlier, features)
        self._back.append(back)
        self._recent.append(features)
        self._previous = features

    def finish(self) -> ShotAnalysis:
        scores = np.asarray(self._scores, dtype=np.float32)
        times = np.asarray(self._times, dtype=np.float64)
        analysis = ShotAnalysis(
            times=times,
            scores=scores,
            luma=np.asarray(self._luma, dtype=np.float32),
            dark=np.stack(self._dark) if self._dark else np.zeros((0, 256), np.float32),
            still=np.asarray(self._still, dtype=np.float32),
        )
        back = np.stack(self._back) if self._back else np.zeros((0, self.config.flash_frames), np.float32)
        analysis.cuts = find_cuts(scores, times, self.config, back)
        if self.config.gradual and self.config.detector != "transnetv2":
            contrast = np.asarray(self._contrast, np.float32)
            fades = fade_ranges(contrast, times, self.config.blank_contrast, self.config.fade_max_s)
            analysis.gradual = merge_ranges(self._gradual.ranges() + fades, gap=0)
        return analysis


def find_cuts(scores: np.ndarray, times: np.ndarray, config: ShotConfig, back: np.ndarray | None = None) -> list[int]:
    """Adaptive threshold on the difference signal; see the module docstring.

    `back[u, j - 2]` is the difference between frame u and frame u - j (flash check)."""
    count = scores.shape[0]
    candidates: list[int] = []
    for t in range(1, count):
        if scores[t] < config.min_score:
            continue
        neighbours = np.concatenate([scores[max(1, t - config.window):t], scores[t + 1:t + 1 + config.window]])
        baseline = float(neighbours.mean()) if neighbours.size else 0.0
        if scores[t] >= config.ratio * baseline:
            candidates.append(t)
    if back is not None and config.flash_frames > 0:
        candidates = _drop_flashes(candidates, back, config)
    accepted: list[int] = []
    for t in candidates:
        if accepted and times[t] - times[accepted[-1]] < config.min_scene_s:
            if scores[t] > scores[accepted[-1]]:
                accepted[-1] = t
            continue
        accepted.append(t)
    return accepted


def _drop_flashes(candidates: list[int], back: np.ndarray, config: ShotConfig) -> list[int]:
    """Remove spikes after which the picture comes back: frame t - 1 and frame t + m
    (1 <= m <= flash_frames) look alike, so frames t .. t + m - 1 were an interruption."""
    similar = config.min_score / 2.0
    dropped: set[int] = set()
    for t in candidates:
        if t in dropped:
            continue
        for m in range(1, config.flash_frames + 1):
            u = t + m
            if u >= back.shape[0]:
                break
            if back[u, m - 1] < similar:            # j = u - (t - 1) = m + 1
                dropped.update(c for c in candidates if t <= c <= u)
                break
    return [c for c in candidates if c not in dropped]


def analysis_size(width: int, height: int, analysis_width: int) -> tuple[int, int]:
    """Stored-picture size for analysis: `analysis_width` wide, aspect kept, even height."""
    scaled_height = max(2, int(round(height * analysis_width / max(width, 1) / 2)) * 2)
    return analysis_width, scaled_height


MERGE_GAP = 2   # boundaries this close are one (a 1-2 frame hole cannot make a clip anyway)


def merge_ranges(ranges: list[tuple[int, int]], gap: int = 1) -> list[tuple[int, int]]:
    """Sorted union of frame ranges; ranges at most `gap` frames apart become one (a content
    cut at c and TransNetV2's flag on frame c - 1 are the same boundary)."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if merged and start - merged[-1][1] <= gap:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def combine_boundaries(analysis: ShotAnalysis, config: ShotConfig) -> list[tuple[int, int]]:
    """The boundaries the configured detector(s) report, as merged `[start, end)` ranges."""
    from pipeline.curate.transnet import transitions_from

    ranges: list[tuple[int, int]] = []
    if config.detector in ("content", "both"):
        ranges += [(c, c) for c in analysis.cuts] + list(analysis.gradual)
    if config.detector in ("transnetv2", "both") and analysis.transnet is not None:
        ranges += transitions_from(analysis.transnet, config.transnet_threshold, config.transnet_extend_threshold)
    return merge_ranges(ranges, gap=MERGE_GAP)


def local_window_predictor(config: ShotConfig) -> WindowPredictor:
    """TransNetV2 in this process (one network per worker, like CLIP)."""
    from pipeline.curate.transnet import detector_for

    return detector_for(config.transnet_device, config.transnet_batch_windows).predict_windows


def analyze_file(uri: str, stored_width: int, stored_height: int, config: ShotConfig | None = None,
                 on_frame: Callable[[int, Any], None] | None = None,
                 transnet: WindowPredictor | None = None) -> ShotAnalysis:
    """Pass one over a file: decode every frame once, downscale, and find the boundaries.

    The frame count is whatever the decoder returns, never the container's claim.
    `on_frame(index, av_frame)` lets the caller keep output-size frames from the same decode.
    When the detector uses TransNetV2, 48x27 frames (bicubic, like the network's training
    data) stream into it from the same decode; `transnet` runs its windows (a Ray actor on a
    GPU, say), else the network is loaded in this process.
    """
    from pipeline.curate.video import iter_frames, new_reformatter

    config = config or ShotConfig()
    width, height = analysis_size(stored_width, stored_height, config.analysis_width)
    detector = ShotDetector(config)
    scaler = new_reformatter()
    stream = None
    if config.detector != "content":
        stream = TransNetStream(transnet or local_window_predictor(config), config.transnet_batch_windows)
        tiny_scaler = new_reformatter()
    for decoded in iter_frames(uri):
        small = scaler.reformat(decoded.frame, width=width, height=height, format="rgb24", interpolation="AREA").to_ndarray()
        detector.push(small, decoded.time)
        if stream is not None:
            stream.push(tiny_scaler.reformat(decoded.frame, width=INPUT_WIDTH, height=INPUT_HEIGHT, format="rgb24",
                                             interpolation="BICUBIC").to_ndarray())
        if on_frame is not None:
            on_frame(decoded.index, decoded.frame)
    analysis = detector.finish()
    analysis.detector = config.detector
    if stream is not None:
        analysis.transnet = stream.finish()
    analysis.transitions = combine_boundaries(analysis, config)
    return analysis


def runs_of(mask: np.ndarray) -> list[tuple[int, int]]:
    """Runs of True as half-open ranges `[start, end)`."""
    padded = np.concatenate([[False], np.asarray(mask, bool), [False]])
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return [(int(a), int(b)) for a, b in zip(edges[0::2], edges[1::2], strict=False)]


def black_stretches(analysis: ShotAnalysis, black_luma: float, black_fraction: float) -> list[tuple[int, int]]:
    """Runs of consecutive black frames as half-open frame ranges `[start, end)`."""
    return runs_of(analysis.black_frames(black_luma, black_fraction))


def frozen_stretches(analysis: ShotAnalysis, noise: float, min_s: float) -> list[tuple[int, int]]:
    """Runs of repeated frames (each within `noise` of the one before) whose picture stays on
    screen at least `min_s` seconds, counted from the frame that is repeated. The repeats are
    returned; the first frame of the freeze is ordinary footage. Runs one frame apart are one
    freeze: an encoder's keyframe re-codes the held picture with slightly different noise."""
    from pipeline.curate.plan import frame_end_times

    if analysis.frame_count == 0:
        return []
    ends = frame_end_times(analysis.times)
    stretches = []
    for start, end in merge_ranges(runs_of(analysis.frozen_frames(noise)), gap=1):
        shown_from = analysis.times[max(start - 1, 0)]
        if ends[end - 1] - shown_from + 1e-9 >= min_s:
            stretches.append((start, end))
    return stretches
