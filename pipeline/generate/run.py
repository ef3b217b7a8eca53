"""The generate recipe: plan -> resume state (checked) -> start stages -> stream clips -> write -> finish.

The driver schedules and writes; the actors do the work. Clips are written strictly in key
order through a small reorder buffer, so shard layout and bytes do not depend on which
actor finished first, and an interrupted run plus its resume equals an uninterrupted run.
Backpressure: at most `render_queue` clips wait per render actor and at most `window` clips
are in flight overall (rendering, processing, or finished but waiting for their turn).
Clips are resolved lazily as the scheduler pulls them (pipeline/generate/tasks.py), so a
million-clip manifest starts at once.

Integrity (docs/shard-schema.md, "Integrity"): every kept row records its members' sha256;
on resume every committed shard is re-checked against the run's records, and a damaged or
foreign shard is reported by name, quarantined and its clips rendered again. A full or
read-only disk ends the run with one line naming the path; the resume state stays valid.
"""
from __future__ import annotations

import os
import time
from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from contract.sample import CLIP_EMBEDDING, JSON
from pipeline.generate.config import GenerateConfig
from pipeline.generate.progress import RunCounts, RunProgress, summary_table
from pipeline.generate.tasks import (ClipTask, ManifestInfo, iter_tasks, plan_manifests, render_endpoints,
                                    resolved_manifest_sha256)
from pipeline.quality import reject_reasons
from pipeline.shards import (
    DatasetLayout,
    Journal,
    ShardWriter,
    code_version,
    encode_json,
    encode_npy,
    write_dataset_json,
    write_index,
)
from pipeline.shards.index import index_rows
from pipeline.shards.integrity import file_sha256
from pipeline.shards.ownership import check_writable_here, remove_dataset
from pipeline.shards.provenance import read_dataset_json
from pipeline.shards.recheck import check_committed_shards, quarantine
from pipeline.shards.storage import StorageError, is_storage_error, storage_error

EventHook = Callable[[str, dict[str, Any]], None]
RESOLVED_IN_DATASET_JSON = 10_000   # manifests with more clips list their clip hashes in the index only


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


@dataclass
class _Outcome:
    task: ClipTask
    status: str                      # kept | rejected | failed
    processed: Any = None
    embedding: dict[str, Any] | None = None
    error: str = ""
    frames: int = 0


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
        remove_dataset(layout, _previous_rows(layout).values() if existing else ())
        existing = None
    layout.root.mkdir(parents=True, exist_ok=True)
    if existing is None:  # the marker that makes this folder ours (and --overwrite-able) from the first byte on
        write_dataset_json(layout.dataset_json_path, {"status": "incomplete", "created_by": "worldloom generate",
                                                      "shards": [], "counts": {}})
        existing = {}

    # -- resume state: what is already done, re-checked ---------------------------------------
    previous = _previous_rows(layout)
    for name, reason in sorted(check_committed_shards(layout, previous).items()):
        moved = quarantine(layout, name)
        message = f"{name} is damaged or foreign ({reason}): moved to {moved.relative_to(layout.root)}, its clips are rendered again"
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
        _count_row(counts, row)
    progress.refresh(advance=counts.skipped)
    todo = iter_tasks(infos, skip=lambda key: key in done)   # lazy: a clip is resolved when it is scheduled

    stage_busy: dict[str, float] = {}
    stage_cpu: dict[str, float] = {}
    stream_seconds = startup_seconds = 0.0
    restarts = 0
    cores = 0.0
    started_ray = False
    actors: dict[str, list[Any]] = {"render": [], "process": [], "embed": []}
    clip_model: dict[str, Any] = {}
    failed: dict[str, str] = {}
    status = "complete"
    try:
        if counts.skipped < total:
            started_ray = _ensure_ray(config)
            import ray

            cluster_cpus = float(ray.cluster_resources().get("CPU", 1.0))
            # efficiency is measured against real cores: a local Ray may declare more logical CPUs
            cores = cluster_cpus if config.ray_address else min(cluster_cpus, float(os.cpu_count() or 1))
            actors, clip_model = _start_stages(config, cluster_cpus, emit)
            stream_started = time.perf_counter()
            startup_seconds = stream_started - started
            _stream(todo, config, actors, writer, journal, progress, emit, failed)
            stream_seconds = time.perf_counter() - stream_started
            stage_busy, stage_cpu = _collect_busy(actors)
            restarts = sum(int(s.get("restarts", 0)) for s in _stats(actors["render"]))
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
        _stop_stages(actors)
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
        _write_provenance(layout, infos, config, counts, wall, clip_model, status="incomplete",
                          shard_sha256=shard_sha256)
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
    _write_provenance(layout, infos, config, counts, wall, clip_model, status="complete", rows=rows,
                      efficiency=efficiency, stage_busy=stage_busy, cores=cores, stream_seconds=stream_seconds,
                      stage_cpu=stage_cpu, busy_efficiency=busy_efficiency, shard_sha256=shard_sha256)
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


