"""Small pieces of curate: input expansion (files, folders, lists, Parquet, fsspec URIs),
clip planning, captions, the aesthetic head, motion, config errors, retries on Ray."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_curate_helpers import concatenate_with_cuts, segment_frames, small_config, write_video  # noqa: E402

from pipeline.curate.captions import PLACEHOLDER, caption_for
from pipeline.curate.config import PlanConfig, load_curate_config
from pipeline.curate.inputs import expand_inputs
from pipeline.curate.plan import plan_shot_clips
from pipeline.curate.probe import probe
from pipeline.curate.process import process_input, scene_name
from pipeline.curate.scores import AestheticHead
from pipeline.quality import DEFAULT_THRESHOLDS, motion_score
from contract.errors import UserError


def test_inputs_from_files_folders_lists_and_parquet(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    for name in ("a/one.mp4", "a/b/two.MKV", "a/b/notes.txt", "a/.hidden.mp4", "three.mov"):
        (tmp_path / name).write_bytes(b"x")
    listing = tmp_path / "list.txt"
    listing.write_text("# comment\nthree.mov\n\ns3://bucket/clip.mp4\n")
    table = tmp_path / "paths.parquet"
    pq.write_table(pa.table({"path": [str(tmp_path / "a" / "one.mp4"), "gs://b/x.mp4"]}), table)
    found = expand_inputs([str(tmp_path / "a"), str(listing), str(table), str(tmp_path / "a" / "one.mp4")])
    assert found == sorted({str(tmp_path / "a" / "one.mp4"), str(tmp_path / "a" / "b" / "two.MKV"),
                            str(tmp_path / "three.mov"), "s3://bucket/clip.mp4", "gs://b/x.mp4"})
    with pytest.raises(UserError, match="no such file"):
        expand_inputs([str(tmp_path / "missing.mp4")])
    bad = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"file": ["x"]}), bad)
    with pytest.raises(UserError, match="no column named path"):
        expand_inputs([str(bad)])


def test_fsspec_uri_is_probed_and_curated(tmp_path):
    import fsspec

    frames, _ = concatenate_with_cuts([20, 20], seed=3)
    local = write_video(tmp_path / "clip.mp4", frames)
    with fsspec.open("memory://bucket/clip.mp4", "wb") as handle:
        handle.write(local.read_bytes())
    with fsspec.open("memory://bucket/clip.txt", "w") as handle:
        handle.write("two shots of moving squares\n")
    assert probe("memory://bucket/clip.mp4").ok
    result = process_input("memory://bucket/clip.mp4", small_config(), with_clip=False)
    assert result.reason is None and result.cuts == [20] and len(result.clips) == 2
    assert result.clips[0].caption == "two shots of moving squares" and result.clips[0].caption_source == "sidecar"


def test_plan_trims_at_cuts_drops_short_shots_and_resplits_long_ones():
    times = np.arange(300) / 25.0                       # 12 s at 25 fps
    plans = plan_shot_clips(times, [100, 110], PlanConfig(min_clip_s=1.0, max_clip_s=3.0, trim_s=0.2))
    spans = [(p.start, p.end) for p in plans]
    assert spans[:2] == [(0, 48), (48, 95)]            # 0..95 (4 s minus 0.2 s trim) in two <= 3 s parts
    assert all(p.duration_s <= 3.0 + 1e-9 for p in plans)
    assert not any(100 <= p.start < 110 for p in plans)  # the 0.4 s shot is dropped
    assert plans[2].start == 115 and plans[-1].end == 300  # trimmed after the cut, not at the file end
    assert sum(p.end - p.start for p in plans[2:]) == 185


def test_captions_sidecar_json_then_placeholder(tmp_path):
    video = tmp_path / "walk.mp4"
    video.write_bytes(b"")
    frames = np.zeros((2, 8, 8, 3), np.uint8)
    placeholder = caption_for(str(video), frames, None)
    assert placeholder.text == PLACEHOLDER and placeholder.is_placeholder
    (tmp_path / "walk.json").write_text(json.dumps({"caption": "a  walk\nin the park"}))
    assert caption_for(str(video), frames, None).text == "a walk in the park"
    (tmp_path / "walk.txt").write_text("from the txt")
    assert caption_for(str(video), frames, None).text == "from the txt"


def test_aesthetic_head_is_a_stack_of_linear_layers(tmp_path):
    import torch
    from safetensors.torch import save_file

    rng = np.random.default_rng(0)
    shapes = [(16, 8), (4, 16), (1, 4)]
    state = {}
    for number, (rows, cols) in zip((0, 2, 4), shapes):
        state[f"layers.{number}.weight"] = torch.tensor(rng.normal(size=(rows, cols)), dtype=torch.float32)
        state[f"layers.{number}.bias"] = torch.tensor(rng.normal(size=rows), dtype=torch.float32)
    path = tmp_path / "head.safetensors"
    save_file(state, path)
    head = AestheticHead(str(path), expected_dim=8)
    vector = rng.normal(size=8).astype(np.float32)
    x = vector / np.linalg.norm(vector)
    for number in (0, 2, 4):
        x = state[f"layers.{number}.weight"].numpy() @ x + state[f"layers.{number}.bias"].numpy()
    assert head.score(vector) == pytest.approx(float(x[0]), rel=1e-5)
    with pytest.raises(UserError, match="takes 8-d embeddings"):
        AestheticHead(str(path), expected_dim=512)


def test_motion_separates_still_from_moving():
    """Curate scores motion with pipeline.quality's one motion score (`pixel_motion`, 0-1 scale)."""
    still = np.repeat(segment_frames(1, 1), 24, axis=0)
    moving = segment_frames(1, 24)
    assert motion_score(still) == 0.0
    assert motion_score(moving) > DEFAULT_THRESHOLDS.min_pixel_motion   # not "static"


