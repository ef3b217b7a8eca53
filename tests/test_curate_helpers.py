"""Helpers for the curate tests (no tests here): procedural videos with known cut points,
fades and variable frame rate, and the curated datasets several test modules share.

Imported as a plain module by the curate tests. Each procedural segment has
its own colour palette, a textured background and a moving square, so segments differ the
way real shots do while frames within a segment change smoothly.
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

WIDTH, HEIGHT = 160, 96


def segment_frames(seed: int, count: int, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """(count, H, W, 3) uint8: a drifting textured background plus a moving square."""
    rng = np.random.default_rng(seed)
    base = rng.integers(30, 226, size=3)
    accent = 255 - base
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    frequency = rng.uniform(0.05, 0.2, size=2)
    frames = np.empty((count, height, width, 3), np.uint8)
    side = height // 4
    speed = rng.uniform(1.0, 3.0, size=2)
    for t in range(count):
        texture = 0.5 + 0.5 * np.sin(frequency[0] * (x + 1.5 * t) + frequency[1] * y)
        image = base[None, None, :] * (0.6 + 0.4 * texture[..., None])
        top = int((10 + speed[1] * t) % (height - side))
        left = int((10 + speed[0] * t) % (width - side))
        image[top:top + side, left:left + side] = accent
        frames[t] = np.clip(image, 0, 255).astype(np.uint8)
    return frames


def concatenate_with_cuts(lengths: list[int], seed: int = 0) -> tuple[np.ndarray, list[int]]:
    """Hard cuts between segments; returns the frames and the cut indices (first frame of each new shot)."""
    parts = [segment_frames(seed * 100 + i, n) for i, n in enumerate(lengths)]
    cuts = list(np.cumsum(lengths)[:-1])
    return np.concatenate(parts), [int(c) for c in cuts]


def fade_through_black(first: np.ndarray, second: np.ndarray, fade: int) -> np.ndarray:
    """first fades out to black over `fade` frames, then second fades in: no hard cut."""
    ramp_out = np.linspace(1.0, 0.0, fade)[:, None, None, None]
    ramp_in = np.linspace(0.0, 1.0, fade)[:, None, None, None]
    out = (first[-fade:].astype(np.float32) * ramp_out).astype(np.uint8)
    into = (second[:fade].astype(np.float32) * ramp_in).astype(np.uint8)
    return np.concatenate([first[:-fade], out, into, second[fade:]])


def dissolve(first: np.ndarray, second: np.ndarray, length: int) -> np.ndarray:
    """Cross-dissolve over `length` frames: no hard cut."""
    alpha = np.linspace(0.0, 1.0, length + 2)[1:-1, None, None, None]
    mixed = (first[-length:].astype(np.float32) * (1 - alpha) + second[:length].astype(np.float32) * alpha).astype(np.uint8)
    return np.concatenate([first[:-length], mixed, second[length:]])


def write_video(path: Path, frames: np.ndarray, fps: float = 24.0, *, times: list[float] | None = None,
                crf: int = 20, gop: int = 12) -> Path:
    """H.264 MP4 through PyAV. With `times` (seconds), frames get those PTS: variable frame rate."""
    time_base = Fraction(1, 1000)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001),
                                      options={"crf": str(crf), "x264-params": f"keyint={gop}:scenecut=0:bframes=0"})
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        if times is not None:
            stream.codec_context.time_base = time_base
        for index, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            if times is not None:
                frame.pts = int(round(times[index] * 1000))
                frame.time_base = time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


# --- curated datasets shared by several test modules (built once per session) ---------------
REAL_FOOTAGE = ["counter.mp4", "fades.mp4", "delayed_start.mp4", "issue-134-rotate.mp4", "issue-236-split-copy.mkv"]
_BUILT: dict[str, object] = {}


def aesthetic_head_path() -> str:
    """A LAION-style head (two linear layers, 512 -> 16 -> 1) with seeded random weights,
    written once per test session; removed at exit."""
    if "head" not in _BUILT:
        import atexit
        import shutil
        import tempfile

        import torch

        folder = Path(tempfile.mkdtemp(prefix="worldloom_test_head_"))
        atexit.register(shutil.rmtree, folder, True)
        generator = torch.Generator().manual_seed(0)
        state = {"layers.0.weight": torch.randn(16, 512, generator=generator), "layers.0.bias": torch.zeros(16),
                 "layers.2.weight": torch.randn(1, 16, generator=generator) * 0.1, "layers.2.bias": torch.tensor([5.0])}
        from safetensors.torch import save_file

        save_file(state, folder / "head.safetensors")
        _BUILT["head"] = str(folder / "head.safetensors")
    return str(_BUILT["head"])


def small_config():
    """Small outputs, two CLIP frames per clip, an aesthetic head, two CPUs per task (fewer
    model loads on 2 cores), and the fast content detector (TransNetV2 runs at ~20-70 frames/s
    on 2 CPU threads; it has its own tests in test_shots_transnet.py and
    test_curate_transitions.py). Every Ray test uses this, so workers build their models once."""
    from pipeline.curate.config import CurateConfig, ModelConfig, OutputConfig, RunConfig, ScoreConfig, ShotConfig

    return CurateConfig(output=OutputConfig(height=64), scores=ScoreConfig(frames_sampled=2),
                        models=ModelConfig(aesthetic_head=aesthetic_head_path()),
                        shots=ShotConfig(detector="content"), run=RunConfig(num_cpus_per_task=2))


def real_inputs(folder: Path, realfootage: Path) -> list[str]:
    frames, _ = concatenate_with_cuts([24, 24], seed=11)
    write_video(folder / "copy_hq.mp4", frames, crf=18)
    write_video(folder / "copy_lq.mp4", frames, crf=34)
    (folder / "copy_hq.txt").write_text("a coloured square moving over stripes\n")   # sidecar caption
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "notes.mp4").write_text("not a video\n" * 10)
    listing = folder / "real.txt"
    listing.write_text("# shared real footage\n" + "".join(f"{realfootage / name}\n" for name in REAL_FOOTAGE))
    tiny = folder / "dot.mp4"                                   # a 1x1-pixel video (issue 14): too_small
    with av.open(str(tiny), "w") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = 1, 1, "yuv444p"
        for index in range(24):
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.full((1, 1, 3), index * 9, np.uint8), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    (folder / "loop_a.mp4").symlink_to("loop_b.mp4")            # a symbolic-link loop (issue 14): symlink_loop
    (folder / "loop_b.mp4").symlink_to("loop_a.mp4")
    return [str(listing), str(folder / "copy_hq.mp4"), str(folder / "copy_lq.mp4"),
            str(folder / "empty.mp4"), str(folder / "notes.mp4"), str(tiny), str(folder / "loop_a.mp4")]


def curated_real(tmp_path_factory, realfootage: Path):
    """(dataset folder, summary, inputs folder) of the real-footage curate run."""
    if "real" not in _BUILT:
        from pipeline.curate.run import run_curate

        folder = tmp_path_factory.mktemp("real_inputs")
        out = tmp_path_factory.mktemp("curated") / "real"
        summary = run_curate(real_inputs(folder, realfootage), out, small_config(), show_progress=False)
        _BUILT["real"] = (out, summary, folder)
    return _BUILT["real"]


PROCEDURAL_SETS = {
    "procedural": ("procedural", [[24, 30, 24], [36, 24], [24, 24, 30]], 50),
    "dashcam": ("dashcam", [[30, 24], [24, 36, 24]], 70),
}


def curated_procedural(tmp_path_factory, name: str = "procedural"):
    """An all-procedural dataset (no real footage needed): `procedural` (3 files, 8 shots) or
    `dashcam` (2 files, 5 shots, another domain tag) for select and mix."""
    if name not in _BUILT:
        from pipeline.curate.run import run_curate

        domain, layouts, seed = PROCEDURAL_SETS[name]
        folder = tmp_path_factory.mktemp(f"{name}_inputs")
        for number, lengths in enumerate(layouts):
            frames, _ = concatenate_with_cuts(lengths, seed=seed + number)
            write_video(folder / f"{name}_{number}.mp4", frames)
        out = tmp_path_factory.mktemp("curated") / name
        summary = run_curate([str(folder)], out, small_config(), domain=domain, show_progress=False)
        _BUILT[name] = (out, summary, folder)
    return _BUILT[name]
