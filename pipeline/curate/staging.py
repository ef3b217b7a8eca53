"""Per-input staging area: the resume record of a curate run.

Each input's outcome (its clips' mp4 bytes plus a `result.json`, or its reject) is written
to `DATASET/work/<input id>.tmp/` and renamed to `DATASET/work/<input id>/` when complete, so
an input is either fully staged or not at all. A resumed run skips staged inputs: each input
is processed exactly once. The final phase (dedupe, shards, index) reads only the staging
area and is cheap to redo; `work/` is removed once the dataset is complete.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from pipeline.curate.process import CuratedClip, InputResult

WORK_DIR = "work"
CONFIG_FILE = "config.json"


def input_id(uri: str) -> str:
    return hashlib.sha256(uri.encode()).hexdigest()[:20]


def work_root(dataset: Path) -> Path:
    return Path(dataset) / WORK_DIR


def staged_path(dataset: Path, uri: str) -> Path:
    return work_root(dataset) / input_id(uri)


def is_staged(dataset: Path, uri: str) -> bool:
    return (staged_path(dataset, uri) / "result.json").is_file()


def stage_result(dataset: Path, result: InputResult) -> Path:
    final = staged_path(dataset, result.uri)
    tmp = final.with_name(final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    document = dataclasses.asdict(result)
    for clip, record in zip(result.clips, document["clips"], strict=False):
        (tmp / f"{clip.key}.mp4").write_bytes(clip.mp4)
        record.pop("mp4")
    (tmp / "result.json").write_text(json.dumps(document, sort_keys=True))
    with open(tmp / "result.json", "rb") as handle:
        os.fsync(handle.fileno())
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    return final


def load_staged(dataset: Path, uri: str) -> tuple[InputResult, Path]:
    folder = staged_path(dataset, uri)
    document: dict[str, Any] = json.loads((folder / "result.json").read_text())
    clips = [CuratedClip(mp4=b"", **{**c, "black_stretches": [tuple(s) for s in c["black_stretches"]]}) for c in document.pop("clips")]
    for name in ("black_stretches", "transitions", "frozen_stretches"):
        document[name] = [tuple(s) for s in document.get(name, [])]
    return InputResult(**document, clips=clips), folder


def check_config(dataset: Path, config_json: str) -> bool:
    """True when the staging area is empty or was made with this config; writes it if new."""
    root = work_root(dataset)
    recorded = root / CONFIG_FILE
    if recorded.is_file():
        return recorded.read_text() == config_json
    root.mkdir(parents=True, exist_ok=True)
    tmp = recorded.with_name(CONFIG_FILE + ".tmp")
    tmp.write_text(config_json)
    os.replace(tmp, recorded)
    return True
