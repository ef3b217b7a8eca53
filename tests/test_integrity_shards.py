"""`worldloom verify` and the one-line loaders, on datasets written by `pipeline.shards` (no rendering).

The loaders documented in docs/shard-schema.md ("Loading a mix in one line") must work on a
dataset whose samples carry different members (real clips have no poses, actions or depth)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.cli import main as cli_main
from pipeline.encode import decode_mp4
from pipeline.shards import (DatasetLayout, ShardWriter, encode_json, encode_npy, encode_npz, write_dataset_json,
                             write_index)
from training.testing import encode_mp4, pattern_clip


def mixed_dataset(folder: Path) -> Path:
    """One shard, interleaved like `worldloom mix` writes it: synthetic samples with poses, actions
    and depth, real samples with only mp4, json and clip.npy."""
    layout = DatasetLayout(folder)
    writer = ShardWriter(layout)
    rows = []
    for index in range(4):
        key = f"{'syn' if index % 2 == 0 else 'real'}_{index:05d}"
        frames = pattern_clip(index, 6, 32, 48)
        members = {"mp4": encode_mp4(frames, 8),
                   "json": encode_json({"key": key, "source": "synthetic" if index % 2 == 0 else "real", "fps": 8})}
        if index % 2 == 0:
            members["poses.npy"] = encode_npy(np.tile(np.eye(4), (6, 1, 1)))
            members["actions.npy"] = encode_npy(np.zeros((6, 8), np.float32))
            members["depth.npz"] = encode_npz(depth=np.ones((6, 32, 48), np.float16))
        else:
            members["clip.npy"] = encode_npy(np.ones(8, np.float32) / np.sqrt(8))
        shard = writer.write(key, members)
        rows.append({"key": key, "status": "kept", "shard": shard, "frames": 6, "fps": 8.0, "width": 48,
                     "height": 32, "member_sha256": dict(writer.last_member_sha256)})
    writer.close()
    write_index(layout.index_path, rows)
    write_dataset_json(layout.dataset_json_path, {"status": "complete", "created_by": "worldloom mix",
                                                  "shards": writer.committed, "shard_sha256": writer.shard_sha256,
                                                  "counts": {"kept": 4, "rejected": 0, "failed": 0}})
    return folder


def test_verify_command_exit_codes_and_one_line_per_problem(tmp_path: Path, capsys) -> None:
    dataset = mixed_dataset(tmp_path / "mix")
    cli_main(["verify", str(dataset)])                            # exit 0: returns
    assert "ok:" in capsys.readouterr().out
    shard = dataset / "shards" / "shard-000000.tar"
    data = bytearray(shard.read_bytes())
    start = data.index(b"real_00001.mp4") + 512 + 100
    for offset in range(start, start + 64):
        data[offset] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(SystemExit) as caught:
        cli_main(["verify", str(dataset)])
    err = capsys.readouterr().err
    assert caught.value.code == 1 and "Traceback" not in err
    assert "real_00001 in shards/shard-000000.tar: member mp4" in err and "differs from dataset.json" in err
    shard.write_bytes(bytes(data[:1500]))                        # truncated: named, not a traceback
    with pytest.raises(SystemExit) as caught:
        cli_main(["verify", str(dataset)])
    err = capsys.readouterr().err
    assert caught.value.code == 1 and "shards/shard-000000.tar: damaged" in err and "Traceback" not in err
    with pytest.raises(SystemExit) as caught:
        cli_main(["verify", str(tmp_path / "nothing")])
    assert caught.value.code == 2


def test_plain_webdataset_loads_a_mix_in_one_line(tmp_path: Path) -> None:
    import webdataset as wds

    urls = [str(p) for p in DatasetLayout(mixed_dataset(tmp_path / "mix")).complete_shards()]
    samples = list(wds.WebDataset(urls, shardshuffle=False).decode())          # the documented line
    assert [s["__key__"] for s in samples] == ["syn_00000", "real_00001", "syn_00002", "real_00003"]
    assert samples[0]["poses.npy"].shape == (6, 4, 4) and "poses.npy" not in samples[1]
    assert samples[1]["json"]["source"] == "real" and samples[1]["clip.npy"].shape == (8,)
    frames = decode_mp4(samples[1]["mp4"])                                       # mp4 stays bytes: decode it
    assert frames.shape == (6, 32, 48, 3) and frames.dtype == np.uint8


def test_ray_data_loads_a_mix_in_one_line(tmp_path: Path, ray_session) -> None:
    """Ray Data's default decoder turns .npy members into tensor columns and fails on a sample
    without them (NaN in the column); the documented lines load raw bytes or the common members."""
    import ray

    from pipeline.shards import decode_member

    urls = [str(p) for p in DatasetLayout(mixed_dataset(tmp_path / "mix")).complete_shards()]
    rows = ray.data.read_webdataset(urls, decoder=None).take_all()               # documented line 1: raw bytes
    by_key = {row["__key__"]: row for row in rows}
    assert sorted(by_key) == ["real_00001", "real_00003", "syn_00000", "syn_00002"]
    assert decode_member("poses.npy", by_key["syn_00000"]["poses.npy"]).shape == (6, 4, 4)
    assert by_key["real_00001"]["poses.npy"] is None                              # absent member: None
    assert decode_member("json", by_key["real_00001"]["json"])["source"] == "real"
    assert decode_mp4(by_key["real_00003"]["mp4"]).shape == (6, 32, 48, 3)
    common = ray.data.read_webdataset(urls, suffixes=["mp4", "json"]).take_all()  # documented line 2: decoded
    assert len(common) == 4 and all(set(row) == {"__key__", "__url__", "mp4", "json"} for row in common)
    assert {row["json"]["source"] for row in common} == {"real", "synthetic"}
