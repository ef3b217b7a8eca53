"""Curate's Ray work: one task per input, retried, and the TransNetV2 stage when it has actors.

Each input not yet staged becomes a Ray task running `process_input` and staging its result
(staging.py): exactly once per input across interruptions. A task that raises or whose worker
dies is tried again under `pipeline.retries.RetryPolicy` (`run.max_retries` extra attempts, the
rule generate's renders follow too), then the input is recorded as failed with its last error.
When the shot detector uses TransNetV2 and Ray has GPUs (or `shots.transnet_placement: actor`),
the network runs as its own stage: a pool of actors, each holding `shots.transnet_num_gpus`
GPUs, to which the decode tasks stream batches of 100-frame windows.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from contract.errors import UserError
from pipeline.curate import staging
from pipeline.curate.config import CurateConfig
from pipeline.ray_runtime import cpus_short, ensure_ray
from pipeline.retries import Attempts, RetryPolicy


class TransNetActor:
    """The TransNetV2 stage: one network on its own device, serving window batches."""

    def __init__(self, device: str, batch_windows: int) -> None:
        from pipeline.curate.transnet import TransNetV2Detector

        self.detector = TransNetV2Detector(device, batch_windows)

    def predict_windows(self, windows: Any) -> tuple[Any, Any]:
        return self.detector.predict_windows(windows)

    def describe(self) -> dict[str, Any]:
        return self.detector.describe()


def transnet_actors(config: CurateConfig, pending: int) -> list[Any]:
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


def process_pending(pending: list[str], dataset: Path, config: CurateConfig, *, show_progress: bool,
                    num_cpus: int | None, ray_address: str | None = None) -> dict[str, str]:
    """Run pending inputs on Ray with retries; returns uri -> final error for inputs that failed."""
    import ray
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    if not pending:
        return {}
    if show_progress:  # name the stage while nothing has finished yet (Ray and the models take a while)
        import sys

        print("curate: starting Ray, then probe > shots > clips > scores > captions per input", file=sys.stderr)
    ensure_ray(ray_address, cpus=num_cpus)  # local unless --ray-address/$RAY_ADDRESS
    available = cpus_short(config.run.num_cpus_per_task, free=False)
    if available is not None:  # Ray would wait for the CPUs forever
        raise UserError(f"config run.num_cpus_per_task={config.run.num_cpus_per_task:g} but Ray has {available:g} CPUs",
                        hint="lower run.num_cpus_per_task or raise --workers")
    remote = ray.remote(num_cpus=config.run.num_cpus_per_task, max_retries=0)(_curate_task)
    config_json = config.model_dump_json()
    actors = transnet_actors(config, len(pending))
    attempts = Attempts(RetryPolicy(config.run.max_retries))
    failures: dict[str, str] = {}
    in_flight: dict[Any, str] = {}

    def submit(uri: str) -> None:
        attempts.begin(uri)
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
                except (ray.exceptions.RayTaskError, ray.exceptions.WorkerCrashedError,
                        ray.exceptions.RayError) as error:
                    message = str(error).strip().splitlines()[-1][:300] if str(error).strip() else type(error).__name__
                    if attempts.may_retry(uri):
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
