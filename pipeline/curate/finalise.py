"""The final phase of `worldloom curate`: from the staging area to a complete dataset.

Runs on the driver once every input is staged (or failed): identical inputs, optional quality
rules, near-duplicates across the whole dataset, then shards in key order, `index.parquet`,
`rejects.parquet` and `dataset.json`. It reads only the staging area, so it can simply be
redone after an interruption; it starts by removing any outputs a previous attempt left.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from contract.record import REAL_UNITS, RealOrigin, Renderer, SampleRecord
from contract.sample import CLIP_EMBEDDING, JSON, MP4
from pipeline.curate import staging
from pipeline.curate.config import CurateConfig
from pipeline.curate.dedupe import DedupeItem, dedupe
from pipeline.curate.process import CuratedClip, InputResult, encode_settings, source_params
from pipeline.shards import (
    DatasetLayout,
    ShardWriter,
    code_version,
    encode_json,
    encode_npy,
    key_path,
    write_dataset_json,
    write_index,
)

REJECTS_FILE = "rejects.parquet"


def score_metadata(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """dataset.json "scores": unit, range and description of every score the rows carry."""
    from pipeline.quality import score_info

    return {name: score_info(name) for name in sorted({n for row in rows for n in (row.get("scores") or {})})}
@dataclass
class CurateSummary:
    out: Path
    inputs: int = 0
    inputs_rejected: dict[str, int] = field(default_factory=dict)
    inputs_failed: int = 0
    clips: int = 0
    kept: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    shards: int = 0
    video_seconds: float = 0.0        # duration of the readable inputs
    wall_s: float = 0.0
    processed_now: int = 0            # inputs processed in this invocation (resume skips the rest)
    already_complete: bool = False    # the folder already held this exact dataset: nothing was done

    @property
    def video_seconds_per_wall_second(self) -> float:
        return self.video_seconds / self.wall_s if self.wall_s > 0 else 0.0


def _failed_result(uri: str, error: str, attempts: int) -> InputResult:
    result = InputResult(uri=uri, reason="failed", detail=f"after {attempts} attempts: {error}")
    return result


def clip_record(result: InputResult, clip: CuratedClip, *, domain: str, config: CurateConfig,
                clip_model: dict[str, Any], extra_params: dict[str, Any]) -> SampleRecord:
    """The sample record of one curated clip (contract/record.py: the same fields as generate's)."""
    params = json.loads(source_params(result, clip))
    params.update(extra_params)
    scores = dict(clip.scores)
    scores["caption_is_placeholder"] = 1.0 if clip.caption_source == "placeholder" else 0.0
    return SampleRecord(
        key=clip.key, origin=RealOrigin(params=params, caption_source=clip.caption_source,
                                        black_stretches=clip.black_stretches),
        domain=domain, caption=clip.caption, scene=result.scene, clip_index=clip.clip_index,
        fps=clip.fps, width=clip.width, height=clip.height, frames=clip.frames,
        renderer=Renderer(backend="real"), encode=encode_settings(config).describe(),
        resolved_sha256=result.sha256, scores=scores, clip_model=clip_model, units=REAL_UNITS,
    )


def _write_rejects(path: Path, results: list[InputResult]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = sorted((r for r in results if r.reason), key=lambda r: r.uri)
    table = pa.table({
        "uri": pa.array([r.uri for r in rows], pa.string()),
        "reason": pa.array([r.reason or "" for r in rows], pa.string()),
        "detail": pa.array([r.detail for r in rows], pa.string()),
        "sha256": pa.array([r.sha256 for r in rows], pa.string()),
    })
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def _clear_outputs(layout: DatasetLayout) -> None:
    """The final phase rewrites every output from the staging area, so start it clean."""
    if layout.shards_dir.is_dir():
        shutil.rmtree(layout.shards_dir)
    for path in (layout.index_path, layout.root / REJECTS_FILE):
        path.unlink(missing_ok=True)


def finalise(uris: list[str], dataset: Path, config: CurateConfig, failures: dict[str, str], *,
              domain: str, started: float, summary: CurateSummary) -> None:
    layout = DatasetLayout(dataset)
    results: list[tuple[InputResult, Path | None]] = []
    for uri in uris:
        if uri in failures:
            results.append((_failed_result(uri, failures[uri], config.run.max_retries + 1), None))
        else:
            results.append(staging.load_staged(dataset, uri))
    # identical files under two names give identical keys: keep the first name only
    owner: dict[str, str] = {}
    for result, _ in results:
        if result.reason is None and result.sha256 in owner:
            result.reason, result.detail = "duplicate_input", f"same bytes as {owner[result.sha256]}"
            result.clips = []
        elif result.reason is None:
            owner[result.sha256] = result.uri
    clips = [(result, clip, folder) for result, folder in results for clip in result.clips]
    clips.sort(key=lambda item: item[1].key)
    quality_reasons: dict[str, list[str]] = {}
    if config.filters.reject_low_quality:
        from pipeline.quality import reject_reasons

        thresholds = config.thresholds.to_thresholds()
        quality_reasons = {c.key: reject_reasons(c.scores, thresholds) for _, c, _ in clips}
    decisions = {}
    if config.dedupe.enabled:  # among clips that pass the quality rules: a rejected clip never wins
        decisions = dedupe([DedupeItem(c.key, np.asarray(c.embedding, np.float32), c.scores.get("sharpness", 0.0))
                            for _, c, _ in clips if c.embedding and not quality_reasons.get(c.key)],
                           config.dedupe.effective_threshold(bool(config.models.clip_weights)))
    clip_model = {"name": config.models.clip_model,
                  "weights": config.models.clip_weights or f"random-init(seed={config.run.seed})"}
    _clear_outputs(layout)
    writer = ShardWriter(layout, max_bytes=config.run.shard_max_bytes, max_count=config.run.shard_max_samples)
    rows: list[dict[str, Any]] = []
    for result, clip, folder in clips:
        decision = decisions.get(clip.key)
        reasons = list(quality_reasons.get(clip.key, []))
        extra: dict[str, Any] = {"caption_source": clip.caption_source}
        if decision is not None:
            clip.scores["duplicate_similarity"] = decision.similarity
            if decision.duplicate_of is not None:
                reasons.append("duplicate")
                extra["duplicate_of"] = decision.duplicate_of
        status = "rejected" if reasons else "kept"
        record = clip_record(result, clip, domain=domain, config=config, clip_model=clip_model, extra_params=extra)
        row = record.index_row(status=status, reason=",".join(reasons),
                               embedding=[float(v) for v in clip.embedding])
        if status == "kept":
            assert folder is not None
            members = {MP4: key_path(folder, clip.key, ".mp4", where=str(folder)).read_bytes()}
            if clip.embedding:
                members[CLIP_EMBEDDING] = encode_npy(np.asarray(clip.embedding, np.float32))
            members = {JSON: encode_json(record.document(list(members))), **members}
            row["shard"] = writer.write(clip.key, members)
            row["member_sha256"] = dict(writer.last_member_sha256)
        rows.append(row)
    writer.close()
    write_index(layout.index_path, rows)
    _write_rejects(layout.root / REJECTS_FILE, [r for r, _ in results])
    summary.inputs = len(uris)
    input_reasons = Counter(r.reason for r, _ in results if r.reason and r.reason != "failed")
    summary.inputs_rejected = dict(sorted(input_reasons.items()))
    summary.inputs_failed = sum(1 for r, _ in results if r.reason == "failed")
    summary.clips = len(rows)
    summary.kept = sum(1 for r in rows if r["status"] == "kept")
    clip_reasons = Counter(reason for r in rows for reason in r["reason"].split(",") if reason)
    summary.rejected_by_reason = dict(sorted(clip_reasons.items()))
    summary.shards = len(writer.committed)
    summary.video_seconds = float(sum(r.duration_s for r, _ in results))
    summary.wall_s = time.perf_counter() - started
    document = _dataset_document(uris, results, config, summary, writer.committed, domain, "complete")
    document["shard_sha256"] = dict(sorted(writer.shard_sha256.items()))
    document["scores"] = score_metadata(rows)
    write_dataset_json(layout.dataset_json_path, document)
    shutil.rmtree(staging.work_root(dataset), ignore_errors=True)


def _dataset_document(uris: list[str], results: list[tuple[InputResult, Path | None]], config: CurateConfig,
                      summary: CurateSummary, shards: list[str], domain: str, status: str) -> dict[str, Any]:
    return {
        "status": status,
        "created_by": "worldloom curate",
        "code": code_version(),
        "source": "real",
        "domain": domain,
        "inputs": [{"uri": r.uri, "sha256": r.sha256, "reason": r.reason or "", "detail": r.detail,
                    "clips": len(r.clips), "frames_decoded": r.frames_decoded, "duration_s": round(r.duration_s, 6),
                    "cuts": r.cuts, "transitions": [list(s) for s in r.transitions], "detector": r.detector,
                    "black_stretches": [list(s) for s in r.black_stretches],
                    "frozen_stretches": [list(s) for s in r.frozen_stretches]} for r, _ in results],
        "input_list": uris,
        "config": json.loads(config.model_dump_json()),
        "counts": {"requested": summary.clips, "kept": summary.kept, "rejected": summary.clips - summary.kept,
                   "failed": 0,
                   "inputs": summary.inputs, "inputs_rejected": sum(summary.inputs_rejected.values()),
                   "inputs_failed": summary.inputs_failed},
        "rejects_by_reason": summary.rejected_by_reason,
        "inputs_rejected_by_reason": summary.inputs_rejected,
        "shards": shards,
        "throughput": {"wall_s": round(summary.wall_s, 3), "video_seconds": round(summary.video_seconds, 3),
                       "video_seconds_per_wall_second": round(summary.video_seconds_per_wall_second, 3),
                       "inputs_processed_in_this_run": summary.processed_now},
    }
