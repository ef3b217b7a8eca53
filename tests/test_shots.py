"""Shot detection: known cuts in procedural videos, fades, dissolves, variable frame rate,
and the cuts of the shared real footage (checked by eye: counter.mp4 changes its background
colour at frames 10 and 20; issue-134-rotate.mp4 cuts at 90 and 210; the .mkv at 19)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_curate_helpers import (HEIGHT, WIDTH, concatenate_with_cuts, dissolve,  # noqa: E402
                              fade_through_black, segment_frames, write_video)

from pipeline.curate.config import ShotConfig
from pipeline.curate.shots import analyze_file as _analyze_file
from pipeline.curate.shots import black_stretches, find_cuts
from pipeline.curate.video import iter_frames

CONTENT = ShotConfig(detector="content")


def analyze_file(uri, width, height, config=CONTENT):
    """The content detector (these tests are about it; TransNetV2: test_shots_transnet.py)."""
    return _analyze_file(uri, width, height, config)


@pytest.mark.parametrize("lengths,seed,fps", [
    ([30, 17, 41, 25, 33], 1, 24.0),
    ([20, 20, 20, 20, 20, 20], 2, 30.0),
    ([45, 16, 60], 3, 25.0),
])
def test_every_hard_cut_found_within_one_frame_and_no_false_cut(tmp_path, lengths, seed, fps):
    frames, cuts = concatenate_with_cuts(lengths, seed=seed)
    video = write_video(tmp_path / "cuts.mp4", frames, fps=fps, gop=7)  # keyframes not at cuts
    found = analyze_file(str(video), WIDTH, HEIGHT).cuts
    assert len(found) == len(cuts), (found, cuts)
    for expected, got in zip(cuts, found):
        assert abs(expected - got) <= 1, (found, cuts)


def test_fade_through_black_and_dissolve_are_not_cuts_and_black_is_flagged(tmp_path):
    first, second, third = segment_frames(7, 40), segment_frames(8, 40), segment_frames(9, 40)
    frames = np.concatenate([fade_through_black(first, second, 12), dissolve(second, third, 10)])
    video = write_video(tmp_path / "fades.mp4", frames)
    analysis = analyze_file(str(video), WIDTH, HEIGHT)
    assert analysis.cuts == []
    stretches = black_stretches(analysis, 0.10, 0.98)
    assert stretches, "the black point of the fade must be flagged"
    assert all(28 <= a and b <= 52 for a, b in stretches), stretches   # only around the fade (frames 28..52)


def test_a_hard_cut_into_black_is_still_a_cut(tmp_path):
    frames = np.concatenate([segment_frames(4, 30), np.zeros((30, HEIGHT, WIDTH, 3), np.uint8)])
    video = write_video(tmp_path / "to_black.mp4", frames)
    assert [abs(c - 30) <= 1 for c in analyze_file(str(video), WIDTH, HEIGHT).cuts] == [True]


def test_variable_frame_rate_times_come_from_pts(tmp_path):
    frames, cuts = concatenate_with_cuts([30, 17, 41, 25], seed=5)
    rng = np.random.default_rng(0)
    durations = rng.choice([1 / 30, 1 / 15, 1 / 24], size=len(frames))
    times = np.concatenate([[0.0], np.cumsum(durations)[:-1]])
    video = write_video(tmp_path / "vfr.mp4", frames, times=list(times))
    decoded = np.array([d.time for d in iter_frames(str(video))])
    np.testing.assert_allclose(decoded, times, atol=1.5e-3)
    analysis = analyze_file(str(video), WIDTH, HEIGHT)
    assert len(analysis.cuts) == len(cuts) and all(abs(a - b) <= 1 for a, b in zip(analysis.cuts, cuts))
    np.testing.assert_allclose(analysis.times, times, atol=1.5e-3)


def test_min_scene_length_is_in_seconds_and_keeps_the_stronger_cut():
    scores = np.zeros(100, np.float32)
    scores[[20, 24, 60]] = [0.5, 0.8, 0.6]
    times = np.arange(100) / 25.0
    config = ShotConfig(min_scene_s=0.4)
    assert find_cuts(scores, times, config) == [24, 60]      # 20 and 24 are 0.16 s apart
    assert find_cuts(scores, times * 4, config) == [20, 24, 60]  # same frames, 0.64 s apart


def test_real_footage_cuts(realfootage):
    expected = {"counter.mp4": [10, 20], "fades.mp4": [], "delayed_start.mp4": [],
                "issue-134-rotate.mp4": [90, 210], "issue-236-split-copy.mkv": [19]}
    from pipeline.curate.probe import probe

    for name, cuts in expected.items():
        found = probe(str(realfootage / name))
        analysis = analyze_file(found.uri, found.width, found.height)
        assert analysis.cuts == cuts, name


def test_a_flash_is_not_a_cut_but_a_real_cut_next_to_it_is(tmp_path):
    first, second = segment_frames(31, 40), segment_frames(32, 40)
    flashed = first.copy()
    flashed[15:17] = 255                                     # a two-frame photo flash in shot one
    frames = np.concatenate([flashed, second])
    video = write_video(tmp_path / "flash.mp4", frames)
    cuts = analyze_file(str(video), WIDTH, HEIGHT).cuts
    assert len(cuts) == 1 and abs(cuts[0] - 40) <= 1, cuts
    no_filter = analyze_file(str(video), WIDTH, HEIGHT, ShotConfig(detector="content", flash_frames=0)).cuts
    assert any(14 <= c <= 18 for c in no_filter), no_filter   # the filter is what removed it