# -- the streaming loop ----------------------------------------------------------------------

def _stream(todo: Iterator[ClipTask], config: GenerateConfig, actors: dict[str, list[Any]], writer: ShardWriter,
            journal: Journal, progress: RunProgress, emit: EventHook, failed: dict[str, str]) -> None:
    """Pull tasks from the lazy `todo` as the window allows; write finished clips in pull order (key order)."""
    import ray

    renderers, processors, embedders = actors["render"], actors["process"], actors["embed"]
    retry: deque[ClipTask] = deque()                  # failed renders to try again, before new tasks
    order: deque[str] = deque()                       # pulled but not yet written, in write order
    exhausted = False
    finished: dict[str, _Outcome] = {}
    load = [0] * len(renderers)
    rendering: dict[Any, tuple[ClipTask, int, Any]] = {}   # status ref -> (task, actor, payload ref)
    downstream: dict[Any, tuple[ClipTask, Any, Any, int]] = {}  # embed ref -> (task, processed ref, payload ref, frames)
    window = len(renderers) * config.render_queue + 2 * (len(processors) + len(embedders))
    round_robin = 0
    counts = progress.counts

    def in_flight() -> int:
        return len(rendering) + len(downstream) + len(finished)

    while True:
        # submit renders: per-actor queue limit and a global window (backpressure)
        while in_flight() < window and (retry or not exhausted):
            actor = min(range(len(renderers)), key=lambda i: (load[i], i))
            if load[actor] >= config.render_queue:
                break
            if retry:
                task = retry.popleft()
            else:
                task = next(todo, None)
                if task is None:
                    exhausted = True
                    break
                order.append(task.key)
            task.attempts += 1
            status_ref, payload_ref = renderers[actor].render.options(num_returns=2).remote(task.key, task.clip)
            rendering[status_ref] = (task, actor, payload_ref)
            load[actor] += 1
        if exhausted and not order:
            break
        waiting = list(rendering) + list(downstream)
        ready, _ = ray.wait(waiting, num_returns=1, timeout=0.5) if waiting else ([], [])
        for ref in ready:
            if ref in rendering:
                task, actor, payload_ref = rendering.pop(ref)
                load[actor] -= 1
                try:
                    status = ray.get(ref)
                except Exception as error:  # the actor process died
                    status = {"ok": False, "error": f"render actor died: {type(error).__name__}"}
                if status["ok"]:
                    counts.rendered += 1
                    counts.frames += int(status["frames"])
                    processor = processors[round_robin % len(processors)]
                    embedder = embedders[round_robin % len(embedders)] if embedders else None
                    round_robin += 1
                    processed_ref = processor.process.remote(payload_ref)
                    final_ref = embedder.embed.remote(payload_ref, processed_ref) if embedder else processed_ref
                    downstream[final_ref] = (task, processed_ref, payload_ref, int(status["frames"]))
                    emit("rendered", {"key": task.key, "attempt": task.attempts, "endpoint": status.get("endpoint")})
                else:
                    task.errors.append(status["error"])
                    emit("render_failed", {"key": task.key, "attempt": task.attempts, "error": status["error"]})
                    if task.attempts <= config.retries:
                        counts.retried += 1
                        retry.appendleft(task)
                    else:
                        finished[task.key] = _Outcome(task, "failed", error=status["error"])
            else:
                task, processed_ref, payload_ref, frames = downstream.pop(ref)
                try:
                    processed = ray.get(processed_ref)
                    embedding = ray.get(ref) if ref is not processed_ref else None
                    finished[task.key] = _Outcome(task, "ok", processed=processed, embedding=embedding, frames=frames)
                except Exception as error:  # noqa: BLE001 - processing errors are recorded, not retried
                    finished[task.key] = _Outcome(task, "failed", error=f"processing: {type(error).__name__}: "
                                                  f"{' '.join(str(error).split())[:300]}")
        # write everything that is next in key order
        while order and order[0] in finished:
            outcome = finished.pop(order.popleft())
            row = _write_outcome(outcome, config, writer, journal)
            _count_row(counts, row)
            if row["status"] == "failed":
                failed[row["key"]] = row["error"]
            emit("written", {"key": row["key"], "status": row["status"], "shard": row["shard"], "reason": row["reason"]})
            progress.refresh(advance=1)
        progress.refresh()


