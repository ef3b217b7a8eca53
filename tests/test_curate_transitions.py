"""Transitions are boundaries (issue 11): cuts, fades and dissolves end a shot, their frames
belong to no clip, black and frozen stretches are cut out, on rendered shots with known
transitions and on the shared real footage."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_curate_helpers import HEIGHT, WIDTH, segment_frames, write_video  # noqa: E402

from pipeline.curate.config import CurateConfig, OutputConfig, PlanConfig, ShotConfig
from pipeline.curate.labelled import build_labelled, match_boundaries, write_labelled
from pipeline.curate.plan import plan_shot_clips, segments_between
from pipeline.curate.process import process_input
from pipeline.curate.shots import analyze_file
from pipeline.encode import decode_mp4

LAYOUT = [("cut", 0), ("fade", 12), ("dissolve", 12), ("fade_white", 12), ("cut", 0)]
SMALL_OUTPUT = OutputConfig(height=32)


def _spans(clips) -> list[tuple[int, int]]:
    return [(c.start_frame, c.end_frame) for c in clips]


def _assert_no_clip_touches(spans, boundaries):
    """No clip holds a transition frame, and none runs across a cut."""
    for start, end in spans:
        for boundary in boundaries:
            if boundary.start == boundary.end:
                assert not start < boundary.start < end, (start, end, boundary)
            else:
                assert end <= boundary.start or start >= boundary.end, (start, end, boundary)


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    video = build_labelled(LAYOUT, shot_frames=48, seed=0)
    return video, write_labelled(tmp_path_factory.mktemp("labelled") / "labelled.mp4", video)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("detector", ["default", "both"])
def test_every_boundary_is_found_and_no_clip_spans_one(labelled, detector):
    """The default detector, and the union with TransNetV2 (the learned detector from its
    packaged weights, run in this process)."""
    video, path = labelled
    config = CurateConfig(output=SMALL_OUTPUT)
    if detector != "default":
        config = config.model_copy(update={"shots": ShotConfig(detector=detector)})
    result = process_input(str(path), config, with_clip=False)
    assert result.reason is None and result.detector == config.shots.detector
    match = match_boundaries(video.boundaries, result.transitions, tolerance=2)
    assert match.missed == [], (match.missed, result.transitions)
    assert match.spurious == [], (match.spurious, result.transitions)
    _assert_no_clip_touches(_spans(result.clips), video.boundaries)
    # every shot of the video still gives a clip: boundaries are cut out, not whole shots
    assert len(result.clips) == len(video.shots())


def test_content_detector_alone_finds_cuts_fades_and_dissolves(labelled):
    video, path = labelled
    analysis = analyze_file(str(path), video.frames.shape[2], video.frames.shape[1], ShotConfig(detector="content"))
    match = match_boundaries(video.boundaries, analysis.transitions, tolerance=2)
    assert match.missed == [] and match.spurious == [], (analysis.transitions, video.boundaries)
    no_gradual = analyze_file(str(path), video.frames.shape[2], video.frames.shape[1],
                              ShotConfig(detector="content", gradual=False))
    missed = match_boundaries(video.boundaries, no_gradual.transitions, tolerance=2).missed
    assert {b.kind for b in missed} >= {"dissolve"}              # the gradual model is what finds it


def _black_frames(frames: np.ndarray) -> np.ndarray:
    """ffmpeg blackdetect rule on decoded frames: >= 98 % of pixels below 10 % luma."""
    luma = frames.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    return (luma < 0.10 * 255).mean(axis=(1, 2)) >= 0.98


@pytest.mark.timeout(300)
@pytest.mark.parametrize("detector", ["content", "transnetv2"])
def test_fades_file_gives_no_clip_that_holds_or_crosses_black(realfootage, detector):
    """fades.mp4 fades to black and back again and again; the frames at luma peaks are too few
    to make a clip, so no clip at all is right. Checked on the clip bytes too."""
    config = CurateConfig(output=SMALL_OUTPUT, shots=ShotConfig(detector=detector))
    result = process_input(str(realfootage / "fades.mp4"), config, with_clip=False)
    black = result.black_stretches
    assert len(black) >= 3
    covered = np.zeros(result.frames_decoded, bool)
    for start, end in result.transitions:
        covered[start:end] = True
    for start, end in black:
        covered[start:end] = True
    for clip in result.clips:
        assert not covered[clip.start_frame:clip.end_frame].any()
        assert not _black_frames(decode_mp4(clip.mp4)).any()
        # "passes through": no black stretch lies between the clip's first and last frame
        assert not any(clip.start_frame <= a < clip.end_frame for a, _ in black)
    if not result.clips:
        assert result.reason == "too_short" and "transitions, black or frozen" in result.detail


def test_a_fade_through_black_between_steady_shots_is_cut_out(tmp_path):
    """The failing case of issue 11: one clip used to run from one shot, through the fade and
    the black stretch, into the next. Now there is a clip on each side and neither holds a
    dark frame."""
    first, second = segment_frames(41, 60), segment_frames(42, 60)
    ramp = np.linspace(1.0, 0.0, 12)[:, None, None, None]
    black = np.zeros((10, HEIGHT, WIDTH, 3), np.uint8)
    frames = np.concatenate([first, (first[-1:] * ramp).astype(np.uint8), black,
                             (second[:1] * ramp[::-1]).astype(np.uint8), second])
    path = write_video(tmp_path / "fade.mp4", frames, fps=24.0)
    config = CurateConfig(output=SMALL_OUTPUT, shots=ShotConfig(detector="content"))
    result = process_input(str(path), config, with_clip=False)
    assert len(result.clips) == 2, (result.transitions, _spans(result.clips))
    (a0, a1), (b0, b1) = _spans(result.clips)
    assert a1 <= 60 and b0 >= 60 + 12 + 10 + 12
    for clip in result.clips:
        assert decode_mp4(clip.mp4).mean() > 40                  # no dim fade frames either


def test_a_frozen_stretch_is_cut_out_of_clips(tmp_path):
    shot = segment_frames(43, 72)
    frames = np.concatenate([shot[:30], np.repeat(shot[30:31], 24, axis=0), shot[31:]])   # 1 s freeze at 24 fps
    path = write_video(tmp_path / "freeze.mp4", frames, fps=24.0, crf=10)
    config = CurateConfig(output=SMALL_OUTPUT, shots=ShotConfig(detector="content"))
    result = process_input(str(path), config, with_clip=False)
    assert result.frozen_stretches and all(31 - 1 <= a and b <= 55 + 1 for a, b in result.frozen_stretches)
    assert sum(b - a for a, b in result.frozen_stretches) >= 20
    for clip in result.clips:
        assert clip.end_frame <= 31 or clip.start_frame >= 54, _spans(result.clips)
    kept = CurateConfig(output=SMALL_OUTPUT, shots=ShotConfig(detector="content"), plan=PlanConfig(exclude_frozen_s=None))
    assert len(process_input(str(path), kept, with_clip=False).clips) == 1   # the switch is what splits it


def test_plan_keeps_clips_away_from_every_boundary_range():
    times = np.arange(200) / 25.0
    assert segments_between(200, [(50, 50), (80, 95), (90, 100), (150, 160)]) == [(0, 50), (50, 80), (100, 150), (160, 200)]
    config = PlanConfig(min_clip_s=0.2, max_clip_s=10.0, trim_s=0.0, margin_frames=3)
    spans = [(p.start, p.end) for p in plan_shot_clips(times, [50, (80, 95)], config, excluded=[(150, 160)])]
    assert spans == [(0, 47), (53, 77), (98, 147), (163, 200)]   # 3 frames from each boundary, none at the file ends
    trimmed = [(p.start, p.end) for p in plan_shot_clips(times, [(80, 95)], PlanConfig(trim_s=0.2, margin_frames=2))]
    assert trimmed == [(0, 75), (100, 200)]                      # 0.2 s = 5 frames beats the 2-frame margin
