"""What generate writes about each clip and about the run: index rows, sample members, dataset.json.

Split from the recipe (run.py) so that the one place deciding a clip's row is small enough to
read: a failed clip gets `failed_row`; a processed one is judged (`record_for_outcome`: the
driver's CLIP embedding and text similarity join the scores, the thresholds decide) and written
(`write_outcome`) through `contract.record.SampleRecord`, the document curate writes too.
`Provenance` is the run's `dataset.json`: the manifests, the config, the counts and the
statistics of the run that did the work.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

import numpy as np

from contract.clip import ResolvedClip
from contract.record import INDEX_ROW_FIELDS, SampleRecord
from contract.sample import CLIP_EMBEDDING, JSON
from pipeline.generate.config import GenerateConfig
from pipeline.generate.process import ProcessedClip
from pipeline.generate.progress import RunCounts
from pipeline.generate.tasks import ClipTask, ManifestInfo, resolved_manifest_sha256
from pipeline.quality import reject_reasons, score_info
from pipeline.shards import (
    DatasetLayout,
    Journal,
    ShardWriter,
    code_version,
    encode_json,
    encode_npy,
    write_dataset_json,
)
from pipeline.shards.index import index_rows

RESOLVED_IN_DATASET_JSON = 10_000   # manifests with more clips list their clip hashes in the index only


@dataclass
class Outcome:
    """How one clip ended, as the scheduler hands it to the writer (in key order)."""

    task: ClipTask
    status: str                      # ok | failed
    processed: ProcessedClip | None = None
    embedding: dict[str, Any] | None = None
    error: str = ""
    frames: int = 0


class Judged(NamedTuple):
    record: SampleRecord             # with the driver's scores and clip model
    reasons: list[str]               # reject reasons; empty: kept
    embedding: np.ndarray            # (D,) float32, empty without CLIP


def failed_row(task: ClipTask, error: str) -> dict[str, Any]:
    """The index row of a clip that never produced a sample: what its ResolvedClip says."""
    clip = ResolvedClip.parse(task.clip, source=f"resolved clip of {task.key}")
    output = clip.output
    row: dict[str, Any] = {
        "key": task.key, "status": "failed", "shard": "", "reason": "", "error": error,
        "attempts": task.attempts, "caption": "", "source": "synthetic", "domain": "",
        "manifest_name": clip.manifest_name, "manifest_sha256": clip.manifest_sha256,
        "resolved_sha256": clip.sha256, "scene": clip.scene,
        "clip_index": clip.clip_index, "frames": output.frames,
        "width": output.width, "height": output.height,
        "fps": output.fps, "renderer": "", "params_json": task.clip, "scores": {}, "embedding": [],
    }
    assert tuple(row) == INDEX_ROW_FIELDS  # the same columns as every record's row (contract/record.py)
    return row


def clip_model_of(config: GenerateConfig) -> dict[str, Any] | None:
    """The `clip_model` a sample records: which CLIP made its `clip.npy` (None with CLIP off)."""
    if not config.clip.enabled:
        return None
    return {"name": config.clip.model, "weights": config.clip.weights or f"random-init(seed={config.clip.seed})"}


def record_for_outcome(processed: ProcessedClip, embedding: dict[str, Any] | None, config: GenerateConfig) -> Judged:
    """Add the embed stage's results to the processed clip's record and apply the thresholds."""
    scores = dict(processed.scores)
    vector = np.zeros(0, dtype=np.float32)
    if embedding is not None:
        vector = np.asarray(embedding["embedding"], dtype=np.float32)
        if "clip_text_similarity" in embedding:
            scores["clip_text_similarity"] = float(embedding["clip_text_similarity"])
    reasons = reject_reasons(scores, config.thresholds.to_thresholds())
    return Judged(replace(processed.record, scores=scores, clip_model=clip_model_of(config)), reasons, vector)


def write_outcome(outcome: Outcome, config: GenerateConfig, writer: ShardWriter, journal: Journal) -> dict[str, Any]:
    """Journal the clip's row; a kept clip's members go into the current shard first."""
    task = outcome.task
    if outcome.status == "failed" or outcome.processed is None:
        row = failed_row(task, outcome.error)
        journal.append(row)
        return row
    processed = outcome.processed
    record, reasons, embedding = record_for_outcome(processed, outcome.embedding, config)
    row = record.index_row(status="rejected" if reasons else "kept", reason=",".join(reasons),
                           attempts=task.attempts, embedding=embedding.tolist())
    if not reasons:
        members = dict(processed.members)
        if embedding.size:
            members[CLIP_EMBEDDING] = encode_npy(embedding)
        members = {JSON: encode_json(record.document(list(members))), **members}
        row["shard"] = writer.write(task.key, members)
        row["member_sha256"] = dict(writer.last_member_sha256)
    journal.append(row)
    return row


def count_row(counts: RunCounts, row: dict[str, Any]) -> None:
    status = row["status"]
    if status == "kept":
        counts.kept += 1
    elif status == "rejected":
        counts.rejected += 1
        for reason in filter(None, row.get("reason", "").split(",")):
            counts.rejects_by_reason[reason] = counts.rejects_by_reason.get(reason, 0) + 1
    elif status == "failed":
        counts.failed += 1


def previous_rows(layout: DatasetLayout) -> dict[str, dict[str, Any]]:
    """Rows an earlier run left: the index, overlaid by the journal of an interrupted run."""
    rows: dict[str, dict[str, Any]] = {}
    if layout.index_path.exists():
        rows.update({row["key"]: row for row in index_rows(layout.index_path)})
    rows.update(Journal(layout.journal_path).load())
    return rows


# -- dataset.json --------------------------------------------------------------------------------

@dataclass(frozen=True)
class RunStats:
    """How the streaming phase went: wall time, per-stage busy and CPU seconds, efficiency."""

    wall: float
    efficiency: float | None = None
    busy_efficiency: float | None = None
    stage_busy: dict[str, float] = field(default_factory=dict)
    stage_cpu: dict[str, float] = field(default_factory=dict)
    cores: float = 0.0
    stream_seconds: float = 0.0

    def last_run(self, counts: RunCounts) -> dict[str, Any]:
        wall = self.wall
        return {"wall_s": round(wall, 3), "rendered": counts.rendered, "frames": counts.frames,
                "clips_per_min": round(counts.rendered / wall * 60, 3) if wall else 0.0,
                "frames_per_s": round(counts.frames / wall, 3) if wall else 0.0,
                "efficiency": None if self.efficiency is None else round(self.efficiency, 4),
                "stage_busy_s": {k: round(v, 3) for k, v in self.stage_busy.items()}, "cores": self.cores,
                "stream_s": round(self.stream_seconds, 3),
                "stage_cpu_s": {k: round(v, 3) for k, v in self.stage_cpu.items()},
                "busy_efficiency": None if self.busy_efficiency is None else round(self.busy_efficiency, 4)}


@dataclass(frozen=True)
class Provenance:
    """The run's `dataset.json`; written as "incomplete" on an interruption and "complete" at the end."""

    layout: DatasetLayout
    infos: list[ManifestInfo]
    config: GenerateConfig
    counts: RunCounts
    clip_model: dict[str, Any]
    stats: RunStats
    shard_sha256: dict[str, str] = field(default_factory=dict)

    def write(self, status: str, rows: dict[str, dict[str, Any]] | None = None) -> None:
        """`rows` (the final index) make the counts exact and list every clip hash; None keeps the live counts."""
        counts, layout = self.counts, self.layout
        totals = {"requested": counts.requested, "kept": counts.kept, "rejected": counts.rejected,
                  "failed": counts.failed}
        rejects = dict(counts.rejects_by_reason)
        if rows is not None:
            statuses = [row["status"] for row in rows.values()]
            totals.update({name: statuses.count(name) for name in ("kept", "rejected", "failed")})
            rejects = {}
            for row in rows.values():
                if row["status"] == "rejected":
                    for reason in filter(None, row["reason"].split(",")):
                        rejects[reason] = rejects.get(reason, 0) + 1
        manifests = []
        score_names: set[str] = set()
        for info in self.infos:
            hashes: dict[str, str] = {}
            if rows is not None:
                hashes = {key: row.get("resolved_sha256", "") for key, row in rows.items() if info.owns(key)}
                for row in rows.values():
                    score_names.update((row.get("scores") or {}).keys())
            entry: dict[str, Any] = {"path": info.path, "name": info.name, "sha256": info.sha256,
                                     "resolved_sha256": resolved_manifest_sha256(info, hashes) if hashes else "",
                                     "clips": info.clips}
            # key -> resolved clip sha256; for very large manifests the index's resolved_sha256 column holds it
            large = len(hashes) > RESOLVED_IN_DATASET_JSON
            entry["resolved"] = "see index.parquet resolved_sha256" if large else hashes
            manifests.append(entry)
        shards = [f"shards/{p.name}" for p in layout.complete_shards()]
        # a resume that rendered nothing keeps the statistics of the run that did the work
        kept_last_run = None if counts.rendered else _previous_last_run(layout)
        write_dataset_json(layout.dataset_json_path, {
            "status": status,
            "created_by": "worldloom generate",
            "code": code_version(),
            "manifests": manifests,
            "config": self.config.model_dump(mode="json", exclude={"out", "overwrite", "progress"}),
            "clip_model": self.clip_model,
            "counts": totals,
            "rejects_by_reason": rejects,
            "shards": shards,
            "shard_sha256": {name: digest for name, digest in sorted(self.shard_sha256.items()) if name in shards},
            "scores": {name: score_info(name) for name in sorted(score_names)},
            "last_run": kept_last_run or self.stats.last_run(counts),
        })


def _previous_last_run(layout: DatasetLayout) -> dict[str, Any] | None:
    try:
        return json.loads(layout.dataset_json_path.read_text()).get("last_run") or None
    except (OSError, ValueError, AttributeError):
        return None
