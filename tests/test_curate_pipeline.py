"""`worldloom curate` end to end on Ray: real footage, bitrate copies, bad inputs, resume."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_curate_helpers import REAL_FOOTAGE as REAL  # noqa: E402
from test_curate_helpers import curated_real, small_config  # noqa: E402

from pipeline.curate import staging
from pipeline.curate.run import run_curate
from pipeline.curate.scheduler import process_pending
from pipeline.encode import decode_mp4
from pipeline.shards import iter_samples, read_dataset_json, read_index, verify_dataset



@pytest.fixture(scope="module")
def built(tmp_path_factory, realfootage, ray_session):
    return curated_real(tmp_path_factory, realfootage)


@pytest.fixture(scope="module")
def dataset(built):
    return built[0], built[1]


@pytest.fixture(scope="module")
def inputs(built):
    return built[2]


@pytest.mark.timeout(300)
def test_dataset_is_complete_and_index_matches_shards(dataset):
    out, summary = dataset
    report = verify_dataset(out)
    assert report.ok, report.problems
    document = read_dataset_json(out / "dataset.json")
    assert document["status"] == "complete" and document["created_by"] == "worldloom curate"
    by_file = {Path(entry["uri"]).name: entry for entry in document["inputs"]}
    assert by_file["issue-134-rotate.mp4"]["transitions"] == [[90, 90], [210, 210]]     # hard cuts: [c, c)
    assert by_file["issue-134-rotate.mp4"]["detector"] == "content"
    assert by_file["fades.mp4"]["transitions"] and by_file["fades.mp4"]["black_stretches"]
    assert summary.inputs == 11 and summary.processed_now == 11 and summary.kept == report.samples > 0
    assert not (out / "work").exists()
    index = read_index(out / "index.parquet")
    uris = {json.loads(p)["uri"] for p in index["params_json"]}
    for name in REAL:          # every readable file yields clips, except the two that are all fade
        assert any(u.endswith(name) for u in uris) == (name not in ("fades.mp4", "delayed_start.mp4")), name
    assert set(index["source"]) == {"real"} and set(index["domain"]) == {"real"}
    # one motion score for real and rendered clips (issue 10): pixel_motion, no curate-only `motion`
    assert "pixel_motion" in index.columns and "motion" not in index.columns
    from pipeline.curate.scores import AestheticHead

    head = AestheticHead(small_config().models.aesthetic_head)
    expected = [head.score(np.asarray(e, np.float32)) for e in index["embedding"]]
    np.testing.assert_allclose(index["aesthetic"], expected, rtol=1e-4)


def test_bad_inputs_land_in_rejects_with_reasons(dataset):
    out, summary = dataset
    rejects = pq.read_table(out / "rejects.parquet").to_pandas()
    by_name = {Path(u).name: r for u, r in zip(rejects["uri"], rejects["reason"])}
    assert by_name == {"empty.mp4": "empty_file", "notes.mp4": "not_media", "dot.mp4": "too_small",
                       "loop_a.mp4": "symlink_loop", "delayed_start.mp4": "too_short", "fades.mp4": "too_short"}
    assert all(rejects["detail"].str.len() > 0)
    assert summary.inputs_rejected == {"empty_file": 1, "not_media": 1, "too_small": 1, "symlink_loop": 1, "too_short": 2}


def test_bitrate_copy_is_removed_as_duplicate_and_nothing_else_is(dataset):
    out, _ = dataset
    index = read_index(out / "index.parquet")
    params = [json.loads(p) for p in index["params_json"]]
    copies = index[[Path(p["uri"]).name.startswith("copy_") for p in params]]
    assert len(copies) == 4                                   # two shots in each copy
    duplicates = index[index["reason"].str.contains("duplicate")]
    assert len(duplicates) == 2 and set(duplicates["key"]) <= set(copies["key"])
    kept_keys = set(index.loc[index["status"] == "kept", "key"])
    for _, row in duplicates.iterrows():
        original = json.loads(row["params_json"])["duplicate_of"]
        assert original in kept_keys and original in set(copies["key"])
        assert row["duplicate_similarity"] >= 0.999
    captioned = index[index["caption"] == "a coloured square moving over stripes"]
    assert len(captioned) == 2 and (captioned["caption_is_placeholder"] == 0).all()
    assert captioned["clip_text_similarity"].notna().all()
    assert index.loc[index["caption_is_placeholder"] == 1, "clip_text_similarity"].isna().all()
    different = index[~index["key"].isin(copies["key"])]
    assert (different["status"] == "kept").all(), different[["key", "reason", "duplicate_similarity"]]


def test_samples_follow_the_shard_schema_for_real_footage(dataset):
    out, _ = dataset
    index = read_index(out / "index.parquet").set_index("key")
    seen = 0
    for sample in iter_samples(out):
        meta = sample["json"]
        assert set(sample) == {"__key__", "__shard__", "mp4", "json", "clip.npy"}
        assert meta["source"] == "real" and meta["has_poses"] is False and meta["has_actions"] is False
        # the record generate writes too (contract/record.py): same renderer and encode shapes
        assert meta["renderer"] == {"backend": "real", "engine_version": "", "protocol_version": ""}
        assert meta["encode"]["encoder"] == "libx264" and meta["members"][0] == "json"
        assert "poses.npy" in meta["absent"] and "actions.npy" in meta["absent"]
        frames = decode_mp4(sample["mp4"])
        assert frames.shape == (meta["frames"], meta["height"], meta["width"], 3) and meta["height"] == 64
        row = index.loc[sample["__key__"]]
        np.testing.assert_allclose(sample["clip.npy"], np.asarray(row["embedding"], np.float32))
        assert sample["__shard__"] == row["shard"] and meta["caption"] == row["caption"]
        assert meta["caption_source"] == ("placeholder" if row["caption_is_placeholder"] else "sidecar")
        if meta["origin"]["uri"].endswith("issue-134-rotate.mp4"):
            assert meta["width"] < meta["height"]              # display orientation (portrait)
        seen += 1
    assert seen == (index["status"] == "kept").sum()


@pytest.mark.timeout(300)
def test_resume_processes_each_input_once_and_gives_the_same_bytes(dataset, inputs, tmp_path, realfootage):
    out, _ = dataset
    chosen = [str(inputs / "copy_hq.mp4"), str(inputs / "copy_lq.mp4"), str(realfootage / "counter.mp4")]
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    staging.check_config(resumed, small_config().model_dump_json())
    assert process_pending(chosen[:2], resumed, small_config(), show_progress=False, num_cpus=None) == {}  # "interrupted" here
    summary = run_curate(chosen, resumed, small_config(), show_progress=False)
    assert summary.processed_now == 1
    assert verify_dataset(resumed).ok
    original = {s["__key__"]: s["mp4"] for s in iter_samples(out, decode=False)}
    again = {s["__key__"]: s["mp4"] for s in iter_samples(resumed, decode=False)}
    assert again, "the resumed dataset has no samples"
    assert not set(again) - set(original), f"keys only in the resumed run: {set(again) - set(original)}"
    assert [key for key, data in again.items() if original[key] != data] == []
    assert run_curate(chosen, resumed, small_config(), show_progress=False).processed_now == 0   # complete: nothing to redo


def test_user_mistakes_are_one_line_and_exit_2(tmp_path, capsys):
    from pipeline.cli import main

    bad = tmp_path / "curate.yaml"
    bad.write_text("plan:\n  min_clip_s: -1\n")
    for argv in (["curate", str(tmp_path), "--out", str(tmp_path / "o"), "--config", str(bad)],
                 ["curate", str(tmp_path / "nope.mp4"), "--out", str(tmp_path / "o")],
                 ["curate", str(tmp_path), "--out", str(tmp_path / "o"), "--domain", "Real Footage"]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
        error = capsys.readouterr().err.strip()
        assert error.startswith("error:") and "\n" not in error and "Traceback" not in error


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_ctrl_c_then_rerun_resumes_the_cli_exactly_once_per_input(tmp_path):
    """The real CLI in a subprocess (its own local Ray), interrupted with SIGINT after the
    first input is staged, then run again to completion."""
    import os
    import re
    import signal
    import subprocess
    import time

    import yaml

    from test_curate_helpers import concatenate_with_cuts, write_video

    inputs = tmp_path / "in"
    inputs.mkdir()
    count = 6  # enough inputs that the interrupt lands with work still to do on a quiet machine
    for number in range(count):
        frames, _ = concatenate_with_cuts([24, 24], seed=80 + number)
        write_video(inputs / f"walk_{number}.mp4", frames)
    config = tmp_path / "curate.yaml"
    settings = json.loads(small_config().model_dump_json())
    settings["run"]["num_cpus_per_task"] = 1           # one worker: one cold start per run
    config.write_text(yaml.safe_dump(settings))
    out = tmp_path / "out"
    command = [sys.executable, "-m", "pipeline.cli", "curate", str(inputs), "--out", str(out),
               "--config", str(config), "--workers", "1", "--quiet"]
    env = {**os.environ, "RAY_ADDRESS": ""}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)

    def staged_inputs() -> int:
        return sum(1 for d in (out / "work").glob("*") if not d.name.endswith(".tmp") and (d / "result.json").exists())

    deadline = time.time() + 240
    while time.time() < deadline and process.poll() is None and staged_inputs() == 0:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, error = process.communicate(timeout=120)
    assert process.returncode == 130, error[-2000:]
    assert "interrupted; completed work is kept" in error
    assert read_dataset_json(out / "dataset.json")["status"] == "incomplete"
    staged = staged_inputs()
    # In-flight inputs may still finish while the driver stops (any 1..count is legal), or be cut
    # off mid-write, leaving a `.tmp` staging folder that never looks complete; what must hold is
    # that the re-run processes exactly the rest and leaves no temporary file behind.
    assert 1 <= staged <= count
    finished = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert finished.returncode == 0, finished.stderr[-2000:]
    processed = re.search(r"(\d+) processed now, (\d+) done earlier", finished.stdout)
    assert processed and (int(processed.group(1)), int(processed.group(2))) == (count - staged, staged)
    assert verify_dataset(out).ok and read_dataset_json(out / "dataset.json")["status"] == "complete"
    assert not [path for path in out.rglob("*") if path.name.endswith(".tmp")], "temporary files remain"