def _write_outcome(outcome: _Outcome, config: GenerateConfig, writer: ShardWriter, journal: Journal) -> dict[str, Any]:
    task = outcome.task
    clip = task.clip
    output = clip.get("output", {})
    row: dict[str, Any] = {
        "key": task.key, "status": "failed", "shard": "", "reason": "", "error": outcome.error,
        "attempts": task.attempts, "caption": "", "source": "synthetic", "domain": "",
        "manifest_name": clip.get("manifest_name", ""), "manifest_sha256": clip.get("manifest_sha256", ""),
        "resolved_sha256": clip.get("sha256", ""), "scene": clip.get("scene", ""),
        "clip_index": int(clip.get("clip_index", 0)), "frames": int(output.get("frames", 0)),
        "width": int(output.get("width", 0)), "height": int(output.get("height", 0)),
        "fps": float(output.get("fps", 0.0)), "renderer": "", "params_json": clip, "scores": {}, "embedding": [],
    }
    if outcome.status == "failed":
        journal.append(row)
        return row
    processed = outcome.processed
    scores = dict(processed.scores)
    embedding = np.zeros(0, dtype=np.float32)
    if outcome.embedding is not None:
        embedding = np.asarray(outcome.embedding["embedding"], dtype=np.float32)
        if "clip_text_similarity" in outcome.embedding:
            scores["clip_text_similarity"] = float(outcome.embedding["clip_text_similarity"])
    reasons = reject_reasons(scores, config.thresholds.to_thresholds())
    clip_model = ({"name": config.clip.model, "weights": config.clip.weights or f"random-init(seed={config.clip.seed})"}
                  if config.clip.enabled else None)
    record = replace(processed.record, scores=scores, clip_model=clip_model)
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


def _count_row(counts: RunCounts, row: dict[str, Any]) -> None:
    status = row["status"]
    if status == "kept":
        counts.kept += 1
    elif status == "rejected":
        counts.rejected += 1
        for reason in filter(None, row.get("reason", "").split(",")):
            counts.rejects_by_reason[reason] = counts.rejects_by_reason.get(reason, 0) + 1
    elif status == "failed":
        counts.failed += 1


# -- stages ------------------------------------------------------------------------------------

def _stage_cpus(config: GenerateConfig, render_actors: int) -> float:
    res = config.resources
    per_render = res.render_remote if config.endpoints else res.render_local
    light = config.process_workers * res.process + (config.embed_workers * res.embed if config.clip.enabled else 0.0)
    return render_actors * per_render + light


