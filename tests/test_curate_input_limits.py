"""Curate inputs that are not footage however they are dressed up (issue 14): a 1x1-pixel
video is refused below a configurable minimum size, and a symbolic-link loop is recorded in
rejects with its reason instead of vanishing from the run."""
from __future__ import annotations

import os
from pathlib import Path

import av
import numpy as np
import pytest

from pipeline.curate.config import CurateConfig, InputConfig, ShotConfig, load_curate_config
from pipeline.curate.inputs import expand_inputs
from pipeline.curate.probe import REJECT_REASONS, probe
from pipeline.curate.process import process_input
from contract.errors import UserError

CONTENT = CurateConfig(shots=ShotConfig(detector="content"))


def tiny_video(path: Path, width: int = 1, height: int = 1, frames: int = 30) -> Path:
    """A real, decodable H.264 video of `width` x `height` pixels (yuv444p allows odd sizes)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv444p"
        for index in range(frames):
            image = np.full((height, width, 3), (index * 8) % 256, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def test_a_one_pixel_video_is_rejected_as_too_small(tmp_path):
    video = tiny_video(tmp_path / "dot.mp4")
    assert probe(str(video)).ok                                  # it is a valid video ...
    result = process_input(str(video), CONTENT, with_clip=False)
    assert result.reason == "too_small" and not result.clips    # ... but not footage
    assert "1x1" in result.detail and "inputs.min_side_px=64" in result.detail
    assert "too_small" in REJECT_REASONS


def test_the_minimum_size_is_configurable(tmp_path):
    video = tiny_video(tmp_path / "small.mp4", width=48, height=40, frames=24)
    assert process_input(str(video), CONTENT, with_clip=False).reason == "too_small"
    lenient = CONTENT.model_copy(update={"inputs": InputConfig(min_side_px=32)})
    assert process_input(str(video), lenient, with_clip=False).reason != "too_small"
    config_file = tmp_path / "curate.yaml"
    config_file.write_text("inputs: {min_side_px: 0}\n")
    with pytest.raises(UserError, match="inputs.min_side_px"):
        load_curate_config(config_file)


def _loop(folder: Path) -> tuple[Path, Path]:
    first, second = folder / "loop_a.mp4", folder / "loop_b.mp4"
    os.symlink(second.name, first)
    os.symlink(first.name, second)
    return first, second


def test_a_symlink_loop_in_a_folder_is_a_reject_with_its_reason(tmp_path):
    folder = tmp_path / "footage"
    (folder / "sub").mkdir(parents=True)
    first, second = _loop(folder)
    os.symlink("..", folder / "sub" / "up")                      # a folder loop: never walked into
    os.symlink("gone.mp4", folder / "dangling.mp4")
    uris = expand_inputs([str(folder)])
    assert uris == sorted([str(first), str(second), str(folder / "dangling.mp4")])
    reasons = {Path(u).name: process_input(u, CONTENT, with_clip=False) for u in uris}
    assert reasons["loop_a.mp4"].reason == "symlink_loop" and "loop" in reasons["loop_a.mp4"].detail
    assert reasons["loop_b.mp4"].reason == "symlink_loop"
    assert reasons["dangling.mp4"].reason == "missing" and "dangling" in reasons["dangling.mp4"].detail


def test_a_symlink_loop_named_directly_or_in_a_list_is_a_reject_not_a_crash(tmp_path):
    first, _ = _loop(tmp_path)
    listing = tmp_path / "inputs.txt"
    listing.write_text("loop_a.mp4\n")
    assert expand_inputs([str(first)]) == [str(first)]
    assert expand_inputs([str(listing)]) == [str(first)]
    assert probe(str(first)).reason == "symlink_loop"
    with pytest.raises(UserError, match="no such file"):         # a plain missing path stays a user error
        expand_inputs([str(tmp_path / "absent.mp4")])
