"""`worldloom inspect`: pictures that read right and numbers to choose thresholds from."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.inspect import contact_sheet, dataset_statistics, preview_keys, write_contact_sheet
from pipeline.shards import DatasetLayout, ShardWriter, write_index
from training.testing import encode_mp4, pattern_clip


def _bbox(image: np.ndarray, colour: tuple[int, int, int]) -> tuple[int, int]:
    """(width, height) of the pixels close to `colour`."""
    mask = (np.abs(image.astype(int) - np.array(colour)).sum(axis=2) < 60)
    rows, cols = np.nonzero(mask)
    return int(cols.max() - cols.min() + 1), int(rows.max() - rows.min() + 1)


def test_contact_sheet_keeps_aspect_ratios_of_mixed_clips() -> None:
    landscape = np.zeros((90, 160, 3), np.uint8)
    landscape[...] = (220, 30, 30)
    portrait = np.zeros((160, 90, 3), np.uint8)
    portrait[...] = (30, 30, 220)
    sheet = np.asarray(contact_sheet([("land_00000", landscape), ("port_00000", portrait)],
                                     captions=["a wide street", "a tall tower"]))
    width, height = _bbox(sheet, (220, 30, 30))
    assert width / height == pytest.approx(160 / 90, rel=0.05)      # not squashed by the portrait clip
    width, height = _bbox(sheet, (30, 30, 220))
    assert width / height == pytest.approx(90 / 160, rel=0.05)      # not stretched to the landscape width
    label_rows = sheet[144 + 2: 144 + 28]                             # under the 144-px tile box: caption and key
    assert (label_rows > 100).any()


def _dataset(folder: Path, sharpness: list[float]) -> Path:
    layout = DatasetLayout(folder)
    writer = ShardWriter(layout)
    rows = []
    for index, value in enumerate(sharpness):
        key = f"clip_{index:05d}"
        height, width = (48, 32) if index % 2 else (32, 48)
        shard = writer.write(key, {"mp4": encode_mp4(pattern_clip(index, 4, height, width), 8),
                                   "json": json.dumps({"caption": f"clip number {index}", "fps": 8}).encode()})
        rows.append({"key": key, "status": "kept", "shard": shard, "frames": 4, "fps": 8.0, "width": width,
                     "height": height, "scores": {"sharpness": value, "pixel_motion": value / 100},
                     "member_sha256": dict(writer.last_member_sha256)})
    writer.close()
    write_index(layout.index_path, rows)
    return folder


def test_previews_span_the_score_range_and_statistics_give_percentiles(tmp_path: Path) -> None:
    # key order and score order differ: the first keys are the middle scores
    values = [5.0, 4.0, 6.0, 3.0, 7.0, 2.0, 8.0, 1.0, 9.0, 0.0]
    dataset = _dataset(tmp_path / "ds", values)
    keys, score = preview_keys(dataset, 3)
    assert score == "sharpness"
    assert [values[int(k.split("_")[1])] for k in keys] == [0.0, 4.0, 9.0]   # lowest, middle (index 4.5 rounds to 4), highest
    stats = dataset_statistics(dataset)["scores"]["sharpness"]
    assert (stats["p5"], stats["p50"], stats["p95"]) == pytest.approx(tuple(np.percentile(values, [5, 50, 95])))
    assert "Laplacian" in stats["unit"]
    sheet = write_contact_sheet(dataset, tmp_path / "sheet.png", max_clips=4)
    assert sheet.stat().st_size > 0
    with pytest.raises(Exception, match="--by nothing"):
        preview_keys(dataset, 3, by="nothing")


def test_inspect_on_a_truncated_shard_is_one_line(tmp_path: Path, capsys) -> None:
    from pipeline.cli import main as cli_main

    dataset = _dataset(tmp_path / "ds", [1.0, 2.0, 3.0])
    shard = dataset / "shards" / "shard-000000.tar"
    shard.write_bytes(shard.read_bytes()[:3000])
    with pytest.raises(SystemExit) as caught:
        cli_main(["inspect", str(dataset), "--out", str(tmp_path / "inspect")])
    err = capsys.readouterr().err
    assert caught.value.code == 1 and "Traceback" not in err
    assert [line for line in err.splitlines() if line.startswith("error:")] and "shard-000000.tar: damaged shard" in err