def _render_actor_count(config: GenerateConfig, cpus: float) -> int:
    """One actor per endpoint; else `workers`, or one procedural server per CPU the light stages leave."""
    if config.endpoints:
        return len(config.endpoints)
    if config.workers:
        return config.workers
    light = _stage_cpus(config, 0)
    return max(1, int((cpus - light) // config.resources.render_local))


def _ensure_ray(config: GenerateConfig) -> bool:
    """Connect to `ray_address`, reuse a running Ray (tests), or start a local one. True if we started it.

    A local Ray gets `local_ray_cpus` (default: the machine's cores) logical CPUs, raised to what
    the stages declare when `--workers` asks for more render servers than that: the user chose
    to oversubscribe, and a stage that cannot be scheduled would wait forever.
    """
    from pipeline.ray_runtime import init_ray

    # pipeline/ray_runtime.py: a private local instance unless --ray-address/$RAY_ADDRESS names a cluster
    cpus = float(config.local_ray_cpus or os.cpu_count() or 1)
    needed = _stage_cpus(config, _render_actor_count(config, cpus))
    return init_ray(config.ray_address, num_cpus=max(cpus, float(np.ceil(needed))))


def _check_fits(config: GenerateConfig, render_actors: int) -> None:
    """Fail in one line instead of waiting forever for CPUs the cluster does not have."""
    import ray

    from contract.errors import UserError

    needed = _stage_cpus(config, render_actors)
    available = float(ray.available_resources().get("CPU", 0.0))
    if needed > available + 1e-9:
        raise UserError(
            f"generate: the stages need {needed:g} CPUs ({render_actors} render actors) but Ray has {available:g} free",
            hint="lower --workers, or the resources.* CPUs in the --config file, or add nodes to the cluster",
        )


def _start_stages(config: GenerateConfig, cores: float, emit: EventHook) -> tuple[dict[str, list[Any]], dict[str, Any]]:
    import ray

    from pipeline.generate.stages import remote_embed, remote_process, remote_render

    res = config.resources
    endpoints: list[str | None] = list(config.endpoints) or [None] * _render_actor_count(config, cores)
    _check_fits(config, len(endpoints))
    render_cls = remote_render(res.render_local)
    remote_cls = remote_render(res.render_remote)
    renderers = [
        (render_cls if endpoint is None else remote_cls).remote(
            endpoint, idle_timeout=config.client_idle_timeout_s, max_retries=config.client_max_retries,
            connect_timeout=config.client_connect_timeout_s,
            passes=config.passes, auth_token=config.auth_token)
        for endpoint in endpoints
    ]
    thresholds = config.thresholds.to_thresholds()
    processors = [remote_process(res.process).remote(config.encode.crf, config.encode.gop, config.encode.preset, thresholds)
                  for _ in range(config.process_workers)]
    embedders = []
    clip_model: dict[str, Any] = {}
    if config.clip.enabled:
        embedders = [remote_embed(res.embed).remote(config.clip.model, config.clip.weights, config.clip.frames,
                                                    config.clip.seed, config.clip.text_similarity)
                     for _ in range(config.embed_workers)]
    infos = ray.get([actor.info.remote() for actor in renderers])
    for info in infos:
        emit("server", info)
    if embedders:
        clip_model = ray.get(embedders[0].describe.remote())
    return {"render": renderers, "process": processors, "embed": embedders}, clip_model


def _stats(pool: list[Any]) -> list[dict[str, Any]]:
    import ray

    out = []
    for actor in pool:
        try:
            out.append(ray.get(actor.stats.remote(), timeout=30))
        except Exception:  # noqa: BLE001 - a dead actor has no stats
            out.append({})
    return out


def _collect_busy(actors: dict[str, list[Any]]) -> tuple[dict[str, float], dict[str, float]]:
    """Per stage: (wall seconds inside calls, CPU seconds burnt, render servers included)."""
    wall: dict[str, float] = {}
    cpu: dict[str, float] = {}
    for stage, pool in actors.items():
        if pool:
            stats = _stats(pool)
            wall[stage] = sum(float(s.get("busy_seconds", 0.0)) for s in stats)
            cpu[stage] = sum(float(s.get("cpu_seconds", 0.0)) for s in stats)
    return wall, cpu


def _stop_stages(actors: dict[str, list[Any]]) -> None:
    if not any(actors.values()):
        return
    import ray

    try:
        ray.get([actor.shutdown.remote() for actor in actors["render"]], timeout=20)
    except Exception:  # noqa: BLE001 - servers also exit when their parent actor dies
        pass
    for pool in actors.values():
        for actor in pool:
            ray.kill(actor, no_restart=True)


# -- files -------------------------------------------------------------------------------------

def _previous_rows(layout: DatasetLayout) -> dict[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    if layout.index_path.exists():
        rows.update({row["key"]: row for row in index_rows(layout.index_path)})
    rows.update(Journal(layout.journal_path).load())
    return rows


def _write_provenance(layout: DatasetLayout, infos: list[ManifestInfo], config: GenerateConfig, counts: RunCounts,
                      wall: float, clip_model: dict[str, Any], *, status: str, rows: dict[str, dict] | None = None,
                      efficiency: float | None = None, stage_busy: dict[str, float] | None = None,
                      cores: float = 0.0, stream_seconds: float = 0.0, stage_cpu: dict[str, float] | None = None,
                      busy_efficiency: float | None = None, shard_sha256: dict[str, str] | None = None) -> None:
    from pipeline.quality import score_info

    totals = {"requested": counts.requested, "kept": counts.kept, "rejected": counts.rejected, "failed": counts.failed}
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
    for info in infos:
        hashes: dict[str, str] = {}
        if rows is not None:
            hashes = {key: row.get("resolved_sha256", "") for key, row in rows.items() if info.owns(key)}
            for row in rows.values():
                score_names.update((row.get("scores") or {}).keys())
        entry: dict[str, Any] = {"path": info.path, "name": info.name, "sha256": info.sha256,
                                 "resolved_sha256": resolved_manifest_sha256(info, hashes) if hashes else "",
                                 "clips": info.clips}
        # key -> resolved clip sha256; for very large manifests the index's resolved_sha256 column holds it
        entry["resolved"] = hashes if len(hashes) <= RESOLVED_IN_DATASET_JSON else "see index.parquet resolved_sha256"
        manifests.append(entry)
    shards = [f"shards/{p.name}" for p in layout.complete_shards()]
    # a resume that rendered nothing keeps the statistics of the run that did the work
    kept_last_run = None if counts.rendered else _previous_last_run(layout)
    write_dataset_json(layout.dataset_json_path, {
        "status": status,
        "created_by": "worldloom generate",
        "code": code_version(),
        "manifests": manifests,
        "config": config.model_dump(mode="json", exclude={"out", "overwrite", "progress"}),
        "clip_model": clip_model,
        "counts": totals,
        "rejects_by_reason": rejects,
        "shards": shards,
        "shard_sha256": {name: digest for name, digest in sorted((shard_sha256 or {}).items()) if name in shards},
        "scores": {name: score_info(name) for name in sorted(score_names)},
        "last_run": kept_last_run or {"wall_s": round(wall, 3), "rendered": counts.rendered, "frames": counts.frames,
                     "clips_per_min": round(counts.rendered / wall * 60, 3) if wall else 0.0,
                     "frames_per_s": round(counts.frames / wall, 3) if wall else 0.0,
                     "efficiency": None if efficiency is None else round(efficiency, 4),
                     "stage_busy_s": {k: round(v, 3) for k, v in (stage_busy or {}).items()}, "cores": cores,
                     "stream_s": round(stream_seconds, 3),
                     "stage_cpu_s": {k: round(v, 3) for k, v in (stage_cpu or {}).items()},
                     "busy_efficiency": None if busy_efficiency is None else round(busy_efficiency, 4)},
    })


def _previous_last_run(layout: DatasetLayout) -> dict[str, Any] | None:
    import json

    try:
        return json.loads(layout.dataset_json_path.read_text()).get("last_run") or None
    except (OSError, ValueError, AttributeError):
        return None


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
