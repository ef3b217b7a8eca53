"""Gradual transitions for the fast content detector: dissolves and fades, by their models.

The hard-cut rule of shots.py looks for one frame that stands out; a dissolve or a fade
spreads the same change over many frames, each of which looks like motion. Instead of a
threshold, each kind is tested against what it *is*:

* **Dissolve** (and the half of a fade that mixes with a flat colour): every frame between
  the last frame A of one shot and the first frame B of the next is a mix
  `F_k = (1 - a_k) A + a_k B` with `a_k` rising from 0 to 1. For every frame B and every
  candidate length L (`shots.gradual_lengths`), the mixing weights are fitted by least
  squares on 8x8-pixel block means of the analysis frames (mixing is linear, so block means
  of a mix are the mix of block means, while motion inside each shot mostly averages out
  at that scale); a candidate holds when A and B differ like two shots
  (histogram distance >= `gradual_min_change`), the weights rise steadily (no step above
  0.5, which would be a hard cut), and the frames are explained by the mix (mean residual
  <= `gradual_max_residual` of |B - A|). Camera motion inside a shot fails one of these:
  slow motion changes the histogram too little, fast motion is not a mix of its end frames.
* **Fade through a flat colour** (black, white, any): frames whose luma standard deviation
  is below `blank_contrast` (0..255) are blank; from each blank run the fade extends
  outwards while the contrast keeps rising frame after frame (a fade scales the picture's
  contrast with its weight), at most `fade_max_s`. A blank run with no ramp on either side
  is not a fade (a hard cut to black; black frames are excluded from clips on their own).

Streaming: only the last `max(gradual_lengths) + 2` analysis frames are kept.
"""
from __future__ import annotations

from collections import deque

import numpy as np

MAX_STEP = 0.5            # a mixing weight that jumps more than this in one frame is a cut
END_SLACK = 0.35          # the first weight must start below this, the last end above 1 - this
BACKSTEP = 0.1            # tolerated decrease of the weight between consecutive frames
LINEARITY = 0.2           # weights may stray this far from a constant-rate mix (editors' dissolves are linear)
BLOCK = 8                 # pixels per block side for the mix fit
RAMP_RISE = 1.02          # a fade's contrast rises by at least 2 % per frame away from the blank ...
RAMP_FLOOR = 0.3          # ... and by at least this much (0..255), so noise does not extend it


class GradualDetector:
    def __init__(self, lengths: list[int], min_change: float, max_residual: float) -> None:
        self.lengths = sorted({int(n) for n in lengths if n >= 2})
        self.min_change = min_change
        self.max_residual = max_residual
        self._frames: deque[np.ndarray] = deque(maxlen=(max(self.lengths) if self.lengths else 0) + 2)
        self._histograms: deque[np.ndarray] = deque(maxlen=self._frames.maxlen)
        self._count = 0
        self.candidates: list[tuple[int, int, float]] = []   # (first mixed frame, first frame of B, residual)

    def push(self, rgb: np.ndarray, histogram: np.ndarray) -> None:
        """rgb: the analysis frame (h, w, 3) uint8; histogram: its (40,) colour histogram."""
        if not self.lengths:
            return
        self._frames.append(block_means(rgb))
        self._histograms.append(histogram)
        b = self._count
        self._count += 1
        held = len(self._frames)
        for length in self.lengths:
            if length + 2 > held:
                break
            start = held - length - 2                      # position of A in the deque
            residual = self._mix_residual(start, length)
            if residual is not None:
                self.candidates.append((b - length, b, residual))

    def _mix_residual(self, start: int, length: int) -> float | None:
        histogram_change = float(np.abs(self._histograms[start] - self._histograms[-1]).sum()) / 6.0
        if histogram_change < self.min_change:
            return None
        first, last = self._frames[start], self._frames[-1]
        direction = last - first
        energy = float(direction @ direction)
        if energy <= 1e-6:
            return None
        middle = np.stack([self._frames[start + 1 + k] for k in range(length)]) - first    # (L, P)
        weights = middle @ direction / energy                                            # (L,)
        steps = np.diff(np.concatenate([[0.0], weights, [1.0]]))
        if weights[0] > END_SLACK or weights[-1] < 1.0 - END_SLACK:
            return None
        if steps.max() > MAX_STEP or steps.min() < -BACKSTEP:
            return None
        # A window that spans a transition and then part of a shot has weights that reach 1
        # early and stay; only windows inside a constant-rate mix are linear in k.
        if np.abs(weights - np.arange(1, length + 1) / (length + 1)).max() > LINEARITY:
            return None
        residual = middle - weights[:, None] * direction[None, :]
        relative = float(np.sqrt((residual * residual).sum(axis=1)).mean() / np.sqrt(energy))
        return relative if relative <= self.max_residual else None

    def ranges(self) -> list[tuple[int, int]]:
        """Every accepted candidate as `[first mixed frame, first frame of the next shot)`."""
        return [(a, b) for a, b, _ in self.candidates]


def block_means(rgb: np.ndarray, block: int = BLOCK) -> np.ndarray:
    """(h, w, 3) uint8 -> flat float32 means of `block` x `block` tiles (edges cropped), 0..1."""
    rows, cols = max(1, rgb.shape[0] // block), max(1, rgb.shape[1] // block)
    size_y, size_x = min(block, rgb.shape[0]), min(block, rgb.shape[1])
    tiles = rgb[:rows * size_y, :cols * size_x].astype(np.float32).reshape(rows, size_y, cols, size_x, 3)
    return tiles.mean(axis=(1, 3)).reshape(-1) / 255.0


def fade_ranges(contrast: np.ndarray, times: np.ndarray, blank_contrast: float, max_s: float) -> list[tuple[int, int]]:
    """Blank runs (contrast below `blank_contrast`) grown over the contrast ramps on each side."""
    count = contrast.shape[0]
    blank = contrast < blank_contrast
    ranges: list[tuple[int, int]] = []
    t = 0
    while t < count:
        if not blank[t]:
            t += 1
            continue
        start = t
        while t < count and blank[t]:
            t += 1
        end = t
        blank_start, blank_end = start, end
        while (start > 0 and times[end - 1] - times[start - 1] <= max_s
               and contrast[start - 1] >= contrast[start] * RAMP_RISE + RAMP_FLOOR):
            start -= 1
        while (end < count and times[end] - times[start] <= max_s
               and contrast[end] >= contrast[end - 1] * RAMP_RISE + RAMP_FLOOR):
            end += 1
        if (start, end) != (blank_start, blank_end):    # a flat stretch with no ramp is no fade
            ranges.append((start, end))
    return ranges
