"""Curating the shared real footage, one file at a time (no Ray): frame-exact cuts, rotation,
containers without a frame count, fades and black stretches, and rejects with reasons."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pipeline.curate.config import CurateConfig, OutputConfig, PlanConfig, ShotConfig
from pipeline.curate.plan import ShotClipPlan
from pipeline.curate.probe import probe
from pipeline.curate.process import process_input
from pipeline.curate.shots import analyze_file
from pipeline.curate.transcode import output_geometry, select_source_frames, transcode_clips
from pipeline.curate.video import iter_frames, to_rgb
from pipeline.encode import EncodeSettings, decode_mp4, encode_mp4

VIDEOS = ["counter.mp4", "fades.mp4", "delayed_start.mp4", "issue-134-rotate.mp4", "issue-236-split-copy.mkv"]
# The fast content detector here: these tests are about decoding, cutting and rotation, and the
# suite has a time budget. The learned detector on real footage: tests/test_curate_transitions.py.
CONTENT = ShotConfig(detector="content")
SMALL = CurateConfig(output=OutputConfig(height=96), plan=PlanConfig(min_clip_s=0.5), shots=CONTENT)
_RESULTS: dict[str, object] = {}


def curated(folder, name: str):
    """process_input of one shared file, computed once per test session."""
    if name not in _RESULTS:
        _RESULTS[name] = process_input(str(folder / name), SMALL, with_clip=False)
    return _RESULTS[name]


def _plan(times: np.ndarray, start: int, end: int) -> ShotClipPlan:
    step = float(np.median(np.diff(times)))
    end_s = float(times[end]) if end < len(times) else float(times[-1] + step)
    return ShotClipPlan(start, end, float(times[start]), end_s, 0)


def _nearest(frames: np.ndarray, references: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per output frame: index of the closest reference (MSE) and the margin to the runner-up."""
    a = frames.reshape(len(frames), -1).astype(np.float64)
    b = references.reshape(len(references), -1).astype(np.float64)
    distances = ((a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T) / a.shape[1]
    order = np.sort(distances, axis=1)
    return distances.argmin(axis=1), order[:, 1] - order[:, 0]


@pytest.fixture(scope="module")
def counter(realfootage):
    """counter.mp4 analysed once, with every decoded source frame at the output size."""
    uri = str(realfootage / "counter.mp4")
    found = probe(uri)
    analysis = analyze_file(uri, found.width, found.height, CONTENT)
    geometry = output_geometry(found.width, found.height, found.rotation_deg, OutputConfig(height=216))
    references = np.stack([to_rgb(d.frame, width=geometry.scale_width, height=geometry.scale_height) for d in iter_frames(uri)])
    return uri, analysis, geometry, references


@pytest.mark.parametrize("start,end", [(3, 17), (10, 20), (0, 30), (25, 30)])
def test_counter_cut_holds_exactly_the_numbered_frames(counter, start, end):
    """Frame i of counter.mp4 shows the number i+1, so [a, b) must show a+1..b; checked by
    matching every frame of the encoded+decoded clip to all decoded source frames."""
    uri, analysis, geometry, references = counter
    assert analysis.frame_count == 30 and len(references) == 30
    plan = _plan(analysis.times, start, end)
    (clip,) = list(transcode_clips(uri, analysis.times, [plan], geometry, fps=10.0))
    decoded = decode_mp4(encode_mp4(clip.frames, 10.0, EncodeSettings(crf=18)))
    matches, margins = _nearest(decoded, references)
    assert matches.tolist() == list(range(start, end))        # shows numbers start+1 .. end
    assert len(decoded) == end - start
    assert margins.min() > 1.0, "the numbered frames must be told apart by a clear margin"


def test_fps_conversion_picks_frames_by_timestamp():
    times = np.arange(30) / 10.0
    assert select_source_frames(times, _plan(times, 4, 24), 5.0).tolist() == list(range(4, 24, 2))
    assert select_source_frames(times, _plan(times, 0, 10), 20.0).tolist() == [i // 2 for i in range(20)]
    jittered = times + np.array([0.004 * ((-1) ** i) for i in range(30)])  # millisecond PTS rounding
    assert select_source_frames(jittered, _plan(jittered, 0, 30), 10.0).tolist() == list(range(30))


def test_rotated_file_comes_out_in_display_orientation(realfootage):
    uri = str(realfootage / "issue-134-rotate.mp4")
    found = probe(uri)
    assert (found.width, found.height, found.rotation_deg) == (1280, 544, -90)
    geometry = output_geometry(found.width, found.height, found.rotation_deg, OutputConfig(height=256))
    assert geometry.height == 256 and geometry.width < geometry.height      # landscape storage -> portrait output
    analysis = analyze_file(uri, found.width, found.height, CONTENT)
    (clip,) = list(transcode_clips(uri, analysis.times, [_plan(analysis.times, 0, 3)], geometry, fps=found.fps))
    assert clip.frames.shape == (3, 256, geometry.width, 3)
    # independent reference: PIL resize of the stored frame, then a clockwise quarter turn,
    # which is what a display matrix of -90 degrees (counter-clockwise) asks for
    first = next(iter_frames(uri)).frame.to_ndarray(format="rgb24")
    stored = np.asarray(Image.fromarray(first).resize((256, geometry.width), Image.BILINEAR), np.float32)
    clockwise, counter_clockwise = np.rot90(stored, k=-1), np.rot90(stored, k=1)
    error_cw = ((clip.frames[0].astype(np.float32) - clockwise) ** 2).mean()
    error_ccw = ((clip.frames[0].astype(np.float32) - counter_clockwise) ** 2).mean()
    assert error_cw < 50 and error_cw * 10 < error_ccw


def test_both_sizes_given_scale_to_cover_and_centre_crop():
    geometry = output_geometry(1280, 544, -90, OutputConfig(width=128, height=128))
    assert (geometry.width, geometry.height) == (128, 128)
    assert (geometry.scale_width, geometry.scale_height) == (301, 128) or geometry.scale_height == 128
    assert geometry.quarter_turns == 3 and geometry.crop_y > 0 and geometry.crop_x == 0


def test_matroska_without_frame_count(realfootage):
    uri = str(realfootage / "issue-236-split-copy.mkv")
    found = probe(uri)
    assert found.ok and found.declared_frames == 0
    result = curated(realfootage, "issue-236-split-copy.mkv")
    assert result.frames_decoded == 48
    assert result.clips and all(len(decode_mp4(c.mp4)) == c.frames for c in result.clips)


@pytest.mark.parametrize("name", ["fades.mp4", "delayed_start.mp4"])
def test_files_that_are_all_fade_give_no_clip_and_say_why(realfootage, name):
    """fades.mp4 fades to black and back again and again; delayed_start.mp4 is one fade-in
    from black. Every frame is a transition or black, so no clip, and a reject that says so."""
    result = curated(realfootage, name)
    assert result.reason == "too_short" and not result.clips
    assert f"of {result.frames_decoded} frames are transitions, black or frozen" in result.detail
    covered = np.zeros(result.frames_decoded, bool)
    for start, end in result.transitions + result.black_stretches:
        covered[start:end] = True
    assert covered.sum() >= result.frames_decoded - 2        # at most a frame or two of picture outside fades
    assert result.black_stretches and result.black_stretches[0][0] == 0   # both start black; flagged
    assert len(result.black_stretches) >= (3 if name == "fades.mp4" else 1)


@pytest.mark.parametrize("name", [v for v in VIDEOS if v not in ("fades.mp4", "delayed_start.mp4")])
def test_every_readable_file_yields_clips(realfootage, name):
    result = curated(realfootage, name)
    assert result.reason is None, result.detail
    assert result.clips
    for clip in result.clips:
        decoded = decode_mp4(clip.mp4)
        assert decoded.shape == (clip.frames, clip.height, clip.width, 3)
        assert "_" in clip.key and "." not in clip.key


def test_rejects_with_reasons_never_crash(tmp_path, realfootage):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 20)
    garbage = tmp_path / "noise.mkv"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    reasons = {p.name: process_input(str(p), SMALL, with_clip=False).reason
               for p in (empty, text, garbage, realfootage / "README.md", tmp_path / "missing.mp4")}
    assert reasons == {"empty.mp4": "empty_file", "notes.mp4": "not_media", "noise.mkv": "not_media",
                       "README.md": "not_media", "missing.mp4": "missing"}
