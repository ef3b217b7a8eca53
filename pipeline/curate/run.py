"""`worldloom curate` as a recipe: expand inputs, curate each on Ray, then dedupe and write.

1. Expand INPUTs into URIs (inputs.py); refuse an output folder holding another dataset.
2. Each input not yet staged becomes a Ray task running `process_input` and staging its
   result (staging.py): exactly once per input across interruptions. A task that raises or
   whose worker dies is retried up to `run.max_retries` times, then the input is recorded as
   failed with its last error; a bad input is a reject with its reason, never a crash.
3. Final phase on the driver: near-duplicates across the whole dataset (dedupe.py),
   optional quality rejection, shards in key order, index.parquet, rejects.parquet,
   dataset.json; then the staging area is removed.
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

from pipeline.curate.config import CurateConfig
from pipeline.curate.dedupe import DedupeItem, dedupe
from pipeline.curate.inputs import expand_inputs
from pipeline.curate.process import CuratedClip, InputResult, source_params
from pipeline.curate import staging
from pipeline.errors import UserError
from pipeline.shards import (DatasetLayout, ShardWriter, code_version, encode_json, encode_npy,
                             read_dataset_json, write_dataset_json, write_index)

REJECTS_FILE = "rejects.parquet"
ABSENT_MEMBERS = ["poses.npy", "intrinsics.npy", "actions.npy", "depth.npz", "seg.npz"]


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

    @property
    def video_seconds_per_wall_second(self) -> float:
        return self.video_seconds / self.wall_s if self.wall_s > 0 else 0.0


def _curate_task(uri: str, config_json: str, dataset: str) -> dict[str, Any]:
    """Runs inside a Ray worker: curate one input and stage it. Returns a small summary."""
    from pipeline.curate.process import process_input

    config = CurateConfig.model_validate_json(config_json)
    result = process_input(uri, config)
    staging.stage_result(Path(dataset), result)
    return {"uri": uri, "reason": result.reason, "clips": len(result.clips), "seconds": result.seconds}


def _failed_result(uri: str, error: str, attempts: int) -> InputResult:
    result = InputResult(uri=uri, reason="failed", detail=f"after {attempts} attempts: {error}")
    return result


def _ensure_ray(num_cpus: int | None) -> None:
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=num_cpus or os.cpu_count() or 1, include_dashboard=False,
                 log_to_driver=False, configure_logging=False)


def _process_pending(pending: list[str], dataset: Path, config: CurateConfig, *, show_progress: bool,
                     num_cpus: int | None) -> dict[str, str]:
    """Run pending inputs on Ray with retries; returns uri -> final error for inputs that failed."""
    import ray
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    if not pending:
        return {}
    _ensure_ray(num_cpus)
    remote = ray.remote(num_cpus=config.run.num_cpus_per_task, max_retries=0)(_curate_task)
    config_json = config.model_dump_json()
    attempts: Counter[str] = Counter()
    failures: dict[str, str] = {}
    in_flight: dict[Any, str] = {}

    def submit(uri: str) -> None:
        attempts[uri] += 1
        in_flight[remote.remote(uri, config_json, str(dataset))] = uri

    for uri in pending:
        submit(uri)
    with Progress(TextColumn("curate"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[last]}"),
                  TimeElapsedColumn(), TimeRemainingColumn(), disable=not show_progress, transient=False) as progress:
        bar = progress.add_task("inputs", total=len(pending), last="")
        while in_flight:
            done, _ = ray.wait(list(in_flight), num_returns=1)
            ref = done[0]
            uri = in_flight.pop(ref)
            try:
                outcome = ray.get(ref)
                label = f"{Path(uri).name}: {outcome['reason'] or str(outcome['clips']) + ' clips'}"
            except (ray.exceptions.RayTaskError, ray.exceptions.WorkerCrashedError, ray.exceptions.RayError) as error:
                message = str(error).strip().splitlines()[-1][:300] if str(error).strip() else type(error).__name__
                if attempts[uri] <= config.run.max_retries:
                    submit(uri)
                    continue
                failures[uri] = f"{message} (attempts={attempts[uri]})"
                label = f"{Path(uri).name}: failed"
            progress.update(bar, advance=1, last=label)
    return failures


def _clip_row(result: InputResult, clip: CuratedClip, *, domain: str, status: str, reason: str,
              shard: str, extra_params: dict[str, Any]) -> dict[str, Any]:
    params = json.loads(source_params(result, clip))
    params.update(extra_params)
    scores = dict(clip.scores)
    scores["caption_is_placeholder"] = 1.0 if clip.caption_source == "placeholder" else 0.0
    return {
        "key": clip.key, "status": status, "shard": shard, "reason": reason, "error": "", "attempts": 1,
        "caption": clip.caption, "source": "real", "domain": domain,
        "manifest_name": "", "manifest_sha256": "", "resolved_sha256": result.sha256,
        "scene": result.scene, "clip_index": clip.clip_index, "frames": clip.frames,
        "width": clip.width, "height": clip.height, "fps": clip.fps, "renderer": "real",
        "params_json": params, "embedding": [float(v) for v in clip.embedding], "scores": scores,
    }


def _json_member(row: dict[str, Any], clip: CuratedClip, config: CurateConfig, clip_model: dict[str, Any]) -> bytes:
    members = ["mp4", "json"] + (["clip.npy"] if clip.embedding else [])
    return encode_json({
        "key": row["key"], "source": "real", "domain": row["domain"], "caption": row["caption"],
        "caption_source": clip.caption_source, "scores": row["scores"], "reason": "",
        "manifest_name": "", "manifest_sha256": "", "resolved_sha256": row["resolved_sha256"],
        "scene": row["scene"], "clip_index": row["clip_index"], "seeds": {},
        "fps": row["fps"], "width": row["width"], "height": row["height"], "frames": row["frames"],
        "renderer": {"backend": "real", "engine_version": "", "server_id": ""},
        "encode": {"codec": "h264", "crf": config.output.crf, "gop": config.output.gop, "pix_fmt": "yuv420p"},
        "clip_model": clip_model, "origin": row["params_json"],
        "black_stretches": [list(s) for s in clip.black_stretches],
        "has_poses": False, "has_actions": False, "absent": ABSENT_MEMBERS,
        "units": {"black_stretches": "source frame ranges [start, end)", "origin.start_s": "seconds from the first frame"},
        "members": members,
    })


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


def _finalise(uris: list[str], dataset: Path, config: CurateConfig, failures: dict[str, str], *,
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
    decisions = {}
    if config.dedupe.enabled:
        decisions = dedupe([DedupeItem(c.key, np.asarray(c.embedding, np.float32), c.scores.get("sharpness", 0.0))
                            for _, c, _ in clips if c.embedding],
                           config.dedupe.effective_threshold(bool(config.models.clip_weights)))
    quality_reasons: dict[str, list[str]] = {}
    if config.filters.reject_low_quality:
        from pipeline.curate.scores import thresholds_from
        from pipeline.quality import reject_reasons

        thresholds = thresholds_from(config.scores)
        quality_reasons = {c.key: reject_reasons(c.scores, thresholds) for _, c, _ in clips}
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
        row = _clip_row(result, clip, domain=domain, status=status, reason=",".join(reasons), shard="", extra_params=extra)
        if status == "kept":
            assert folder is not None
            members = {"mp4": (folder / f"{clip.key}.mp4").read_bytes(),
                       "json": _json_member(row, clip, config, clip_model)}
            if clip.embedding:
                members["clip.npy"] = encode_npy(np.asarray(clip.embedding, np.float32))
            row["shard"] = writer.write(clip.key, members)
        rows.append(row)
    writer.close()
    write_index(layout.index_path, rows)
    _write_rejects(layout.root / REJECTS_FILE, [r for r, _ in results])
    summary.inputs = len(uris)
    summary.inputs_rejected = dict(sorted(Counter(r.reason for r, _ in results if r.reason and r.reason != "failed").items()))
    summary.inputs_failed = sum(1 for r, _ in results if r.reason == "failed")
    summary.clips = len(rows)
    summary.kept = sum(1 for r in rows if r["status"] == "kept")
    summary.rejected_by_reason = dict(sorted(Counter(reason for r in rows for reason in r["reason"].split(",") if reason).items()))
    summary.shards = len(writer.committed)
    summary.video_seconds = float(sum(r.duration_s for r, _ in results))
    summary.wall_s = time.perf_counter() - started
    write_dataset_json(layout.dataset_json_path, _dataset_document(uris, results, config, summary, writer.committed, domain, "complete"))
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
                    "cuts": r.cuts, "black_stretches": [list(s) for s in r.black_stretches]} for r, _ in results],
        "input_list": uris,
        "config": json.loads(config.model_dump_json()),
        "counts": {"requested": summary.clips, "kept": summary.kept, "rejected": summary.clips - summary.kept, "failed": 0,
                   "inputs": summary.inputs, "inputs_rejected": sum(summary.inputs_rejected.values()),
                   "inputs_failed": summary.inputs_failed},
        "rejects_by_reason": summary.rejected_by_reason,
        "inputs_rejected_by_reason": summary.inputs_rejected,
        "shards": shards,
        "throughput": {"wall_s": round(summary.wall_s, 3), "video_seconds": round(summary.video_seconds, 3),
                       "video_seconds_per_wall_second": round(summary.video_seconds_per_wall_second, 3),
                       "inputs_processed_in_this_run": summary.processed_now},
    }


def run_curate(arguments: list[str], out: Path, config: CurateConfig, *, domain: str = "real",
               show_progress: bool = True, num_cpus: int | None = None) -> CurateSummary:
    started = time.perf_counter()
    out = Path(out)
    uris = expand_inputs(arguments)
    layout = DatasetLayout(out)
    config_json = config.model_dump_json()
    if layout.dataset_json_path.exists():
        existing = read_dataset_json(layout.dataset_json_path)
        if existing.get("created_by") != "worldloom curate":
            raise UserError(f"{out}: holds a dataset made by {existing.get('created_by')!r}", hint="choose a new --out")
        if existing.get("status") == "complete":
            if existing.get("input_list") == uris and json.dumps(existing.get("config"), sort_keys=True) == json.dumps(json.loads(config_json), sort_keys=True):
                summary = CurateSummary(out=out)
                counts = existing["counts"]
                summary.inputs, summary.clips, summary.kept = counts["inputs"], counts["requested"], counts["kept"]
                summary.rejected_by_reason = existing.get("rejects_by_reason", {})
                summary.inputs_rejected = existing.get("inputs_rejected_by_reason", {})
                summary.shards = len(existing.get("shards", []))
                summary.wall_s = time.perf_counter() - started
                return summary
            raise UserError(f"{out}: already holds a complete dataset from other inputs or another config",
                            hint="choose a new --out (or delete the folder)")
    elif out.exists() and any(p.name != staging.WORK_DIR for p in out.iterdir()):
        raise UserError(f"{out}: exists and is not a curate dataset", hint="choose a new or empty --out folder")
    out.mkdir(parents=True, exist_ok=True)
    if not staging.check_config(out, config_json):
        raise UserError(f"{out}: an interrupted run used another config", hint="re-run with the same --config, or choose a new --out")
    summary = CurateSummary(out=out)
    write_dataset_json(layout.dataset_json_path, {"status": "incomplete", "created_by": "worldloom curate",
                                                  "input_list": uris, "counts": {}})
    pending = [uri for uri in uris if not staging.is_staged(out, uri)]
    summary.processed_now = len(pending)
    failures = _process_pending(pending, out, config, show_progress=show_progress, num_cpus=num_cpus)
    _finalise(uris, out, config, failures, domain=domain, started=started, summary=summary)
    return summary
