"""Dataset integrity drills against real generate runs (procedural servers, Ray, H.264).

One undisturbed run is the reference; one resume repairs a copy that has flipped bytes, a
truncated shard and a foreign shard in it. The rest needs no rendering: folders that are not
ours are refused (never adopted, never deleted), a full disk is one line, a million-clip
manifest is planned without resolving its clips."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from itertools import islice
from pathlib import Path

import pytest
import yaml

from contract.errors import UserError
from pipeline.generate import load_generate_config, run_generate
from pipeline.shards import DatasetLayout, iter_samples, read_dataset_json, read_index, verify_dataset

EXAMPLES = Path(__file__).resolve().parents[1] / "manifests" / "examples"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("integrity")
    config = {"clip": {"model": "ViT-S-32", "frames": 2}, "shard_max_bytes": 120_000, "workers": 1,
              "mlflow": {"enabled": False}, "progress": False}
    (root / "gen.yaml").write_text(yaml.safe_dump(config))
    return root


def _config(workdir: Path, out: Path, **overrides):
    return load_generate_config(workdir / "gen.yaml", {"out": str(out), **overrides})


def _mp4_digests(out: Path) -> dict[str, str]:
    return {s["__key__"]: hashlib.sha256(s["mp4"]).hexdigest() for s in iter_samples(out, decode=False)}


@pytest.fixture(scope="module")
def reference(workdir: Path, ray_session) -> Path:
    out = workdir / "reference"
    result = run_generate([EXAMPLES / "quickstart.yaml"], _config(workdir, out))
    assert result.status == "complete" and len(result.shards) >= 3
    return out


def test_digests_are_recorded_and_verify_passes(reference: Path) -> None:
    index = read_index(reference / "index.parquet")
    assert all(len(__import__("json").loads(cell)) >= 5 for cell in index["member_sha256"])  # mp4, json, npy, npz ...
    document = read_dataset_json(reference / "dataset.json")
    assert sorted(document["shard_sha256"]) == document["shards"]
    assert document["scores"]["sharpness"]["unit"] and document["scores"]["pixel_motion"]["range"] == [0.0, 1.0]
    import pyarrow.parquet as pq

    field = pq.read_schema(reference / "index.parquet").field("camera_speed_mps")
    assert field.metadata[b"unit"] == b"metres per second"
    report = verify_dataset(reference)
    assert report.ok and report.checked_digests == 4 and report.checked_shard_digests == len(document["shards"])


@pytest.mark.timeout(300)
def test_resume_remakes_flipped_truncated_and_foreign_shards(workdir: Path, reference: Path, tmp_path: Path,
                                                           capfd) -> None:
    out = tmp_path / "damaged"
    shutil.copytree(reference, out)
    shards = out / "shards"
    flipped = bytearray((shards / "shard-000000.tar").read_bytes())
    for offset in range(20_000, 20_064):
        flipped[offset] ^= 0xFF                       # 64 flipped bytes inside the first clip's mp4
    (shards / "shard-000000.tar").write_bytes(bytes(flipped))
    whole = (shards / "shard-000001.tar").read_bytes()
    (shards / "shard-000001.tar").write_bytes(whole[: len(whole) // 2])
    (shards / "shard-000042.tar").write_bytes(os.urandom(3000))   # a file no run wrote

    report = verify_dataset(out)   # named, not a traceback
    assert {"shards/shard-000000.tar", "shards/shard-000001.tar", "shards/shard-000042.tar"} <= set(report.damaged_shards)

    result = run_generate([EXAMPLES / "quickstart.yaml"], _config(workdir, out))
    err = capfd.readouterr().err
    for name in ("shard-000000.tar", "shard-000001.tar", "shard-000042.tar"):
        assert f"shards/{name} is damaged or foreign" in err
        assert (out / "quarantine" / name).exists()          # moved aside, never adopted, never deleted
    assert result.status == "complete" and result.counts.rendered >= 2
    assert verify_dataset(out).ok
    assert _mp4_digests(out) == _mp4_digests(reference)       # the re-rendered clips are the same clips


def test_a_folder_that_is_not_ours_is_refused_and_left_alone(workdir: Path, tmp_path: Path) -> None:
    out = tmp_path / "foreign"
    (out / "shards").mkdir(parents=True)
    (out / "inspect").mkdir()
    garbage = os.urandom(4096)
    (out / "shards" / "shard-000000.tar").write_bytes(garbage)
    (out / "inspect" / "notes.txt").write_text("mine")
    for overwrite in (False, True):
        with pytest.raises(UserError, match="no dataset.json written by worldloom"):
            run_generate([EXAMPLES / "quickstart.yaml"], _config(workdir, out, overwrite=overwrite))
        assert (out / "shards" / "shard-000000.tar").read_bytes() == garbage
        assert (out / "inspect" / "notes.txt").read_text() == "mine"


def test_overwrite_deletes_only_what_the_dataset_lists(reference: Path, tmp_path: Path) -> None:
    from pipeline.shards.index import index_rows
    from pipeline.shards.ownership import remove_dataset

    out = tmp_path / "ours"
    shutil.copytree(reference, out)
    (out / "shards" / "README.txt").write_text("user notes")
    (out / "inspect" / "previews").mkdir(parents=True)
    (out / "inspect" / "previews" / f"{read_index(out / 'index.parquet')['key'][0]}.gif").write_bytes(b"GIF89a")
    (out / "inspect" / "mine.png").write_bytes(b"png")
    removed = remove_dataset(DatasetLayout(out), index_rows(out / "index.parquet"))
    assert {p.name for p in removed} >= {"index.parquet", "dataset.json", "shard-000000.tar"}
    left = sorted(str(p.relative_to(out)) for p in out.rglob("*"))
    assert left == ["inspect", "inspect/mine.png", "shards", "shards/README.txt"]


def test_full_disk_is_one_line_naming_the_path(tmp_path: Path) -> None:
    """/dev/full is a real device that fails every write with ENOSPC."""
    from pipeline.shards import ShardWriter
    from pipeline.shards.storage import StorageError, is_storage_error, storage_error

    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full on this system")
    layout = DatasetLayout(tmp_path / "ds")
    layout.shards_dir.mkdir(parents=True)
    os.symlink("/dev/full", layout.tmp_shard_path(0))
    writer = ShardWriter(layout)
    with pytest.raises(OSError) as caught:
        writer.write("a_00000", {"mp4": b"x" * 100_000})
        writer.commit()
    assert is_storage_error(caught.value) and caught.value.filename == str(layout.tmp_shard_path(0))
    error = storage_error(caught.value, layout.root)
    assert isinstance(error, StorageError) and error.exit_code == 1
    line = error.one_line()
    assert "shard-000000.tar.tmp" in line and "No space left on device" in line and "re-run" in line


@pytest.mark.timeout(300)
@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("mount"), reason="needs root to mount a small tmpfs")
def test_disk_filling_up_mid_run_exits_in_one_line_and_resumes(workdir: Path, reference: Path, tmp_path: Path,
                                                                capfd) -> None:
    from pipeline.cli import main as cli_main

    mount = tmp_path / "small"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("mounting a tmpfs is not permitted here")
    try:
        out = mount / "ds"
        capfd.readouterr()
        with pytest.raises(SystemExit) as caught:
            cli_main(["generate", str(EXAMPLES / "quickstart.yaml"), "--out", str(out),
                      "--config", str(workdir / "gen.yaml"), "--no-progress"])
        err = capfd.readouterr().err
        errors = [line for line in err.splitlines() if line.startswith("error:")]
        assert caught.value.code == 1 and len(errors) == 1 and "Traceback" not in err
        assert str(mount) in errors[0] and "No space left on device" in errors[0]
        shutil.copytree(out, tmp_path / "moved")
    finally:
        if subprocess.run(["umount", str(mount)], capture_output=True).returncode:
            subprocess.run(["umount", "-l", str(mount)], capture_output=True)   # never leave a mount behind
    # the resume state survived: journaled clips sit in committed shards that pass the resume check
    # (a resume from such a state is what test_generate's SIGINT/SIGKILL drills run end to end)
    from pipeline.shards import Journal
    from pipeline.shards.recheck import check_committed_shards

    moved = DatasetLayout(tmp_path / "moved")
    rows = Journal(moved.journal_path).load()
    kept = {row["shard"] for row in rows.values() if row["status"] == "kept"}
    assert rows and kept and check_committed_shards(moved, rows) == {}
    assert kept <= {f"shards/{p.name}" for p in moved.complete_shards()} | {
        f"shards/{p.name.removesuffix('.tmp')}" for p in moved.temporary_files()}


def test_a_million_clip_manifest_is_planned_without_resolving_clips(tmp_path: Path, monkeypatch) -> None:
    import tracemalloc

    import contract.manifest as manifest_module
    from pipeline.generate.tasks import expand_manifests, iter_keys, iter_tasks, plan_manifests

    big = yaml.safe_load((EXAMPLES / "quickstart.yaml").read_text())
    big["name"] = "million"
    for scene in big["scenes"]:
        scene["clips"] = 500_000
    path = tmp_path / "million.yaml"
    path.write_text(yaml.safe_dump(big, sort_keys=False))
    resolved: list[tuple[str, int]] = []
    original = manifest_module.resolve_clip

    def counting(manifest, scene, index):
        resolved.append((scene, index))
        return original(manifest, scene, index)

    monkeypatch.setattr(manifest_module, "resolve_clip", counting)
    tracemalloc.start()
    infos = plan_manifests([path])
    first = list(islice(iter_tasks(infos), 5))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert infos[0].clips == 1_000_000 and len(resolved) == 5 and peak < 64 * 2**20
    keys = [task.key for task in first]
    assert keys == sorted(keys) and all(task.clip["key"] == task.key for task in first)
    # string order across the 5- and 6-digit indices ("..._09999" < "..._10000" < "..._100000" < "..._10001")
    window = list(islice((key for key, *_ in iter_keys(infos) if "_1000" in key[-7:]), 4))
    assert window == sorted(window)
    # and the lazy order is exactly the eager, sorted order on a small manifest
    tasks, _ = expand_manifests([EXAMPLES / "quickstart.yaml", EXAMPLES / "static_empty.yaml"])
    eager = sorted(clip["key"] for m in ("quickstart.yaml", "static_empty.yaml")
                   for clip in manifest_module.resolve_manifest(EXAMPLES / m).clips)
    assert [task.key for task in tasks] == eager


def test_inspect_never_writes_outside_out_for_a_hostile_key(tmp_path: Path) -> None:
    """A shard whose member is `/tmp/.../evil.mp4` is refused in one line; no GIF anywhere."""
    import io
    import tarfile

    from pipeline.cli import main as cli_main
    from pipeline.shards import write_index

    dataset = tmp_path / "hostile"
    (dataset / "shards").mkdir(parents=True)
    target = tmp_path / "outside"
    evil_key = str(target / "evil")
    with tarfile.open(dataset / "shards" / "shard-000000.tar", "w") as tar:
        for extension, payload in (("mp4", b"\x00" * 100), ("json", b"{}")):
            info = tarfile.TarInfo(f"{evil_key}.{extension}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    write_index(dataset / "index.parquet", [{"key": evil_key, "status": "kept", "shard": "shards/shard-000000.tar",
                                             "scores": {"sharpness": 1.0}}])
    with pytest.raises(SystemExit) as caught:
        cli_main(["inspect", str(dataset), "--out", str(tmp_path / "inspect")])
    assert caught.value.code != 0
    assert not list(tmp_path.glob("outside*")) and not list((tmp_path / "inspect").rglob("*.gif"))
