"""The generate recipe: plan -> resume state (checked) -> start stages -> stream clips -> write -> finish.

The driver schedules and writes; the actors do the work. The parts, one job each: the actor
pools (pools.py), the in-flight loop with its retries and key-order writes (scheduler.py), the
rows, sample members and dataset.json (records.py). Clips are written strictly in key order,
so an interrupted run plus its resume equals an uninterrupted run. Clips are resolved lazily
as the scheduler pulls them (pipeline/generate/tasks.py), so a million-clip manifest starts at once.

Integrity (docs/shard-schema.md, "Integrity"): every kept row records its members' sha256;
on resume every committed shard is re-checked against the run's records, and a damaged or
foreign shard is reported by name, quarantined and its clips rendered again. A full or
read-only disk ends the run with one line naming the path; the resume state stays valid.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.generate import pools, scheduler
from pipeline.generate.config import GenerateConfig
from pipeline.generate.progress import RunCounts, RunProgress, summary_table
from pipeline.generate.records import Outcome, Provenance, RunStats, count_row, previous_rows, write_outcome
from pipeline.generate.tasks import iter_tasks, plan_manifests, render_endpoints
from pipeline.shards import DatasetLayout, Journal, ShardWriter, write_dataset_json, write_index
from pipeline.shards.integrity import file_sha256
from pipeline.shards.ownership import check_writable_here, remove_dataset
from pipeline.shards.recheck import check_committed_shards, quarantine
from pipeline.shards.storage import is_storage_error, storage_error

EventHook = Callable[[str, dict[str, Any]], None]


@dataclass
class GenerateResult:
    out: Path
    status: str                          # complete | interrupted
    counts: RunCounts
    wall_seconds: float
    efficiency: float | None
    stage_busy_seconds: dict[str, float]
    stage_cpu_seconds: dict[str, float]
    busy_efficiency: float | None
    cores: float
    stream_seconds: float
    startup_seconds: float
    shards: list[str]
    failed: dict[str, str] = field(default_factory=dict)   # key -> error
    server_restarts: int = 0
    mlflow_run_id: str | None = None


def run_generate(manifests: list[Path], config: GenerateConfig, *, on_event: EventHook | None = None) -> GenerateResult:
    """Run (or resume) a generate job. Raises KeyboardInterrupt after a clean stop on SIGINT.

    A full or read-only disk raises `StorageError` (one line naming the path and the cause);
    what was committed and journaled stays, so the same command resumes once there is room.
    """
    if config.out is None:
        from contract.errors import UserError

        raise UserError("generate: no output directory", hint="pass --out DIR")
    try:
        return _run_generate(manifests, config, on_event)
    except OSError as error:
        if is_storage_error(error):
            raise storage_error(error, Path(config.out)) from None
        raise


def _run_generate(manifests: list[Path], config: GenerateConfig, on_event: EventHook | None) -> GenerateResult:
    emit = on_event or (lambda kind, data: None)
    started = time.perf_counter()
    layout = DatasetLayout(Path(config.out))
    infos = plan_manifests([Path(m) for m in manifests])
    config = config.model_copy(update={"endpoints": render_endpoints(infos, list(config.endpoints))})
    if config.clip.enabled:  # a missing or pickle checkpoint fails now, not inside an actor
        from pipeline.embed import check_clip_weights

        check_clip_weights(config.clip.weights, field="generate config clip.weights")
    existing = check_writable_here(layout, "worldloom generate")
    if config.overwrite:
        remove_dataset(layout, previous_rows(layout).values() if existing else ())
        existing = None
    layout.root.mkdir(parents=True, exist_ok=True)
    if existing is None:  # the marker that makes this folder ours (and --overwrite-able) from the first byte on
        write_dataset_json(layout.dataset_json_path, {"status": "incomplete", "created_by": "worldloom generate",
                                                      "shards": [], "counts": {}})
        existing = {}

    # -- resume state: what is already done, re-checked ---------------------------------------
    previous = previous_rows(layout)
    for name, reason in sorted(check_committed_shards(layout, previous).items()):
        moved = quarantine(layout, name)
        message = (f"{name} is damaged or foreign ({reason}): moved to {moved.relative_to(layout.root)}, "
                   "its clips are rendered again")
        emit("quarantined", {"shard": name, "reason": reason, "moved_to": str(moved)})
        _warn(config, message)
    kept_by_shard: dict[str, list[str]] = {}
    for key in sorted(previous):
        row = previous[key]
        if row["status"] == "kept":
            kept_by_shard.setdefault(row["shard"], []).append(key)
    digests = {key: _digests(row) for key, row in previous.items() if row["status"] == "kept"}
    writer, recovered = ShardWriter.resume(layout, kept_by_shard, max_bytes=config.shard_max_bytes, digests=digests)
    committed = {f"shards/{p.name}" for p in layout.complete_shards()}
    done: dict[str, dict[str, Any]] = {}
    for key, row in previous.items():
        if row["status"] == "rejected" or (row["status"] == "kept" and (row["shard"] in committed or key in recovered)):
            done[key] = row
    total = sum(info.clips for info in infos)
    journal = Journal(layout.journal_path)
    # rewrite the journal so it holds exactly the rows still valid (drops failed and lost rows)
    journal.rewrite(done[key] for key in sorted(done))
    known_shard_sha256 = {name: digest for name, digest in (existing.get("shard_sha256") or {}).items()
                          if name in committed}

    def requested(key: str) -> bool:
        return any(info.owns(key) for info in infos)

    progress = RunProgress(total, enabled=config.progress)
    counts = progress.counts
    counts.requested = total
    counts.skipped = sum(1 for key in done if requested(key))
    for row in done.values():
        count_row(counts, row)
    progress.refresh(advance=counts.skipped)
    failed: dict[str, str] = {}
    todo = iter_tasks(infos, skip=lambda key: key in done)   # lazy: a clip is resolved when it is scheduled

    def write(outcome: Outcome) -> None:
        row = write_outcome(outcome, config, writer, journal)
        count_row(counts, row)
        if row["status"] == "failed":
            failed[row["key"]] = row["error"]
        emit("written", {"key": row["key"], "status": row["status"], "shard": row["shard"], "reason": row["reason"]})

    stage_busy: dict[str, float] = {}
    stage_cpu: dict[str, float] = {}
    stream_seconds = startup_seconds = 0.0
    restarts = 0
    cores = 0.0
    started_ray = False
    actors: dict[str, list[Any]] = {"render": [], "process": [], "embed": []}
    clip_model: dict[str, Any] = {}
    status = "complete"
    try:
        if counts.skipped < total:
            started_ray = pools.ensure_ray(config)
            import ray

            cluster_cpus = float(ray.cluster_resources().get("CPU", 1.0))
            # efficiency is measured against real cores: a local Ray may declare more logical CPUs
            cores = cluster_cpus if config.ray_address else min(cluster_cpus, float(os.cpu_count() or 1))
            actors, clip_model = pools.start_stages(config, cluster_cpus, emit)
            stream_started = time.perf_counter()
            startup_seconds = stream_started - started
            scheduler.stream(todo, config, actors, progress, emit, write)
            stream_seconds = time.perf_counter() - stream_started
            stage_busy, stage_cpu = pools.collect_busy(actors)
            restarts = sum(int(s.get("restarts", 0)) for s in pools.stats(actors["render"]))
    except KeyboardInterrupt:
        status = "interrupted"
    except OSError as error:
        if not is_storage_error(error):
            raise
        status = "storage"
        failure = storage_error(error, layout.root)
    finally:
        progress.stop()
        if status in ("interrupted", "storage"):
            _quietly(writer.suspend)
            _quietly(journal.close)
        pools.stop_stages(actors)
        if started_ray:
            import ray

            ray.shutdown()

    wall = time.perf_counter() - started
    # efficiency of the streaming phase (stage start-up is reported separately as startup_seconds):
    # CPU seconds the stages burnt / core-seconds available. The wall-clock variant counts a call
    # waiting for a core as busy and exceeds 1 on an oversubscribed machine; it is reported too.
    span = stream_seconds * cores
    efficiency = sum(stage_cpu.values()) / span if stage_cpu and span else None
    busy_efficiency = sum(stage_busy.values()) / span if stage_busy and span else None
    if status == "storage":
        raise failure
    shard_sha256 = {**known_shard_sha256, **writer.shard_sha256}
    if status == "interrupted":
        progress.console.print(summary_table(counts, wall_seconds=wall, efficiency=efficiency, out=str(layout.root),
                                             shards=len(layout.complete_shards()), status="interrupted"))
        Provenance(layout, infos, config, counts, clip_model, RunStats(wall), shard_sha256).write("incomplete")
        raise KeyboardInterrupt

    writer.close()
    shard_sha256.update(writer.shard_sha256)
    rows = Journal(layout.journal_path).load()
    rows = {key: row for key, row in rows.items() if requested(key) or key in previous}
    write_index(layout.index_path, rows.values())
    journal.remove()
    shards = [f"shards/{p.name}" for p in layout.complete_shards()]
    for name in shards:  # shards committed by an older run that recorded no digest
        if name not in shard_sha256:
            shard_sha256[name] = file_sha256(layout.root / name)
    stats = RunStats(wall, efficiency=efficiency, busy_efficiency=busy_efficiency, stage_busy=stage_busy,
                     stage_cpu=stage_cpu, cores=cores, stream_seconds=stream_seconds)
    Provenance(layout, infos, config, counts, clip_model, stats, shard_sha256).write("complete", rows)
    sheet = _contact_sheet(layout)
    run_id = None
    if config.mlflow.enabled and (counts.rendered or counts.failed):  # a resume with nothing to do logs no empty run
        run_id = _log_mlflow(layout, config, counts, wall, efficiency, sheet)
    progress.console.print(summary_table(counts, wall_seconds=wall, efficiency=efficiency, out=str(layout.root),
                                         shards=len(shards), status=status, startup_seconds=startup_seconds))
    return GenerateResult(out=layout.root, status=status, counts=counts, wall_seconds=wall, efficiency=efficiency,
                          stage_busy_seconds=stage_busy, stage_cpu_seconds=stage_cpu,
                          busy_efficiency=busy_efficiency, cores=cores, stream_seconds=stream_seconds,
                          startup_seconds=startup_seconds, shards=shards, failed=failed,
                          server_restarts=restarts, mlflow_run_id=run_id)


def _digests(row: dict[str, Any]) -> dict[str, str] | None:
    from pipeline.shards.integrity import decode_digests

    return decode_digests(row.get("member_sha256"))


def _warn(config: GenerateConfig, message: str) -> None:
    import click

    click.secho(f"warning: {message}", fg="yellow", err=True)


def _quietly(action: Callable[[], Any]) -> None:
    """Cleanup that must not hide the first error (a full disk fails the flush too)."""
    try:
        action()
    except OSError:
        pass


# -- after the run ------------------------------------------------------------------------------

def _contact_sheet(layout: DatasetLayout) -> Path | None:
    from pipeline.inspect import write_contact_sheet

    try:
        return write_contact_sheet(layout.root, layout.root / "contact_sheet.png", max_clips=16)
    except ValueError:
        return None


def _log_mlflow(layout: DatasetLayout, config: GenerateConfig, counts: RunCounts, wall: float,
                efficiency: float | None, sheet: Path | None) -> str | None:
    from pipeline.generate.tracking import log_data_run, tracking_uri

    metrics = {"clips_requested": counts.requested, "clips_kept": counts.kept, "clips_rejected": counts.rejected,
               "clips_failed": counts.failed, "clips_rendered": counts.rendered, "frames_rendered": counts.frames,
               "wall_seconds": wall, "clips_per_minute": counts.rendered / wall * 60 if wall else 0.0,
               "frames_per_second": counts.frames / wall if wall else 0.0}
    if efficiency is not None:
        metrics["pipeline_efficiency"] = efficiency
    for reason, number in counts.rejects_by_reason.items():
        metrics[f"rejected_{reason}"] = number
    artifacts = [layout.index_path, layout.dataset_json_path] + ([sheet] if sheet else [])
    return log_data_run(out=layout.root, uri=tracking_uri(layout.root, config.mlflow.tracking_uri),
                        experiment=config.mlflow.experiment,
                        params=config.model_dump(mode="json", exclude={"progress"}), metrics=metrics,
                        artifacts=artifacts, run_name=f"generate {layout.root.name}")
