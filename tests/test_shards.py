"""The shard writer, journal, index and verifier (no Ray, no renderer)."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import webdataset as wds

from pipeline.shards import (
    DatasetLayout, Journal, ShardWriter, decode_member, encode_json, encode_npy, encode_npz, iter_samples,
    read_index, verify_dataset, write_dataset_json, write_index,
)


def _sample(i: int) -> dict[str, bytes]:
    rng = np.random.default_rng(i)
    return {"mp4": rng.bytes(700 + 97 * i), "json": encode_json({"i": i, "nan": float("nan")}),
            "poses.npy": encode_npy(np.eye(4)[None].repeat(3, 0) * i),
            "depth.npz": encode_npz(depth=rng.random((3, 4, 5)).astype(np.float16))}


def _write(layout: DatasetLayout, keys: list[str], max_bytes: int) -> dict[str, list[str]]:
    writer = ShardWriter(layout, max_bytes=max_bytes)
    placed: dict[str, list[str]] = {}
    for i, key in enumerate(keys):
        placed.setdefault(writer.write(key, _sample(i)), []).append(key)
    writer.close()
    return placed


def _digest(layout: DatasetLayout) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in layout.complete_shards()}


KEYS = [f"abc_scene_{i:05d}" for i in range(9)]


def test_writer_rotates_commits_and_is_deterministic(tmp_path: Path) -> None:
    first, second = DatasetLayout(tmp_path / "a"), DatasetLayout(tmp_path / "b")
    placed = _write(first, KEYS, max_bytes=6000)
    _write(second, KEYS, max_bytes=6000)
    assert len(placed) > 2, "small max_bytes must produce several shards"
    assert _digest(first) == _digest(second)
    assert first.temporary_files() == []
    # every shard but a single-sample one respects the limit (content bytes, before tar padding)
    samples = list(iter_samples(first.root))
    assert [s["__key__"] for s in samples] == KEYS
    assert samples[2]["json"] == {"i": 2, "nan": None}
    assert samples[3]["poses.npy"].shape == (3, 4, 4) and samples[3]["depth.npz"]["depth"].dtype == np.float16
    # plain webdataset reads the same keys and members
    urls = [str(p) for p in first.complete_shards()]
    read = [s for s in wds.WebDataset(urls, shardshuffle=False)]
    assert [s["__key__"] for s in read] == KEYS
    assert read[4]["mp4"] == _sample(4)["mp4"]


def test_partial_shard_is_tmp_until_commit(tmp_path: Path) -> None:
    layout = DatasetLayout(tmp_path)
    writer = ShardWriter(layout, max_bytes=10**9)
    assert writer.write(KEYS[0], _sample(0)) == "shards/shard-000000.tar"
    assert layout.complete_shards() == [] and [p.name for p in layout.temporary_files()] == ["shard-000000.tar.tmp"]
    writer.close()
    assert [p.name for p in layout.complete_shards()] == ["shard-000000.tar"] and layout.temporary_files() == []


@pytest.mark.parametrize("torn_bytes", [0, 300, 1500])
def test_resume_finishes_partial_shard_with_identical_bytes(tmp_path: Path, torn_bytes: int) -> None:
    reference = DatasetLayout(tmp_path / "ref")
    _write(reference, KEYS, max_bytes=6000)

    layout = DatasetLayout(tmp_path / "run")
    writer = ShardWriter(layout, max_bytes=6000)
    journaled: dict[str, list[str]] = {}
    for i, key in enumerate(KEYS[:5]):
        journaled.setdefault(writer.write(key, _sample(i)), []).append(key)
    if torn_bytes:
        # a crash while writing sample 5: some of its bytes reached the file, no journal line
        writer.write(KEYS[5], _sample(5))
        writer.suspend()
        tmp = layout.temporary_files()[0]
        with open(tmp, "r+b") as handle:
            handle.truncate(tmp.stat().st_size - torn_bytes)
    else:
        writer.suspend()
    writer, recovered = ShardWriter.resume(layout, journaled, max_bytes=6000)
    expected_recovered = set(journaled.get(writer.current_shard or "", []))
    assert recovered == expected_recovered
    done = {k for keys in journaled.values() for k in keys}
    for i, key in enumerate(KEYS):
        if key not in done:
            writer.write(key, _sample(i))
    writer.close()
    assert _digest(layout) == _digest(reference)
    assert layout.temporary_files() == []


def test_journal_ignores_torn_line_and_latest_row_wins(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.jsonl")
    journal.append({"key": "a", "status": "failed"})
    journal.append({"key": "b", "status": "kept", "score": np.float32(0.5)})
    journal.append({"key": "a", "status": "rejected"})
    journal.close()
    with open(journal.path, "ab") as handle:
        handle.write(b'{"key": "c", "sta')
    rows = Journal(journal.path).load()
    assert rows == {"a": {"key": "a", "status": "rejected"}, "b": {"key": "b", "status": "kept", "score": 0.5}}
    again = Journal(journal.path)
    again.append({"key": "d", "status": "kept"})
    again.close()
    assert set(Journal(journal.path).load()) == {"a", "b", "d"}
    again.rewrite([{"key": "b", "status": "kept"}])
    assert Journal(journal.path).load() == {"b": {"key": "b", "status": "kept"}}
    assert not journal.path.with_name("journal.jsonl.tmp").exists()


def _rows(placed: dict[str, list[str]]) -> list[dict]:
    rows = []
    for shard, keys in placed.items():
        for key in keys:
            rows.append({"key": key, "status": "kept", "shard": shard, "scores": {"sharpness": 3.0}})
    rows.append({"key": "abc_scene_99999", "status": "rejected", "reason": "static",
                 "scores": {"sharpness": 1.0, "pixel_motion": 0.0}, "params_json": {"a": 1}})
    return rows


def test_index_roundtrip_and_verify(tmp_path: Path) -> None:
    layout = DatasetLayout(tmp_path)
    placed = _write(layout, KEYS, max_bytes=6000)
    write_index(layout.index_path, _rows(placed))
    write_dataset_json(layout.dataset_json_path, {"counts": {"kept": len(KEYS), "rejected": 1, "failed": 0}})
    index = read_index(layout.index_path)
    assert list(index["key"]) == sorted(KEYS + ["abc_scene_99999"])
    rejected = index[index["status"] == "rejected"].iloc[0]
    assert rejected["reason"] == "static" and rejected["pixel_motion"] == 0.0 and rejected["shard"] == ""
    assert rejected["params_json"] == '{"a":1}'
    report = verify_dataset(layout.root)
    assert report.ok, report.problems
    assert report.samples == len(KEYS)


def test_verify_catches_every_disagreement(tmp_path: Path) -> None:
    layout = DatasetLayout(tmp_path)
    placed = _write(layout, KEYS, max_bytes=6000)
    rows = _rows(placed)
    rows[0]["shard"] = "shards/shard-000077.tar"       # wrong shard
    rows = [r for r in rows if r["key"] != KEYS[-1]]   # a sample with no index row
    rows.append({"key": "abc_scene_55555", "status": "kept", "shard": "shards/shard-000000.tar"})  # row with no sample
    write_index(layout.index_path, rows)
    (layout.shards_dir / "shard-000009.tar.tmp").write_bytes(b"x")
    problems = "\n".join(verify_dataset(layout.root).problems)
    assert "index says shards/shard-000077.tar" in problems
    assert f"{KEYS[-1]} is in" in problems and "not kept in the index" in problems
    assert "abc_scene_55555 is kept in the index" in problems
    assert "temporary file left" in problems


def test_npz_is_deterministic_and_keys_are_checked(tmp_path: Path) -> None:
    array = np.arange(12, dtype=np.int32).reshape(3, 4)
    assert encode_npz(segmentation=array) == encode_npz(segmentation=array)
    assert np.array_equal(decode_member("seg.npz", encode_npz(segmentation=array))["segmentation"], array)
    writer = ShardWriter(DatasetLayout(tmp_path))
    with pytest.raises(ValueError, match="no '.'"):
        writer.write("bad.key", {"json": b"{}"})