def test_scene_names_are_key_safe():
    assert scene_name("/x/My Holiday.Clip (2).mp4") == "my_holiday_clip_2"
    assert scene_name("s3://b/...mp4") == "video"


def test_config_errors_name_the_field(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("output:\n  fps: -3\n")
    with pytest.raises(UserError, match="output.fps"):
        load_curate_config(path)
    path.write_text("plan:\n  min_clip_s: 5\n  max_clip_s: 2\n")
    with pytest.raises(UserError, match="max_clip_s"):
        load_curate_config(path)
    path.write_text("shots:\n  treshold: 3\n")
    with pytest.raises(UserError, match="shots.treshold"):
        load_curate_config(path)


@pytest.mark.timeout(300)
def test_a_failing_task_is_retried_then_recorded_as_failed(tmp_path, ray_session):
    from pipeline.curate.scheduler import process_pending

    frames, _ = concatenate_with_cuts([20], seed=4)
    video = write_video(tmp_path / "ok.mp4", frames)
    broken = tmp_path / "broken_dataset"
    broken.mkdir()
    (broken / "work").write_text("a file where the staging folder should be")  # every stage attempt fails
    failures = process_pending([str(video)], broken, small_config(), show_progress=False, num_cpus=None)
    assert list(failures) == [str(video)] and "attempts=3" in failures[str(video)]


@pytest.mark.timeout(300)
def test_optional_quality_rejection_and_dedupe_among_survivors(tmp_path, ray_session):
    from pipeline.curate.config import FilterConfig
    from pipeline.curate.run import run_curate
    from pipeline.shards import read_index, verify_dataset

    moving, _ = concatenate_with_cuts([24], seed=21)
    write_video(tmp_path / "moving.mp4", moving)
    write_video(tmp_path / "black.mp4", np.zeros((24, 96, 160, 3), np.uint8))
    # black and frozen frames belong to no clip by default (plan.exclude_black, exclude_frozen_s);
    # keep them here so the quality filter is what rejects the black clip
    plan = small_config().plan.model_copy(update={"exclude_black": False, "exclude_frozen_s": None})
    config = small_config().model_copy(update={"filters": FilterConfig(reject_low_quality=True), "plan": plan})
    run_curate([str(tmp_path / "moving.mp4"), str(tmp_path / "black.mp4")], tmp_path / "out", config, show_progress=False)
    assert verify_dataset(tmp_path / "out").ok
    index = read_index(tmp_path / "out" / "index.parquet").set_index("scene")
    assert index.loc["moving", "status"] == "kept"
    assert index.loc["black", "status"] == "rejected" and "black" in index.loc["black", "reason"].split(",")
    assert index.loc["black", "black_fraction"] == 1.0
    from pipeline.curate.process import process_input

    excluded = process_input(str(tmp_path / "black.mp4"), small_config(), with_clip=False)
    assert excluded.reason == "too_short" and excluded.black_stretches == [(0, 24)]   # the default


def test_missing_model_files_fail_before_any_work(tmp_path):
    from pipeline.curate.config import ModelConfig
    from pipeline.curate.run import run_curate

    frames, _ = concatenate_with_cuts([20], seed=4)
    video = write_video(tmp_path / "ok.mp4", frames)
    for field_name in ("clip_weights", "aesthetic_head", "coca_weights"):
        config = small_config().model_copy(update={"models": ModelConfig(**{field_name: str(tmp_path / "none.pt")})})
        with pytest.raises(UserError, match=f"models.{field_name}"):
            run_curate([str(video)], tmp_path / "out", config, show_progress=False)
        assert not (tmp_path / "out").exists()


def test_an_aesthetic_head_for_another_clip_width_fails_before_any_work(tmp_path):
    import torch
    from safetensors.torch import save_file

    from pipeline.curate.config import ModelConfig
    from pipeline.curate.run import check_models

    head = tmp_path / "laion_vit_l14.safetensors"
    save_file({"layers.0.weight": torch.zeros(16, 768), "layers.0.bias": torch.zeros(16),
               "layers.2.weight": torch.zeros(1, 16), "layers.2.bias": torch.zeros(1)}, head)
    config = small_config().model_copy(update={"models": ModelConfig(aesthetic_head=str(head))})
    with pytest.raises(UserError, match="takes 768-d embeddings but the CLIP model gives 512"):
        check_models(config)
    wide = small_config().model_copy(update={"models": ModelConfig(clip_model="ViT-L-14", aesthetic_head=str(head))})
    check_models(wide)
